import { type QuotaEngineOptions, type ResolvedConfig, resolveConfig } from './config.js';
import { Decision } from './decision.js';
import { isStaleOverridesError, QuotaStoreError, QuotaValidationError } from './errors.js';
import { type EvaluationContext, evaluateResource } from './evaluate.js';
import type { QuotaEngineEvents, ThresholdListener } from './events.js';
import { LedgerWriter, toUsageEvent, type UsageDetails } from './ledger-writer.js';
import type { MemoryLedger } from './memory-ledger.js';
import type { MemoryStore } from './memory-store.js';
import { type OperationPlan, Planner, type ResourcePlan } from './operation-plan.js';
import { WindowCache } from './periods.js';
import type {
  AcquireRequest,
  AllQuotasStatus,
  CheckQuotaRequest,
  ConsumeRequest,
  RecordUsageRequest,
  ReserveRequest,
} from './requests.js';
import {
  type Amounts,
  type CommitResult,
  type Lease,
  LeaseHandle,
  type Reservation,
  ReservationHandle,
} from './reservation.js';
import type { ResourceName } from './resource-types.js';
import type { QuotaCheckResult, QuotaDecision, QuotaStatusReport } from './results.js';
import { RuleBook, type RuntimeRules } from './rule-book.js';
import { RuntimeOverrides, type SetQuotaRequest } from './runtime-overrides.js';
import type {
  OverrideFilter,
  OverrideKey,
  QuotaStore,
  StoreConsumeRequest,
  StoreConsumeResult,
  StoredOverride,
  StoreReadResult,
} from './store.js';
import type { Subject } from './subject.js';
import type { QuotaTask } from './task-estimator.js';
import {
  checkTaskQuota,
  type RunTaskOptions,
  runTask,
  type TaskContext,
  type TaskQuotaCheck,
} from './task-runner.js';
import { type OperationTrace, QuotaTelemetry } from './telemetry.js';
import { ThresholdNotifier } from './threshold-notifier.js';
import { UniqueIds } from './unique-ids.js';
import {
  USAGE_CSV_HEADER,
  type UsageExportFormat,
  usageEventToCloudEvent,
  usageEventToCsv,
} from './usage-export.js';
import type { UsageEvent, UsageLedger, UsageQuery } from './usage-ledger.js';
import {
  toSubject,
  toUsageQuery,
  validateAmount,
  validateAmounts,
  validateId,
  validateResource,
  validateTtl,
  validateUsageDetails,
} from './validation.js';

/**
 * The synchronous twins a store may offer (MemoryStore does) to skip a promise per call. The
 * override twins are part of it so that an operation never has to wait for the subject's
 * run-time rules either.
 */
interface SyncStore {
  readSync: MemoryStore['readSync'];
  consumeSync: MemoryStore['consumeSync'];
  recordSync: MemoryStore['recordSync'];
  settleSync: MemoryStore['settleSync'];
  getOverridesSync: MemoryStore['getOverridesSync'];
  readonly overrideCount: number;
}

const NO_VALUES: readonly number[] = Object.freeze([]);
/**
 * Attempts of a decision that name the overrides' version to a store that versions them; one
 * more follows without a check, so that overrides changed again and again (a script setting
 * quotas in a loop) cannot keep a decision from being made.
 */
const CHECKED_ATTEMPTS = 2;
/** What a store call answers when the store said the overrides changed: plan again. */
const STALE = Symbol('stale overrides');
const NO_RESULTS: readonly QuotaCheckResult[] = Object.freeze([]);

/**
 * Creates a quota engine: it answers "may this subject spend this much?" and records what was
 * spent, against the rules in `options`, in `options.store` (by default in memory).
 *
 * @throws QuotaConfigError naming the first bad option and the reason.
 * @example
 * const engine = createQuotaEngine({
 *   defaults: {
 *     llm_requests: { limit: 1000, period: 'per_day' },
 *     llm_tokens: [{ limit: 1_000_000, period: 'per_day' },
 *                  { limit: 20_000, period: 'per_minute', algorithm: 'sliding' }],
 *   },
 * });
 * const { allowed, results } = await engine.consume({ userId: 'u1', amounts: { llm_requests: 1 } });
 */
export function createQuotaEngine(options: QuotaEngineOptions = {}): QuotaEngine {
  return new QuotaEngine(options);
}

/**
 * {@link QuotaEngine.consume} decided before it returns, with no promise, when the engine's
 * store is in-process (MemoryStore); undefined, with nothing done, otherwise. For the HTTP
 * middleware, where the promises of an in-memory decision cost about as much as the decision.
 *
 * @throws QuotaValidationError for bad input, as `consume` rejects with it.
 * @internal Not exported from the package.
 */
export let consumeAtOnce: (
  engine: QuotaEngine,
  request: ConsumeRequest,
) => QuotaDecision | undefined;

/** The quota engine. Create one with {@link createQuotaEngine}. */
export class QuotaEngine {
  readonly #config: ResolvedConfig;
  readonly #store: QuotaStore;
  readonly #sync: SyncStore | undefined;
  readonly #ownsStore: boolean;
  readonly #rules: RuleBook;
  readonly #planner: Planner;
  readonly #clock: () => number;
  readonly #allowedWhenUnknown: boolean;
  readonly #overrides: RuntimeOverrides;
  readonly #notifier: ThresholdNotifier;
  readonly #telemetry: QuotaTelemetry | undefined;
  /** Where recorded amounts go: an in-process ledger directly, any other through a batcher. */
  readonly #ledger: Pick<LedgerWriter, 'add' | 'flush'> | undefined;
  /** Set when the store keeps the ledger: events then travel inside the store requests. */
  readonly #storeEventIds: UniqueIds | undefined;
  readonly #reservationIds = new UniqueIds();

