import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';
import { createQuotaEngine } from '../src/engine.js';

const clock = manualClock('2026-11-28T12:00:00Z');

function engineWith(limit: number, resource = 'llm_tokens') {
  return createQuotaEngine({
    clock: clock.now,
    defaults: { [resource]: { limit, period: 'per_day' } },
  });
}

describe('status boundaries', () => {
  // limit 1000: r = (used + requested) / limit
  it.each([
    { used: 0, requested: 799, status: 'within_limit', allowed: true }, // 79.9 %
    { used: 799, requested: 0, status: 'within_limit', allowed: true },
    { used: 0, requested: 800, status: 'approaching_limit', allowed: true }, // 80 %
    { used: 700, requested: 100, status: 'approaching_limit', allowed: true },
    { used: 0, requested: 949, status: 'approaching_limit', allowed: true }, // 94.9 %
    { used: 0, requested: 950, status: 'at_limit', allowed: true }, // 95 %
    { used: 900, requested: 50, status: 'at_limit', allowed: true },
    { used: 0, requested: 1000, status: 'at_limit', allowed: true }, // 100 %
    { used: 999, requested: 1, status: 'at_limit', allowed: true },
    { used: 1000, requested: 1, status: 'exceeded', allowed: false }, // over
    { used: 0, requested: 1001, status: 'exceeded', allowed: false },
  ])(
    'used $used + requested $requested of 1000 -> $status',
    async ({ used, requested, status, allowed }) => {
      const engine = engineWith(1000);
      if (used > 0) await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: used });
      const result = await engine.checkQuota({
        userId: 'u',
        resource: 'llm_tokens',
        amount: requested,
      });
      expect(result).toMatchObject({
        status,
        allowed,
        used,
        requested,
        limit: 1000,
        remaining: 1000 - used,
      });
    },
  );

  it('reports usage recorded past the limit as exceeded, even for a zero request', async () => {
    const engine = engineWith(1000);
    await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: 1200 });
    const status = await engine.getQuotaStatus('llm_tokens', { userId: 'u' });
    expect(status).toMatchObject({ status: 'exceeded', used: 1200, remaining: 0 });
    const check = await engine.checkQuota({ userId: 'u', resource: 'llm_tokens', amount: 0 });
    expect(check).toMatchObject({ status: 'exceeded', allowed: false });
  });

  it('honours per-rule thresholds', async () => {
    const engine = createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_requests: {
          limit: 100,
          period: 'per_day',
          warningThreshold: 0.5,
          criticalThreshold: 0.6,
        },
      },
    });
    const at = async (amount: number) =>
      (await engine.checkQuota({ userId: 'u', resource: 'llm_requests', amount })).status;
    expect(await at(49)).toBe('within_limit');
    expect(await at(50)).toBe('approaching_limit');
    expect(await at(60)).toBe('at_limit');
  });

  it('honours engine-wide default thresholds', async () => {
    const engine = createQuotaEngine({
      clock: clock.now,
      warningThreshold: 0.5,
      criticalThreshold: 0.7,
      defaults: { llm_requests: { limit: 10, period: 'per_day' } },
    });
    const at = async (amount: number) =>
      (await engine.checkQuota({ userId: 'u', resource: 'llm_requests', amount })).status;
    expect([await at(4), await at(5), await at(7)]).toEqual([
      'within_limit',
      'approaching_limit',
      'at_limit',
    ]);
  });
});

describe('messages', () => {
  it.each([
    {
      used: 1_000_000,
      requested: 1,
      message: 'Quota exceeded for llm_tokens. Limit: 1000000, cannot proceed.',
    },
    {
      used: 980_000,
      requested: 0,
      message: 'Quota at limit for llm_tokens. Remaining: 20000/1000000',
    },
    {
      used: 850_000,
      requested: 0,
      message: 'Quota approaching limit for llm_tokens. Remaining: 150000/1000000',
    },
    { used: 100_000, requested: 0, message: 'Quota OK for llm_tokens. Remaining: 900000/1000000' },
  ])('$message', async ({ used, requested, message }) => {
    const engine = engineWith(1_000_000);
    await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: used });
    const result = await engine.checkQuota({
      userId: 'u',
      resource: 'llm_tokens',
      amount: requested,
    });
    expect(result.message).toBe(message);
    expect((await engine.getQuotaStatus('llm_tokens', { userId: 'u' })).message).toBe(
      requested === 0 ? message : 'Quota at limit for llm_tokens. Remaining: 0/1000000',
    );
  });

  it('uses the resource string value in messages for every resource', async () => {
    const engine = engineWith(10, 'database_queries');
    const result = await engine.checkQuota({
      userId: 'u',
      resource: 'database_queries',
      amount: 11,
    });
    expect(result.message).toBe('Quota exceeded for database_queries. Limit: 10, cannot proceed.');
  });
});

