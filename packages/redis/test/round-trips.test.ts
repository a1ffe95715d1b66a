import { createQuotaEngine, type QuotaEngine } from '@quotakit/core';
import { RedisStore } from '@quotakit/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { countCommands } from './command-counter.js';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  redisAvailable,
  uniquePrefix,
} from './redis-service.js';

const prefix = uniquePrefix('round-trips');
const HUGE = 1e12;

describeWithRedis('RedisStore round trips', () => {
  let client: Redis;
  let engine: QuotaEngine;

  beforeAll(async () => {
    client = connect();
    // Many rules over every scope, so that one operation touches many counters.
    engine = createQuotaEngine({
      // A generous override hint: a loaded test machine that pauses for a second between two
      // operations must not add a round trip to the count.
      store: new RedisStore({ client, prefix, timeoutMs: 5_000, overrideHintMs: 10_000 }),
      defaults: {
        llm_requests: [
          { limit: HUGE, period: 'per_day' },
          { limit: HUGE, period: 'per_minute', algorithm: 'sliding' },
          { limit: HUGE, period: 'per_day', scope: 'agent' },
          { limit: HUGE, period: 'per_hour', scope: 'tenant' },
          { limit: HUGE, period: 'per_month', scope: 'global' },
        ],
        llm_tokens: [
          { limit: HUGE, period: 'per_day' },
          { limit: HUGE, period: 'total', scope: 'tenant' },
        ],
        concurrent_tasks: { limit: HUGE, period: 'total' },
      },
    });
    // Loads the scripts and learns that there are no run-time overrides.
    await engine.consume({ userId: 'warm-up', amounts: { llm_requests: 1 } });
  });
  afterAll(async () => {
    if (!redisAvailable) return;
    await deleteKeys(client, prefix);
    await client.quit();
  });

  it('sends one EVALSHA per engine operation, for 1,000 operations on 1,000 subjects', async () => {
    const commands = countCommands(client);
    let operations = 0;
    for (let i = 0; i < 1_000; i++) {
      const subject = { userId: `user-${i}`, agentId: `agent-${i % 7}`, tenantId: `t-${i % 3}` };
      switch (i % 5) {
        case 0:
          await engine.consume({ ...subject, amounts: { llm_requests: 1, llm_tokens: 250 } });
          operations += 1;
          break;
        case 1: {
          const reservation = await engine.reserve({ ...subject, amounts: { llm_tokens: 500 } });
          await reservation.commit({ llm_tokens: 420 });
          operations += 2;
          break;
        }
        case 2: {
          const lease = await engine.acquire(subject);
          await lease.release();
          operations += 2;
          break;
        }
        case 3:
          await engine.recordUsage({ ...subject, resource: 'llm_tokens', amount: 10 });
          operations += 1;
          break;
        default:
          await engine.getAllQuotasStatus(subject);
          operations += 1;
      }
    }
    expect(Object.fromEntries(commands.counts)).toEqual({ evalsha: operations });
  });

  it('reads overrides once per subject while some exist, then one EVALSHA per operation', async () => {
    await engine.setQuota({
      scope: 'user',
      id: 'vip',
      resource: 'llm_tokens',
      limit: 10,
      period: 'per_day',
    });
    const commands = countCommands(client);
    const refused = await engine.consume({ userId: 'vip', amounts: { llm_tokens: 11 } });
    expect(refused.results.llm_tokens).toMatchObject({ allowed: false, limit: 10 });
    for (let i = 0; i < 99; i++)
      await engine.consume({ userId: 'vip', amounts: { llm_tokens: 0.1 } });
    // One read of the subject's overrides, then the engine's cache (overrideCacheTtlMs).
    expect(Object.fromEntries(commands.counts)).toEqual({ evalsha: 101 });
    expect(await engine.removeQuota({ scope: 'user', id: 'vip', resource: 'llm_tokens' })).toBe(
      true,
    );
  });

  it("applies another instance's setQuota at the next decision, for two more round trips once", async () => {
    const otherClient = connect();
    try {
      const other = createQuotaEngine({
        store: new RedisStore({ client: otherClient, prefix, timeoutMs: 5_000 }),
        defaults: { llm_tokens: { limit: HUGE, period: 'per_day' } },
      });
      const subject = { userId: 'moved' };
      await engine.consume({ ...subject, amounts: { llm_tokens: 5 } });
      await other.setQuota({
        scope: 'user',
        id: 'moved',
        resource: 'llm_tokens',
        limit: 8,
        period: 'per_day',
      });
      const commands = countCommands(client);
      const refused = await engine.consume({ ...subject, amounts: { llm_tokens: 5 } });
      expect(refused.results.llm_tokens).toMatchObject({ allowed: false, limit: 8, used: 5 });
      // The consume the script turned away, the listing, the consume again.
      expect(Object.fromEntries(commands.counts)).toEqual({ evalsha: 3 });
      const admitted = await engine.consume({ ...subject, amounts: { llm_tokens: 3 } });
      expect(admitted.results.llm_tokens).toMatchObject({ allowed: true, limit: 8, used: 8 });
      expect(Object.fromEntries(commands.counts)).toEqual({ evalsha: 4 });
      await other.removeQuota({ scope: 'user', id: 'moved', resource: 'llm_tokens' });
    } finally {
      await otherClient.quit();
    }
  });
});
