/**
 * RedisStore over node-redis (the `redis` package) instead of ioredis, through the adapter the
 * README shows under "Other clients", written here exactly as it is there.
 */
import { createQuotaEngine } from '@quotakit/core';
import { describeStoreContract } from '@quotakit/core/testing';
import { type RedisScriptClient, RedisStore } from '@quotakit/redis';
import { createClient } from 'redis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  REDIS_URL,
  redisAvailable,
  uniquePrefix,
} from './redis-service.js';

const prefix = uniquePrefix('node-redis');

describeWithRedis('RedisStore over node-redis', () => {
  const redis = createClient({ url: REDIS_URL });
  // Connection errors surface through the store's results; an 'error' event without a
  // listener would crash the test process.
  redis.on('error', () => {});

  // The README's adapter.
  const client: RedisScriptClient = {
    get status() {
      return redis.isReady ? 'ready' : 'connecting';
    },
    evalsha: (sha, numKeys, ...rest) =>
      redis.evalSha(sha, { keys: rest.slice(0, numKeys), arguments: rest.slice(numKeys) }),
    eval: (script, numKeys, ...rest) =>
      redis.eval(script, { keys: rest.slice(0, numKeys), arguments: rest.slice(numKeys) }),
  };

  beforeAll(async () => {
    await redis.connect();
  });
  afterAll(async () => {
    if (!redisAvailable) return;
    const cleanup = connect();
    await deleteKeys(cleanup, prefix);
    await cleanup.quit();
    await redis.quit();
  });

  describeStoreContract(
    'RedisStore (node-redis)',
    () => new RedisStore({ client, prefix, timeoutMs: 10_000 }),
  );

  it('admits exactly the limit when 2,000 consumes race on one subject', async () => {
    const engine = createQuotaEngine({
      store: new RedisStore({ client, prefix: `${prefix}-race`, timeoutMs: 10_000 }),
      defaults: { llm_requests: { limit: 500, period: 'per_day' } },
    });
    const decisions = await Promise.all(
      Array.from({ length: 2_000 }, () =>
        engine.consume({ userId: 'racer', amounts: { llm_requests: 1 } }),
      ),
    );
    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(500);
    const status = await engine.getQuotaStatus('llm_requests', { userId: 'racer' });
    expect(status).toMatchObject({ used: 500, remaining: 0, status: 'at_limit' });
    const cleanup = connect();
    await deleteKeys(cleanup, `${prefix}-race`);
    await cleanup.quit();
  });
});