describe('limits of 0 and unlimited resources', () => {
  it('blocks a resource whose limit is 0', async () => {
    const engine = engineWith(0, 'agent_creations');
    const result = await engine.checkQuota({ userId: 'u', resource: 'agent_creations' });
    expect(result).toMatchObject({ allowed: false, status: 'exceeded', limit: 0, remaining: 0 });
    const decision = await engine.consume({ userId: 'u', amounts: { agent_creations: 1 } });
    expect(decision.allowed).toBe(false);
    expect(retryAfter(decision.results.agent_creations)).toBeUndefined();
  });

  it('lets a built-in resource without a rule through, unlimited', async () => {
    const engine = engineWith(10);
    const result = await engine.checkQuota({
      userId: 'u',
      resource: 'file_operations',
      amount: 1e9,
    });
    expect(result).toMatchObject({
      allowed: true,
      status: 'within_limit',
      limit: null,
      remaining: null,
      rules: [],
      message: 'Quota OK for file_operations. Remaining: unlimited',
    });
    const decision = await engine.consume({ userId: 'u', amounts: { file_operations: 5 } });
    expect(decision.allowed).toBe(true);
  });

  it('binds no subject scope that has no id (only global rules bind everyone)', async () => {
    const engine = createQuotaEngine({
      clock: clock.now,
      defaults: { llm_requests: { limit: 1, period: 'per_day' } },
    });
    // No userId: the user-scope rule does not apply.
    const result = await engine.consume({ agentId: 'a', amounts: { llm_requests: 5 } });
    expect(result.allowed).toBe(true);
    expect(result.results.llm_requests!.limit).toBeNull();
  });
});

function retryAfter(result: { retryAfterMs?: number } | undefined) {
  return result?.retryAfterMs;
}

describe('results are plain data', () => {
  it('spread, compare and serialise with every field, message included', async () => {
    const engine = engineWith(10);
    const decision = await engine.consume({ userId: 'u', amounts: { file_operations: 2 } });
    expect(Object.keys(decision).sort()).toEqual(['allowed', 'results']);
    expect(decision).toEqual({
      allowed: true,
      results: {
        file_operations: {
          allowed: true,
          resource: 'file_operations',
          status: 'within_limit',
          requested: 2,
          used: 0,
          limit: null,
          remaining: null,
          period: null,
          resetAt: null,
          scope: null,
          message: 'Quota OK for file_operations. Remaining: unlimited',
          rules: [],
        },
      },
    });
    const check = await engine.checkQuota({ userId: 'u', resource: 'llm_tokens', amount: 11 });
    expect({ ...check }.message).toBe('Quota exceeded for llm_tokens. Limit: 10, cannot proceed.');
    expect(JSON.parse(JSON.stringify(check))).toMatchObject({ status: 'exceeded', limit: 10 });
  });
});

describe('large amounts in messages', () => {
  it.each([1_000_000_000, 1_000_000_007, 123_456_789_012_345, Number.MAX_SAFE_INTEGER])(
    'writes %d digit for digit',
    async (limit) => {
      const engine = engineWith(limit);
      const result = await engine.checkQuota({ userId: 'u', resource: 'llm_tokens', amount: 1 });
      expect(result.message).toBe(`Quota OK for llm_tokens. Remaining: ${limit}/${limit}`);
    },
  );
});

describe('amounts in messages are plain decimals, never exponents', () => {
  it.each([
    [1e21, 'Remaining: 1000000000000000000000/1000000000000000000000'],
    [1e-7, 'Remaining: 0.0000001/0.0000001'],
    [0.0000525, 'Remaining: 0.0000525/0.0000525'],
    [12.3456789, 'Remaining: 12.3456789/12.3456789'],
    [1234567890123.45, 'Remaining: 1234567890123.45/1234567890123.45'],
  ])('writes a limit of %d as the design shows amounts', async (limit, tail) => {
    const engine = engineWith(limit);
    const result = await engine.checkQuota({ userId: 'u', resource: 'llm_tokens', amount: 0 });
    expect(result.message).toBe(`Quota OK for llm_tokens. ${tail}`);
  });

  it('drops the float noise of sums: 0.1 + 0.2 of 1 leaves 0.7', async () => {
    const engine = engineWith(1);
    await engine.consume({ userId: 'u', amounts: { llm_tokens: 0.1 } });
    const result = await engine.consume({ userId: 'u', amounts: { llm_tokens: 0.2 } });
    expect(result.results.llm_tokens?.message).toBe('Quota OK for llm_tokens. Remaining: 0.7/1');
  });
});

describe('close()', () => {
  it('flushes without forgetting: counting goes on from where it was', async () => {
    const engine = engineWith(10);
    await engine.consume({ userId: 'u', amounts: { llm_tokens: 5 } });
    await engine.close();
    const after = await engine.consume({ userId: 'u', amounts: { llm_tokens: 5 } });
    expect(after.results.llm_tokens).toMatchObject({ used: 10, status: 'at_limit' });
    const refused = await engine.consume({ userId: 'u', amounts: { llm_tokens: 1 } });
    expect(refused.allowed).toBe(false);
  });
});
