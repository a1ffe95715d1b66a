/**
 * RedisStore over ioredis 5.3, the oldest ioredis the peer range admits (the other tests run
 * ioredis 6): the store contract, and a race through the batched writes of many calls in
 * flight.
 */
import { createQuotaEngine } from '@quotakit/core';
import { describeStoreContract } from '@quotakit/core/testing';
import { RedisStore } from '@quotakit/redis';
import { Redis } from 'ioredis-v5';
import { afterAll, expect, it } from 'vitest';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  REDIS_URL,
  redisAvailable,
  uniquePrefix,
} from './redis-service.js';

const prefix = uniquePrefix('ioredis-5');

describeWithRedis('RedisStore over ioredis 5.3', () => {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: !redisAvailable });
  client.on('error', () => {});
  afterAll(async () => {
    // Cleaned up through the ioredis 6 the other tests use (deleteKeys is typed for it).
    const cleanup = connect();
    await deleteKeys(cleanup, prefix);
    await cleanup.quit();
    await client.quit();
  });

  describeStoreContract(
    'RedisStore (ioredis 5.3)',
    () => new RedisStore({ client, prefix, timeoutMs: 10_000 }),
  );

  it('admits exactly the limit when 2,000 consumes race on one subject', async () => {
    const engine = createQuotaEngine({
      store: new RedisStore({ client, prefix, timeoutMs: 10_000 }),
      defaults: { llm_requests: { limit: 500, period: 'per_day' } },
    });
    const decisions = await Promise.all(
      Array.from({ length: 2_000 }, () =>
        engine.consume({ userId: 'ioredis-5-racer', amounts: { llm_requests: 1 } }),
      ),
    );
    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(500);
    expect(
      await engine.getQuotaStatus('llm_requests', { userId: 'ioredis-5-racer' }),
    ).toMatchObject({
      used: 500,
      remaining: 0,
    });
  });
});
