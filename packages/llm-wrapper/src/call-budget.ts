// The shared contract of the package: withQuota (openai, @anthropic-ai/sdk) and quotaMiddleware
// (Vercel AI SDK) both reserve, commit and release a call's quota through it.
import {
  type Amounts,
  COST_USD,
  type QuotaCheckResult,
  QuotaExceededError,
  quotaMessage,
  type Reservation,
  type Subject,
  tokenCostUsd,
} from '@quotakit/core';
import { type Abandonable, AbandonmentTimer } from './abandonment-timer.js';
import { CallSpan, type SettledUsage, usageAttributes } from './call-telemetry.js';
import {
  checkedSubject,
  isPromiseLike,
  type QuotaWrapperOptions,
  type ResolvedWrapperOptions,
  resolveWrapperOptions,
} from './wrapper-options.js';

export {
  estimatePromptTokens,
  estimateTextTokens,
  fastTokenCount,
  loadExactTokenizer,
  MEDIA_PART_TOKENS,
  type TokenCounter,
  type TokenEstimator,
} from './token-estimate.js';
export {
  DEFAULT_MAX_OUTPUT_TOKENS,
  DEFAULT_MIN_OUTPUT_TOKENS,
  DEFAULT_RESERVATION_TTL_MS,
  type QuotaWrapperOptions,
  type ResolvedWrapperOptions,
  resolveWrapperOptions,
} from './wrapper-options.js';

/** What a call is about to do, as an adapter reads it from the call's parameters. */
export interface LlmCall {
  /** `gen_ai.provider.name`: 'openai', 'anthropic', or the AI SDK model's provider. */
  provider: string;
  /** `gen_ai.operation.name`: 'chat', 'embeddings', 'generate_content', ... */
  operation: string;
  model: string;
  /** Estimated input tokens of the prompt. */
  inputTokens: number;
  /** The call's own output cap (already times `n`), or undefined when it sets none. */
  maxOutputTokens: number | undefined;
  /**
   * How many choices the call asks for (OpenAI's `n`): a call without a cap reserves
   * `defaultMaxOutputTokens` per choice, and clamp's {@link CallBudget.outputCap} is per
   * choice. Defaults to `1`.
   */
  choices?: number;
}

/** Usage as the provider reported it, normalised (input includes cached, output reasoning). */
export interface ReportedUsage {
  /** The model the provider says it used; defaults to the requested one. */
  model?: string;
  /** Every input token, cached ones included. */
  inputTokens: number;
  /** The part of `inputTokens` read from the provider's cache. */
  cachedInputTokens?: number;
  /** Every output token, reasoning tokens included. */
  outputTokens: number;
  /** The part of `outputTokens` spent on reasoning. */
  reasoningTokens?: number;
  /** True when counted from what was streamed rather than reported by the provider. */
  estimated?: boolean;
  /**
   * True when the call was never settled by its caller (a stream neither read to its end
   * nor cancelled, a promise never awaited) and its reservation is committed as it stands
   * before it would expire.
   */
  abandoned?: boolean;
}

/** The reservation of one call, from before it leaves until it is settled. */
export interface CallBudget {
  /**
   * When clamp lowered the cap: the output cap (per choice) the call must send instead of
   * its own; undefined when the call goes out as the caller wrote it.
   */
  readonly outputCap: number | undefined;
  /** Output tokens held for the call: its cap (or the default cap) times its choices. */
  readonly reservedOutputTokens: number;
  /** Who pays for the call, read once when it was made. */
  readonly subject: Subject;
  /** Whether the budget was committed, failed or released already. */
  readonly settled: boolean;
  /**
   * Records the provider's usage (`llm_requests` 1, `llm_tokens` input + output, `cost_usd`
   * with prices) with its metadata and returns the rest of the hold. Only the first settle
   * of a budget counts; later ones do nothing. A store failure here is not thrown (the
   * provider call succeeded): the hold then returns by itself after `reservationTtlMs`.
   */
  commit(usage: ReportedUsage): Promise<void>;
  /** The provider call failed: returns the tokens; counts the request per countFailedRequests. */
  fail(error: unknown): Promise<void>;
  /** The call never reached the provider: returns the whole hold, counting nothing. */
  release(): Promise<void>;
  /** enforceDuringStream: false once `outputTokensSoFar` exceeds what the budget allows. */
  allowsOutput(outputTokensSoFar: number): boolean;
  /** The error that ends a stream stopped because {@link allowsOutput} said false. */
  exceededError(outputTokensSoFar: number): QuotaExceededError;
}

const LLM_REQUESTS = 'llm_requests';
const LLM_TOKENS = 'llm_tokens';

