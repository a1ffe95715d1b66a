import net from 'node:net';
import { createQuotaEngine, MemoryStore } from '@quotakit/core';
import { RedisStore } from '@quotakit/redis';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  REDIS_URL,
  uniquePrefix,
} from './redis-service.js';
import { freePort } from './spare-redis.js';

const prefix = uniquePrefix('startup');
const admin = connect();

afterAll(async () => {
  await deleteKeys(admin, prefix);
  admin.disconnect();
});

describeWithRedis('RedisStore while its client makes its first connection', () => {
  it.each([
    ['a new client, still connecting', false],
    ['a lazy client, not yet asked to connect', true],
  ])('counts a burst of calls on %s instead of answering unknown', async (_name, lazyConnect) => {
    const client = new Redis(REDIS_URL, { lazyConnect });
    client.on('error', () => {});
    expect(client.status).not.toBe('ready');
    const engine = createQuotaEngine({
      store: new RedisStore({ client, prefix, timeoutMs: 2_000 }),
      defaults: { llm_requests: { limit: 1_000, period: 'per_day' } },
    });
    const userId = `burst-${String(lazyConnect)}`;
    const decisions = await Promise.all(
      Array.from({ length: 50 }, () => engine.consume({ userId, amounts: { llm_requests: 1 } })),
    );
    expect(decisions.map((d) => d.results.llm_requests?.status)).not.toContain('unknown');
    expect((await engine.getQuotaStatus('llm_requests', { userId })).used).toBe(50);
    client.disconnect();
  });

  it('answers unknown within the timeout when the first connection never comes, queueing a bounded number', async () => {
    // A port nothing listens on: the client keeps trying to connect.
    const client = new Redis({
      host: '127.0.0.1',
      port: await freePort(),
      maxRetriesPerRequest: 1,
    });
    client.on('error', () => {});
    const engine = createQuotaEngine({
      store: new RedisStore({ client, prefix, timeoutMs: 100 }),
      defaults: { llm_requests: { limit: 1_000, period: 'per_day' } },
      failureMode: 'closed',
      onError: () => {},
    });
    const started = performance.now();
    const decisions = await Promise.all(
      Array.from({ length: 20 }, () =>
        engine.consume({ userId: 'never', amounts: { llm_requests: 1 } }),
      ),
    );
    // Twice the timeout at most: the subject's override lookup, then the consume.
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(decisions.every((d) => !d.allowed)).toBe(true);
    expect(decisions.map((d) => d.results.llm_requests?.status)).toEqual(Array(20).fill('unknown'));
    const offline = (client as unknown as { offlineQueue: { length: number } }).offlineQueue;
    expect(offline.length).toBeLessThanOrEqual(1_000);
    client.disconnect();
  });

  it('lets the insurance store take over when the first connection opens but never completes', async () => {
    // A server that accepts connections and never answers: ioredis waits for its ready check.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const client = new Redis({
      host: '127.0.0.1',
      port: (silent.address() as net.AddressInfo).port,
      maxRetriesPerRequest: 1,
    });
    client.on('error', () => {});
    try {
      const engine = createQuotaEngine({
        store: new RedisStore({ client, prefix, timeoutMs: 50, insurance: new MemoryStore() }),
        defaults: { llm_requests: { limit: 3, period: 'per_minute' } },
        onError: () => {},
      });
      const answers: string[] = [];
      for (let i = 0; i < 5; i++) {
        const decision = await engine.consume({ userId: 'silent', amounts: { llm_requests: 1 } });
        const { status, used } = decision.results.llm_requests!;
        answers.push(`${status} ${used}`);
      }
      expect(client.status).not.toBe('ready');
      // The first call waits out the timeout; from then on the insurance store counts.
      expect(answers.slice(1)).toEqual([
        'within_limit 1',
        'within_limit 2',
        'at_limit 3',
        'exceeded 3',
      ]);
    } finally {
      client.disconnect();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
