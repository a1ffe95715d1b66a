import {
  definePriceTable,
  type ModelPrice,
  optionKeys,
  type PriceTable,
  QuotaConfigError,
  type QuotaEngine,
  QuotaValidationError,
  rejectUnknownOptions,
  type Subject,
} from '@quotakit/core';
import { resolveTokenCounter, type TokenCounter, type TokenEstimator } from './token-estimate.js';

/** Output cap reserved for a call that sets none. */
export const DEFAULT_MAX_OUTPUT_TOKENS = 4096;
/** Smallest output cap `onExceeded: 'clamp'` sends. */
export const DEFAULT_MIN_OUTPUT_TOKENS = 16;
/**
 * How long a call's reservation is held if it is never settled (a crashed process). Ten
 * minutes: the default request timeout of both the openai and the Anthropic SDK.
 */
export const DEFAULT_RESERVATION_TTL_MS = 600_000;

/** Options shared by `withQuota(client, options)` and `quotaMiddleware(options)`. */
export interface QuotaWrapperOptions {
  /** The engine that decides and records. Required. */
  engine: QuotaEngine;
  /**
   * Who pays: an object, or a function read once per call, when the call is made (so it can
   * read request-scoped state such as AsyncLocalStorage), which may return a promise (a
   * session looked up asynchronously). When it is absent or the function gives `undefined`,
   * the subject set by `runWithQuotaSubject` (from `@quotakit/llm-wrapper/node`) is used;
   * with neither, or when the function gives anything but an object, the call throws a
   * QuotaValidationError and sends nothing. Pass `{}` to bind only global rules.
   */
  subject?: Subject | (() => Subject | undefined | PromiseLike<Subject | undefined>);
  /**
   * What happens when the reservation is refused. `'throw'` (the default) throws a
   * `QuotaExceededError` and sends nothing. `'clamp'` lowers the call's output cap
   * (`max_completion_tokens`, `max_tokens`, `max_output_tokens`) to what the `llm_tokens`
   * budget still allows, down to `minOutputTokens`, and throws only when even that does not
   * fit or another resource (requests, cost) refused. Defaults to `'throw'`.
   */
  onExceeded?: 'throw' | 'clamp';
  /** Smallest output cap, per choice, that clamp may send. Defaults to `16`. */
  minOutputTokens?: number;
  /**
   * Output tokens reserved, per choice, for a call that sets no output cap (the cap itself is
   * not sent to the provider). Defaults to `4096`.
   */
  defaultMaxOutputTokens?: number;
  /**
   * Whether a call the provider failed (4xx, 5xx, timeout, network error) counts one
   * `llm_requests`. Its tokens are always returned. Defaults to `true`.
   */
  countFailedRequests?: boolean;
  /**
   * Counts output tokens while a stream runs and stops it (aborting the request through the
   * SDK's controller, then ending the iteration with a `QuotaExceededError`) once they pass
   * what the call reserved plus the `llm_tokens` headroom left when it was admitted.
   * Defaults to `false`.
   */
  enforceDuringStream?: boolean;
  /**
   * Prices per model (see `definePriceTable` from `@quotakit/core`). With prices, each call
   * also reserves its estimated cost in `cost_usd` and records the actual cost, when a
   * `cost_usd` rule binds the subject; the cost goes into the usage metadata either way.
   * Defaults to none (no cost).
   */
  prices?: PriceTable | Record<string, ModelPrice>;
  /**
   * How prompts are counted before a call. `'fast'` (the default): about 4 characters a
   * token, no dependency, well under a microsecond. `'exact'`: with `gpt-tokenizer` (o200k,
   * OpenAI's current models; close for others) when the application has it installed, loaded
   * lazily in the background (the fast estimate is used until it has loaded, or for good when
   * it is not installed; `await loadExactTokenizer()` at start-up to be exact from the first
   * call). A function counts a text itself. Estimates only size the reservation: what is
   * recorded is what the provider reports. Defaults to `'fast'`.
   */
  estimator?: TokenEstimator;
  /**
   * How long a call's reservation is held if it is never settled. Shortly before it would
   * expire (a tenth of it earlier, at most 5 s), a call still unsettled (a stream neither
   * read to its end nor cancelled, a promise never awaited) is committed as reserved, marked
   * `estimated` and `abandoned`, since the provider may well have answered and billed it.
   * Defaults to `600_000` ms (ten minutes, the SDKs' default request timeout).
   */
  reservationTtlMs?: number;
  /**
   * A span `quota.llm_call` per wrapped call, through `@opentelemetry/api` (free until an
   * SDK is registered). Defaults to `true`.
   */
  telemetry?: boolean;
  /**
   * Receives what fails after the provider answered, when there is no call left to fail:
   * a commit the store could not take (the answer is still returned; the hold then returns
   * by itself after `reservationTtlMs`). Defaults to a `console.warn` at most once a minute.
   */
  onError?: (error: unknown) => void;
}

