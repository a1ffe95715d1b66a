import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';
import { createQuotaEngine } from '../src/engine.js';

const clock = manualClock('2026-11-28T12:00:30Z');

describe('subjects, scopes and rules', () => {
  const engine = () =>
    createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_requests: [
          { limit: 5, period: 'per_day' },
          { limit: 8, period: 'per_day', scope: 'agent' },
          { limit: 20, period: 'per_day', scope: 'tenant' },
          { limit: 3, period: 'per_day', scope: 'run' },
          { limit: 10, period: 'per_day', scope: 'global' },
        ],
      },
      overrides: { users: { vip: { llm_requests: { limit: 100, period: 'per_day' } } } },
    });

  it('counts each scope against its own id, and global for everyone', async () => {
    const quota = engine();
    for (let i = 0; i < 3; i++) {
      await quota.consume({ userId: 'u1', agentId: 'a1', amounts: { llm_requests: 1 } });
    }
    await quota.consume({ userId: 'u2', agentId: 'a1', amounts: { llm_requests: 2 } });
    const result = await quota.checkQuota({
      userId: 'u2',
      agentId: 'a1',
      resource: 'llm_requests',
    });
    const used = Object.fromEntries(result.rules.map((r) => [r.scope, r.used]));
    expect(used).toEqual({ user: 2, agent: 5, global: 5 });
    expect(result.rules.map((r) => r.subjectId)).toEqual(['u2', 'a1', null]);
  });

  it('needs every applicable rule to admit, and names the binding one', async () => {
    const quota = engine();
    // The agent rule (8) binds before user u3's rule (5) once the agent has spent 7 via others.
    await quota.consume({ userId: 'u9', agentId: 'a2', amounts: { llm_requests: 4 } });
    await quota.consume({ userId: 'u8', agentId: 'a2', amounts: { llm_requests: 3 } });
    const refused = await quota.consume({
      userId: 'u3',
      agentId: 'a2',
      amounts: { llm_requests: 2 },
    });
    expect(refused.allowed).toBe(false);
    const result = refused.results.llm_requests!;
    expect(result).toMatchObject({ scope: 'agent', limit: 8, used: 7, status: 'exceeded' });
    expect(result.rules.find((r) => r.scope === 'user')).toMatchObject({ allowed: true, used: 0 });
    // Nothing was recorded for any rule.
    const after = await quota.checkQuota({ userId: 'u3', agentId: 'a2', resource: 'llm_requests' });
    expect(after.rules.map((r) => r.used)).toEqual([0, 7, 7]);
  });

  it('reports the rule with the least headroom when admitted', async () => {
    const quota = engine();
    const decision = await quota.consume({
      userId: 'u4',
      tenantId: 't1',
      runId: 'r1',
      amounts: { llm_requests: 2 },
    });
    expect(decision.results.llm_requests).toMatchObject({
      scope: 'run',
      limit: 3,
      used: 2,
      remaining: 1,
    });
    expect(decision.results.llm_requests!.rules.map((r) => r.scope)).toEqual([
      'user',
      'tenant',
      'run',
      'global',
    ]);
  });

  it('binds the rule with the least left, not the smallest share left', async () => {
    const minuteClock = manualClock('2026-11-28T12:00:30Z');
    const quota = createQuotaEngine({
      clock: minuteClock.now,
      defaults: {
        llm_requests: [
          { limit: 60, period: 'per_minute' },
          { limit: 1000, period: 'per_day' },
        ],
      },
    });
    // 600 of the day spent over earlier minutes: 400 (40 %) left today, 60 (100 %) this minute.
    for (let minute = 0; minute < 12; minute++) {
      await quota.consume({ userId: 'u', amounts: { llm_requests: 50 } });
      minuteClock.advance(60_000);
    }
    const check = await quota.checkQuota({ userId: 'u', resource: 'llm_requests' });
    expect(check).toMatchObject({ period: 'per_minute', remaining: 60, status: 'within_limit' });
    // 900 of the day spent (approaching_limit, 100 left) and 50 of this minute (10 left): the
    // minute still runs out first.
    for (let minute = 0; minute < 5; minute++) {
      await quota.consume({ userId: 'u', amounts: { llm_requests: 50 } });
      minuteClock.advance(60_000);
    }
    await quota.consume({ userId: 'u', amounts: { llm_requests: 50 } });
    const minuteBinds = await quota.checkQuota({ userId: 'u', resource: 'llm_requests' });
    expect(minuteBinds).toMatchObject({ period: 'per_minute', remaining: 10 });
    // 960 of the day spent, and a fresh minute: 40 left today against 60, so the day binds.
    minuteClock.advance(60_000);
    await quota.consume({ userId: 'u', amounts: { llm_requests: 60 } });
    minuteClock.advance(60_000);
    const dayBinds = await quota.checkQuota({ userId: 'u', resource: 'llm_requests' });
    expect(dayBinds).toMatchObject({ period: 'per_day', remaining: 40, status: 'at_limit' });
  });

  it('lets an override replace the default rules of its scope for one id only', async () => {
    const quota = engine();
    const decision = await quota.consume({ userId: 'vip', amounts: { llm_requests: 9 } });
    expect(decision.allowed).toBe(true);
    expect(decision.results.llm_requests!.rules.map((r) => [r.scope, r.limit, r.source])).toEqual([
      ['user', 100, 'override'],
      ['global', 10, 'default'],
    ]);
    // The global rule still binds the vip.
    const refused = await quota.consume({ userId: 'vip', amounts: { llm_requests: 2 } });
    expect(refused.results.llm_requests).toMatchObject({ allowed: false, scope: 'global' });
  });

  it('enforces several rules on one resource (per minute and per day)', async () => {
    const local = manualClock('2026-11-28T12:00:00Z');
    const quota = createQuotaEngine({
      clock: local.now,
      defaults: {
        llm_tokens: [
          { limit: 100, period: 'per_minute' },
          { limit: 250, period: 'per_day' },
        ],
      },
    });
    const spend = (amount: number) =>
      quota.consume({ userId: 'u', amounts: { llm_tokens: amount } });
    expect((await spend(100)).allowed).toBe(true);
    const perMinute = await spend(1);
    expect(perMinute.results.llm_tokens).toMatchObject({
      allowed: false,
      period: 'per_minute',
      retryAfterMs: 60_000,
    });
    local.advance(60_000);
    expect((await spend(100)).allowed).toBe(true);
    local.advance(60_000);
    const perDay = await spend(60);
    expect(perDay.results.llm_tokens).toMatchObject({ allowed: false, period: 'per_day' });
    expect(perDay.results.llm_tokens!.retryAfterMs).toBe(
      Date.parse('2026-11-29T00:00:00Z') - local.now(),
    );
  });

  it('evaluates shadow rules, reports them, and never refuses because of them', async () => {
    const quota = createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_requests: [
          { limit: 100, period: 'per_day' },
          { limit: 2, period: 'per_day', mode: 'shadow', name: 'trial-limit' },
        ],
      },
    });
    for (let i = 0; i < 3; i++) {
      const decision = await quota.consume({ userId: 's', amounts: { llm_requests: 1 } });
      expect(decision.allowed).toBe(true);
    }
    const check = await quota.checkQuota({ userId: 's', resource: 'llm_requests' });
    expect(check.allowed).toBe(true);
    expect(check.limit).toBe(100);
    const shadow = check.rules.find((r) => r.mode === 'shadow')!;
    expect(shadow).toMatchObject({
      name: 'trial-limit',
      status: 'exceeded',
      allowed: false,
      used: 3,
    });
  });

  it('is atomic across resources: all recorded or none', async () => {
    const quota = createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_requests: { limit: 10, period: 'per_day' },
        llm_tokens: { limit: 1000, period: 'per_day' },
      },
    });
    const refused = await quota.consume({
      userId: 'x',
      amounts: { llm_requests: 1, llm_tokens: 1001 },
    });
    expect(refused.allowed).toBe(false);
    expect(refused.results.llm_requests).toMatchObject({ allowed: true, used: 0 });
    expect(refused.results.llm_tokens).toMatchObject({ allowed: false, used: 0 });
    const status = await quota.getAllQuotasStatus({ userId: 'x' });
    expect(status.quotas.llm_requests!.used).toBe(0);
    const admitted = await quota.consume({
      userId: 'x',
      amounts: { llm_requests: 1, llm_tokens: 600 },
    });
    expect(admitted.allowed).toBe(true);
    expect(admitted.results.llm_tokens).toMatchObject({ used: 600, remaining: 400 });
  });

  it('lists every resource that binds a subject in getAllQuotasStatus', async () => {
    const quota = createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_requests: { limit: 10, period: 'per_day' },
        tool_creations: { limit: 2, period: 'per_day', scope: 'agent' },
        cost_usd: { limit: 5, period: 'per_month', scope: 'tenant' },
      },
    });
    await quota.recordUsage({ userId: 'u', tenantId: 't', resource: 'cost_usd', amount: 4.5 });
    const all = await quota.getAllQuotasStatus({ userId: 'u', tenantId: 't' });
    expect(Object.keys(all.quotas).sort()).toEqual(['cost_usd', 'llm_requests']);
    expect(all.subject).toEqual({ userId: 'u', tenantId: 't' });
    expect(all.quotas.cost_usd).toMatchObject({
      status: 'approaching_limit',
      used: 4.5,
      remaining: 0.5,
      resetAt: new Date('2026-12-01T00:00:00Z'),
      message: 'Quota approaching limit for cost_usd. Remaining: 0.5/5',
    });
  });
});