/**
 * Reserves `llm_requests: 1` and `llm_tokens` (input estimate + output cap, or the default
 * cap per choice) for the subject before a call leaves, and with prices the estimated
 * `cost_usd` when a rule for it binds the subject. Refused -> throws QuotaExceededError
 * (carrying every result and `retryAfterMs`), unless `onExceeded: 'clamp'` can fit a
 * smaller output cap.
 *
 * @throws QuotaExceededError when refused; QuotaValidationError when no subject is set, or it
 *   is not an object.
 * @example
 * const budget = await openCallBudget(resolved, { provider: 'openai', operation: 'chat',
 *   model: 'gpt-4o', inputTokens: 120, maxOutputTokens: 500 });
 * try { const reply = await send(budget.outputCap); await budget.commit(usageOf(reply)); }
 * catch (error) { await budget.fail(error); throw error; }
 */
export function openCallBudget(
  options: ResolvedWrapperOptions | QuotaWrapperOptions,
  call: LlmCall,
): Promise<CallBudget> {
  // Not an async function: one promise chain from the engine's reservation to the budget,
  // where nested async functions added a promise hop apiece to every call. Every failure is
  // still a rejection, never a throw.
  let resolved: ResolvedWrapperOptions;
  let read: unknown;
  try {
    resolved = resolveWrapperOptions(options);
    // Read before anything is awaited, in the caller's own async context.
    read = resolved.subject();
  } catch (error) {
    return Promise.reject(error);
  }
  if (isPromiseLike(read)) {
    return Promise.resolve(read).then((subject) => budgetFor(resolved, call, subject));
  }
  return budgetFor(resolved, call, read);
}

/** {@link openCallBudget} once the subject is read. */
function budgetFor(
  resolved: ResolvedWrapperOptions,
  call: LlmCall,
  read: unknown,
): Promise<CallBudget> {
  let subject: Subject;
  let span: CallSpan | undefined;
  try {
    subject = checkedSubject(read);
    span = resolved.telemetry ? CallSpan.start(call) : undefined;
  } catch (error) {
    return Promise.reject(error);
  }
  const reserved = reserveCall(resolved, call, subject, span);
  if (span === undefined) return reserved;
  return reserved.catch((error: unknown) => {
    span.failed(error);
    throw error;
  });
}

async function reserveCall(
  options: ResolvedWrapperOptions,
  call: LlmCall,
  subject: Subject,
  span: CallSpan | undefined,
): Promise<ReservedCall> {
  const { engine, prices } = options;
  const choices = call.choices !== undefined && call.choices > 1 ? Math.floor(call.choices) : 1;
  const inputTokens = nonNegative(call.inputTokens);
  let outputTokens =
    call.maxOutputTokens === undefined
      ? options.defaultMaxOutputTokens * choices
      : nonNegative(call.maxOutputTokens);
  // Money budgets are paid for only when enabled, and only for subjects a cost rule binds
  // (recording a resource no rule knows is a validation error).
  const withCost =
    prices !== undefined &&
    (await within(span, () => engine.boundResources(subject))).includes(COST_USD);

  const reserve = (output: number): Promise<Reservation> => {
    // Literal keys and one request shape for every call: the engine's reads of both stay
    // monomorphic, where a spread subject and computed keys made each call's shape anew.
    const amounts: Amounts = { llm_requests: 1, llm_tokens: inputTokens + output };
    if (withCost) {
      const cost = tokenCostUsd(prices, {
        model: call.model,
        inputTokens,
        outputTokens: output,
      });
      if (cost !== undefined) amounts[COST_USD] = cost;
    }
    const request = {
      userId: subject.userId,
      agentId: subject.agentId,
      tenantId: subject.tenantId,
      runId: subject.runId,
      amounts,
      ttlMs: options.reservationTtlMs,
    };
    return span === undefined
      ? engine.reserve(request)
      : span.within(() => engine.reserve(request));
  };

  let reservation = await reserve(outputTokens);
  let outputCap: number | undefined;
  if (!reservation.allowed && options.onExceeded === 'clamp') {
    const perChoice = clampedOutput(reservation.results, inputTokens, choices);
    if (perChoice !== undefined && perChoice >= options.minOutputTokens) {
      const clamped = Math.min(perChoice * choices, outputTokens);
      if (clamped < outputTokens) {
        outputTokens = clamped;
        outputCap = clamped / choices;
        reservation = await reserve(outputTokens);
        span?.clamped(outputCap);
      }
    }
  }
  span?.decided(reservation.results, reservation.allowed);
  if (!reservation.allowed) throw refusal(reservation.results);
  return new ReservedCall(options, call, subject, reservation, {
    outputCap,
    outputTokens,
    withCost,
    span,
  });
}

/**
 * The largest output cap per choice that fits the `llm_tokens` headroom, when `llm_tokens`
 * is the only resource that refused; undefined when nothing can be clamped.
 */
