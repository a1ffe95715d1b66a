import {
  MemoryStore,
  type StoreConsumeRequest,
  type StoreCounter,
  type StoreLimit,
} from '@quotakit/core';
import { type RedisScriptClient, RedisStore } from '@quotakit/redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CONSUME_ONE_SCRIPT, CONSUME_SCRIPT } from '../src/lua-scripts.js';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  redisAvailable,
  uniquePrefix,
} from './redis-service.js';

const prefix = uniquePrefix('consume-scripts');
const NOW = 1_800_000_000_000;
const DAY_MS = 86_400_000;

/**
 * The real client, with the SHA of every EVALSHA noted, and NOSCRIPT answered (without asking
 * Redis) for the SHAs in `forgotten`, as a server that lost its scripts would: SCRIPT FLUSH on
 * the shared test server would reach other test files.
 */
function watched(client: Redis) {
  const sent: string[] = [];
  const forgotten = new Set<string>();
  const scriptClient: RedisScriptClient = {
    get status() {
      return client.status;
    },
    evalsha: async (sha, numKeys, ...rest) => {
      sent.push(sha);
      if (forgotten.delete(sha)) throw noScript();
      return client.evalsha(sha, numKeys, ...rest);
    },
    eval: (source, numKeys, ...rest) => {
      sent.push('eval');
      return client.eval(source, numKeys, ...rest);
    },
  };
  return { scriptClient, sent, forgotten };
}

/** An error reply as ioredis reports one (its class is named ReplyError). */
function noScript(): Error {
  const error = new Error('NOSCRIPT No matching script. Please use EVAL.');
  error.name = 'ReplyError';
  return error;
}

let run = 0;
/** Counter keys no other test uses. */
function keys(...names: string[]): string[] {
  run += 1;
  return names.map((name) => `llm_tokens|per_day|${run}|user|${name}`);
}

function counter(key: string, amount: number, ttlMs: number | null = DAY_MS): StoreCounter {
  return { key, amount, ttlMs };
}

const SUBJECT = { userId: 'u' };

/**
 * A small deterministic generator: the same run every time, so that a failure can be replayed.
 * `pick` chooses one of `values`.
 */
function seededRandom(seed: number) {
  let state = seed;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  return { random, pick };
}

/**
 * Ttls the random runs choose from. 'window': the ttl to the end of a 2-second window, so that
 * the counter's expiry stays the same all through it, as the engine's fixed windows do.
 */
const TTLS = [null, 1_000, 5_000, 60_000, 'window', 'window'] as const;

function ttlAt(ttl: (typeof TTLS)[number], now: number): number | null {
  return ttl === 'window' ? (Math.floor(now / 2_000) + 1) * 2_000 - now : ttl;
}

// 2^52 (with no limit) takes a value past 2^53, where whole numbers stop adding inside Redis;
// fractions never add there.
const AMOUNTS = [0, 1, 2, 5, 0.1, 0.25, 1e-3, 3.5, 2 ** 52];

