/**
 * RedisStore over the clients the other tests do not use: ioredis 5.3, the oldest the peer
 * range admits (the rest of the suite runs ioredis 6), and node-redis 6 through the adapter
 * the README shows under "Other clients", written here exactly as it is there.
 */
import { createQuotaEngine } from '@quotakit/core';
import { describeStoreContract } from '@quotakit/core/testing';
import { type RedisScriptClient, RedisStore } from '@quotakit/redis';
import { Redis as RedisV5 } from 'ioredis-v5';
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

interface ClientUnderTest {
  readonly name: string;
  readonly client: RedisScriptClient;
  open(): Promise<void>;
  close(): Promise<void>;
}

function ioredis5(): ClientUnderTest {
  const client = new RedisV5(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  // Connection errors surface through the store's results; an 'error' event without a
  // listener would crash the test process.
  client.on('error', () => {});
  return {
    name: 'ioredis 5.3',
    client,
    open: () => client.connect(),
    close: async () => {
      await client.quit();
    },
  };
}

function nodeRedis(): ClientUnderTest {
  const redis = createClient({ url: REDIS_URL });
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
  return {
    name: 'node-redis 6',
    client,
    open: async () => {
      await redis.connect();
    },
    close: async () => {
      await redis.quit();
    },
  };
}

for (const under of [ioredis5(), nodeRedis()]) {
  const prefix = uniquePrefix(under.name.replace(/\W+/g, '-'));

  describeWithRedis(`RedisStore over ${under.name}`, () => {
    beforeAll(() => under.open());
    afterAll(async () => {
      if (!redisAvailable) return;
      const cleanup = connect();
      await deleteKeys(cleanup, prefix);
      await cleanup.quit();
      await under.close();
    });

    describeStoreContract(
      `RedisStore (${under.name})`,
      () => new RedisStore({ client: under.client, prefix, timeoutMs: 10_000 }),
    );

    it('admits exactly the limit when 2,000 consumes race on one subject', async () => {
      const engine = createQuotaEngine({
        store: new RedisStore({ client: under.client, prefix, timeoutMs: 10_000 }),
        defaults: { llm_requests: { limit: 500, period: 'per_day' } },
      });
      const subject = { userId: `racer-${under.name}` };
      const decisions = await Promise.all(
        Array.from({ length: 2_000 }, () =>
          engine.consume({ ...subject, amounts: { llm_requests: 1 } }),
        ),
      );
      expect(decisions.filter((decision) => decision.allowed)).toHaveLength(500);
      expect(await engine.getQuotaStatus('llm_requests', subject)).toMatchObject({
        used: 500,
        remaining: 0,
      });
    });
  });
}
