import { describe, expect, it } from 'vitest';
import { createQuotaEngine } from '../src/engine.js';
import { quotaRefusal } from '../src/quota-refusal.js';
import { windowSeconds, writeQuotaHeaders, writeRetryAfter } from '../src/rate-limit-headers.js';
import { parseRequestAmounts } from '../src/request-amounts.js';

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
  it('binds to the refusal that frees up last, and leaves Retry-After out when waiting cannot help', async () => {
    const engine = createQuotaEngine({
      clock: () => NOW,
      defaults: {
        llm_requests: { limit: 1, period: 'per_minute' },
        llm_tokens: { limit: 100, period: 'per_hour' },
        cost_usd: { limit: 1, period: 'per_request' },
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

    const tooBig = await engine.consume({ userId: 'u2', amounts: { cost_usd: 2 } });
    expect(quotaRefusal(tooBig.results)).toMatchObject({ status: 429, retryAfterMs: undefined });
  });
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