/** {@link QuotaWrapperOptions} resolved once: every default applied, every value checked. */
export interface ResolvedWrapperOptions {
  readonly engine: QuotaEngine;
  /**
   * Reads the subject of one call: undefined when none is set anywhere, a promise when the
   * option's function returned one. What it gives is not checked yet (see `checkedSubject`).
   */
  readonly subject: () => unknown;
  readonly onExceeded: 'throw' | 'clamp';
  readonly minOutputTokens: number;
  readonly defaultMaxOutputTokens: number;
  readonly countFailedRequests: boolean;
  readonly enforceDuringStream: boolean;
  readonly prices: PriceTable | undefined;
  readonly countTokens: TokenCounter;
  readonly reservationTtlMs: number;
  readonly telemetry: boolean;
  readonly onError: (error: unknown) => void;
}

const WRAPPER_OPTIONS = optionKeys<QuotaWrapperOptions>({
  engine: true,
  subject: true,
  onExceeded: true,
  minOutputTokens: true,
  defaultMaxOutputTokens: true,
  countFailedRequests: true,
  enforceDuringStream: true,
  prices: true,
  estimator: true,
  reservationTtlMs: true,
  telemetry: true,
  onError: true,
});

const RESOLVED = Symbol.for('quotakit.llm-wrapper.resolved-options');

/**
 * Resolves options once (validation, defaults), so that the call path does no checking.
 * Resolving an already resolved object returns it unchanged.
 *
 * @throws QuotaConfigError naming the bad option and the reason.
 */
export function resolveWrapperOptions(
  options: QuotaWrapperOptions | ResolvedWrapperOptions,
): ResolvedWrapperOptions {
  if (typeof options !== 'object' || options === null) {
    throw new QuotaConfigError('', 'options must be an object with at least `engine`');
  }
  if ((options as { [RESOLVED]?: true })[RESOLVED]) return options as ResolvedWrapperOptions;
  const input = options as QuotaWrapperOptions;
  rejectUnknownOptions(input, WRAPPER_OPTIONS, 'withQuota / quotaMiddleware');
  const engine = input.engine;
  if (
    typeof engine !== 'object' ||
    engine === null ||
    typeof (engine as Partial<QuotaEngine>).reserve !== 'function' ||
    typeof (engine as Partial<QuotaEngine>).recordUsage !== 'function'
  ) {
    throw new QuotaConfigError('engine', 'expected a QuotaEngine (createQuotaEngine())');
  }
  const onExceeded = input.onExceeded ?? 'throw';
  if (onExceeded !== 'throw' && onExceeded !== 'clamp') {
    throw new QuotaConfigError('onExceeded', `expected 'throw' or 'clamp'`);
  }
  const resolved: ResolvedWrapperOptions & { [RESOLVED]: true } = {
    [RESOLVED]: true,
    engine,
    subject: subjectReader(input.subject),
    onExceeded,
    minOutputTokens: positiveInteger(
      input.minOutputTokens,
      'minOutputTokens',
      DEFAULT_MIN_OUTPUT_TOKENS,
    ),
    defaultMaxOutputTokens: positiveInteger(
      input.defaultMaxOutputTokens,
      'defaultMaxOutputTokens',
      DEFAULT_MAX_OUTPUT_TOKENS,
    ),
    countFailedRequests: flag(input.countFailedRequests, 'countFailedRequests', true),
    enforceDuringStream: flag(input.enforceDuringStream, 'enforceDuringStream', false),
    prices: input.prices === undefined ? undefined : definePriceTable(input.prices),
    countTokens: resolveTokenCounter(input.estimator ?? 'fast'),
    reservationTtlMs: positiveInteger(
      input.reservationTtlMs,
      'reservationTtlMs',
      DEFAULT_RESERVATION_TTL_MS,
    ),
    telemetry: flag(input.telemetry, 'telemetry', true),
    onError: errorHandler(input.onError),
  };
  return Object.freeze(resolved);
}

