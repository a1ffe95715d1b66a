import { describe, expect, it } from 'vitest';
import { createQuotaEngine, type QuotaEngine } from '../src/engine.js';
import { MemoryStore } from '../src/memory-store.js';
import { Admission, QuotaGate } from '../src/quota-gate.js';
import { quotaRefusal } from '../src/quota-refusal.js';
import { windowSeconds, writeQuotaHeaders, writeRetryAfter } from '../src/rate-limit-headers.js';
import { parseRequestAmounts } from '../src/request-amounts.js';
import { asyncView } from './async-store.js';

const NOW = Date.parse('2026-02-10T12:00:00.000Z');

function headersOf(
  decision: { results: Parameters<typeof writeQuotaHeaders>[1] },
  style: 'draft-8' | 'legacy',
) {
  const headers = new Headers();
  writeQuotaHeaders(headers, decision.results, style, NOW);
  return Object.fromEntries(headers);
}

describe('writeQuotaHeaders', () => {
  it('lists enforced rules only, without w and t where a rule has no window', async () => {
    const engine = createQuotaEngine({
      clock: () => NOW,
      defaults: {
        llm_tokens: [
          { limit: 4000, period: 'per_request' },
          { limit: 1000.5, period: 'per_month' },
          { limit: 10, period: 'per_minute', mode: 'shadow' },
        ],
        concurrent_tasks: { limit: 2, period: 'total' },
      },
    });
    const decision = await engine.consume({
      userId: 'u1',
      amounts: { llm_tokens: 100, concurrent_tasks: 1 },
    });
    expect(headersOf(decision, 'draft-8')).toEqual({
      'ratelimit-policy':
        '"llm_tokens-per_request"; q=4000, "llm_tokens-per_month"; q=1000; w=2419200, ' +
        '"concurrent_tasks-total"; q=2',
      ratelimit:
        '"llm_tokens-per_request"; r=4000, "llm_tokens-per_month"; r=900; t=1598400, ' +
        '"concurrent_tasks-total"; r=1',
    });
  });

  it('gives the legacy headers of the most constrained resource', async () => {
    const engine = createQuotaEngine({
      clock: () => NOW,
      defaults: {
        llm_requests: { limit: 100, period: 'per_hour' },
        llm_tokens: { limit: 1000, period: 'per_day' },
      },
    });
    const decision = await engine.consume({
      userId: 'u1',
      amounts: { llm_requests: 10, llm_tokens: 850 },
    });
    expect(headersOf(decision, 'legacy')).toEqual({
      'x-ratelimit-limit': '1000',
      'x-ratelimit-remaining': '150',
      'x-ratelimit-reset': String(Date.parse('2026-02-11T00:00:00.000Z') / 1000),
      'quota-status': 'approaching_limit; resource="llm_tokens"',
    });
  });

  it('warns in Quota-Status about any rule near its limit, not only the binding one', async () => {
    let now = NOW;
    const engine = createQuotaEngine({
      clock: () => now,
      defaults: {
        llm_requests: [
          { limit: 40, period: 'per_minute' },
          { limit: 5000, period: 'per_day' },
        ],
      },
    });
    // 4,470 recorded earlier today, then 30 in a fresh minute: 10 left this minute (75 %,
    // within_limit) binds, while the day, 500 left (90 %), is approaching its limit.
    await engine.recordUsage({ userId: 'u1', resource: 'llm_requests', amount: 4470 });
    now += 60_000;
    const decision = await engine.consume({ userId: 'u1', amounts: { llm_requests: 30 } });
    expect(decision.results.llm_requests).toMatchObject({
      period: 'per_minute',
      remaining: 10,
      status: 'within_limit',
    });
    expect(headersOf(decision, 'draft-8')['quota-status']).toBe(
      'approaching_limit; resource="llm_requests"',
    );
  });

  it('advertises a rule anew when its limit or its month length changes', async () => {
    let now = NOW;
    const engine = createQuotaEngine({
      clock: () => now,
      defaults: { llm_tokens: { limit: 1000, period: 'per_month' } },
    });
    const policy = async () =>
      headersOf(await engine.consume({ userId: 'u1', amounts: { llm_tokens: 1 } }), 'draft-8')[
        'ratelimit-policy'
      ];
    expect(await policy()).toBe('"llm_tokens-per_month"; q=1000; w=2419200');
    // A run-time quota keeps the rule's name and changes its limit.
    await engine.setQuota({
      scope: 'user',
      id: 'u1',
      resource: 'llm_tokens',
      limit: 5000,
      period: 'per_month',
    });
    expect(await policy()).toBe('"llm_tokens-per_month"; q=5000; w=2419200');
    now = Date.parse('2026-03-10T12:00:00.000Z'); // March has 31 days, February 28
    expect(await policy()).toBe('"llm_tokens-per_month"; q=5000; w=2678400');
  });

  it('gives every policy its own name: a rule whose default name is taken gets its scope', async () => {
    const engine = createQuotaEngine({
      clock: () => NOW,
      defaults: {
        llm_requests: [
          { limit: 10, period: 'per_day' },
          { limit: 100, period: 'per_day', scope: 'tenant' },
          { limit: 1000, period: 'per_day', scope: 'global' },
          { limit: 5000, period: 'per_day', scope: 'global', algorithm: 'sliding' },
        ],
      },
    });
    const decision = await engine.consume({
      userId: 'u1',
      tenantId: 't1',
      amounts: { llm_requests: 1 },
    });
    const headers = headersOf(decision, 'draft-8');
    expect(headers['ratelimit-policy']).toBe(
      '"llm_requests-per_day"; q=10; w=86400, "llm_requests-per_day-tenant"; q=100; w=86400, ' +
        '"llm_requests-per_day-global"; q=1000; w=86400, ' +
        '"llm_requests-per_day-global-2"; q=5000; w=86400',
    );
    expect(headers.ratelimit).toBe(
      '"llm_requests-per_day"; r=9; t=43200, "llm_requests-per_day-tenant"; r=99; t=43200, ' +
        '"llm_requests-per_day-global"; r=999; t=43200, ' +
        '"llm_requests-per_day-global-2"; r=4999; t=43200',
    );
  });

  it('names a policy the same on every response, whichever rules bind the subject', async () => {
    const engine = createQuotaEngine({
      clock: () => NOW,
      defaults: {
        llm_requests: [
          { limit: 10, period: 'per_day' },
          { limit: 100, period: 'per_day', scope: 'tenant' },
          { limit: 1000, period: 'per_minute', scope: 'global', name: 'everyone' },
        ],
      },
    });
    const policy = async (subject: { userId?: string; tenantId?: string }) =>
      headersOf(await engine.consume({ ...subject, amounts: { llm_requests: 1 } }), 'draft-8')[
        'ratelimit-policy'
      ];
    // Without a user id only the tenant rule binds: it is still the tenant's policy.
    expect(await policy({ tenantId: 't1' })).toBe(
      '"llm_requests-per_day-tenant"; q=100; w=86400, "everyone"; q=1000; w=60',
    );
    expect(await policy({ userId: 'u1', tenantId: 't1' })).toBe(
      '"llm_requests-per_day"; q=10; w=86400, "llm_requests-per_day-tenant"; q=100; w=86400, ' +
        '"everyone"; q=1000; w=60',
    );
  });

  it("says in t when a refusing sliding rule admits again, as Retry-After does, not its window's end", async () => {
    let now = NOW;
    const engine = createQuotaEngine({
      clock: () => now,
      defaults: { llm_requests: { limit: 1, period: 'per_minute', algorithm: 'sliding' } },
    });
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 1 } });
    now += 35_000;
    const refused = await engine.consume({ userId: 'u1', amounts: { llm_requests: 1 } });
    expect(refused.allowed).toBe(false);
    // 25 s to the end of this minute, and then the weighted previous minute still counts
    // 1 * (60 - t) / 60 until it is under what is left: a full minute more.
    expect(refused.results.llm_requests?.retryAfterMs).toBe(85_000);
    expect(headersOf(refused, 'draft-8').ratelimit).toBe('"llm_requests-per_minute"; r=0; t=85');
    const refusal = quotaRefusal(refused.results);
    const headers = new Headers();
    writeRetryAfter(headers, refusal.retryAfterMs!);
    expect(headers.get('retry-after')).toBe('85');
  });

  it('measures months by their days', () => {
    expect(windowSeconds('per_month', new Date('2026-03-01T00:00:00Z'))).toBe(28 * 86_400);
    // Midnight of April 1 in Moscow: the window was March.
    expect(windowSeconds('per_month', new Date('2026-03-31T21:00:00Z'))).toBe(31 * 86_400);
    expect(windowSeconds('total', null)).toBeUndefined();
  });

  it('rounds Retry-After up to whole seconds, never 0', () => {
    const headers = new Headers();
    writeRetryAfter(headers, 1);
    expect(headers.get('retry-after')).toBe('1');
    writeRetryAfter(headers, 30_001);
    expect(headers.get('retry-after')).toBe('31');
  });
});

