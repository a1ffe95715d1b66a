import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';
import { createQuotaEngine, type QuotaEngine } from '../src/engine.js';
import { QuotaValidationError, StaleOverridesError } from '../src/errors.js';
import { MemoryStore } from '../src/memory-store.js';
import { MAX_DIRECTORY_SIZE } from '../src/override-directory.js';
import { asyncView } from './async-store.js';

const defaults = {
  llm_tokens: [
    { limit: 1000, period: 'per_day' as const },
    { limit: 5000, period: 'per_day' as const, scope: 'tenant' as const },
  ],
};

describe('run-time overrides', () => {
  it('replace the configured rules of their scope for one id, and come off again', async () => {
    const engine = createQuotaEngine({
      defaults,
      overrides: { users: { u1: { llm_tokens: { limit: 2000, period: 'per_day' } } } },
    });
    await engine.setQuota({
      scope: 'user',
      id: 'u1',
      resource: 'llm_tokens',
      limit: 10,
      period: 'per_day',
    });
    const limited = await engine.checkQuota({
      userId: 'u1',
      tenantId: 't',
      resource: 'llm_tokens',
    });
    expect(limited.rules.map((r) => [r.scope, r.limit, r.source])).toEqual([
      ['user', 10, 'override'],
      ['tenant', 5000, 'default'],
    ]);
    // Other users keep the defaults.
    expect((await engine.checkQuota({ userId: 'u2', resource: 'llm_tokens' })).limit).toBe(1000);
    expect(await engine.removeQuota({ scope: 'user', id: 'u1', resource: 'llm_tokens' })).toBe(
      true,
    );
    // The configured override applies again.
    expect((await engine.checkQuota({ userId: 'u1', resource: 'llm_tokens' })).limit).toBe(2000);
  });

  it('take several rules, and a custom resource that only the override names', async () => {
    const engine = createQuotaEngine({ defaults });
    await engine.setQuota({
      scope: 'tenant',
      id: 'acme',
      resource: 'cost_usd',
      rules: [
        { limit: 50, period: 'per_month' },
        { limit: 5, period: 'per_day', name: 'daily-spend' },
      ],
    });
    const decision = await engine.consume({ tenantId: 'acme', amounts: { cost_usd: 4.5 } });
    expect(decision.results.cost_usd).toMatchObject({
      allowed: true,
      limit: 5,
      status: 'approaching_limit',
    });
    const status = await engine.getAllQuotasStatus({ tenantId: 'acme' });
    expect(Object.keys(status.quotas).sort()).toEqual(['cost_usd', 'llm_tokens']);
    // Without the override, cost_usd is unknown to everyone else.
    await expect(engine.consume({ tenantId: 'other', amounts: { cost_usd: 1 } })).rejects.toThrow(
      /Unknown resource "cost_usd"/,
    );
    const listed = await engine.listQuotas({ scope: 'tenant', id: 'acme' });
    expect(listed).toHaveLength(1);
    expect(listed[0]!.rules.map((rule) => rule.limit)).toEqual([50, 5]);
  });

  it('refuse bad input with a typed error and store nothing', async () => {
    const engine = createQuotaEngine({ defaults });
    const bad = [
      { scope: 'global', id: 'x', resource: 'llm_tokens', limit: 1, period: 'per_day' },
      { scope: 'user', id: '', resource: 'llm_tokens', limit: 1, period: 'per_day' },
      { scope: 'user', id: 'u', resource: 'llm tokens', limit: 1, period: 'per_day' },
      { scope: 'user', id: 'u', resource: 'llm_tokens', limit: -1, period: 'per_day' },
      { scope: 'user', id: 'u', resource: 'llm_tokens', limit: 1, period: 'per_year' },
      { scope: 'user', id: 'u', resource: 'concurrent_tasks', limit: 1, period: 'per_day' },
      { scope: 'user', id: 'u', resource: 'llm_tokens', rules: [] },
    ];
    for (const request of bad) {
      await expect(engine.setQuota(request as never)).rejects.toBeInstanceOf(QuotaValidationError);
    }
    expect(await engine.listQuotas()).toEqual([]);
  });

  it('reach another engine on a networked store without versions within overrideCacheTtlMs', async () => {
    const clock = manualClock('2026-11-28T12:00:00Z');
    const { listVersionedOverrides: _, ...store } = asyncView(new MemoryStore());
    const writer = createQuotaEngine({ store, defaults, clock: clock.now });
    const reader = createQuotaEngine({
      store,
      defaults,
      clock: clock.now,
      overrideCacheTtlMs: 5_000,
    });
    expect((await reader.checkQuota({ userId: 'u', resource: 'llm_tokens' })).limit).toBe(1000);
    await writer.setQuota({
      scope: 'user',
      id: 'u',
      resource: 'llm_tokens',
      limit: 3,
      period: 'per_day',
    });
    // The writer sees its own change at once; the reader within its cache time.
    expect((await writer.checkQuota({ userId: 'u', resource: 'llm_tokens' })).limit).toBe(3);
    expect((await reader.checkQuota({ userId: 'u', resource: 'llm_tokens' })).limit).toBe(1000);
    clock.advance(5_000);
    expect((await reader.checkQuota({ userId: 'u', resource: 'llm_tokens' })).limit).toBe(3);
  });

  it('reach another engine on a store with versions at its next decision', async () => {
    const clock = manualClock('2026-11-28T12:00:00Z');
    const memory = new MemoryStore();
    const store = asyncView(memory);
    let listings = 0;
    store.listVersionedOverrides = () => {
      listings += 1;
      return memory.listVersionedOverrides();
    };
    const writer = createQuotaEngine({ store, defaults, clock: clock.now });
    const reader = createQuotaEngine({ store, defaults, clock: clock.now });
    const key = { scope: 'user' as const, id: 'u', resource: 'llm_tokens' };
    expect((await reader.consume({ userId: 'u', amounts: { llm_tokens: 2 } })).allowed).toBe(true);
    expect(listings).toBe(1);
    await writer.setQuota({ ...key, limit: 3, period: 'per_day' });
    // The reader's consume is refused by the store (stale version), lists again, and decides.
    const refused = await reader.consume({ userId: 'u', amounts: { llm_tokens: 2 } });
    expect(refused.results.llm_tokens).toMatchObject({ allowed: false, limit: 3, used: 2 });
    expect((await reader.checkQuota({ userId: 'u', resource: 'llm_tokens' })).limit).toBe(3);
    expect((await reader.getQuotaStatus('llm_tokens', { userId: 'u' })).limit).toBe(3);
    await writer.removeQuota(key);
    expect((await reader.checkQuotas({ userId: 'u', amounts: { llm_tokens: 1 } })).allowed).toBe(
      true,
    );
    // Nothing changed since: one listing per change (the writer's 2 after its own writes).
    expect((await reader.reserve({ userId: 'u', amounts: { llm_tokens: 2 } })).allowed).toBe(true);
    expect(listings).toBeLessThanOrEqual(5);
    expect((await reader.getAllQuotasStatus({ userId: 'u' })).quotas.llm_tokens).toMatchObject({
      limit: 1000,
      used: 4,
    });
  });

  it('are listed again once, not once per decision, when many in flight learn of a change', async () => {
    const memory = new MemoryStore();
    const store = asyncView(memory);
    const calls = { listings: 0, lookups: 0 };
    store.listVersionedOverrides = () => {
      calls.listings += 1;
      return memory.listVersionedOverrides();
    };
    store.getOverrides = (request) => {
      calls.lookups += 1;
      return memory.getOverrides(request);
    };
    const writer = createQuotaEngine({ store, defaults });
    const reader = createQuotaEngine({ store, defaults });
    await reader.consume({ userId: 'u', amounts: { llm_tokens: 1 } });
    await writer.setQuota({
      scope: 'user',
      id: 'u',
      resource: 'llm_tokens',
      limit: 20,
      period: 'per_day',
    });
    const listingsBefore = calls.listings;
    const decisions = await Promise.all(
      Array.from({ length: 50 }, () => reader.consume({ userId: 'u', amounts: { llm_tokens: 1 } })),
    );
    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(19);
    expect(decisions.every((decision) => decision.results.llm_tokens!.limit === 20)).toBe(true);
    expect(calls.listings - listingsBefore).toBe(1);
    expect(calls.lookups).toBe(0);
  });

  it('name the version of the listing their rules come from, not a newer one', async () => {
    const memory = new MemoryStore();
    const store = asyncView(memory);
    let listings = 0;
    // The first listing is refused at once: the engine reads the subject's ids instead.
    store.listVersionedOverrides = () =>
      listings++ === 0
        ? Promise.reject(new Error('cannot list now'))
        : memory.listVersionedOverrides();
    let releaseLookup!: () => void;
    const lookupHeld = new Promise<void>((resolve) => (releaseLookup = resolve));
    store.getOverrides = (request) => {
      const before = memory.getOverrides(request); // read now, answered later
      return lookupHeld.then(() => before);
    };
    const engine = createQuotaEngine({ store, defaults, onError: () => {} });
    const writer = createQuotaEngine({ store, defaults });
    const pending = engine.consume({ userId: 'u', amounts: { llm_tokens: 60 } });
    await new Promise((resolve) => setImmediate(resolve));
    // Meanwhile another engine sets a quota, and a listing that has it is installed.
    await writer.setQuota({
      scope: 'user',
      id: 'u',
      resource: 'llm_tokens',
      limit: 50,
      period: 'per_day',
    });
    await engine.consume({ userId: 'w', amounts: { llm_tokens: 1 } });
    releaseLookup();
    // The held read of u's ids predates the quota: decided with it, the consume named the
    // newer listing's version and was admitted under the default 1000.
    expect((await pending).results.llm_tokens).toMatchObject({ allowed: false, limit: 50 });
  });

  it('do not retry for ever a store that calls even an unchecked read stale', async () => {
    const memory = new MemoryStore();
    const store = asyncView(memory);
    let consumes = 0;
    store.consume = () => {
      consumes += 1;
      return Promise.reject(new StaleOverridesError());
    };
    const engine = createQuotaEngine({ store, defaults, failureMode: 'closed' });
    const decision = await engine.consume({ userId: 'u', amounts: { llm_tokens: 1 } });
    expect(decision.results.llm_tokens).toMatchObject({ status: 'unknown', allowed: false });
    expect(consumes).toBe(3);
  });

  it('decide with no version check after the overrides change under two attempts', async () => {
    const memory = new MemoryStore();
    const store = asyncView(memory);
    let version = 0;
    // A store whose overrides change between every listing and the decision that follows.
    store.listVersionedOverrides = async () => ({ version: String(version++), overrides: [] });
    store.consume = (request) =>
      request.overridesVersion === undefined
        ? memory.consume(request)
        : Promise.reject(new StaleOverridesError());
    const engine = createQuotaEngine({ store, defaults });
    const decision = await engine.consume({ userId: 'u', amounts: { llm_tokens: 1 } });
    expect(decision.results.llm_tokens).toMatchObject({ status: 'within_limit', used: 1 });
    // Listed before each attempt; the third decides with the newest listing, unchecked.
    expect(version).toBe(3);
  });

  it('are not looked up while the store knows that none exist', async () => {
    const memory = new MemoryStore();
    let lookups = 0;
    let noneExist = true;
    const store = {
      ...asyncView(memory),
      getOverrides: (request: Parameters<MemoryStore['getOverrides']>[0]) => {
        lookups += 1;
        return memory.getOverrides(request);
      },
      hasNoOverrides: () => noneExist,
    };
    const engine = createQuotaEngine({ store, defaults, overrideCacheTtlMs: 0 });
    for (let i = 0; i < 5; i++) {
      await engine.consume({ userId: `u${i}`, tenantId: 't', amounts: { llm_tokens: 1 } });
    }
    expect(lookups).toBe(0);
    // Once the store no longer knows, every subject is looked up again, and overrides apply.
    noneExist = false;
    await memory.setOverride({
      scope: 'user',
      id: 'u0',
      resource: 'llm_tokens',
      rules: [{ limit: 1, period: 'per_day' }],
    });
    const refused = await engine.consume({ userId: 'u0', amounts: { llm_tokens: 1 } });
    expect(lookups).toBe(1);
    expect(refused.results.llm_tokens).toMatchObject({ allowed: false, limit: 1 });
  });

  /** A networked store with `count` user overrides on other ids, counting its lookups. */
  async function storeWithOverrides(count: number) {
    const memory = new MemoryStore();
    for (let i = 0; i < count; i++) {
      await memory.setOverride({
        scope: 'user',
        id: `someone-else-${i}`,
        resource: 'llm_tokens',
        rules: [{ limit: 1, period: 'per_day' }],
      });
    }
    const calls = { getOverrides: 0, listOverrides: 0 };
    const store = {
      ...asyncView(memory),
      getOverrides: (request: Parameters<MemoryStore['getOverrides']>[0]) => {
        calls.getOverrides += 1;
        return memory.getOverrides(request);
      },
      listOverrides: (filter: Parameters<MemoryStore['listOverrides']>[0]) => {
        calls.listOverrides += 1;
        return memory.listOverrides(filter);
      },
      listVersionedOverrides: () => {
        calls.listOverrides += 1;
        return memory.listVersionedOverrides();
      },
    };
    return { store, calls };
  }

  /** Two rounds of one consume for each of `users` users, every one charged. */
  async function twoRounds(engine: QuotaEngine, users: number): Promise<void> {
    for (const round of [1, 2]) {
      for (let i = 0; i < users; i++) {
        const decision = await engine.consume({ userId: `user-${i}`, amounts: { llm_tokens: 1 } });
        expect(decision.results.llm_tokens!.used).toBe(round);
      }
    }
  }

  it('are listed once per overrideCacheTtlMs for every user, while there are few', async () => {
    const { store, calls } = await storeWithOverrides(3);
    const clock = manualClock('2026-11-28T12:00:00Z');
    const engine = createQuotaEngine({ store, defaults, clock: clock.now });
    await twoRounds(engine, 1_000);
    expect(calls).toEqual({ getOverrides: 0, listOverrides: 1 });
    // Listed again once the listing is older than the cache time, and it applies.
    clock.advance(5_000);
    await store.setOverride({
      scope: 'user',
      id: 'user-0',
      resource: 'llm_tokens',
      rules: [{ limit: 2, period: 'per_day' }],
    });
    const refused = await engine.consume({ userId: 'user-0', amounts: { llm_tokens: 1 } });
    expect(refused.results.llm_tokens).toMatchObject({ allowed: false, limit: 2 });
    expect(calls).toEqual({ getOverrides: 0, listOverrides: 2 });
  });

  it(`are looked up id by id past ${MAX_DIRECTORY_SIZE} overrides, once per id for 20,000 users`, async () => {
    const { store, calls } = await storeWithOverrides(MAX_DIRECTORY_SIZE + 1);
    const clock = manualClock('2026-11-28T12:00:00Z');
    const engine = createQuotaEngine({ store, defaults, clock: clock.now });
    await twoRounds(engine, 20_000);
    expect(calls).toEqual({ getOverrides: 20_000, listOverrides: 1 });
  });
});

