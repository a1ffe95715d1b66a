import type { QuotaEngine } from './engine.js';
import { QuotaError, QuotaExceededError, QuotaValidationError } from './errors.js';
import type { Amounts } from './reservation.js';
import type { ResourceName } from './resource-types.js';
import type { QuotaCheckResult } from './results.js';
import type { Subject } from './subject.js';
import type { QuotaTask, TaskEstimates, TaskEstimator } from './task-estimator.js';
import { validateAmounts, validateId, validateTtl } from './validation.js';

/** The engine methods tasks are checked and run with. */
export type TaskQuotaEngine = Pick<
  QuotaEngine,
  'checkQuotas' | 'acquire' | 'recordUsage' | 'boundResources'
>;

/** The answer of {@link checkTaskQuota}. */
export interface TaskQuotaCheck {
  /** True when every result admits the task. */
  allAllowed: boolean;
  /**
   * One result per resource that has a rule binding the task's subject, plus one per
   * estimated resource; resources the task is not expected to spend are checked at 0.
   */
  results: Record<string, QuotaCheckResult>;
  /** What the estimator expects the task to spend. */
  estimates: TaskEstimates;
}

/** Options of a recording made through {@link TaskContext.record}. */
export interface TaskRecordOptions {
  /** A retried record with the same key is counted once. */
  idempotencyKey?: string;
  /** Free-form data kept with the usage record (model, provider, ...). */
  metadata?: Record<string, unknown>;
}

/** What a task's function receives from {@link runTask}. */
export interface TaskContext {
  readonly task: QuotaTask;
  /**
   * Aborted (with a {@link TaskTimeoutError} as its reason) when `timeoutMs` passes: hand it
   * to fetch, model SDKs and the like so the work stops with the task.
   */
  readonly signal: AbortSignal;
  /**
   * Records what the task really spent, charged to the task's subject and tagged with its
   * id (`taskId`). Unconditional, like `engine.recordUsage`; usage recorded after the task
   * ended (a late reply after a timeout) still counts, since it was spent.
   */
  record(
    resource: ResourceName,
    amount: number,
    options?: TaskRecordOptions,
  ): Promise<QuotaCheckResult>;
}

/** Options of {@link runTask}. */
export interface RunTaskOptions {
  /**
   * Milliseconds the task may run; then `ctx.signal` aborts and `runTask` rejects with a
   * {@link TaskTimeoutError} (without waiting for the function to notice). Defaults to no
   * limit.
   */
  timeoutMs?: number;
  /**
   * Lifetime of the `concurrent_tasks` lease if it is never released (a crashed process).
   * Defaults to `timeoutMs` plus 10 s when a timeout is set, else to the engine's
   * `reservationTtlMs` (60 s unless configured); a task that outlives its lease stops
   * counting towards concurrency, so set it above your longest task.
   */
  leaseTtlMs?: number;
}

/** The task ran out of time (`timeoutMs` of {@link runTask}); its `code` is `task_timeout`. */
export class TaskTimeoutError extends QuotaError {
  /** The task's id, when it has one. */
  readonly taskId: string | undefined;
  readonly timeoutMs: number;

  constructor(taskId: string | undefined, timeoutMs: number) {
    super(
      'task_timeout',
      taskId === undefined
        ? `Task timed out after ${timeoutMs} ms`
        : `Task ${taskId} timed out after ${timeoutMs} ms`,
    );
    this.taskId = taskId;
    this.timeoutMs = timeoutMs;
  }
}

// The lease must outlive the task: after the timeout fires, execution_time is still
// recorded and the lease released, which takes a store round trip or two.
const LEASE_GRACE_MS = 10_000;

/**
 * May this task run? Estimates what it will spend with `estimator` and checks the estimate,
 * together with every other resource that has a rule binding the task's subject, in one
 * `checkQuotas` call. Reads only. The subject is `{ userId: task.createdBy, agentId,
 * tenantId, runId }`.
 *
 * A resource the task is not expected to spend is checked at 0 (so a subject already past a
 * limit is refused: the estimate may miss what the task will really do), except
 * `concurrent_tasks`, checked at 1 unless estimated otherwise, since running the task takes
 * a slot.
 *
 * @throws QuotaValidationError for a bad task (nothing is read).
 * @example
 * const check = await checkTaskQuota(engine, defaultTaskEstimator, {
 *   description: 'Summarise the attached report',
 *   createdBy: 'u1',
 * });
 * if (!check.allAllowed) console.log(Object.values(check.results).find((r) => !r.allowed));
 */
