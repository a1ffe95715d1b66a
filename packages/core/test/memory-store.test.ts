import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/memory-store.js';
import { describeStoreContract } from '../src/testing/index.js';
import { asyncView, withOwnLedger } from './async-store.js';

describeStoreContract('MemoryStore', () => new MemoryStore(), { concurrency: 2_000 });

describe('MemoryStore', () => {
  it('drops the least recently used counters beyond maxCounters', async () => {
    const store = new MemoryStore({ maxCounters: 2 });
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

  it('rejects a capacity that is not a positive integer', () => {
    expect(() => new MemoryStore({ maxCounters: 0 })).toThrow(/maxCounters/);
    expect(() => new MemoryStore({ maxIdempotencyKeys: 1.5 })).toThrow(/maxIdempotencyKeys/);
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