function clampedOutput(
  results: Readonly<Record<string, QuotaCheckResult>>,
  inputTokens: number,
  choices: number,
): number | undefined {
  for (const resource in results) {
    if (resource !== LLM_TOKENS && !results[resource]!.allowed) return undefined;
  }
  const tokens = results[LLM_TOKENS];
  if (tokens === undefined) return undefined;
  const headroom = tokenHeadroom(tokens);
  if (headroom === undefined || !Number.isFinite(headroom)) return undefined;
  return Math.floor((headroom - inputTokens) / choices);
}

/** The least `remaining` over the enforcing rules of a result; Infinity with none. */
function tokenHeadroom(result: QuotaCheckResult): number | undefined {
  let least = Number.POSITIVE_INFINITY;
  for (const rule of result.rules) {
    if (rule.mode === 'shadow') continue;
    if (rule.remaining === null) return undefined;
    if (rule.remaining < least) least = rule.remaining;
  }
  return least;
}

function refusal(results: Readonly<Record<string, QuotaCheckResult>>): QuotaExceededError {
  let binding: QuotaCheckResult | undefined;
  for (const resource in results) {
    const result = results[resource]!;
    if (!result.allowed) {
      binding = result;
      break;
    }
  }
  return new QuotaExceededError(binding ?? Object.values(results)[0]!, results);
}

function nonNegative(value: number): number {
  return Number.isFinite(value) && value > 0 ? Math.ceil(value) : 0;
}

function within<T>(span: CallSpan | undefined, fn: () => T): T {
  return span === undefined ? fn() : span.within(fn);
}

/** A {@link CallBudget} over one engine reservation. */
class ReservedCall implements CallBudget, Abandonable {
  readonly outputCap: number | undefined;
  readonly reservedOutputTokens: number;
  readonly subject: Subject;
  readonly #options: ResolvedWrapperOptions;
  readonly #call: LlmCall;
  readonly #reservation: Reservation;
  readonly #withCost: boolean;
  readonly #span: CallSpan | undefined;
  /** Output tokens a stream may produce before enforceDuringStream stops it; read lazily. */
  #outputAllowance: number | undefined;
  #settlement: Promise<void> | undefined;
  /** Commits the hold as it stands shortly before the reservation would expire unsettled. */
  readonly #abandonment: AbandonmentTimer;

  constructor(
    options: ResolvedWrapperOptions,
    call: LlmCall,
    subject: Subject,
    reservation: Reservation,
    init: {
      outputCap: number | undefined;
      outputTokens: number;
      withCost: boolean;
      span: CallSpan | undefined;
    },
  ) {
    this.#options = options;
    this.#call = call;
    this.subject = subject;
    this.#reservation = reservation;
    this.outputCap = init.outputCap;
    this.reservedOutputTokens = init.outputTokens;
    this.#withCost = init.withCost;
    this.#span = init.span;
    // A call nobody settles (a stream left unread but not cancelled: the AI SDK keeps the
    // model's stream open for its other readers; a promise never awaited) may still be
    // answered and billed by the provider. Returning its hold at expiry would count nothing,
    // so it is committed as reserved, marked estimated and abandoned, just before that.
    const ttlMs = options.reservationTtlMs;
    this.#abandonment = AbandonmentTimer.after(ttlMs - Math.min(5_000, Math.floor(ttlMs / 10)));
    this.#abandonment.watch(this);
  }