export async function checkTaskQuota(
  engine: TaskQuotaEngine,
  estimator: TaskEstimator,
  task: QuotaTask,
): Promise<TaskQuotaCheck> {
  const subject = taskSubject(task);
  if (typeof estimator !== 'function') {
    throw new QuotaValidationError('estimator must be a function');
  }
  const estimates = await estimator(task);
  if (typeof estimates !== 'object' || estimates === null || Array.isArray(estimates)) {
    throw new QuotaValidationError('estimator must return an object of resource -> amount');
  }
  const estimated = validateAmounts(estimates, true);
  const amounts = new Map<string, unknown>();
  for (const resource of await engine.boundResources(subject)) {
    amounts.set(resource, resource === 'concurrent_tasks' ? 1 : 0);
  }
  for (const [resource, amount] of estimated) {
    if (amount !== undefined) amounts.set(resource, amount);
  }
  if (amounts.size === 0) return { allAllowed: true, results: {}, estimates };
  // The estimator's amounts are unchecked so far: checkQuotas validates every one.
  const decision = await engine.checkQuotas({
    ...subject,
    amounts: Object.fromEntries(amounts) as Amounts,
  });
  return { allAllowed: decision.allowed, results: decision.results, estimates };
}

/**
 * Runs a task under its quotas, the ExecutionService pattern in one call:
 * 1. checks the task ({@link checkTaskQuota}); refused -> {@link QuotaExceededError};
 * 2. takes a `concurrent_tasks` lease; refused -> {@link QuotaExceededError};
 * 3. runs `fn(ctx)`, which records what it spends with `ctx.record`;
 * 4. when `fn` returns, throws or times out, records `execution_time` in seconds, to the
 *    millisecond: real elapsed time (`performance.now()`, which no clock change moves), or
 *    with an injected engine clock (`injectedClock`) that moved meanwhile, that clock's time,
 *    so that a test moving it decides; then releases the lease.
 *
 * Bookkeeping after the task never changes its outcome: if recording or releasing fails,
 * `fn`'s value or error still stands and the lease is returned when `leaseTtlMs` passes.
 *
 * @returns What `fn` returned.
 * @throws QuotaExceededError when refused, carrying the refusing result (the one that frees
 * up last) and every result; `fn` does not run.
 * @throws TaskTimeoutError when `timeoutMs` passes first.
 * @throws QuotaValidationError for a bad task or options (nothing is read or held).
 * @example
 * const answer = await runTask(engine, defaultTaskEstimator, task, async (ctx) => {
 *   const reply = await llm.chat(task.description, { signal: ctx.signal });
 *   await ctx.record('llm_requests', 1);
 *   await ctx.record('llm_tokens', reply.usage.totalTokens);
 *   return reply.text;
 * }, { timeoutMs: 120_000 });
 */