describe('per_request and total', () => {
  it('caps a single request with per_request and never accumulates', async () => {
    const quota = createQuotaEngine({
      clock: clock.now,
      defaults: { llm_tokens: { limit: 4000, period: 'per_request' } },
    });
    for (let i = 0; i < 5; i++) {
      const decision = await quota.consume({ userId: 'u', amounts: { llm_tokens: 4000 } });
      expect(decision.allowed).toBe(true);
    }
    const tooBig = await quota.consume({ userId: 'u', amounts: { llm_tokens: 4001 } });
    expect(tooBig.results.llm_tokens).toMatchObject({
      allowed: false,
      status: 'exceeded',
      resetAt: null,
      period: 'per_request',
    });
    expect(tooBig.results.llm_tokens!.retryAfterMs).toBeUndefined();
  });

  it('refuses a per_request cap without recording the other resources', async () => {
    const quota = createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_requests: { limit: 10, period: 'per_day' },
        llm_tokens: { limit: 100, period: 'per_request' },
      },
    });
    const decision = await quota.consume({
      userId: 'u',
      amounts: { llm_requests: 1, llm_tokens: 101 },
    });
    expect(decision.allowed).toBe(false);
    expect((await quota.getQuotaStatus('llm_requests', { userId: 'u' })).used).toBe(0);
  });

  it('never resets a total quota', async () => {
    const local = manualClock('2026-01-01T00:00:00Z');
    const quota = createQuotaEngine({
      clock: local.now,
      defaults: { agent_creations: { limit: 3, period: 'total' } },
    });
    await quota.consume({ userId: 'u', amounts: { agent_creations: 2 } });
    local.advance(400 * 86_400_000);
    const result = await quota.checkQuota({ userId: 'u', resource: 'agent_creations', amount: 2 });
    expect(result).toMatchObject({ allowed: false, used: 2, resetAt: null, period: 'total' });
    expect(result.retryAfterMs).toBeUndefined();
  });
});
