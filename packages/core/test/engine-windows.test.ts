import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';
import { createQuotaEngine } from '../src/engine.js';
import type { QuotaPeriod } from '../src/periods.js';

function engineFor(period: QuotaPeriod, timeZone: string, startIso: string) {
  const clock = manualClock(startIso);
  const engine = createQuotaEngine({
    clock: clock.now,
    timeZone,
    defaults: { llm_requests: { limit: 1, period } },
  });
  const spend = () => engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
  return { clock, engine, spend };
}

describe('calendar windows through the engine', () => {
  it.each([
    // period, zone, last ms of a window, first ms of the next
    ['per_minute', 'UTC', '2026-11-28T12:00:59.999Z', '2026-11-28T12:01:00.000Z'],
    ['per_hour', 'Asia/Kolkata', '2026-11-28T12:29:59.999Z', '2026-11-28T12:30:00.000Z'],
    ['per_day', 'Europe/Moscow', '2026-11-28T20:59:59.999Z', '2026-11-28T21:00:00.000Z'],
    // Monday 2026-11-30 00:00 in New York is 05:00 UTC.
    ['per_week', 'America/New_York', '2026-11-30T04:59:59.999Z', '2026-11-30T05:00:00.000Z'],
    // Month end in a non-UTC zone: February starts at 21:00 UTC on 31 January in Moscow.
    ['per_month', 'Europe/Moscow', '2026-01-31T20:59:59.999Z', '2026-01-31T21:00:00.000Z'],
    // Berlin's spring-forward day (23 h): 2026-03-30 00:00 CEST is 2026-03-29 22:00 UTC.
    ['per_day', 'Europe/Berlin', '2026-03-29T21:59:59.999Z', '2026-03-29T22:00:00.000Z'],
    // Berlin's fall-back day (25 h): 2026-10-26 00:00 CET is 2026-10-25 23:00 UTC.
    ['per_day', 'Europe/Berlin', '2026-10-25T22:59:59.999Z', '2026-10-25T23:00:00.000Z'],
  ] as const)('%s in %s resets at %s + 1 ms', async (period, timeZone, lastMs, firstMs) => {
    const { clock, spend } = engineFor(period, timeZone, lastMs);
    const first = await spend();
    expect(first.allowed).toBe(true);
    expect(first.results.llm_requests!.resetAt).toEqual(new Date(firstMs));
    const refused = await spend();
    expect(refused.allowed).toBe(false);
    expect(refused.results.llm_requests!.retryAfterMs).toBe(1);
    clock.set(firstMs);
    expect((await spend()).allowed).toBe(true);
  });

  it('keeps one window for the whole 25-hour fall-back day', async () => {
    const { clock, spend } = engineFor('per_day', 'Europe/Berlin', '2026-10-24T22:00:00.000Z');
    expect((await spend()).allowed).toBe(true);
    clock.set('2026-10-25T22:30:00.000Z'); // 24.5 h later, still 25 October in Berlin
    const refused = await spend();
    expect(refused.allowed).toBe(false);
    expect(refused.results.llm_requests!.resetAt).toEqual(new Date('2026-10-25T23:00:00.000Z'));
  });
});

describe('sliding windows', () => {
  it('weighs the previous minute by how much of it still overlaps the last 60 s', async () => {
    const clock = manualClock('2026-11-28T12:00:00.000Z');
    const engine = createQuotaEngine({
      clock: clock.now,
      defaults: { llm_tokens: { limit: 100, period: 'per_minute', algorithm: 'sliding' } },
    });
    const spend = (amount: number) =>
      engine.consume({ userId: 'u', amounts: { llm_tokens: amount } });
    expect((await spend(100)).allowed).toBe(true);
    // 15 s into the next minute, 75 % of the previous minute still counts: 75 used.
    clock.set('2026-11-28T12:01:15.000Z');
    const check = await engine.checkQuota({ userId: 'u', resource: 'llm_tokens', amount: 26 });
    expect(check).toMatchObject({ allowed: false, used: 75, remaining: 25 });
    // 75 + 26 fits once the previous minute weighs 74 or less: 0.6 s later.
    expect(check.retryAfterMs).toBe(600);
    expect((await spend(25)).allowed).toBe(true);
    // Halfway through: 50 % of 100 + 25 = 75.
    clock.set('2026-11-28T12:01:30.000Z');
    expect((await engine.getQuotaStatus('llm_tokens', { userId: 'u' })).used).toBe(75);
    // Two minutes later nothing of the first minute counts.
    clock.set('2026-11-28T12:02:30.000Z');
    expect((await engine.getQuotaStatus('llm_tokens', { userId: 'u' })).used).toBe(12.5);
  });

  it('smooths a burst across a window edge where a fixed window would not', async () => {
    const clock = manualClock('2026-11-28T12:00:59.000Z');
    const rules = (algorithm: 'fixed' | 'sliding') =>
      createQuotaEngine({
        clock: clock.now,
        defaults: { llm_requests: { limit: 10, period: 'per_minute', algorithm } },
      });
    const fixed = rules('fixed');
    const sliding = rules('sliding');
    await fixed.consume({ userId: 'u', amounts: { llm_requests: 10 } });
    await sliding.consume({ userId: 'u', amounts: { llm_requests: 10 } });
    clock.set('2026-11-28T12:01:01.000Z');
    expect((await fixed.consume({ userId: 'u', amounts: { llm_requests: 10 } })).allowed).toBe(
      true,
    );
    expect((await sliding.consume({ userId: 'u', amounts: { llm_requests: 10 } })).allowed).toBe(
      false,
    );
  });
});