export async function runTask<T>(
  engine: TaskQuotaEngine,
  estimator: TaskEstimator,
  task: QuotaTask,
  fn: (ctx: TaskContext) => T | Promise<T>,
  options: RunTaskOptions = {},
  injectedClock?: () => number,
): Promise<T> {
  if (typeof fn !== 'function') throw new QuotaValidationError('runTask expects a function');
  if (typeof options !== 'object' || options === null) {
    throw new QuotaValidationError('runTask options must be an object');
  }
  const timeoutMs =
    options.timeoutMs === undefined ? undefined : validateTtl(options.timeoutMs, 'timeoutMs');
  const leaseTtlMs =
    options.leaseTtlMs !== undefined
      ? validateTtl(options.leaseTtlMs, 'leaseTtlMs')
      : timeoutMs === undefined
        ? undefined
        : timeoutMs + LEASE_GRACE_MS;

  const check = await checkTaskQuota(engine, estimator, task);
  if (!check.allAllowed) {
    throw new QuotaExceededError(refusingResult(check.results), check.results);
  }
  const subject = taskSubject(task);
  const lease = await engine.acquire({ ...subject, ttlMs: leaseTtlMs });
  if (!lease.allowed) {
    throw new QuotaExceededError(lease.result, {
      ...check.results,
      [lease.result.resource]: lease.result,
    });
  }

  const controller = new AbortController();
  const taskId = task.id;
  const ctx: TaskContext = {
    task,
    signal: controller.signal,
    record: (resource, amount, recordOptions) =>
      engine.recordUsage({
        ...subject,
        resource,
        amount,
        taskId,
        idempotencyKey: recordOptions?.idempotencyKey,
        metadata: recordOptions?.metadata,
      }),
  };
  const startedAt = performance.now();
  const clockStartedAt = injectedClock?.();
  let outcome: 'success' | 'error' | 'timeout' = 'error';
  try {
    // Through a promise so that a synchronous throw in fn is handled like a rejection.
    const work = new Promise<T>((resolve) => resolve(fn(ctx)));
    const value = await withTimeout(work, controller, timeoutMs, taskId);
    outcome = 'success';
    return value;
  } catch (error) {
    if (error instanceof TaskTimeoutError && controller.signal.reason === error) {
      outcome = 'timeout';
    }
    throw error;
  } finally {
    const clockMs = injectedClock === undefined ? 0 : injectedClock() - (clockStartedAt as number);
    const elapsedMs = clockMs > 0 ? clockMs : performance.now() - startedAt;
    // Milliseconds rounded away: sub-millisecond jitter of the timer is noise, not usage.
    const seconds = Math.round(elapsedMs) / 1000;
    try {
      await engine.recordUsage({
        ...subject,
        resource: 'execution_time',
        amount: seconds,
        taskId,
        metadata: { outcome },
      });
    } catch {
      // The task's own outcome matters more than this record; see the TSDoc above.
    } finally {
      await lease.release().catch(() => {
        // The lease returns by itself when leaseTtlMs passes.
      });
    }
  }
}

/**
 * `work`, or a {@link TaskTimeoutError} once `timeoutMs` passes (aborting `controller`
 * first, so the task can stop). The timer is cleared as soon as either settles; it is not
 * unref'ed, because it is the running task's deadline and must fire even when nothing else
 * keeps the process alive.
 */
async function withTimeout<T>(
  work: Promise<T>,
  controller: AbortController,
  timeoutMs: number | undefined,
  taskId: string | undefined,
): Promise<T> {
  if (timeoutMs === undefined) return work;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new TaskTimeoutError(taskId, timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    // race subscribes to `work`, so a rejection after the deadline is handled, not unhandled.
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The task's subject, its ids validated (named by their task fields). */
function taskSubject(task: QuotaTask): Subject {
  if (typeof task !== 'object' || task === null) {
    throw new QuotaValidationError('task must be an object { description, ... }');
  }
  if (typeof task.description !== 'string') {
    throw new QuotaValidationError('task.description must be a string');
  }
  if (task.id !== undefined) validateId(task.id, 'task.id');
  const subject: Subject = {};
  if (task.createdBy !== undefined) subject.userId = validateId(task.createdBy, 'task.createdBy');
  if (task.agentId !== undefined) subject.agentId = validateId(task.agentId, 'task.agentId');
  if (task.tenantId !== undefined) subject.tenantId = validateId(task.tenantId, 'task.tenantId');
  if (task.runId !== undefined) subject.runId = validateId(task.runId, 'task.runId');
  return subject;
}

/**
 * The result a refusal names: like the engine's binding rule, the refusal that frees up last
 * (one that waiting cannot cure, without `retryAfterMs`, before any other).
 */
function refusingResult(results: Record<string, QuotaCheckResult>): QuotaCheckResult {
  let refusing: QuotaCheckResult | undefined;
  for (const result of Object.values(results)) {
    if (result.allowed) continue;
    if (
      refusing === undefined ||
      (result.retryAfterMs ?? Infinity) > (refusing.retryAfterMs ?? Infinity)
    ) {
      refusing = result;
    }
  }
  // allAllowed was false, so some result refused.
  return refusing!;
}
