import { describe, expect, it } from 'vitest';
import { createQuotaEngine } from '../src/engine.js';
import { QuotaConfigError } from '../src/errors.js';
import { ExpiryQueue, type QueuedItem } from '../src/expiry-queue.js';
import { MemoryLedger } from '../src/memory-ledger.js';
import { MemoryStore } from '../src/memory-store.js';
import { describeStoreContract } from '../src/testing/index.js';
import { asyncView, withOwnLedger } from './async-store.js';

describeStoreContract('MemoryStore', () => new MemoryStore(), { concurrency: 2_000 });

describe('MemoryStore', () => {
  it('refuses a misspelt option or a bad size at construction', () => {
    expect(() => new MemoryStore({ maxCounter: 5 } as never)).toThrow(
      'Invalid QuotaKit configuration at maxCounter: not an option of MemoryStore',
    );
    expect(() => new MemoryStore({ maxCounters: 0 })).toThrow(QuotaConfigError);
    expect(() => new MemoryLedger({ maxEvent: 5 } as never)).toThrow(QuotaConfigError);
    expect(() => new MemoryLedger({ maxEvents: 1.5 })).toThrow(QuotaConfigError);
  });

  it.each([
    ['maxCounters', { maxCounters: 2 }],
    ['capacity, the name the design gives it', { capacity: 2 }],
  ])('drops the least recently used counters beyond %s', async (_, options) => {
    const store = new MemoryStore(options);
    const subject = { userId: 'u' };
    for (const key of ['a', 'b', 'c']) {
      await store.record({
        now: 0,
        subject,
        counters: [{ key, amount: 1, ttlMs: null }],
        idempotencyTtlMs: 1,
      });
    }
    expect(store.size).toBe(2);
    const { values } = await store.read({
      now: 0,
      subject,
      counters: ['a', 'b', 'c'].map((key) => ({ key, amount: 0, ttlMs: null })),
    });
    expect(values).toEqual([0, 1, 1]);
  });

  it('lets go of a reservation as soon as it is settled, not when its TTL would end', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const store = new MemoryStore();
    const engine = createQuotaEngine({
      store,
      clock: () => now,
      defaults: { llm_tokens: { limit: 1e9, period: 'per_day' } },
    });
    const reservations = [];
    for (let i = 0; i < 1_000; i++) {
      reservations.push(
        await engine.reserve({ userId: `u${i % 7}`, amounts: { llm_tokens: 10 }, ttlMs: 600_000 }),
      );
    }
    expect(store.heldReservations).toBe(1_000);
    for (const [i, reservation] of reservations.entries()) {
      if (i % 4 === 0) continue; // a quarter left to expire
      if (i % 2 === 0) await reservation.release();
      else await reservation.commit({ llm_tokens: 5 });
    }
    expect(store.heldReservations).toBe(250);
    now += 600_001;
    await engine.consume({ userId: 'u0', amounts: { llm_tokens: 1 } });
    expect(store.heldReservations).toBe(0);
    // Expired and released reservations gave their 10 back; committed ones kept 5.
    let kept = 1;
    for (let i = 0; i < 1_000; i += 7) if (i % 4 !== 0 && i % 2 === 1) kept += 5;
    expect((await engine.getQuotaStatus('llm_tokens', { userId: 'u0' })).used).toBe(kept);
  });

  it('rejects a capacity that is not a positive integer', () => {
    expect(() => new MemoryStore({ maxCounters: 0 })).toThrow(/maxCounters/);
    expect(() => new MemoryStore({ maxIdempotencyKeys: 1.5 })).toThrow(/maxIdempotencyKeys/);
    expect(() => new MemoryStore({ capacity: -1 })).toThrow(/at capacity/);
    expect(() => new MemoryStore({ capacity: 5, maxCounters: 5 })).toThrow(QuotaConfigError);
  });
});

// The same contract through only the asynchronous methods: the path a networked store takes.
describeStoreContract(
  'MemoryStore, asynchronous methods only',
  () => asyncView(new MemoryStore()),
  {
    concurrency: 1_000,
  },
);

// A store that keeps its own ledger (as PostgresStore does): the contract's ledger part, and
// the engine handing each operation's usage events to the store.
describeStoreContract('MemoryStore with its own ledger', () => withOwnLedger(new MemoryStore()), {
  concurrency: 500,
  ledger: true,
});

describe('ExpiryQueue', () => {
  it('pops in expiry order whatever is removed in between', () => {
    // A seeded walk (so a failure replays) of pushes, removals and pops against a sorted list.
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const queue = new ExpiryQueue<QueuedItem & { id: number }>();
    let live: (QueuedItem & { id: number })[] = [];
    for (let step = 0; step < 5_000; step++) {
      const roll = random();
      if (roll < 0.5 || live.length === 0) {
        const item = { id: step, expiresAt: Math.floor(random() * 1_000), queueIndex: -1 };
        queue.push(item);
        live.push(item);
      } else if (roll < 0.8) {
        const item = live[Math.floor(random() * live.length)]!;
        queue.remove(item);
        queue.remove(item); // twice: the second does nothing
        live = live.filter((other) => other !== item);
      } else {
        const now = Math.floor(random() * 1_000);
        const expected = live.filter((item) => item.expiresAt <= now);
        const popped = [];
        for (let item = queue.popExpired(now); item; item = queue.popExpired(now)) {
          popped.push(item);
        }
        expect(popped.map((item) => item.expiresAt)).toEqual(
          expected.map((item) => item.expiresAt).sort((a, b) => a - b),
        );
        expect(new Set(popped)).toEqual(new Set(expected));
        live = live.filter((item) => item.expiresAt > now);
      }
      expect(queue.size).toBe(live.length);
    }
  });
});
