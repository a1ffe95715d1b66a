import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';
import { createQuotaEngine } from '../src/engine.js';
import { QuotaValidationError } from '../src/errors.js';

function setup() {
  const clock = manualClock('2026-11-28T12:00:00Z');
  const engine = createQuotaEngine({
    clock: clock.now,
    defaults: {
      llm_requests: { limit: 10, period: 'per_day' },
      llm_tokens: { limit: 1000, period: 'per_day' },
      concurrent_tasks: { limit: 2, period: 'total' },
      memory_usage: { limit: 1024, period: 'total' },
    },
  });
  const used = async (resource: string, userId = 'u') =>
    (await engine.getQuotaStatus(resource, { userId })).used;
  return { clock, engine, used };
}

describe('reservations', () => {
  it('holds the estimate, so a second caller cannot pass the same check', async () => {
    const { engine, used } = setup();
    const first = await engine.reserve({
      userId: 'u',
      amounts: { llm_tokens: 700 },
      ttlMs: 30_000,
    });
    expect(first.allowed).toBe(true);
    expect(first.results.llm_tokens).toMatchObject({ used: 700, remaining: 300 });
    const second = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 700 } });
    expect(second.allowed).toBe(false);
    expect(await used('llm_tokens')).toBe(700);
  });

  it('commits below the estimate and returns the rest', async () => {
    const { engine, used } = setup();
    const reservation = await engine.reserve({
      userId: 'u',
      amounts: { llm_requests: 1, llm_tokens: 800 },
    });
    const committed = await reservation.commit({ llm_tokens: 250 });
    expect(committed.expired).toBe(false);
    expect(committed.results.llm_tokens).toMatchObject({ used: 250, requested: 250 });
    expect(await used('llm_tokens')).toBe(250);
    // A resource missing from the actual amounts is committed at its estimate.
    expect(await used('llm_requests')).toBe(1);
  });

  it('commits above the estimate, even past the limit', async () => {
    const { engine, used } = setup();
    const reservation = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 900 } });
    const committed = await reservation.commit({ llm_tokens: 1100 });
    expect(committed.results.llm_tokens).toMatchObject({ used: 1100, status: 'exceeded' });
    expect(await used('llm_tokens')).toBe(1100);
  });

  it('commits the estimate as it is when called without amounts, and 0 returns a resource whole', async () => {
    const { engine, used } = setup();
    const whole = await engine.reserve({
      userId: 'u',
      amounts: { llm_requests: 1, llm_tokens: 300 },
    });
    await whole.commit();
    expect([await used('llm_requests'), await used('llm_tokens')]).toEqual([1, 300]);
    const none = await engine.reserve({
      userId: 'u',
      amounts: { llm_requests: 1, llm_tokens: 300 },
    });
    await none.commit({ llm_tokens: 0 });
    expect([await used('llm_requests'), await used('llm_tokens')]).toEqual([2, 300]);
  });

  it('releases everything, and release after commit does nothing', async () => {
    const { engine, used } = setup();
    const released = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 400 } });
    await released.release();
    await released.release();
    expect(await used('llm_tokens')).toBe(0);
    const committed = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 400 } });
    await committed.commit({ llm_tokens: 100 });
    await committed.release();
    expect(await used('llm_tokens')).toBe(100);
  });

  it('refuses a second commit and changes nothing', async () => {
    const { engine, used } = setup();
    const reservation = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 400 } });
    await reservation.commit({ llm_tokens: 100 });
    await expect(reservation.commit({ llm_tokens: 100 })).rejects.toBeInstanceOf(
      QuotaValidationError,
    );
    expect(await used('llm_tokens')).toBe(100);
  });

  it('commits nothing for a refused reservation', async () => {
    const { engine, used } = setup();
    const refused = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 5000 } });
    expect(refused.allowed).toBe(false);
    await refused.commit({ llm_tokens: 10 });
    expect(await used('llm_tokens')).toBe(0);
  });

  it('returns an unsettled reservation by itself after ttlMs', async () => {
    const { clock, engine, used } = setup();
    const reservation = await engine.reserve({
      userId: 'u',
      amounts: { llm_tokens: 600 },
      ttlMs: 10_000,
    });
    expect(reservation.expiresAt).toEqual(new Date(clock.now() + 10_000));
    clock.advance(9_999);
    expect(await used('llm_tokens')).toBe(600);
    clock.advance(1);
    expect(await used('llm_tokens')).toBe(0);
    // A late commit still records what was really spent, and says the hold had expired.
    const late = await reservation.commit({ llm_tokens: 200 });
    expect(late.expired).toBe(true);
    expect(await used('llm_tokens')).toBe(200);
  });

  it('rejects bad commit amounts and keeps the hold', async () => {
    const { engine, used } = setup();
    const reservation = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 400 } });
    await expect(reservation.commit({ llm_tokens: -1 })).rejects.toBeInstanceOf(
      QuotaValidationError,
    );
    await expect(reservation.commit({ llm_tokens: Number.NaN })).rejects.toThrow(/number/);
    expect(await used('llm_tokens')).toBe(400);
    await reservation.commit({ llm_tokens: 10 });
    expect(await used('llm_tokens')).toBe(10);
  });
});