describeWithRedis('RedisStore consume scripts', () => {
  let client: Redis;

  beforeAll(async () => {
    client = connect();
    if (!redisAvailable) return;
    // Loaded up front: on a Redis that has not met them yet (a fresh server, or one no other
    // test file has used), the first EVALSHA of each would fall back to EVAL.
    await client.script('LOAD', CONSUME_ONE_SCRIPT.source);
    await client.script('LOAD', CONSUME_SCRIPT.source);
  });
  afterAll(async () => {
    if (!redisAvailable) return;
    await deleteKeys(client, prefix);
    await client.quit();
  });

  const consume = (
    store: RedisStore,
    counters: StoreCounter[],
    limits: StoreLimit[],
    extra: Partial<StoreConsumeRequest> = {},
  ) => store.consume({ now: NOW, subject: SUBJECT, counters, limits, ...extra });

  it('sends the one-counter script for one fixed or total counter, the general one otherwise', async () => {
    const { scriptClient, sent } = watched(client);
    const store = new RedisStore({ client: scriptClient, prefix, timeoutMs: 10_000 });
    const [a, b, previous] = keys('a', 'b', 'previous');
    await consume(store, [counter(a!, 1)], [{ counter: 0, limit: 10 }]);
    await consume(store, [counter(a!, 1, null)], [{ counter: 0, limit: 10 }]);
    await consume(store, [counter(a!, 1)], []);
    await consume(
      store,
      [counter(a!, 1)],
      [
        { counter: 0, limit: 10 },
        { counter: 0, limit: 5 },
      ],
    );
    expect(sent).toEqual(Array(4).fill(CONSUME_ONE_SCRIPT.sha));
    sent.length = 0;
    await consume(
      store,
      [counter(a!, 1), counter(b!, 1)],
      [
        { counter: 0, limit: 10 },
        { counter: 1, limit: 10 },
      ],
    );
    await consume(
      store,
      [counter(a!, 1), counter(previous!, 0, null)],
      [{ counter: 0, limit: 10, previous: 1, previousWeight: 0.5 }],
    );
    await consume(store, [counter(a!, 1)], [{ counter: 0, limit: 10 }], {
      hold: { id: `hold-${run}`, ttlMs: 60_000 },
    });
    expect(sent).toEqual(Array(3).fill(CONSUME_SCRIPT.sha));
  });

  it('checks the tightest of several limits on the one counter', async () => {
    const store = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    const [a] = keys('a');
    const limits = [
      { counter: 0, limit: 10 },
      { counter: 0, limit: 3 },
      { counter: 0, limit: 7 },
    ];
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(await consume(store, [counter(a!, 1)], limits));
    expect(outcomes).toEqual([
      { allowed: true, values: [0] },
      { allowed: true, values: [1] },
      { allowed: true, values: [2] },
      { allowed: false, values: [3] },
    ]);
  });

  it('answers values that do not fit the short reply exactly: fractions, 2^53 and beyond', async () => {
    const store = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    const [fraction, huge] = keys('fraction', 'huge');
    await consume(store, [counter(fraction!, 0.1)], [{ counter: 0, limit: 1 }]);
    await consume(store, [counter(fraction!, 0.2)], [{ counter: 0, limit: 1 }]);
    expect(await consume(store, [counter(fraction!, 0.8)], [{ counter: 0, limit: 1 }])).toEqual({
      allowed: false,
      values: [0.1 + 0.2],
    });
    const big = 2 ** 53 + 2;
    await consume(store, [counter(huge!, big)], []);
    // (A limit's tolerance, 1e-9 of it, is about 9e6 here.)
    expect(await consume(store, [counter(huge!, 1e8)], [{ counter: 0, limit: big }])).toEqual({
      allowed: false,
      values: [big],
    });
    expect(await consume(store, [counter(huge!, 2)], [])).toEqual({
      allowed: true,
      values: [big],
    });
  });

  it('reads the override count through the one-counter script as well', async () => {
    // A new store asks for the count with its first call, then every quarter of the hint.
    const store = new RedisStore({ client, prefix, timeoutMs: 10_000, overrideHintMs: 60_000 });
    const [a] = keys('a');
    expect(store.hasNoOverrides()).toBe(false);
    expect(await consume(store, [counter(a!, 1)], [{ counter: 0, limit: 10 }])).toEqual({
      allowed: true,
      values: [0],
    });
    expect(store.hasNoOverrides()).toBe(true);
  });

  it('returns expired reservations before the one-counter script reads its counter', async () => {
    const store = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    const [a] = keys('a');
    const limits = [{ counter: 0, limit: 5 }];
    const held = await consume(store, [counter(a!, 5)], limits, {
      hold: { id: `expiring-${run}`, ttlMs: 1_000 },
    });
    expect(held.allowed).toBe(true);
    expect((await consume(store, [counter(a!, 1)], limits, { now: NOW + 999 })).allowed).toBe(
      false,
    );
    expect(await consume(store, [counter(a!, 1)], limits, { now: NOW + 1_000 })).toEqual({
      allowed: true,
      values: [0],
    });
  });

  it('returns an expired reservation to each counter it held, whichever one is consumed next', async () => {
    const store = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    const [a, b, untouched] = keys('a', 'b', 'untouched');
    const limits = [{ counter: 0, limit: 5 }];
    await consume(store, [counter(a!, 5), counter(b!, 5)], [], {
      hold: { id: `two-counters-${run}`, ttlMs: 1_000 },
    });
    // A counter no reservation ever held is not swept for, and is not affected either.
    expect(await consume(store, [counter(untouched!, 1)], limits, { now: NOW + 1_000 })).toEqual({
      allowed: true,
      values: [0],
    });
    expect(await consume(store, [counter(b!, 5)], limits, { now: NOW + 1_000 })).toEqual({
      allowed: true,
      values: [0],
    });
    expect(await consume(store, [counter(a!, 5)], limits, { now: NOW + 1_000 })).toEqual({
      allowed: true,
      values: [0],
    });
  });

  it('falls back to EVAL once when Redis has lost the one-counter script', async () => {
    const { scriptClient, sent, forgotten } = watched(client);
    const store = new RedisStore({ client: scriptClient, prefix, timeoutMs: 10_000 });
    const [a] = keys('a');
    const limits = [{ counter: 0, limit: 10 }];
    await consume(store, [counter(a!, 1)], limits);
    forgotten.add(CONSUME_ONE_SCRIPT.sha);
    sent.length = 0;
    expect(await consume(store, [counter(a!, 2)], limits)).toEqual({
      allowed: true,
      values: [1],
    });
    expect(await consume(store, [counter(a!, 3)], limits)).toEqual({
      allowed: true,
      values: [3],
    });
    expect(sent).toEqual([CONSUME_ONE_SCRIPT.sha, 'eval', CONSUME_ONE_SCRIPT.sha]);
  });

  for (const [name, shape] of [
    ['one-counter', 1],
    ['general', 2],
  ] as const) {
    it(`admits exactly the limit when 2,000 consumes race through the ${name} script`, async () => {
      const store = new RedisStore({ client, prefix, timeoutMs: 10_000 });
      const [a, b] = keys('a', 'b');
      const counters = shape === 1 ? [counter(a!, 1)] : [counter(a!, 1), counter(b!, 2)];
      const limits =
        shape === 1
          ? [{ counter: 0, limit: 250 }]
          : [
              { counter: 0, limit: 1_000 },
              { counter: 1, limit: 500 },
            ];
      const outcomes = await Promise.all(
        Array.from({ length: 2_000 }, () => consume(store, counters, limits)),
      );
      expect(outcomes.filter((outcome) => outcome.allowed)).toHaveLength(250);
      const read = await store.read({ now: NOW, subject: SUBJECT, counters });
      expect(read.values).toEqual(shape === 1 ? [250] : [250, 500]);
    });
  }

  it('decides and counts as MemoryStore does, over a random run of one-counter consumes', async () => {
    const redis = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    const memory = new MemoryStore();
    const [a, b] = keys('a', 'b');
    const { random, pick } = seededRandom(20_261_128);
    let now = NOW;
    for (let step = 0; step < 400; step++) {
      now += Math.floor(random() * 700);
      const key = pick([a!, b!]);
      const amount = pick(AMOUNTS);
      const ttlMs = ttlAt(pick(TTLS), now);
      const limits: StoreLimit[] = random() < 0.15 ? [] : [{ counter: 0, limit: 4 + (step % 7) }];
      const request = { now, subject: SUBJECT, counters: [counter(key, amount, ttlMs)], limits };
      const [fromRedis, fromMemory] = await Promise.all([
        redis.consume(request),
        memory.consume(request),
      ]);
      expect({ step, ...fromRedis }).toEqual({ step, ...fromMemory });
    }
  });

  it('decides and counts as MemoryStore does, over a random run of the general scripts', async () => {
    const redis = new RedisStore({ client, prefix, timeoutMs: 10_000 });
    const memory = new MemoryStore();
    const [a, b] = keys('a', 'b');
    const { random, pick } = seededRandom(20_261_129);
    const counters = (now: number): StoreCounter[] =>
      [a!, b!].map((key) => counter(key, pick(AMOUNTS), ttlAt(pick(TTLS), now)));
    const held: string[] = [];
    let now = NOW;
    for (let step = 0; step < 300; step++) {
      now += Math.floor(random() * 700);
      const kind = pick(['consume', 'reserve', 'settle', 'record'] as const);
      const base = { now, subject: SUBJECT, counters: counters(now) };
      let request: Promise<unknown>[];
      if (kind === 'record') {
        const record = { ...base, idempotencyTtlMs: 60_000 };
        request = [redis.record(record), memory.record(record)];
      } else if (kind === 'settle' && held.length > 0) {
        const settle = { ...base, reservationId: held.shift()! };
        request = [redis.settle(settle), memory.settle(settle)];
      } else {
        const limit = 4 + (step % 9);
        const consume: StoreConsumeRequest = {
          ...base,
          limits: [
            { counter: 0, limit },
            { counter: 1, limit: limit * 2 },
          ],
          ...(kind === 'reserve' ? { hold: { id: `r${run}-${step}`, ttlMs: 1_500 } } : {}),
        };
        if (kind === 'reserve') held.push(`r${run}-${step}`);
        request = [redis.consume(consume), memory.consume(consume)];
      }
      const [fromRedis, fromMemory] = await Promise.all(request);
      expect({ step, kind, outcome: fromRedis }).toEqual({ step, kind, outcome: fromMemory });
    }
  });
});
