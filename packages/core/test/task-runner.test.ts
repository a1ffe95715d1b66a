import { afterEach, describe, expect, it, vi } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';
import { createQuotaEngine } from '../src/engine.js';
import { QuotaExceededError, QuotaValidationError } from '../src/errors.js';
import type { QuotaRules } from '../src/rules.js';
import { defaultTaskEstimator, type QuotaTask, type TaskEstimator } from '../src/task-estimator.js';
import { checkTaskQuota, runTask, type TaskContext, TaskTimeoutError } from '../src/task-runner.js';

const RULES: QuotaRules = {
  llm_requests: { limit: 100, period: 'per_day' },
  llm_tokens: { limit: 50_000, period: 'per_day' },
  database_queries: { limit: 20, period: 'per_day' },
  execution_time: { limit: 3600, period: 'per_day' },
  concurrent_tasks: { limit: 2, period: 'total' },
};

function setup(defaults: QuotaRules = RULES) {
  const clock = manualClock('2026-11-28T12:00:00Z');
  // No ledger: its batching timer would count among the timers these tests expect cleared.
  const engine = createQuotaEngine({ clock: clock.now, defaults, ledger: false });
  const used = async (resource: string, userId = 'u1') =>
    (await engine.getQuotaStatus(resource, { userId })).used;
  return { engine, clock, used };
}

const task: QuotaTask = { id: 't1', description: 'Summarize the report', createdBy: 'u1' };