/** The global slot through which `@quotakit/llm-wrapper/node` provides the ambient subject. */
export const SUBJECT_SOURCE = Symbol.for('quotakit.llm-wrapper.subject-source');

type SubjectSource = () => Subject | undefined;

/** The subject set by `runWithQuotaSubject`, when the Node entry point is loaded. */
export function ambientSubject(): Subject | undefined {
  const source = (globalThis as { [SUBJECT_SOURCE]?: SubjectSource })[SUBJECT_SOURCE];
  return source === undefined ? undefined : source();
}

function subjectReader(subject: QuotaWrapperOptions['subject']): () => unknown {
  if (subject === undefined) return ambientSubject;
  if (typeof subject === 'function') {
    return () => {
      const own: unknown = subject();
      if (own === undefined) return ambientSubject();
      // The ambient subject is still the caller's after the await: AsyncLocalStorage follows
      // promise continuations.
      if (isPromiseLike(own)) {
        return Promise.resolve(own).then((read) => (read === undefined ? ambientSubject() : read));
      }
      return own;
    };
  }
  if (typeof subject === 'object' && subject !== null && !Array.isArray(subject)) {
    const fixed: Subject = { ...subject };
    return () => fixed;
  }
  throw new QuotaConfigError('subject', 'expected a subject object or a function returning one');
}

/**
 * The subject a call's reader gave, checked: a QuotaValidationError for none at all, or for
 * anything but a plain object (spread into the engine's request, a string or an array would
 * name no id, and the call would go through under global rules only).
 */
export function checkedSubject(read: unknown): Subject {
  if (read === undefined) {
    throw new QuotaValidationError(
      'No quota subject for this call: pass `subject` in the options, or make the call inside ' +
        'runWithQuotaSubject() from @quotakit/llm-wrapper/node. Use `{}` for global rules only.',
    );
  }
  if (typeof read !== 'object' || read === null || Array.isArray(read)) {
    throw new QuotaValidationError(
      `The quota subject must be an object such as { userId: 'u1' }, not ${describeValue(read)}`,
    );
  }
  return read as Subject;
}

/** Whether `value` is a promise or another thenable. */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function errorHandler(onError: unknown): (error: unknown) => void {
  if (onError === undefined) return warnAtMostOnceAMinute;
  if (typeof onError !== 'function') throw new QuotaConfigError('onError', 'expected a function');
  return onError as (error: unknown) => void;
}

let lastWarningAt = Number.NEGATIVE_INFINITY;
/** The default `onError`: a settlement that failed is worth knowing, but not per call. */
function warnAtMostOnceAMinute(error: unknown): void {
  const now = Date.now();
  if (now - lastWarningAt < 60_000) return;
  lastWarningAt = now;
  console.warn('[quotakit llm-wrapper]', error instanceof Error ? error.message : error);
}

function positiveInteger(value: unknown, path: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new QuotaConfigError(path, `expected a positive integer, got ${String(value)}`);
  }
  return value;
}

function flag(value: unknown, path: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new QuotaConfigError(path, `expected true or false, got ${String(value)}`);
  }
  return value;
}