describe('leases and gauges', () => {
  it('takes concurrent_tasks slots up to the limit and gives them back', async () => {
    const { engine, used } = setup();
    const first = await engine.acquire({ userId: 'u', ttlMs: 60_000 });
    const second = await engine.acquire({ userId: 'u', ttlMs: 60_000 });
    const third = await engine.acquire({ userId: 'u', ttlMs: 60_000 });
    expect([first.allowed, second.allowed, third.allowed]).toEqual([true, true, false]);
    expect(third.result).toMatchObject({
      resource: 'concurrent_tasks',
      status: 'exceeded',
      used: 2,
    });
    expect(third.result.retryAfterMs).toBeUndefined();
    await first.release();
    await first.release();
    expect(await used('concurrent_tasks')).toBe(1);
    expect((await engine.acquire({ userId: 'u' })).allowed).toBe(true);
  });

  it('gives leases and reservations as plain data: spread, JSON and equality see every field', async () => {
    const { engine } = setup();
    const lease = await engine.acquire({ userId: 'u', ttlMs: 60_000 });
    expect({ ...lease }).toMatchObject({
      id: lease.id,
      allowed: true,
      result: { resource: 'concurrent_tasks', used: 1 },
      expiresAt: new Date('2026-11-28T12:01:00Z'),
    });
    expect(JSON.parse(JSON.stringify(lease))).toMatchObject({
      allowed: true,
      result: { status: 'within_limit' },
    });
    const reservation = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 5 } });
    expect(Object.keys(reservation).sort()).toEqual(['allowed', 'expiresAt', 'id', 'results']);
    expect({ ...reservation }.results.llm_tokens).toMatchObject({ used: 5 });
  });

  it('returns a lease by itself after ttlMs (a crashed holder leaks nothing)', async () => {
    const { clock, engine, used } = setup();
    await engine.acquire({ userId: 'u', ttlMs: 5_000 });
    await engine.acquire({ userId: 'u', ttlMs: 20_000 });
    expect(await used('concurrent_tasks')).toBe(2);
    clock.advance(5_000);
    expect(await used('concurrent_tasks')).toBe(1);
    clock.advance(15_000);
    expect(await used('concurrent_tasks')).toBe(0);
  });

  it('moves a gauge up with positive records and down with negative ones, never below 0', async () => {
    const { engine, used } = setup();
    await engine.recordUsage({ userId: 'u', resource: 'memory_usage', amount: 512 });
    await engine.recordUsage({ userId: 'u', resource: 'memory_usage', amount: 256 });
    expect(await used('memory_usage')).toBe(768);
    const released = await engine.recordUsage({
      userId: 'u',
      resource: 'memory_usage',
      amount: -700,
    });
    expect(released).toMatchObject({ used: 68, remaining: 956 });
    await engine.recordUsage({ userId: 'u', resource: 'memory_usage', amount: -500 });
    expect(await used('memory_usage')).toBe(0);
  });

  it('refuses a negative amount on a counter', async () => {
    const { engine, used } = setup();
    await expect(
      engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: -5 }),
    ).rejects.toThrow(
      'Amount for llm_tokens must not be negative (llm_tokens is a counter), got -5',
    );
    expect(await used('llm_tokens')).toBe(0);
  });
});

describe('idempotent records', () => {
  it('counts a repeated idempotency key once', async () => {
    const { engine, used } = setup();
    const first = await engine.recordUsage({
      userId: 'u',
      resource: 'llm_tokens',
      amount: 120,
      idempotencyKey: 'call-1',
    });
    const retry = await engine.recordUsage({
      userId: 'u',
      resource: 'llm_tokens',
      amount: 120,
      idempotencyKey: 'call-1',
    });
    expect(first).toMatchObject({ used: 120, requested: 120 });
    expect(retry).toMatchObject({ used: 120, requested: 0 });
    await engine.recordUsage({
      userId: 'u',
      resource: 'llm_tokens',
      amount: 5,
      idempotencyKey: 'call-2',
    });
    expect(await used('llm_tokens')).toBe(125);
  });

  it('keys one record per resource and subject: a request id can key each resource it spent', async () => {
    const { engine, used } = setup();
    const record = (resource: string, amount: number, userId = 'u') =>
      engine.recordUsage({ userId, resource, amount, idempotencyKey: 'request-7' });
    await record('llm_requests', 1);
    await record('llm_tokens', 300);
    await record('llm_tokens', 300); // the retry
    await record('llm_tokens', 40, 'v'); // another user's request-7
    expect(await used('llm_requests')).toBe(1);
    expect(await used('llm_tokens')).toBe(300);
    expect((await engine.getQuotaStatus('llm_tokens', { userId: 'v' })).used).toBe(40);
  });

  it('keys records of 512-character ids and keys as well (hashed past 512 characters)', async () => {
    const { engine } = setup();
    const long = 'k'.repeat(512);
    const record = (resource: string) =>
      engine.recordUsage({
        userId: long,
        agentId: long,
        resource,
        amount: 2,
        idempotencyKey: long,
      });
    await record('llm_tokens');
    const retry = await record('llm_tokens');
    expect(retry).toMatchObject({ used: 2, requested: 0 });
    expect(await record('llm_requests')).toMatchObject({ used: 2, requested: 2 });
    // Two keys that differ only in their lone surrogates are two records (UTF-8 would make
    // both U+FFFD before hashing).
    for (const key of ['\ud800'.repeat(512), '\udc00'.repeat(512)]) {
      const result = await engine.recordUsage({
        userId: long,
        resource: 'llm_tokens',
        amount: 1,
        idempotencyKey: key,
      });
      expect(result.requested).toBe(1);
    }
  });

  it('records usage past the limit unconditionally', async () => {
    const { engine } = setup();
    const result = await engine.recordUsage({ userId: 'u', resource: 'llm_requests', amount: 12 });
    expect(result).toMatchObject({ used: 12, status: 'exceeded', allowed: false });
  });
});