describe('quotaRefusal', () => {
  it('binds to the refusal that frees up last, and waits for all of them', async () => {
    const engine = createQuotaEngine({
      clock: () => NOW,
      defaults: {
        llm_requests: { limit: 1, period: 'per_minute' },
        llm_tokens: { limit: 100, period: 'per_hour' },
      },
    });
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 1, llm_tokens: 100 } });
    const twoWindows = await engine.consume({
      userId: 'u1',
      amounts: { llm_requests: 1, llm_tokens: 1 },
    });
    const refusal = quotaRefusal(twoWindows.results);
    expect(refusal).toMatchObject({ status: 429, retryAfterMs: 3_600_000 });
    expect(refusal.body.quota?.resource).toBe('llm_tokens');
  });

  // DESIGN section 6: every 429 carries Retry-After, also when waiting cannot lift it.
  it.each([
    ['limit 0', { llm_tokens: { limit: 0, period: 'per_day' } }, 1, 60_000],
    ['more than the limit itself', { llm_tokens: { limit: 10, period: 'per_month' } }, 11, 60_000],
    ['a per_request cap', { llm_tokens: { limit: 10, period: 'per_request' } }, 11, 60_000],
    ['a spent total budget', { llm_tokens: { limit: 0, period: 'total' } }, 1, 60_000],
    ['a gauge at its level', { concurrent_tasks: { limit: 0, period: 'total' } }, 1, 1_000],
  ] as const)(
    'says when to retry where waiting cannot help: %s',
    async (_, defaults, amount, wait) => {
      const engine = createQuotaEngine({ clock: () => NOW, defaults });
      const resource = Object.keys(defaults)[0]!;
      const refused = await engine.consume({ userId: 'u1', amounts: { [resource]: amount } });
      expect(refused.allowed).toBe(false);
      expect(refused.results[resource]?.retryAfterMs).toBeUndefined();
      expect(quotaRefusal(refused.results)).toMatchObject({ status: 429, retryAfterMs: wait });
    },
  );
});