/** A promise and its settle functions, to finish a task when the test says so. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('checkTaskQuota', () => {
  it('checks the estimate and every resource with a rule', async () => {
    const { engine } = setup();
    const check = await checkTaskQuota(engine, defaultTaskEstimator, task);
    expect(check.allAllowed).toBe(true);
    expect(check.estimates).toEqual(defaultTaskEstimator(task));
    expect(Object.keys(check.results).sort()).toEqual(Object.keys(RULES).sort());
    expect(check.results.llm_tokens).toMatchObject({
      allowed: true,
      requested: check.estimates.llm_tokens,
      limit: 50_000,
    });
    // Not estimated: checked at 0, so its standing is reported all the same.
    expect(check.results.database_queries).toMatchObject({ requested: 0, used: 0, limit: 20 });
    // Running the task takes a slot.
    expect(check.results.concurrent_tasks).toMatchObject({ requested: 1, limit: 2 });
  });

  it('reports estimated resources that no rule limits', async () => {
    const { engine } = setup({ llm_requests: { limit: 10, period: 'per_day' } });
    const check = await checkTaskQuota(engine, defaultTaskEstimator, task);
    expect(Object.keys(check.results).sort()).toEqual([
      'execution_time',
      'llm_requests',
      'llm_tokens',
    ]);
    expect(check.results.llm_tokens).toMatchObject({ allowed: true, limit: null });
  });

  it('refuses when the estimate does not fit', async () => {
    const { engine } = setup();
    await engine.recordUsage({ userId: 'u1', resource: 'llm_tokens', amount: 49_900 });
    const check = await checkTaskQuota(engine, defaultTaskEstimator, task);
    expect(check.allAllowed).toBe(false);
    expect(check.results.llm_tokens).toMatchObject({ allowed: false, status: 'exceeded' });
    expect(check.results.llm_requests).toMatchObject({ allowed: true });
  });

  it('refuses a subject already past a limit the estimate does not name', async () => {
    const { engine } = setup();
    await engine.recordUsage({ userId: 'u1', resource: 'database_queries', amount: 25 });
    const check = await checkTaskQuota(engine, defaultTaskEstimator, task);
    expect(check.allAllowed).toBe(false);
    expect(check.results.database_queries).toMatchObject({ requested: 0, status: 'exceeded' });
  });

  it('charges the task to createdBy, agentId, tenantId and runId', async () => {
    const { engine } = setup({
      llm_requests: [
        { limit: 100, period: 'per_day' },
        { limit: 5, period: 'per_day', scope: 'tenant' },
      ],
    });
    await engine.recordUsage({ tenantId: 'acme', resource: 'llm_requests', amount: 5 });
    const inTenant = await checkTaskQuota(engine, defaultTaskEstimator, {
      ...task,
      tenantId: 'acme',
    });
    expect(inTenant.allAllowed).toBe(false);
    expect(inTenant.results.llm_requests).toMatchObject({ scope: 'tenant', status: 'exceeded' });
    const elsewhere = await checkTaskQuota(engine, defaultTaskEstimator, {
      ...task,
      tenantId: 'other',
    });
    expect(elsewhere.allAllowed).toBe(true);
  });

  it('uses a custom estimator, synchronous or not', async () => {
    const { engine } = setup();
    const estimator: TaskEstimator = async (t) => ({
      database_queries: t.description.includes('orders') ? 30 : 1,
    });
    const check = await checkTaskQuota(engine, estimator, {
      description: 'Count the orders',
      createdBy: 'u1',
    });
    expect(check.estimates).toEqual({ database_queries: 30 });
    expect(check.allAllowed).toBe(false);
    expect(check.results.database_queries).toMatchObject({ requested: 30, allowed: false });
    expect(check.results.llm_tokens).toMatchObject({ requested: 0, allowed: true });
  });

  it.each([
    ['a description that is not a string', { description: 7 }],
    ['an empty createdBy', { description: 'x', createdBy: '' }],
    ['an over-long agentId', { description: 'x', agentId: 'a'.repeat(513) }],
    ['a task id that is not a string', { description: 'x', id: 12 }],
    ['no task at all', null],
  ])('rejects %s', async (_, badTask) => {
    const { engine } = setup();
    await expect(
      checkTaskQuota(engine, defaultTaskEstimator, badTask as unknown as QuotaTask),
    ).rejects.toThrow(QuotaValidationError);
  });

  it('rejects what an estimator returns when it is not amounts', async () => {
    const { engine } = setup();
    const negative: TaskEstimator = () => ({ llm_tokens: -5 });
    await expect(checkTaskQuota(engine, negative, task)).rejects.toThrow(QuotaValidationError);
    const nothing = (() => null) as unknown as TaskEstimator;
    await expect(checkTaskQuota(engine, nothing, task)).rejects.toThrow(QuotaValidationError);
  });
});

describe('runTask', () => {
  it('runs the task, records its usage and execution time, and releases the slot', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { engine, used } = setup();
    const record = vi.spyOn(engine, 'recordUsage');
    let slotsDuringTask: number | null = null;
    const running = runTask(engine, defaultTaskEstimator, task, async (ctx) => {
      slotsDuringTask = await used('concurrent_tasks');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await ctx.record('llm_requests', 1);
      await ctx.record('llm_tokens', 1234, { metadata: { model: 'm1' } });
      return 'summary';
    });
    await vi.advanceTimersByTimeAsync(1500);
    await expect(running).resolves.toBe('summary');

    expect(slotsDuringTask).toBe(1);
    expect(await used('concurrent_tasks')).toBe(0);
    expect(await used('llm_requests')).toBe(1);
    expect(await used('llm_tokens')).toBe(1234);
    expect(await used('execution_time')).toBe(1.5);
    expect(record).toHaveBeenCalledWith(
      expect.objectContaining({ resource: 'llm_tokens', taskId: 't1', metadata: { model: 'm1' } }),
    );
    expect(record).toHaveBeenCalledWith(
      expect.objectContaining({
        resource: 'execution_time',
        amount: 1.5,
        taskId: 't1',
        userId: 'u1',
        metadata: { outcome: 'success' },
      }),
    );
  });

  it('measures execution time on the engine clock when a test moves it', async () => {
    // No timers at all: the task "takes" three seconds of the injected clock.
    const { engine, clock, used } = setup();
    await engine.runTask(task, async () => {
      clock.advance(3_000);
    });
    expect(await used('execution_time')).toBe(3);
  });

  it('counts a record once per idempotency key', async () => {
    const { engine, used } = setup();
    await runTask(engine, defaultTaskEstimator, task, async (ctx) => {
      await ctx.record('llm_requests', 1, { idempotencyKey: 'call-1' });
      await ctx.record('llm_requests', 1, { idempotencyKey: 'call-1' });
    });
    expect(await used('llm_requests')).toBe(1);
  });

  it.each([
    ['rejects', async () => Promise.reject(new Error('model down'))],
    [
      'throws synchronously',
      () => {
        throw new Error('model down');
      },
    ],
  ])('when the function %s: propagates the error, records time, releases', async (_, fn) => {
    const { engine, used } = setup();
    const record = vi.spyOn(engine, 'recordUsage');
    await expect(runTask(engine, defaultTaskEstimator, task, fn)).rejects.toThrow('model down');
    expect(await used('concurrent_tasks')).toBe(0);
    expect(record).toHaveBeenCalledWith(
      expect.objectContaining({ resource: 'execution_time', metadata: { outcome: 'error' } }),
    );
  });

  it('times out: aborts the signal, releases the slot and rejects with TaskTimeoutError', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { engine, used } = setup();
    const record = vi.spyOn(engine, 'recordUsage');
    let signal: AbortSignal | undefined;
    const late = deferred<string>();
    const running = runTask(
      engine,
      defaultTaskEstimator,
      task,
      (ctx) => {
        signal = ctx.signal;
        return late.promise;
      },
      { timeoutMs: 5000 },
    );
    const outcome = expect(running).rejects.toThrow(TaskTimeoutError);
    await vi.advanceTimersByTimeAsync(4999);
    expect(signal?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await outcome;
    await expect(running).rejects.toMatchObject({ taskId: 't1', timeoutMs: 5000 });

    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(TaskTimeoutError);
    expect(await used('concurrent_tasks')).toBe(0);
    expect(await used('execution_time')).toBe(5);
    expect(record).toHaveBeenCalledWith(
      expect.objectContaining({ resource: 'execution_time', metadata: { outcome: 'timeout' } }),
    );
    expect(vi.getTimerCount()).toBe(0);

    // The function failing after the deadline is not an unhandled rejection (vitest would
    // fail the run) and changes nothing.
    late.reject(new Error('aborted'));
    await vi.advanceTimersByTimeAsync(10);
    expect(await used('concurrent_tasks')).toBe(0);
  });

  it('clears its timer when the task finishes in time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { engine } = setup();
    await expect(
      runTask(engine, defaultTaskEstimator, task, () => 'done', { timeoutMs: 60_000 }),
    ).resolves.toBe('done');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('lets usage recorded after a timeout count, since it was spent', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { engine, used } = setup();
    let context: TaskContext | undefined;
    const running = runTask(
      engine,
      defaultTaskEstimator,
      task,
      (ctx) => {
        context = ctx;
        return new Promise<never>(() => {});
      },
      { timeoutMs: 100 },
    );
    const outcome = expect(running).rejects.toThrow(TaskTimeoutError);
    await vi.advanceTimersByTimeAsync(100);
    await outcome;
    await context!.record('llm_tokens', 700);
    expect(await used('llm_tokens')).toBe(700);
  });

  it('refuses when every concurrent_tasks slot is taken, without running the function', async () => {
    const { engine } = setup();
    const first = await engine.acquire({ userId: 'u1' });
    const second = await engine.acquire({ userId: 'u1' });
    const fn = vi.fn();
    const refusal = await runTask(engine, defaultTaskEstimator, task, fn).catch(
      (error: unknown) => error,
    );
    expect(fn).not.toHaveBeenCalled();
    expect(refusal).toBeInstanceOf(QuotaExceededError);
    expect((refusal as QuotaExceededError).result).toMatchObject({
      resource: 'concurrent_tasks',
      allowed: false,
    });
    expect((refusal as QuotaExceededError).message).toBe(
      'Quota exceeded for concurrent_tasks. Limit: 2, cannot proceed.',
    );
    await first.release();
    await second.release();
    await expect(runTask(engine, defaultTaskEstimator, task, () => 'ran')).resolves.toBe('ran');
  });

  it('refuses when the lease is refused even though the check passed', async () => {
    const { engine } = setup();
    // This estimator claims the task takes no slot, so only the lease itself can refuse.
    const estimator: TaskEstimator = () => ({ llm_requests: 1, concurrent_tasks: 0 });
    await engine.acquire({ userId: 'u1' });
    await engine.acquire({ userId: 'u1' });
    const refusal = (await runTask(engine, estimator, task, vi.fn()).catch(
      (error: unknown) => error,
    )) as QuotaExceededError;
    expect(refusal).toBeInstanceOf(QuotaExceededError);
    expect(refusal.result).toMatchObject({ resource: 'concurrent_tasks', allowed: false });
    expect(refusal.results.concurrent_tasks).toBe(refusal.result);
    expect(refusal.results.llm_requests).toMatchObject({ allowed: true });
  });

  it('carries every result of a refusal, each failing one among them', async () => {
    const { engine, used } = setup();
    await engine.recordUsage({ userId: 'u1', resource: 'llm_tokens', amount: 50_000 });
    await engine.recordUsage({ userId: 'u1', resource: 'database_queries', amount: 20 });
    const estimator: TaskEstimator = () => ({ llm_tokens: 100, database_queries: 1 });
    const refusal = (await runTask(engine, estimator, task, vi.fn()).catch(
      (error: unknown) => error,
    )) as QuotaExceededError;
    expect(refusal).toBeInstanceOf(QuotaExceededError);
    expect(Object.keys(refusal.results).sort()).toEqual(Object.keys(RULES).sort());
    const failing = Object.values(refusal.results).filter((result) => !result.allowed);
    expect(failing.map((result) => result.resource).sort()).toEqual([
      'database_queries',
      'llm_tokens',
    ]);
    expect(failing).toContain(refusal.result);
    expect(refusal.retryAfterMs).toBe(12 * 3600_000); // both free up at midnight UTC
    // Refused before the lease: nothing was taken or recorded.
    expect(await used('concurrent_tasks')).toBe(0);
    expect(await used('execution_time')).toBe(0);
  });

  it('names the refusal that frees up last', async () => {
    const { engine } = setup({
      llm_requests: { limit: 1, period: 'per_minute' },
      llm_tokens: { limit: 100, period: 'per_day' },
    });
    await engine.recordUsage({ userId: 'u1', resource: 'llm_requests', amount: 1 });
    await engine.recordUsage({ userId: 'u1', resource: 'llm_tokens', amount: 100 });
    const estimator: TaskEstimator = () => ({ llm_requests: 1, llm_tokens: 10 });
    const refusal = (await runTask(engine, estimator, task, vi.fn()).catch(
      (error: unknown) => error,
    )) as QuotaExceededError;
    // The minute frees up in 60 s, the day at midnight.
    expect(refusal.result.resource).toBe('llm_tokens');
    expect(refusal.results.llm_requests).toMatchObject({ allowed: false, retryAfterMs: 60_000 });
  });

  it('validates its options before reading or holding anything', async () => {
    const { engine, used } = setup();
    const fn = vi.fn();
    await expect(
      runTask(engine, defaultTaskEstimator, task, fn, { timeoutMs: -1 }),
    ).rejects.toThrow(QuotaValidationError);
    await expect(
      runTask(engine, defaultTaskEstimator, task, 'not a function' as unknown as () => void),
    ).rejects.toThrow(QuotaValidationError);
    expect(fn).not.toHaveBeenCalled();
    expect(await used('concurrent_tasks')).toBe(0);
  });
});