describe('threshold notifications', () => {
  it('fire with the event fields, off the caller path, and survive a throwing listener', async () => {
    const clock = manualClock('2026-11-28T12:00:00Z');
    const errors: unknown[] = [];
    const engine = createQuotaEngine({
      clock: clock.now,
      onError: (error) => errors.push(error),
      defaults: { llm_tokens: { limit: 100, period: 'per_day', scope: 'agent' } },
    });
    const events: unknown[] = [];
    engine.on('threshold', () => {
      throw new Error('listener bug');
    });
    const unsubscribe = engine.on('threshold', (event) => void events.push(event));
    const decision = await engine.consume({
      userId: 'u',
      agentId: 'bot',
      amounts: { llm_tokens: 85 },
    });
    expect(decision.allowed).toBe(true);
    expect(events).toHaveLength(0); // not yet: delivered after the decision returns
    await engine.close();
    expect(events).toEqual([
      {
        type: 'threshold',
        resource: 'llm_tokens',
        status: 'approaching_limit',
        subject: { userId: 'u', agentId: 'bot' },
        scope: 'agent',
        used: 85,
        limit: 100,
        remaining: 15,
        period: 'per_day',
        resetAt: new Date('2026-11-29T00:00:00Z'),
        at: new Date('2026-11-28T12:00:00Z'),
      },
    ]);
    expect(errors).toHaveLength(1);
    unsubscribe();
    await engine.recordUsage({ agentId: 'bot', resource: 'llm_tokens', amount: 20 });
    await engine.close();
    expect(events).toHaveLength(1);
  });

  it('fire again in the next window, and for shadow rules', async () => {
    const clock = manualClock('2026-11-28T12:00:00Z');
    const engine = createQuotaEngine({
      clock: clock.now,
      defaults: { llm_requests: { limit: 1, period: 'per_hour', mode: 'shadow' } },
    });
    const statuses: string[] = [];
    engine.on('threshold', (event) => void statuses.push(event.status));
    await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    clock.advance(3_600_000);
    await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    await engine.close();
    expect(statuses).toEqual(['at_limit', 'exceeded', 'at_limit']);
  });

  // Listeners hear of a crossing after the decision returned, within a turn of the event loop.
  const delivered = () => new Promise((resolve) => setTimeout(resolve, 0));

  it('tell of a refusal by the rules that refused, not by what the request would have brought', async () => {
    const clock = manualClock('2026-11-28T12:00:00Z');
    const engine = createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_tokens: [
          { limit: 100, period: 'per_minute' },
          { limit: 1000, period: 'per_day' },
        ],
      },
    });
    const seen: string[] = [];
    engine.on(
      'threshold',
      (event) => void seen.push(`${event.period}:${event.status}:${event.used}`),
    );
    // 850 would put the day at 85 %, but the minute refuses it: the day has not moved.
    const refused = await engine.consume({ userId: 'u', amounts: { llm_tokens: 850 } });
    expect(refused.results.llm_tokens?.rules.map((rule) => rule.status)).toEqual([
      'exceeded',
      'approaching_limit',
    ]);
    await delivered();
    expect(seen).toEqual(['per_minute:exceeded:0']);
    // When usage really gets past 80 % of the day (70 a minute, never 80 % of a minute: 770,
    // then 840), that is news, and it is told.
    for (let minute = 1; minute <= 12; minute++) {
      clock.advance(60_000);
      await engine.consume({ userId: 'u', amounts: { llm_tokens: 70 } });
    }
    await engine.close();
    expect(seen).toEqual(['per_minute:exceeded:0', 'per_day:approaching_limit:840']);
  });

  it('tell of a refusal by a shadow rule that would have refused it too', async () => {
    const engine = createQuotaEngine({
      defaults: {
        llm_tokens: [
          { limit: 100, period: 'per_minute' },
          { limit: 50, period: 'per_day', mode: 'shadow' },
          { limit: 5000, period: 'per_day', scope: 'global' },
        ],
      },
    });
    const seen: string[] = [];
    engine.on(
      'threshold',
      (event) => void seen.push(`${event.period}:${event.scope}:${event.status}`),
    );
    await engine.consume({ userId: 'u', amounts: { llm_tokens: 200 } });
    await engine.close();
    expect(seen).toEqual(['per_minute:user:exceeded', 'per_day:user:exceeded']);
  });

  it('never come from a per_request cap: it judges one request, nothing accumulates', async () => {
    const engine = createQuotaEngine({
      defaults: { llm_tokens: { limit: 100, period: 'per_request' } },
    });
    const seen: string[] = [];
    engine.on('threshold', (event) => void seen.push(event.status));
    await engine.consume({ userId: 'u', amounts: { llm_tokens: 90 } }); // 90 % of the cap
    await engine.consume({ userId: 'u', amounts: { llm_tokens: 200 } }); // refused
    await engine.close();
    expect(seen).toEqual([]);
  });

  it('refuses unknown events', () => {
    const engine = createQuotaEngine();
    expect(() => engine.on('crossing' as 'threshold', () => {})).toThrow(QuotaValidationError);
  });
});

describe('run-time overrides on a failing store', () => {
  it('fail as a QuotaStoreError, whatever the store threw', async () => {
    const { QuotaStoreError } = await import('../src/errors.js');
    const broken = () => Promise.reject(new Error('connection reset'));
    const engine = createQuotaEngine({
      store: asyncView(new MemoryStore(), {
        setOverride: broken,
        removeOverride: broken,
        listOverrides: broken,
      }),
    });
    const key = { scope: 'user' as const, id: 'u', resource: 'llm_tokens' };
    await expect(engine.setQuota({ ...key, limit: 1, period: 'per_day' })).rejects.toBeInstanceOf(
      QuotaStoreError,
    );
    await expect(engine.removeQuota(key)).rejects.toThrow('Could not remove the quota');
    await expect(engine.listQuotas()).rejects.toBeInstanceOf(QuotaStoreError);
  });

  it('expose the engine clock', () => {
    const engine = createQuotaEngine({ clock: () => 42 });
    expect(engine.now()).toBe(42);
  });
});