  abandon(): void {
    if (this.#settlement !== undefined) return;
    void this.commit({
      inputTokens: this.#call.inputTokens,
      outputTokens: this.reservedOutputTokens,
      estimated: true,
      abandoned: true,
    });
  }

  get settled(): boolean {
    return this.#settlement !== undefined;
  }

  allowsOutput(outputTokensSoFar: number): boolean {
    if (this.#outputAllowance === undefined) {
      // After a reservation, `remaining` already excludes what this call holds.
      const tokens = this.#reservation.results[LLM_TOKENS];
      const headroom = tokens === undefined ? undefined : tokenHeadroom(tokens);
      this.#outputAllowance = this.reservedOutputTokens + (headroom ?? 0);
    }
    return outputTokensSoFar <= this.#outputAllowance;
  }

  exceededError(outputTokensSoFar: number): QuotaExceededError {
    const held = this.#reservation.results[LLM_TOKENS];
    const requested = nonNegative(this.#call.inputTokens) + nonNegative(outputTokensSoFar);
    const limit = held?.limit ?? null;
    const resetAt = held?.resetAt ?? null;
    const result: QuotaCheckResult = {
      allowed: false,
      resource: LLM_TOKENS,
      status: 'exceeded',
      requested,
      used: held?.used ?? null,
      limit,
      remaining: limit === null ? null : 0,
      period: held?.period ?? null,
      resetAt,
      scope: held?.scope ?? null,
      message: quotaMessage('exceeded', LLM_TOKENS, limit, 0),
      rules: held?.rules ?? [],
    };
    if (resetAt !== null) {
      result.retryAfterMs = Math.max(0, resetAt.getTime() - this.#options.engine.now());
    }
    return new QuotaExceededError(result, { ...this.#reservation.results, [LLM_TOKENS]: result });
  }

  commit(usage: ReportedUsage): Promise<void> {
    this.#abandonment.unwatch(this);
    this.#settlement ??= this.#commit(usage);
    return this.#settlement;
  }

  fail(error: unknown): Promise<void> {
    this.#abandonment.unwatch(this);
    this.#settlement ??= this.#fail(error);
    return this.#settlement;
  }

  release(): Promise<void> {
    this.#abandonment.unwatch(this);
    if (this.#settlement === undefined) {
      const span = this.#span;
      const released = this.#settle([], undefined, undefined);
      this.#settlement = span === undefined ? released : released.then(() => span.released());
    }
    return this.#settlement;
  }

  #commit(usage: ReportedUsage): Promise<void> {
    const call = this.#call;
    const inputTokens = nonNegative(usage.inputTokens);
    const outputTokens = nonNegative(usage.outputTokens);
    const cachedInputTokens = Math.min(nonNegative(usage.cachedInputTokens ?? 0), inputTokens);
    const reasoningTokens = nonNegative(usage.reasoningTokens ?? 0);
    const model = usage.model || call.model;
    const prices = this.#options.prices;
    let costUsd: number | undefined;
    try {
      costUsd =
        prices === undefined
          ? undefined
          : tokenCostUsd(prices, { model, inputTokens, cachedInputTokens, outputTokens });
    } catch (error) {
      return Promise.reject(error);
    }
    const metadata: Record<string, unknown> = {
      provider: call.provider,
      operation: call.operation,
      model,
      inputTokens,
      outputTokens,
      cachedInputTokens,
      reasoningTokens,
      estimated: usage.estimated === true,
    };
    if (usage.abandoned === true) metadata.abandoned = true;
    if (costUsd !== undefined) metadata.costUsd = costUsd;
    const records: [string, number][] = [
      [LLM_REQUESTS, 1],
      [LLM_TOKENS, inputTokens + outputTokens],
    ];
    if (this.#withCost && costUsd !== undefined) records.push([COST_USD, costUsd]);
    const span = this.#span;
    if (span === undefined) return this.#settle(records, metadata, undefined);
    const settledUsage = { model, inputTokens, outputTokens, estimated: usage.estimated };
    return this.#settle(records, metadata, settledUsage).then(() => span.settled(settledUsage));
  }

  #fail(error: unknown): Promise<void> {
    const call = this.#call;
    const records: [string, number][] = this.#options.countFailedRequests
      ? [[LLM_REQUESTS, 1]]
      : [];
    const metadata: Record<string, unknown> = {
      provider: call.provider,
      operation: call.operation,
      model: call.model,
      failed: true,
    };
    const status = (error as { status?: unknown } | null)?.status;
    if (typeof status === 'number') metadata.status = status;
    const settled = this.#settle(records, metadata, undefined);
    const span = this.#span;
    return span === undefined ? settled : settled.then(() => span.failed(error));
  }

  /**
   * Settles the reservation in one engine operation: a commit of `records` (with the usage
   * metadata for the ledger), every other reserved resource at 0, so that nothing unspent
   * stays held; no records at all releases it whole. Never rejects: a commit the store
   * cannot take leaves the estimate held until reservationTtlMs (it still counts meanwhile)
   * and goes to onError; the paid response is never lost.
   */
  #settle(
    records: readonly [string, number][],
    metadata: Record<string, unknown> | undefined,
    usage: SettledUsage | undefined,
  ): Promise<void> {
    const reservation = this.#reservation;
    let settled: Promise<unknown>;
    try {
      if (records.length === 0) {
        settled = within(this.#span, () => reservation.release());
      } else {
        // A commit keeps the estimate of a resource it does not name: name them all.
        const actual: Record<string, number> = {};
        for (const resource in reservation.results) actual[resource] = 0;
        for (const [resource, amount] of records) actual[resource] = amount;
        const commit = () => reservation.commit(actual, { metadata });
        const span = this.#span;
        // The engine's quota.commit span carries the call's GenAI usage attributes too.
        settled =
          span === undefined
            ? commit()
            : span.within(commit, usage === undefined ? undefined : usageAttributes(usage));
      }
    } catch (error) {
      settled = Promise.reject(error);
    }
    return settled.then(settledQuietly, this.#options.onError);
  }
}

/** What a settlement resolves with: nothing, whatever the engine answered. */
function settledQuietly(): void {}
