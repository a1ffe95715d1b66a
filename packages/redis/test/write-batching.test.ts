import type { Socket } from 'node:net';
import { RedisStore } from '@quotakit/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CONSUME_ONE_SCRIPT } from '../src/lua-scripts.js';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  redisAvailable,
  uniquePrefix,
} from './redis-service.js';

const prefix = uniquePrefix('write-batching');
const NOW = 1_800_000_000_000;
const DAY_MS = 86_400_000;
const CALLS = 64;

/** Counts the writes that reach the client's socket (each one a system call). */
function countSocketWrites(client: Redis): { readonly count: number } {
  const socket = client.stream as Socket & {
    _write: (...args: unknown[]) => void;
    _writev: (...args: unknown[]) => void;
  };
  const counted = { count: 0 };
  const write = socket._write;
  const writev = socket._writev;
  socket._write = function (this: Socket, ...args: unknown[]) {
    counted.count += 1;
    return write.apply(this, args);
  };
  socket._writev = function (this: Socket, ...args: unknown[]) {
    counted.count += 1;
    return writev.apply(this, args);
  };
  return counted;
}

describeWithRedis('RedisStore write batching', () => {
  let run = 0;
  const clients: Redis[] = [];

  async function freshClient(): Promise<Redis> {
    const client = connect();
    clients.push(client);
    await client.ping();
    return client;
  }

  /** A consume of 1 on a counter of its own, limit `CALLS`. */
  function consumeOne(store: RedisStore, key: string) {
    return store.consume({
      now: NOW,
      subject: { userId: 'u' },
      counters: [{ key, amount: 1, ttlMs: DAY_MS }],
      limits: [{ counter: 0, limit: CALLS }],
    });
  }

  beforeAll(async () => {
    if (!redisAvailable) return;
    const client = await freshClient();
    await client.script('LOAD', CONSUME_ONE_SCRIPT.source);
  });
  afterAll(async () => {
    if (!redisAvailable) return;
    await deleteKeys(clients[0]!, prefix);
    for (const client of clients) client.disconnect();
  });

  it('writes the first call of a tick at once and holds the later ones for the batch', async () => {
    const client = await freshClient();
    const store = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    run += 1;
    const first = consumeOne(store, `batch|${run}|a`);
    expect(client.stream.writableLength).toBe(0);
    const second = consumeOne(store, `batch|${run}|b`);
    expect(client.stream.writableLength).toBeGreaterThan(0);
    expect(await first).toEqual({ allowed: true, values: [0] });
    expect(await second).toEqual({ allowed: true, values: [0] });
    expect(client.stream.writableLength).toBe(0);
  });

  it.each([
    [8, 1 + Math.ceil((CALLS - 1) / 8)],
    [1, CALLS],
  ])(
    'with writeBatchSize %i, sends %i socket writes for 64 calls made in one tick, each answered',
    async (writeBatchSize, writes) => {
      const client = await freshClient();
      const store = new RedisStore({ client, prefix, timeoutMs: 10_000, writeBatchSize });
      run += 1;
      const key = `batch|${run}|shared`;
      const counted = countSocketWrites(client);
      const outcomes = await Promise.all(
        Array.from({ length: CALLS }, () => consumeOne(store, key)),
      );
      expect(counted.count).toBe(writes);
      // In the order sent: each call saw the ones before it.
      expect(outcomes.map((outcome) => outcome.values[0])).toEqual(
        Array.from({ length: CALLS }, (_, i) => i),
      );
      expect(outcomes.every((outcome) => outcome.allowed)).toBe(true);
    },
  );
});
