import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';
import type { QuotaEngineOptions } from '../src/config.js';
import { createQuotaEngine, type QuotaEngine } from '../src/engine.js';
import { isQuotaError, QuotaConfigError, QuotaError, QuotaValidationError } from '../src/errors.js';

const clock = manualClock('2026-11-28T12:00:00Z');

function seededEngine() {
  return createQuotaEngine({
    clock: clock.now,
    defaults: {
      llm_tokens: { limit: 1000, period: 'per_day' },
      memory_usage: { limit: 100, period: 'total' },
    },
  });
}

async function snapshot(engine: QuotaEngine) {
  return JSON.stringify(await engine.getAllQuotasStatus({ userId: 'u' }));
}

const long = 'x'.repeat(513);

describe('bad input gets a typed error and changes nothing', () => {
  const cases: Array<{
    name: string;
    call: (e: QuotaEngine) => Promise<unknown>;
    message: RegExp;
  }> = [
    {
      name: 'negative amount on consume',
      call: (e) => e.consume({ userId: 'u', amounts: { llm_tokens: -1 } }),
      message: /Amount for llm_tokens must not be negative, got -1/,
    },
    {
      name: 'NaN amount',
      call: (e) => e.consume({ userId: 'u', amounts: { llm_tokens: Number.NaN } }),
      message: /Amount for llm_tokens must be a number, got NaN|must be a number/,
    },
    {
      name: 'infinite amount',
      call: (e) =>
        e.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: Number.POSITIVE_INFINITY }),
      message: /must be finite, got Infinity/,
    },
    {
      name: 'non-numeric amount',
      call: (e) => e.consume({ userId: 'u', amounts: { llm_tokens: '12' as unknown as number } }),
      message: /must be a number, got "12"/,
    },
    {
      name: 'non-numeric amount in a check',
      call: (e) =>
        e.checkQuota({ userId: 'u', resource: 'llm_tokens', amount: null as unknown as number }),
      message: /must be a number, got null/,
    },
    {
      name: 'one bad amount among good ones',
      call: (e) => e.consume({ userId: 'u', amounts: { llm_tokens: 5, memory_usage: -3 } }),
      message: /memory_usage must not be negative/,
    },
    {
      name: 'unknown resource without a rule',
      call: (e) => e.consume({ userId: 'u', amounts: { cost_usd: 1 } }),
      message: /Unknown resource "cost_usd"/,
    },
    {
      name: 'prototype key as a resource',
      call: (e) => e.consume({ userId: 'u', amounts: JSON.parse('{"__proto__": 5}') }),
      message: /Unknown resource "__proto__"/,
    },
    {
      name: 'empty amounts',
      call: (e) => e.consume({ userId: 'u', amounts: {} }),
      message: /at least one resource/,
    },
    {
      name: 'empty user id',
      call: (e) => e.consume({ userId: '', amounts: { llm_tokens: 1 } }),
      message: /userId must not be empty/,
    },
    {
      name: 'over-long agent id',
      call: (e) => e.consume({ userId: 'u', agentId: long, amounts: { llm_tokens: 1 } }),
      message: /agentId must be at most 512 characters, got 513/,
    },
    {
      name: 'numeric tenant id',
      call: (e) => e.checkQuota({ tenantId: 42 as unknown as string, resource: 'llm_tokens' }),
      message: /tenantId must be a string, got 42/,
    },
    {
      name: 'empty idempotency key',
      call: (e) =>
        e.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: 1, idempotencyKey: '' }),
      message: /idempotencyKey must not be empty/,
    },
    {
      name: 'negative reservation ttl',
      call: (e) => e.reserve({ userId: 'u', amounts: { llm_tokens: 1 }, ttlMs: -5 }),
      message: /ttlMs must be a positive number of ms, got -5/,
    },
    {
      name: 'missing request',
      call: (e) => e.consume(undefined as never),
      message: /consume expects an object argument/,
    },
  ];

  it.each(cases)('$name', async ({ call, message }) => {
    const engine = seededEngine();
    await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: 10 });
    await engine.recordUsage({ userId: 'u', resource: 'memory_usage', amount: 7 });
    const before = await snapshot(engine);
    const error = await call(engine).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(QuotaValidationError);
    expect(error).toBeInstanceOf(QuotaError);
    expect((error as QuotaValidationError).code).toBe('quota_validation');
    expect((error as Error).message).toMatch(message);
    expect(isQuotaError(error)).toBe(true);
    expect(await snapshot(engine)).toBe(before);
  });
});

