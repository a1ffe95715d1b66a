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

  it('holds nothing while calls come one at a time', async () => {
    const client = await freshClient();
    const store = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    run += 1;
    for (let i = 0; i < 3; i++) {
      const outcome = consumeOne(store, `batch|${run}`);
      expect(client.stream.writableLength).toBe(0);
      expect(client.stream.writableCorked).toBe(0);
      expect(await outcome).toEqual({ allowed: true, values: [i] });
    }
  });

  it('holds the calls that follow others in flight in the same tick, until the tick ends', async () => {
    const client = await freshClient();
    const store = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    run += 1;
    const first = consumeOne(store, `batch|${run}|a`);
    const second = consumeOne(store, `batch|${run}|b`);
    // Both written at once: the second, with the first in flight, starts holding the rest.
    expect(client.stream.writableLength).toBe(0);
    const third = consumeOne(store, `batch|${run}|c`);
    expect(client.stream.writableLength).toBeGreaterThan(0);
    expect(await Promise.all([first, second, third])).toEqual([
      { allowed: true, values: [0] },
      { allowed: true, values: [0] },
      { allowed: true, values: [0] },
    ]);
    expect(client.stream.writableLength).toBe(0);
  });

  it.each([
    // Two written at once (the second finds the first in flight and starts the batch), then
    // the other 62 eight at a time, the last 6 when the tick ends.
    [8, 2 + Math.ceil((CALLS - 2) / 8)],
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