  constructor(options: QuotaEngineOptions = {}) {
    const config = resolveConfig(options);
    this.#config = config;
    this.#store = config.store;
    this.#ownsStore = options?.store === undefined;
    this.#sync = hasSyncTwins(config.store) ? config.store : undefined;
    this.#rules = new RuleBook(config);
    this.#planner = new Planner(this.#rules, new WindowCache(config.timeZone));
    this.#clock = config.clock;
    this.#allowedWhenUnknown = config.failureMode === 'open';
    this.#overrides = new RuntimeOverrides({
      store: config.store,
      clock: config.clock,
      cacheTtlMs: config.overrideCacheTtlMs,
      thresholds: config.thresholds,
      timed: (operation) => this.#timed(operation),
      timeoutMs: Math.min(
        config.storeTimeoutMs,
        config.store.timeoutMs ?? Number.POSITIVE_INFINITY,
      ),
      onError: config.onError,
    });
    this.#notifier = new ThresholdNotifier(config.store, config.onError);
    this.#telemetry = config.telemetry ? new QuotaTelemetry() : undefined;
    this.#ledger = config.ledgerInStore ? undefined : ledgerSink(config.ledger, config.onError);
    this.#storeEventIds = config.ledgerInStore ? new UniqueIds() : undefined;
  }

  /**
   * The engine clock's current time in epoch ms (the `clock` option, `Date.now` by default):
   * adapters use it so that a clock injected once governs headers and dashboards too.
   */
  now(): number {
    return this.#clock();
  }

  /** The IANA time zone windows align to. */
  get timeZone(): string {
    return this.#config.timeZone;
  }

  /**
   * May the subject spend `amount` of `resource`? Reads only: `used` and `remaining` are the
   * current state; `status` and `allowed` judge used + amount.
   *
   * @throws QuotaValidationError for bad input (nothing is read or changed).
   */
  async checkQuota(request: CheckQuotaRequest): Promise<QuotaCheckResult> {
    requireObject(request, 'checkQuota');
    const traced = this.#telemetry?.begin('check');
    try {
      const amount = request.amount === undefined ? 1 : request.amount;
      const result = await this.#evaluateOne(request.resource, request, amount);
      if (traced) this.#telemetry!.end(traced, [result], false);
      return result;
    } catch (error) {
      if (traced) this.#telemetry!.fail(traced, error);
      throw error;
    }
  }

  /** Reads one resource for a subject and judges `amount` on top: checkQuota and status. */
  async #evaluateOne(
    resourceName: unknown,
    request: Subject,
    amount: unknown,
  ): Promise<QuotaCheckResult> {
    const subject = toSubject(request);
    for (let attempt = 1; ; attempt++) {
      let runtime = this.#overrides.peek(subject);
      if (runtime === undefined) {
        // Peeked again once the lookup is done, in this same turn as the version read next.
        runtime = this.#overrides.settledLookup(subject, await this.#overrides.forSubject(subject));
      }
      const version = attempt <= CHECKED_ATTEMPTS ? this.#overrides.version : undefined;
      const resource = validateResource(resourceName, this.#rules, runtime);
      const checked = validateAmount(resource, amount, false);
      const now = this.#clock();
      const plan = this.#planner.begin();
      plan.overridesVersion = version;
      const resourcePlan = this.#planner.add(plan, resource, checked, subject, now, false, runtime);
      const values = this.#sync
        ? this.#readSync(this.#sync, plan, subject, now)
        : await this.#read(plan, subject, now);
      if (values !== STALE)
        return evaluateResource(resourcePlan, this.#context(values, now, false));
      this.#overrides.forgetStale(version);
    }
  }

  /**
   * {@link checkQuota} for several resources at once, read in one store round trip.
   * Reads only; `allowed` is true when every resource would be admitted.
   *
   * @throws QuotaValidationError for bad input (nothing is read or changed).
   */
  async checkQuotas(request: ConsumeRequest): Promise<QuotaDecision> {
    requireObject(request, 'checkQuotas');
    const traced = this.#telemetry?.begin('check');
    try {
      const subject = toSubject(request);
      for (let attempt = 1; ; attempt++) {
        let runtime = this.#overrides.peek(subject);
        if (runtime === undefined) {
          // Peeked again once the lookup is done, in this same turn as the version read next.
          runtime = this.#overrides.settledLookup(
            subject,
            await this.#overrides.forSubject(subject),
          );
        }
        const version = attempt <= CHECKED_ATTEMPTS ? this.#overrides.version : undefined;
        const now = this.#clock();
        const plan = this.#plan(request.amounts, subject, now, false, runtime);
        plan.overridesVersion = version;
        const values = this.#sync
          ? this.#readSync(this.#sync, plan, subject, now)
          : await this.#read(plan, subject, now);
        if (values === STALE) {
          this.#overrides.forgetStale(version);
          continue;
        }
        const decision = this.#decide(plan, this.#context(values, now, false), true);
        if (traced) this.#telemetry!.end(traced, Object.values(decision.results), false);
        return decision;
      }
    } catch (error) {
      if (traced) this.#telemetry!.fail(traced, error);
      throw error;
    }
  }

  /**
   * Records usage unconditionally (the spending happened). A repeated `idempotencyKey` is
   * counted once for the same resource and subject (a retry of the same record); the same key
   * on another resource or subject is another record, so one request id can key the records
   * of every resource it spent. Returns the resource's state after recording.
   *
   * @throws QuotaValidationError for bad input (nothing is recorded).
   */
  async recordUsage(request: RecordUsageRequest): Promise<QuotaCheckResult> {
    requireObject(request, 'recordUsage');
    const traced = this.#telemetry?.begin('record');
    try {
      const subject = toSubject(request);
      let runtime = this.#overrides.peek(subject);
      if (runtime === undefined) runtime = await this.#overrides.forSubject(subject);
      const resource = validateResource(request.resource, this.#rules, runtime);
      const amount = validateAmount(resource, request.amount, true);
      const { idempotencyKey } = request;
      if (idempotencyKey !== undefined) validateId(idempotencyKey, 'idempotencyKey');
      const now = this.#clock();
      const plan = this.#planner.begin();
      const resourcePlan = this.#planner.add(plan, resource, amount, subject, now, false, runtime);
      const { metadata, taskId } = validateUsageDetails(request.metadata, request.taskId);
      const details: UsageDetails = { taskId, idempotencyKey, metadata };
      let storeKey: string | undefined;
      if (idempotencyKey !== undefined) {
        const key = recordKey(resource, subject, idempotencyKey);
        // A promise only when the key is long enough to be hashed: no promise hop otherwise.
        storeKey = typeof key === 'string' ? key : await key;
      }
      const { result, recorded } = await this.#record(
        plan,
        resourcePlan,
        subject,
        now,
        storeKey,
        details,
      );
      if (recorded && amount !== 0 && this.#ledger) {
        this.#ledger.add(now, resource, amount, subject, details);
      }
      if (traced) this.#telemetry!.end(traced, [result], recorded);
      // A duplicate key (or a failed store) recorded nothing: nothing crossed.
      if (recorded && this.#notifier.active) this.#notifier.observe([result], subject, now);
      return result;
    } catch (error) {
      if (traced) this.#telemetry!.fail(traced, error);
      throw error;
    }
  }

  /**
   * Atomic check-and-record across every resource and rule: all admitted and recorded, or
   * none.
   *
   * @throws QuotaValidationError for bad input (nothing is recorded).
   */
  async consume(request: ConsumeRequest): Promise<QuotaDecision> {
    if (this.#sync) return this.#consumeNow(this.#sync, request);
    requireObject(request, 'consume');
    const traced = this.#telemetry?.begin('consume');
    try {
      const subject = toSubject(request);
      for (let attempt = 1; ; attempt++) {
        let runtime = this.#overrides.peek(subject);
        if (runtime === undefined) {
          // Peeked again once the lookup is done, in this same turn as the version read next.
          runtime = this.#overrides.settledLookup(
            subject,
            await this.#overrides.forSubject(subject),
          );
        }
        const version = attempt <= CHECKED_ATTEMPTS ? this.#overrides.version : undefined;
        const now = this.#clock();
        const plan = this.#plan(request.amounts, subject, now, true, runtime);
        plan.overridesVersion = version;
        let decision: Decision | typeof STALE;
        if (plan.perRequestRefused || plan.counters.length === 0 || plan.storeUnavailable) {
          decision = await this.#admit(plan, subject, now, undefined);
        } else {
          // #admit's common case, inlined: one async frame less on every networked consume.
          let outcome: StoreConsumeResult | undefined;
          let stale = false;
          try {
            const storeRequest = this.#consumeRequest(plan, subject, now, undefined);
            outcome = await this.#timed(this.#store.consume(storeRequest));
          } catch (error) {
            // Otherwise the decision says `unknown` and follows failureMode; telemetry shows
            // the failure.
            stale = isStaleOverridesError(error) && version !== undefined;
          }
          decision = stale
            ? STALE
            : outcome === undefined
              ? this.#admitted(plan, null, this.#allowedWhenUnknown, now)
              : this.#admitted(plan, outcome.values, outcome.allowed, now);
        }
        if (decision !== STALE) return this.#consumed(traced, plan, subject, now, decision);
        this.#overrides.forgetStale(version);
      }
    } catch (error) {
      if (traced) this.#telemetry!.fail(traced, error);
      throw error;
    }
  }

  /** {@link consume} against an in-process store, decided before it returns. */
  #consumeNow(store: SyncStore, request: ConsumeRequest): Decision {
    requireObject(request, 'consume');
    const traced = this.#telemetry?.begin('consume');
    try {
      const subject = toSubject(request);
      const runtime = this.#overrides.forSubjectSync(subject);
      const now = this.#clock();
      const plan = this.#plan(request.amounts, subject, now, true, runtime);
      const decision = this.#admitSync(store, plan, subject, now, undefined);
      return this.#consumed(traced, plan, subject, now, decision);
    } catch (error) {
      if (traced) this.#telemetry!.fail(traced, error);
      throw error;
    }
  }

  /** A consume's decision, once its usage is in the ledger and telemetry has seen it. */
  #consumed(
    traced: OperationTrace | undefined,
    plan: OperationPlan,
    subject: Subject,
    now: number,
    decision: Decision,
  ): Decision {
    if (decision.recorded && this.#ledger) this.#log(plan, subject, now);
    this.#observe(traced, decision, subject, now);
    return decision;
  }

  static {
    consumeAtOnce = (engine, request) =>
      #sync in engine && engine.#sync !== undefined
        ? engine.#consumeNow(engine.#sync, request)
        : undefined;
  }

  /**
   * Holds `amounts` for the subject (admitted atomically like {@link consume}) until the
   * reservation is committed with the actual amounts, released, or expires after `ttlMs`.
   *
   * @throws QuotaValidationError for bad input (nothing is held).
   */
  async reserve(request: ReserveRequest): Promise<Reservation> {
    requireObject(request, 'reserve');
    const traced = this.#telemetry?.begin('reserve');
    try {
      const subject = toSubject(request);
      const ttlMs =
        request.ttlMs === undefined ? this.#config.reservationTtlMs : validateTtl(request.ttlMs);
      const id = this.#reservationIds.next();
      const hold = { id, ttlMs };
      let plan: OperationPlan;
      let decision: Decision | typeof STALE;
      let now: number;
      for (let attempt = 1; ; attempt++) {
        let runtime = this.#overrides.peek(subject);
        if (runtime === undefined) {
          // Peeked again once the lookup is done, in this same turn as the version read next.
          runtime = this.#overrides.settledLookup(
            subject,
            await this.#overrides.forSubject(subject),
          );
        }
        const version = attempt <= CHECKED_ATTEMPTS ? this.#overrides.version : undefined;
        now = this.#clock();
        plan = this.#plan(request.amounts, subject, now, true, runtime);
        plan.overridesVersion = version;
        decision = this.#sync
          ? this.#admitSync(this.#sync, plan, subject, now, hold)
          : await this.#admit(plan, subject, now, hold);
        if (decision !== STALE) break;
        this.#overrides.forgetStale(version);
      }
      this.#observe(traced, decision, subject, now);
      const reserved = new Map<string, number>();
      for (const resourcePlan of plan.resources) {
        reserved.set(resourcePlan.resource, resourcePlan.amount);
      }
      return new ReservationHandle({
        id,
        decision,
        expiresAt: now + ttlMs,
        reserved,
        settle: (held, actual, details) => this.#settle(id, subject, held, actual, details),
        onSecondCommit: () => {
          throw new QuotaValidationError(`Reservation ${id} was already committed`);
        },
      });
    } catch (error) {
      if (traced) this.#telemetry!.fail(traced, error);
      throw error;
    }
  }

  /**
   * Takes a lease on a gauge (by default one `concurrent_tasks` slot), returned by
   * `release()` or automatically after `ttlMs`.
   *
   * @throws QuotaValidationError for bad input (nothing is held).
   */
  async acquire(request: AcquireRequest): Promise<Lease> {
    requireObject(request, 'acquire');
    const resource = request.resource ?? 'concurrent_tasks';
    const reservation = await this.reserve({
      userId: request.userId,
      agentId: request.agentId,
      tenantId: request.tenantId,
      runId: request.runId,
      amounts: { [resource]: request.amount ?? 1 },
      ttlMs: request.ttlMs,
    } as ReserveRequest);
    return new LeaseHandle(reservation, resource);
  }

  /**
   * Where the subject stands on one resource, without a request.
   *
   * @throws QuotaValidationError for bad input.
   */
  async getQuotaStatus(resource: ResourceName, subject: Subject): Promise<QuotaStatusReport> {
    requireObject(subject, 'getQuotaStatus');
    return toReport(await this.#evaluateOne(resource, subject, 0));
  }

  /**
   * Where the subject stands on every resource that has a rule binding it, read at once.
   *
   * @throws QuotaValidationError for bad input.
   */
  async getAllQuotasStatus(subject: Subject): Promise<AllQuotasStatus> {
    requireObject(subject, 'getAllQuotasStatus');
    const cleanSubject = toSubject(subject);
    let plan: OperationPlan;
    let values: readonly number[] | null | typeof STALE;
    let now: number;
    for (let attempt = 1; ; attempt++) {
      let runtime = this.#overrides.peek(cleanSubject);
      if (runtime === undefined) {
        // Peeked again once the lookup is done, in this same turn as the version read next.
        runtime = this.#overrides.settledLookup(
          cleanSubject,
          await this.#overrides.forSubject(cleanSubject),
        );
      }
      const version = attempt <= CHECKED_ATTEMPTS ? this.#overrides.version : undefined;
      now = this.#clock();
      plan = this.#planner.begin();
      plan.overridesVersion = version;
      for (const resource of this.#rules.resources(runtime)) {
        this.#planner.add(plan, resource, 0, cleanSubject, now, false, runtime);
      }
      values = this.#sync
        ? this.#readSync(this.#sync, plan, cleanSubject, now)
        : await this.#read(plan, cleanSubject, now);
      if (values !== STALE) break;
      this.#overrides.forgetStale(version);
    }
    const context = this.#context(values, now, false);
    const quotas: Record<string, QuotaStatusReport> = {};
    for (const resourcePlan of plan.resources) {
      if (resourcePlan.rules.length === 0) continue;
      quotas[resourcePlan.resource] = toReport(evaluateResource(resourcePlan, context));
    }
    return { subject: cleanSubject, quotas };
  }

  /**
   * The resources that have a rule binding the subject (configured or run-time), without
   * reading any counter.
   *
   * @throws QuotaValidationError for bad ids.
   */
  async boundResources(subject: Subject): Promise<string[]> {
    requireObject(subject, 'boundResources');
    const cleanSubject = toSubject(subject);
    let runtime = this.#overrides.peek(cleanSubject);
    if (runtime === undefined) runtime = await this.#overrides.forSubject(cleanSubject);
    const bound: string[] = [];
    for (const resource of this.#rules.resources(runtime)) {
      if (this.#rules.rulesFor(resource, cleanSubject, runtime).length > 0) bound.push(resource);
    }
    return bound;
  }

  /**
   * May this task run? Estimates what it will spend (the engine's `estimator`) and checks
   * the estimates, with every other resource bound to the task's subject, in one read.
   * The subject is `{ userId: task.createdBy, agentId, tenantId, runId }`.
   *
   * @throws QuotaValidationError for a bad task (nothing is read).
   * @example
   * const { allAllowed, results } = await engine.checkTaskQuota({ description: 'Search the web', createdBy: 'u1' });
   */
  checkTaskQuota(task: QuotaTask): Promise<TaskQuotaCheck> {
    return checkTaskQuota(this, this.#config.estimator, task);
  }

  /**
   * Runs a task under its quotas: checks it, takes a `concurrent_tasks` lease, runs
   * `fn(ctx)` (`ctx.record(resource, amount)` records actual usage), records
   * `execution_time` in seconds and releases the lease, also when `fn` throws or times out.
   *
   * @throws QuotaExceededError when refused (`fn` does not run), carrying every result.
   * @throws TaskTimeoutError when `options.timeoutMs` passes first.
   * @example
   * const summary = await engine.runTask({ description: 'Summarise the report', createdBy: 'u1' },
   *   async (ctx) => { await ctx.record('llm_requests', 1); return 'done'; });
   */
  runTask<T>(
    task: QuotaTask,
    fn: (ctx: TaskContext) => T | Promise<T>,
    options?: RunTaskOptions,
  ): Promise<T> {
    const { clock } = this.#config;
    return runTask(
      this,
      this.#config.estimator,
      task,
      fn,
      options,
      clock === Date.now ? undefined : clock,
    );
  }

  /**
   * Sets a run-time quota for one user, agent, tenant or run, kept in the store so that
   * every engine on it applies it: from its next decision on, when the store is in-process
   * or versions its overrides (MemoryStore, RedisStore unsharded, PostgresStore), else (and
   * for a decision that touches no counter) within `overrideCacheTtlMs`. It replaces that
   * scope's configured rules for the resource, for that id only.
   *
   * @throws QuotaValidationError for a bad scope, id, resource or rule (nothing is stored).
   * @throws QuotaConfigError for a rule the store cannot enforce (one that crosses shards).
   * @example
   * await engine.setQuota({ scope: 'user', id: 'u1', resource: 'llm_tokens', limit: 5_000_000, period: 'per_day' });
   */
  setQuota(request: SetQuotaRequest): Promise<StoredOverride> {
    return this.#overrides.set(request);
  }

  /**
   * Removes a run-time quota; the configured rules apply again. Resolves false when there
   * was none.
   *
   * @throws QuotaValidationError for a bad scope, id or resource.
   */
  removeQuota(request: OverrideKey): Promise<boolean> {
    return this.#overrides.remove(request);
  }

  /** Run-time quotas in the store, optionally for one scope and id. */
  listQuotas(filter: OverrideFilter = {}): Promise<readonly StoredOverride[]> {
    return this.#overrides.list(filter);
  }

  /**
   * Subscribes to engine events. `'threshold'` fires when a subject's usage under a rule
   * crosses into approaching_limit, at_limit or exceeded: once per window and status across
   * every engine on the store. Listeners run off the hot path; returns an unsubscribe function.
   *
   * @example
   * engine.on('threshold', (event) => console.log(event.subject, event.resource, event.status));
   * engine.on('threshold', webhookNotifier({ url, secret }));
   */
  on<E extends keyof QuotaEngineEvents>(event: E, listener: ThresholdListener): () => void {
    if (event !== 'threshold') {
      throw new QuotaValidationError(
        `Unknown event ${JSON.stringify(event)}: expected 'threshold'`,
      );
    }
    if (typeof listener !== 'function') {
      throw new QuotaValidationError('listener must be a function');
    }
    this.#notifier.add(listener);
    return () => this.off(event, listener);
  }

  /** Unsubscribes a listener added with {@link on}. */
  off<E extends keyof QuotaEngineEvents>(_event: E, listener: ThresholdListener): void {
    this.#notifier.remove(listener);
  }

  /**
   * Usage events recorded for a subject in [from, to), oldest first (what is buffered is
   * written first, so an engine reads its own records).
   *
   * @throws QuotaValidationError for a bad range or ids, or when the engine keeps no ledger.
   * @example
   * for await (const event of engine.usageEvents({ from, to, tenantId: 'acme' })) total += event.amount;
   */
  async *usageEvents(query: UsageQuery): AsyncIterable<UsageEvent> {
    const ledger = this.#requireLedger();
    const clean = toUsageQuery(query);
    await this.#ledger?.flush();
    yield* ledger.query(clean);
  }

  /**
   * Usage events in [from, to) as export lines: `csv` starts with a header line of the
   * UsageEvent field names; `cloudevents` gives one CloudEvents 1.0 JSON object per line,
   * whose `id` is the event's own (stable across re-exports).
   *
   * @throws QuotaValidationError for a bad range, ids or format.
   */
  async *exportUsage(
    request: UsageQuery & { format: UsageExportFormat; source?: string },
  ): AsyncIterable<string> {
    requireObject(request, 'exportUsage');
    const { format } = request;
    if (format !== 'csv' && format !== 'cloudevents') {
      throw new QuotaValidationError(
        `format must be 'csv' or 'cloudevents', got ${JSON.stringify(format)}`,
      );
    }
    if (format === 'csv') yield USAGE_CSV_HEADER;
    for await (const event of this.usageEvents(request)) {
      yield format === 'csv'
        ? usageEventToCsv(event)
        : usageEventToCloudEvent(event, request.source);
    }
  }

  #requireLedger(): UsageLedger {
    if (this.#config.ledger === null) {
      throw new QuotaValidationError('This engine keeps no usage ledger (ledger: false)');
    }
    return this.#config.ledger;
  }

  /**
   * Delivers what is buffered (usage events, notifications) and closes the store if the engine created it
   * (a store passed in options belongs to the caller, who may share it between engines).
   */
  async close(): Promise<void> {
    await this.#ledger?.flush();
    await this.#notifier.flush();
    if (this.#ownsStore) await this.#store.close?.();
  }

  #plan(
    amounts: unknown,
    subject: Subject,
    now: number,
    enforce: boolean,
    runtime: RuntimeRules | null,
    allowEmpty = false,
  ): OperationPlan {
    // Every amount is validated before the store is asked anything, so bad input changes
    // nothing.
    if (typeof amounts !== 'object' || amounts === null || Array.isArray(amounts)) {
      validateAmounts(amounts); // throws the validation error
    }
    const planner = this.#planner;
    const plan = planner.begin();
    const byResource = amounts as Record<string, unknown>;
    for (const name in byResource) {
      if (!Object.hasOwn(byResource, name)) continue;
      const resource = validateResource(name, this.#rules, runtime);
      const amount = validateAmount(resource, byResource[name], false);
      planner.add(plan, resource, amount, subject, now, enforce, runtime);
    }
    if (plan.resources.length === 0 && !allowEmpty) validateAmounts(amounts); // throws: none named
    return plan;
  }

  /**
   * Check-and-add in an asynchronous store; all or nothing. Never throws for a store failure.
   * (An in-process store goes through {@link #admitSync}.)
   */
  async #admit(
    plan: OperationPlan,
    subject: Subject,
    now: number,
    hold: { id: string; ttlMs: number } | undefined,
  ): Promise<Decision | typeof STALE> {
    let values: readonly number[] | null;
    let allowed: boolean;
    if (plan.perRequestRefused) {
      const read = await this.#read(plan, subject, now);
      if (read === STALE) return STALE;
      values = read;
      allowed = false;
    } else if (plan.counters.length === 0) {
      values = NO_VALUES;
      allowed = true;
    } else {
      try {
        const request = this.#consumeRequest(plan, subject, now, hold);
        const outcome = await this.#bounded(plan, this.#store.consume(request));
        values = outcome.values;
        allowed = outcome.allowed;
      } catch (error) {
        if (isStaleOverridesError(error) && plan.overridesVersion !== undefined) return STALE;
        // The decision says `unknown` and follows failureMode; telemetry shows the failure.
        values = null;
        allowed = this.#allowedWhenUnknown;
      }
    }
    return this.#admitted(plan, values, allowed, now);
  }

  /** {@link #admit} against an in-process store: no promise on the hot path. */
  #admitSync(
    store: SyncStore,
    plan: OperationPlan,
    subject: Subject,
    now: number,
    hold: { id: string; ttlMs: number } | undefined,
  ): Decision {
    let values: readonly number[] | null;
    let allowed: boolean;
    try {
      if (plan.perRequestRefused) {
        values = store.readSync({ now, subject, counters: plan.counters }).values;
        allowed = false;
      } else if (plan.counters.length === 0) {
        values = NO_VALUES;
        allowed = true;
      } else {
        const outcome = store.consumeSync(this.#consumeRequest(plan, subject, now, hold));
        values = outcome.values;
        allowed = outcome.allowed;
      }
    } catch {
      values = null;
      // A per_request cap refuses without the store: failureMode never admits past it.
      allowed = !plan.perRequestRefused && this.#allowedWhenUnknown;
    }
    return this.#admitted(plan, values, allowed, now);
  }

  /** The store's consume request of a plan: a hold carries no usage events (nothing is spent yet). */
  #consumeRequest(
    plan: OperationPlan,
    subject: Subject,
    now: number,
    hold: { id: string; ttlMs: number } | undefined,
  ): StoreConsumeRequest {
    return {
      now,
      subject,
      counters: plan.counters,
      limits: plan.limits,
      hold,
      usage: hold === undefined ? this.#storeUsage(plan, subject, now) : undefined,
      overridesVersion: plan.overridesVersion,
    };
  }

  #admitted(
    plan: OperationPlan,
    values: readonly number[] | null,
    allowed: boolean,
    now: number,
  ): Decision {
    return new Decision(allowed, plan, this.#context(values, now, allowed && values !== null));
  }

  /** Records unconditionally; `recorded` is false for a duplicate key or a failed store. */
  async #record(
    plan: OperationPlan,
    resourcePlan: ResourcePlan,
    subject: Subject,
    now: number,
    idempotencyKey: string | undefined,
    details: UsageDetails,
  ): Promise<{ result: QuotaCheckResult; recorded: boolean }> {
    // Nothing to count, no key to remember and no event for the store's ledger: no store
    // call at all.
    const usage = this.#storeUsage(plan, subject, now, details);
    if (plan.counters.length === 0 && idempotencyKey === undefined && usage === undefined) {
      return {
        result: evaluateResource(resourcePlan, this.#context(NO_VALUES, now, true)),
        recorded: true,
      };
    }
    const storeRequest = {
      now,
      subject,
      counters: plan.counters,
      idempotencyKey,
      idempotencyTtlMs: this.#config.idempotencyTtlMs,
      usage,
    };
    let outcome: { values: readonly number[]; duplicate: boolean };
    try {
      outcome = this.#sync
        ? this.#sync.recordSync(storeRequest)
        : await this.#timed(this.#store.record(storeRequest));
    } catch {
      return {
        result: evaluateResource(resourcePlan, this.#context(null, now, false)),
        recorded: false,
      };
    }
    if (outcome.duplicate) {
      // Already counted: report the state as it stands, with nothing requested.
      const unchanged: ResourcePlan = { ...resourcePlan, amount: 0 };
      return {
        result: evaluateResource(unchanged, this.#context(outcome.values, now, false)),
        recorded: false,
      };
    }
    return {
      result: evaluateResource(resourcePlan, this.#context(outcome.values, now, true)),
      recorded: true,
    };
  }

  async #settle(
    id: string,
    subject: Subject,
    reserved: ReadonlyMap<string, number>,
    actual: Amounts | null,
    details: UsageDetails | undefined,
  ): Promise<CommitResult> {
    const traced = this.#telemetry?.begin('commit');
    try {
      // A null-prototype object, so that no key of the caller's (such as `__proto__`) can
      // reach a prototype; missing resources keep their reserved amount.
      const merged: Record<string, unknown> = Object.create(null);
      if (details !== undefined) validateUsageDetails(details.metadata, details.taskId);
      if (actual !== null) {
        for (const [name, value] of reserved) merged[name] = value;
        for (const [name, value] of validateAmounts(actual, true)) merged[name] = value;
      }
      let runtime = this.#overrides.peek(subject);
      if (runtime === undefined) runtime = await this.#overrides.forSubject(subject);
      const now = this.#clock();
      const plan = this.#plan(merged, subject, now, false, runtime, true);
      const storeRequest = {
        now,
        subject,
        counters: plan.counters,
        reservationId: id,
        usage: this.#storeUsage(plan, subject, now, details),
      };
      let outcome: { values: readonly number[]; found: boolean };
      try {
        outcome = this.#sync
          ? this.#sync.settleSync(storeRequest)
          : await this.#timed(this.#store.settle(storeRequest));
      } catch (error) {
        throw error instanceof QuotaStoreError
          ? error
          : new QuotaStoreError(`Could not settle reservation ${id}: the store failed`, {
              cause: error,
            });
      }
      if (this.#ledger) this.#log(plan, subject, now, details);
      const decision = this.#decide(plan, this.#context(outcome.values, now, true), false);
      const results = Object.values(decision.results);
      if (traced) this.#telemetry!.end(traced, results, true);
      if (this.#notifier.active) this.#notifier.observe(results, subject, now);
      return { expired: !outcome.found, results: decision.results };
    } catch (error) {
      if (traced) this.#telemetry!.fail(traced, error);
      throw error;
    }
  }

  /** Queues a usage event for every amount of a plan that was recorded. */
  #log(plan: OperationPlan, subject: Subject, now: number, details?: UsageDetails): void {
    for (const resourcePlan of plan.resources) {
      if (resourcePlan.amount !== 0) {
        this.#ledger!.add(now, resourcePlan.resource, resourcePlan.amount, subject, details);
      }
    }
  }

  /**
   * The usage events a store that keeps the ledger writes with the operation; undefined
   * when the ledger is the engine's own (or there is none).
   */
  #storeUsage(
    plan: OperationPlan,
    subject: Subject,
    now: number,
    details?: UsageDetails,
  ): UsageEvent[] | undefined {
    const ids = this.#storeEventIds;
    if (ids === undefined) return undefined;
    const events: UsageEvent[] = [];
    for (const { resource, amount } of plan.resources) {
      if (amount !== 0) {
        events.push(toUsageEvent({ at: now, resource, amount, subject, details }, ids.next()));
      }
    }
    return events;
  }

  /** Evaluates every resource of a plan; `allowed` is the conjunction when `combine`. */
  #decide(plan: OperationPlan, context: EvaluationContext, combine: boolean): QuotaDecision {
    const results: Record<string, QuotaCheckResult> = {};
    let allowed = true;
    for (const resourcePlan of plan.resources) {
      const result = evaluateResource(resourcePlan, context);
      results[resourcePlan.resource] = result;
      if (combine && !result.allowed) allowed = false;
    }
    return { allowed, results };
  }

  /** Telemetry and threshold notifications for an admitting operation. */
  #observe(
    traced: OperationTrace | undefined,
    decision: Decision,
    subject: Subject,
    now: number,
  ): void {
    const traceNeedsResults = traced !== undefined && this.#telemetry!.wantsResults(traced);
    if (!traceNeedsResults && !this.#notifier.active) {
      if (traced) this.#telemetry!.end(traced, NO_RESULTS, false);
      return;
    }
    const results = Object.values(decision.results);
    if (traced) {
      const unknown = results.length > 0 && results[0]!.status === 'unknown';
      this.#telemetry!.end(traced, results, decision.allowed && !unknown);
    }
    // A refused request moved no usage: only the rules that refused it are news (exceeded).
    if (this.#notifier.active) {
      this.#notifier.observe(results, subject, now, !decision.recorded);
    }
  }

  /** {@link #read} against an in-process store: no promise on the hot path. */
  #readSync(
    store: SyncStore,
    plan: OperationPlan,
    subject: Subject,
    now: number,
  ): readonly number[] | null {
    if (plan.counters.length === 0) return NO_VALUES;
    try {
      return store.readSync({ now, subject, counters: plan.counters }).values;
    } catch {
      return null;
    }
  }

  /**
   * The plan's counters from an asynchronous store: null when it failed ({@link STALE} when it
   * said the overrides changed since the plan was made: plan again).
   */
  async #read(
    plan: OperationPlan,
    subject: Subject,
    now: number,
  ): Promise<readonly number[] | null | typeof STALE> {
    if (plan.counters.length === 0) return NO_VALUES;
    const request = {
      now,
      subject,
      counters: plan.counters,
      overridesVersion: plan.overridesVersion,
    };
    try {
      const outcome: StoreReadResult = this.#sync
        ? this.#sync.readSync(request)
        : await this.#bounded(plan, this.#store.read(request));
      return outcome.values;
    } catch (error) {
      // Only a version that was sent can be stale: a store that says so of an unchecked read
      // has failed (and a decision cannot be retried for ever).
      return isStaleOverridesError(error) && plan.overridesVersion !== undefined ? STALE : null;
    }
  }

  #context(values: readonly number[] | null, now: number, applied: boolean): EvaluationContext {
    return { values, now, applied, allowedWhenUnknown: this.#allowedWhenUnknown };
  }

  /**
   * A store call of `plan`: bounded by the store timeout, or, when the same operation already
   * waited it out looking up overrides, by the next turn of the event loop (a store that knows
   * it is down, such as an insured RedisStore, answers before that).
   */
  #bounded<T>(plan: OperationPlan, operation: Promise<T>): Promise<T> {
    if (!plan.storeUnavailable) return this.#timed(operation);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new QuotaStoreError('The quota store is not answering (overrides timed out)')),
        0,
      );
    });
    return Promise.race([operation, late]).finally(() => clearTimeout(timer));
  }

  /** Bounds an asynchronous store call by `storeTimeoutMs`: a store never hangs the engine. */
  #timed<T>(operation: Promise<T>): Promise<T> {
    const timeoutMs = this.#config.storeTimeoutMs;
    const own = this.#store.timeoutMs;
    // A store that bounds its own calls needs no second timer per call.
    if (typeof own === 'number' && own <= timeoutMs) return operation;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new QuotaStoreError(`The quota store did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      // Never keep a process alive just for this timer (Node); absent elsewhere.
      (timer as { unref?: () => void }).unref?.();
    });
    return Promise.race([operation, timeout]).finally(() => clearTimeout(timer));
  }
}

function ledgerSink(
  ledger: UsageLedger | null,
  onError: (error: unknown) => void,
): Pick<LedgerWriter, 'add' | 'flush'> | undefined {
  if (ledger === null) return undefined;
  const inProcess = ledger as Partial<Pick<MemoryLedger, 'recordSync'>>;
  if (typeof inProcess.recordSync === 'function') {
    const recordSync = inProcess.recordSync.bind(ledger);
    return { add: recordSync, flush: () => Promise.resolve() };
  }
  return new LedgerWriter(ledger, onError);
}

function hasSyncTwins(store: QuotaStore): store is QuotaStore & SyncStore {
  const candidate = store as Partial<SyncStore>;
  return (
    typeof candidate.readSync === 'function' &&
    typeof candidate.consumeSync === 'function' &&
    typeof candidate.recordSync === 'function' &&
    typeof candidate.settleSync === 'function' &&
    typeof candidate.getOverridesSync === 'function' &&
    typeof candidate.overrideCount === 'number'
  );
}

function requireObject(value: unknown, method: string): void {
  if (typeof value !== 'object' || value === null) {
    throw new QuotaValidationError(`${method} expects an object argument`);
  }
}

function toReport(result: QuotaCheckResult): QuotaStatusReport {
  return {
    resource: result.resource,
    status: result.status,
    used: result.used,
    limit: result.limit,
    remaining: result.remaining,
    period: result.period,
    resetAt: result.resetAt,
    message: result.message,
    rules: result.rules,
  };
}

/** Longest record key kept as it is; longer ones are hashed (see {@link recordKey}). */
const MAX_PLAIN_RECORD_KEY = 512;

/**
 * What the store remembers of an idempotency key: the key with the resource and the subject's
 * ids it was recorded for, so that the same key names one record per resource and subject
 * (and does the same in every store, sharded or not). Each id comes with its length, so that
 * no id can pass for another. Past 512 characters (long ids) it is replaced by its SHA-256,
 * so that a store's index holds it (PostgreSQL's btree entries end at about 2.7 kB).
 */
function recordKey(
  resource: string,
  subject: Subject,
  idempotencyKey: string,
): string | Promise<string> {
  const key = `${resource}|${sized(subject.userId)}${sized(subject.agentId)}${sized(subject.tenantId)}${sized(subject.runId)}${idempotencyKey}`;
  // Hashed as JSON, which escapes lone surrogates (UTF-8 would turn each into U+FFFD).
  return key.length <= MAX_PLAIN_RECORD_KEY ? key : sha256Hex(JSON.stringify(key));
}

function sized(id: string | undefined): string {
  return id === undefined ? '-|' : `${id.length}:${id}|`;
}

/** SHA-256 of `text` (UTF-8) in hex, by Web Crypto: there in Node, Deno, Bun and Workers. */
async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  let hex = 'sha256:';
  for (const byte of new Uint8Array(digest)) hex += byte.toString(16).padStart(2, '0');
  return hex;
}