describe('awkward ids are plain data', () => {
  it.each([
    '__proto__',
    'constructor',
    'a:b',
    '{x}',
    'hasOwnProperty',
    '🚀 rocket',
    ' ',
    'x'.repeat(512),
    // 512 characters, 1,024 UTF-16 units: the limit counts characters.
    '😀'.repeat(512),
  ])('counts %j on its own', async (id) => {
    const engine = seededEngine();
    await engine.consume({ userId: id, amounts: { llm_tokens: 7 } });
    await engine.consume({ userId: id === 'a' ? 'b' : 'a', amounts: { llm_tokens: 1 } });
    expect((await engine.getQuotaStatus('llm_tokens', { userId: id })).used).toBe(7);
    expect((await engine.getQuotaStatus('llm_tokens', { userId: 'u' })).used).toBe(0);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses an id of 513 characters, emoji counted once', async () => {
    const engine = seededEngine();
    await expect(
      engine.consume({ userId: `${'😀'.repeat(512)}x`, amounts: { llm_tokens: 1 } }),
    ).rejects.toThrow('userId must be at most 512 characters, got 513');
    expect(() =>
      createQuotaEngine({
        defaults: { llm_tokens: { limit: 1, period: 'per_day' } },
        overrides: {
          users: { [`${'😀'.repeat(512)}x`]: { llm_tokens: { limit: 5, period: 'per_day' } } },
        },
      }),
    ).toThrow(QuotaConfigError);
  });

  it('accepts override ids such as __proto__ from JSON configuration', async () => {
    const overrides = JSON.parse(
      '{"users": {"__proto__": {"llm_tokens": {"limit": 5, "period": "per_day"}}}}',
    );
    const engine = createQuotaEngine({
      clock: clock.now,
      defaults: { llm_tokens: { limit: 1000, period: 'per_day' } },
      overrides,
    });
    expect((await engine.checkQuota({ userId: '__proto__', resource: 'llm_tokens' })).limit).toBe(
      5,
    );
    expect((await engine.checkQuota({ userId: 'other', resource: 'llm_tokens' })).limit).toBe(1000);
  });
});

describe('bad configuration throws a QuotaConfigError naming the path', () => {
  const cases: Array<{ name: string; options: unknown; path: string; reason: RegExp }> = [
    {
      name: 'negative limit',
      options: { defaults: { llm_tokens: { limit: -1, period: 'per_day' } } },
      path: 'defaults.llm_tokens.limit',
      reason: /0 or more/,
    },
    {
      name: 'warningThreshold above 1',
      options: {
        defaults: { llm_tokens: { limit: 10, period: 'per_day', warningThreshold: 1.5 } },
      },
      path: 'defaults.llm_tokens.warningThreshold',
      reason: /at most 1/,
    },
    {
      name: 'unknown period',
      options: {
        defaults: {
          llm_tokens: [
            { limit: 10, period: 'per_day' },
            { limit: 1, period: 'per_fortnight' },
          ],
        },
      },
      path: 'defaults.llm_tokens.1.period',
      reason: /must be one of per_request, per_minute/,
    },
    {
      name: 'critical below warning',
      options: {
        defaults: {
          llm_tokens: {
            limit: 10,
            period: 'per_day',
            warningThreshold: 0.9,
            criticalThreshold: 0.5,
          },
        },
      },
      path: 'defaults.llm_tokens.criticalThreshold',
      reason: /at least warningThreshold \(0.9\), got 0.5/,
    },
    {
      name: 'engine-wide critical below warning',
      options: { warningThreshold: 0.9, criticalThreshold: 0.8 },
      path: 'criticalThreshold',
      reason: /at least warningThreshold/,
    },
    {
      name: 'infinite limit',
      options: { defaults: { llm_tokens: { limit: Number.POSITIVE_INFINITY, period: 'per_day' } } },
      path: 'defaults.llm_tokens.limit',
      reason: /finite/,
    },
    {
      name: 'sliding total',
      options: { defaults: { llm_tokens: { limit: 10, period: 'total', algorithm: 'sliding' } } },
      path: 'defaults.llm_tokens.algorithm',
      reason: /calendar period/,
    },
    {
      name: 'gauge with a calendar period',
      options: { defaults: { concurrent_tasks: { limit: 4, period: 'per_day' } } },
      path: 'defaults.concurrent_tasks.period',
      reason: /gauge/,
    },
    {
      name: 'unknown time zone',
      options: { timeZone: 'Mars/Olympus' },
      path: 'timeZone',
      reason: /IANA/,
    },
    {
      name: 'unknown option (a renamed option is not silently ignored)',
      options: { failMode: 'open' },
      path: '',
      reason: /failMode/,
    },
    {
      name: 'bad failure mode',
      options: { failureMode: 'sometimes' },
      path: 'failureMode',
      reason: /open|closed|Invalid option/,
    },
    {
      name: 'a store without the contract methods',
      options: { store: { get: () => 1 } },
      path: 'store',
      reason: /must implement read, consume, record, settle, getOverrides/,
    },
    {
      name: 'an empty override id',
      options: { overrides: { users: { '': { llm_tokens: { limit: 1, period: 'per_day' } } } } },
      path: 'overrides.users',
      reason: /empty/,
    },
    {
      name: 'an override whose scope contradicts its place',
      options: {
        overrides: {
          agents: { a1: { llm_tokens: { limit: 1, period: 'per_day', scope: 'user' } } },
        },
      },
      path: 'overrides.agents.a1.llm_tokens.scope',
      reason: /scope 'agent'/,
    },
    {
      name: 'a resource name with a space',
      options: { defaults: { 'llm tokens': { limit: 1, period: 'per_day' } } },
      path: 'defaults',
      reason: /resource names/,
    },
  ];

  it.each(cases)('$name', ({ options, path, reason }) => {
    let error: unknown;
    try {
      createQuotaEngine(options as QuotaEngineOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(QuotaConfigError);
    const configError = error as QuotaConfigError;
    expect(configError.code).toBe('quota_config');
    expect(configError.path.startsWith(path)).toBe(true);
    expect(configError.message).toMatch(reason);
    if (path) expect(configError.message).toContain(configError.path);
  });

  it('does not mutate the caller options', () => {
    const options = { defaults: { llm_tokens: { limit: 10, period: 'per_day' as const } } };
    const copy = structuredClone(options);
    createQuotaEngine(options);
    expect(options).toEqual(copy);
  });
});