describe('parseRequestAmounts', () => {
  it('reads numbers and decimal strings, leaves undefined out, and keeps __proto__ as data', () => {
    const parsed = parseRequestAmounts(
      JSON.parse('{"llm_tokens":"1500.5","llm_requests":1,"__proto__":"2"}'),
    );
    expect({ ...parsed }).toEqual({ llm_tokens: 1500.5, llm_requests: 1, ['__proto__']: 2 });
    expect(Object.keys(parseRequestAmounts({ a: 1, b: undefined }))).toEqual(['a']);
  });

  it.each([[{}], [{ a: undefined }], [null], [[1]]])('refuses %j', (amounts) => {
    expect(() => parseRequestAmounts(amounts)).toThrow();
  });
});

describe('QuotaGate', () => {
  const defaults = { llm_requests: { limit: 5, period: 'per_minute' as const } };
  const used = async (engine: QuotaEngine) =>
    (await engine.getQuotaStatus('llm_requests', { userId: 'u1' })).used;

  it('decides at once on an in-memory engine, and through a promise otherwise', async () => {
    const memory = createQuotaEngine({ clock: () => NOW, defaults });
    const atOnce = new QuotaGate<object>(
      { engine: memory, amounts: { llm_requests: 1 }, identify: () => ({ userId: 'u1' }) },
      () => ({}),
    ).admit({});
    expect(atOnce).toBeInstanceOf(Admission);
    expect((atOnce as Admission).handle.decision?.allowed).toBe(true);
    expect(await used(memory)).toBe(1);

    // A store that answers asynchronously, a thenable identify, amounts from a promise.
    const networked = createQuotaEngine({
      clock: () => NOW,
      store: asyncView(new MemoryStore()),
      defaults,
    });
    const identify = () => ({
      // biome-ignore lint/suspicious/noThenProperty: a thenable that is not a Promise, on purpose
      then: (resolve: (subject: object) => void) => resolve({ userId: 'u1' }),
    });
    for (const options of [
      { engine: networked, amounts: { llm_requests: 1 }, identify: () => ({ userId: 'u1' }) },
      { engine: memory, amounts: { llm_requests: 1 }, identify: identify as never },
      {
        engine: memory,
        amounts: async () => ({ llm_requests: '1' }),
        identify: () => ({ userId: 'u1' }),
      },
    ]) {
      const pending = new QuotaGate<object>(options, () => ({})).admit({});
      expect(pending).toBeInstanceOf(Promise);
      expect((await pending).handle.subject).toEqual({ userId: 'u1' });
    }
    expect(await used(networked)).toBe(1);
    expect(await used(memory)).toBe(3);
  });

  it('answers a bad id with a 400 and counts nothing, on either path', async () => {
    const memory = createQuotaEngine({ clock: () => NOW, defaults });
    const networked = createQuotaEngine({
      clock: () => NOW,
      store: asyncView(new MemoryStore()),
      defaults,
    });
    for (const engine of [memory, networked]) {
      const admission = await new QuotaGate<object>(
        { engine, amounts: { llm_requests: 1 }, identify: () => ({ userId: '' }) },
        () => ({}),
      ).admit({});
      expect(admission.refusal).toMatchObject({
        status: 400,
        body: { error: 'invalid_quota_request', message: 'userId must not be empty' },
      });
      expect(await used(engine)).toBe(0);
    }
  });
});
