import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createQuotaEngine } from '../src/engine.js';
import { QuotaConfigError, QuotaStoreError } from '../src/errors.js';
import { MemoryStore } from '../src/memory-store.js';
import type { QuotaStore } from '../src/store.js';
import { asyncView } from './async-store.js';

/** A store whose every call fails the way a broken network store would. */
function failingStore(how: 'reject' | 'hang'): QuotaStore {
  const fail = () =>
    how === 'reject'
      ? Promise.reject(new Error('ECONNREFUSED 127.0.0.1:6379'))
      : new Promise<never>(() => {});
  return asyncView(new MemoryStore(), {
    read: fail,
    consume: fail,
    record: fail,
    settle: fail,
    getOverrides: fail,
  });
}

const defaults = { llm_requests: { limit: 10, period: 'per_day' as const } };

describe('a failing store gives a defined answer', () => {
  it.each(['open', 'closed'] as const)('fails %s with status unknown', async (failureMode) => {
    const engine = createQuotaEngine({ store: failingStore('reject'), failureMode, defaults });
    const decision = await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    expect(decision.allowed).toBe(failureMode === 'open');
    expect(decision.results.llm_requests).toMatchObject({
      status: 'unknown',
      allowed: failureMode === 'open',
      used: null,
      remaining: null,
      limit: 10,
      message: 'Quota status unknown for llm_requests: the quota store did not answer.',
    });
    const check = await engine.checkQuota({ userId: 'u', resource: 'llm_requests' });
    expect(check).toMatchObject({ status: 'unknown', allowed: failureMode === 'open' });
    const status = await engine.getQuotaStatus('llm_requests', { userId: 'u' });
    expect(status.status).toBe('unknown');
  });

  describe('a per_request cap beside a windowed rule', () => {
    const capped = {
      llm_tokens: [
        { limit: 5, period: 'per_request' as const },
        { limit: 100, period: 'per_day' as const },
      ],
    };
    /** A MemoryStore whose counter calls throw: the engine takes its synchronous path. */
    class BrokenMemoryStore extends MemoryStore {
      override readSync(): never {
        throw new Error('broken');
      }
      override consumeSync(): never {
        throw new Error('broken');
      }
    }
    const stores = {
      'an asynchronous store': () => failingStore('reject'),
      'an in-process store': () => new BrokenMemoryStore(),
    };

    it.each(Object.keys(stores))('says unknown, not the cap, within the cap (%s)', async (name) => {
      const store = stores[name as keyof typeof stores]();
      const engine = createQuotaEngine({ store, failureMode: 'open', defaults: capped });
      const decision = await engine.consume({ userId: 'u', amounts: { llm_tokens: 1 } });
      expect(decision.allowed).toBe(true);
      expect(decision.results.llm_tokens).toMatchObject({
        allowed: true,
        status: 'unknown',
        period: 'per_day',
      });
      const report = await engine.getAllQuotasStatus({ userId: 'u' });
      expect(report.quotas.llm_tokens!.status).toBe('unknown');
    });

    it.each(Object.keys(stores))('still refuses past the cap, failing open (%s)', async (name) => {
      const store = stores[name as keyof typeof stores]();
      const engine = createQuotaEngine({ store, failureMode: 'open', defaults: capped });
      const decision = await engine.consume({ userId: 'u', amounts: { llm_tokens: 10 } });
      expect(decision.allowed).toBe(false);
      expect(decision.results.llm_tokens).toMatchObject({
        allowed: false,
        status: 'exceeded',
        period: 'per_request',
        message: 'Quota exceeded for llm_tokens. Limit: 5, cannot proceed.',
      });
    });
  });

  it('answers within storeTimeoutMs when the store hangs', async () => {
    const engine = createQuotaEngine({
      store: failingStore('hang'),
      failureMode: 'closed',
      storeTimeoutMs: 50,
      defaults,
    });
    const started = performance.now();
    const decision = await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    expect(decision.allowed).toBe(false);
    expect(decision.results.llm_requests!.status).toBe('unknown');
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  describe('waits one timeout, not two, when the overrides cannot be read', () => {
    const hang = () => new Promise<never>(() => {});
    beforeEach(() => {
      vi.useFakeTimers();
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    /** Whether `promise` has settled, checked without waiting. */
    function watch(promise: Promise<unknown>): { settled: boolean } {
      const state = { settled: false };
      void promise.then(
        () => {
          state.settled = true;
        },
        () => {
          state.settled = true;
        },
      );
      return state;
    }

    it('answers unknown right after the override lookup times out', async () => {
      const engine = createQuotaEngine({
        store: { ...failingStore('hang'), listOverrides: hang, listVersionedOverrides: hang },
        failureMode: 'closed',
        storeTimeoutMs: 100,
        defaults,
        onError: () => {},
      });
      const consume = engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
      const check = engine.checkQuota({ userId: 'u', resource: 'llm_requests' });
      // A caller joining the same listing late waits less, not a timeout of its own on top.
      await vi.advanceTimersByTimeAsync(60);
      const late = engine.consume({ userId: 'v', amounts: { llm_requests: 1 } });
      const states = [watch(consume), watch(check), watch(late)];
      await vi.advanceTimersByTimeAsync(41);
      expect(states.map((state) => state.settled)).toEqual([true, true, true]);
      expect((await consume).results.llm_requests).toMatchObject({
        status: 'unknown',
        allowed: false,
      });
      expect((await check).status).toBe('unknown');
      expect((await late).allowed).toBe(false);
    });

    it('still takes an answer the store gives at once, as an insured store does', async () => {
      const memory = new MemoryStore();
      const engine = createQuotaEngine({
        store: { ...asyncView(memory), listOverrides: hang, listVersionedOverrides: hang },
        failureMode: 'closed',
        storeTimeoutMs: 100,
        defaults,
        onError: () => {},
      });
      const consume = engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
      await vi.advanceTimersByTimeAsync(101);
      expect((await consume).results.llm_requests).toMatchObject({
        status: 'within_limit',
        used: 1,
      });
    });
  });

  it('decides as soon as the store answers overrides again', async () => {
    const memory = new MemoryStore();
    let down = true;
    const store: QuotaStore = {
      ...asyncView(memory),
      listOverrides: (filter) =>
        down ? Promise.reject(new Error('ECONNRESET')) : memory.listOverrides(filter),
      listVersionedOverrides: () =>
        down ? Promise.reject(new Error('ECONNRESET')) : memory.listVersionedOverrides(),
      getOverrides: (request) =>
        down ? Promise.reject(new Error('ECONNRESET')) : memory.getOverrides(request),
      consume: (request) =>
        down ? Promise.reject(new Error('ECONNRESET')) : memory.consume(request),
    };
    const engine = createQuotaEngine({ store, defaults, onError: () => {} });
    const during = await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    expect(during.results.llm_requests!.status).toBe('unknown');
    down = false;
    const after = await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    expect(after.results.llm_requests).toMatchObject({ status: 'within_limit', used: 1 });
  });

  it('asks for the ids when a listing is refused at once, as a store with a fallback can answer', async () => {
    const memory = new MemoryStore();
    const store: QuotaStore = {
      ...asyncView(memory),
      listOverrides: () => Promise.reject(new Error('cannot list now')),
      listVersionedOverrides: () => Promise.reject(new Error('cannot list now')),
    };
    const engine = createQuotaEngine({ store, defaults, onError: () => {} });
    await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    const decision = await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    expect(decision.results.llm_requests).toMatchObject({ status: 'within_limit', used: 2 });
  });

  it('reports a failed commit as a QuotaStoreError and lets the caller retry', async () => {
    const memory = new MemoryStore();
    let broken = false;
    const flaky: QuotaStore = {
      ...asyncView(memory),
      settle: (r) => (broken ? Promise.reject(new Error('connection reset')) : memory.settle(r)),
    };
    const engine = createQuotaEngine({ store: flaky, defaults });
    const reservation = await engine.reserve({ userId: 'u', amounts: { llm_requests: 3 } });
    broken = true;
    await expect(reservation.commit({ llm_requests: 2 })).rejects.toBeInstanceOf(QuotaStoreError);
    broken = false;
    await reservation.commit({ llm_requests: 2 });
    expect((await engine.getQuotaStatus('llm_requests', { userId: 'u' })).used).toBe(2);
  });

  it('uses an asynchronous store exactly like the in-memory one', async () => {
    // Only the asynchronous methods: the engine cannot take the synchronous fast path.
    const asyncOnly = asyncView(new MemoryStore());
    const engine = createQuotaEngine({ store: asyncOnly, defaults });
    const decisions = await Promise.all(
      Array.from({ length: 50 }, () =>
        engine.consume({ userId: 'u', amounts: { llm_requests: 1 } }),
      ),
    );
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
  });
});

describe('a store that cannot enforce some rules', () => {
  // Like a Redis Cluster store sharded by tenant: no global counter can be atomic with a
  // tenant's.
  const shardedByTenant = (): QuotaStore => ({
    ...asyncView(new MemoryStore()),
    checkRules(rules) {
      const crossing = rules.find((rule) => rule.scope === 'global');
      if (crossing) {
        throw new QuotaConfigError(
          `defaults.${crossing.resource}`,
          'a global rule crosses shards when keys are sharded by tenant',
        );
      }
    },
  });

  it('refuses such rules at construction, naming the rule', () => {
    expect(() =>
      createQuotaEngine({
        store: shardedByTenant(),
        defaults: { llm_tokens: { limit: 10, period: 'per_day', scope: 'global' } },
      }),
    ).toThrow(/defaults\.llm_tokens: a global rule crosses shards/);
  });

  it('accepts the rules it can enforce, and checks run-time quotas too', async () => {
    const engine = createQuotaEngine({
      store: shardedByTenant(),
      defaults: { llm_tokens: { limit: 10, period: 'per_day', scope: 'tenant' } },
    });
    await expect(
      engine.setQuota({
        scope: 'tenant',
        id: 't',
        resource: 'llm_tokens',
        limit: 5,
        period: 'per_day',
      }),
    ).resolves.toMatchObject({ id: 't' });
  });

  it('refuses a run-time quota it cannot enforce with a QuotaConfigError, storing nothing', async () => {
    // Like a store sharded by user: an agent's counter would gather usage from every shard.
    const shardedByUser: QuotaStore = {
      ...asyncView(new MemoryStore()),
      checkRules(rules) {
        const crossing = rules.find((rule) => rule.scope === 'agent');
        if (crossing) {
          throw new QuotaConfigError(
            `rules.${crossing.resource}`,
            'an agent rule crosses shards when keys are sharded by user',
          );
        }
      },
    };
    const engine = createQuotaEngine({ store: shardedByUser });
    const crossing = engine.setQuota({
      scope: 'agent',
      id: 'a',
      resource: 'llm_tokens',
      limit: 5,
      period: 'per_day',
    });
    await expect(crossing).rejects.toBeInstanceOf(QuotaConfigError);
    await expect(crossing).rejects.toThrow(/an agent rule crosses shards/);
    expect(await engine.listQuotas({ scope: 'agent', id: 'a' })).toEqual([]);
  });
});
