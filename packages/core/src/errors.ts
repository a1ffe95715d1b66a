import type { QuotaCheckResult } from './results.js';

/**
 * Machine-readable error codes, one per error class.
 */
export type QuotaErrorCode =
  | 'quota_exceeded'
  | 'quota_validation'
  | 'quota_config'
  | 'quota_store'
  | 'task_timeout';

// A brand shared through the global symbol registry, so that `isQuotaError` recognises errors
// thrown by a second copy of @quotakit/core in the same process (duplicate installs).
const BRAND = Symbol.for('quotakit.error');

/**
 * Base class of every error QuotaKit throws. Carries a string `code`; use
 * {@link isQuotaError} rather than `instanceof` when several copies of the package may be
 * loaded.
 */
export class QuotaError extends Error {
  /** Machine-readable code of the error class. */
  readonly code: QuotaErrorCode;
  readonly [BRAND] = true;

  constructor(code: QuotaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Whether `error` is a QuotaKit error, from this or any other copy of the package. */
export function isQuotaError(error: unknown): error is QuotaError {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as Record<symbol, unknown>)[BRAND] === true
  );
}

/**
 * A request was refused. Thrown where a caller awaits an action that cannot proceed (the LLM
 * wrapper, `runTask`); inside the engine a refusal is a result with `allowed: false`.
 */
export class QuotaExceededError extends QuotaError {
  /** The binding result: the resource and rule that refused. */
  readonly result: QuotaCheckResult;
  /** Every result of the refused request, by resource. */
  readonly results: Readonly<Record<string, QuotaCheckResult>>;
  /** Milliseconds until a retry may succeed, when retrying can help at all. */
  readonly retryAfterMs: number | undefined;

  constructor(result: QuotaCheckResult, results?: Readonly<Record<string, QuotaCheckResult>>) {
    super('quota_exceeded', result.message);
    this.result = result;
    this.results = results ?? { [result.resource]: result };
    this.retryAfterMs = result.retryAfterMs;
  }
}

/**
 * Bad input to an engine call: a non-numeric, negative, NaN or infinite amount, an unknown
 * resource without a rule, an empty or over-long id. Nothing was changed.
 */
export class QuotaValidationError extends QuotaError {
  constructor(message: string) {
    super('quota_validation', message);
  }
}

/**
 * Bad configuration, thrown at construction. `path` names the offending option
 * (for example `defaults.llm_tokens.0.limit`).
 */
export class QuotaConfigError extends QuotaError {
  /** Dotted path of the bad option; empty for the options object itself. */
  readonly path: string;

  constructor(path: string, reason: string) {
    super(
      'quota_config',
      path
        ? `Invalid QuotaKit configuration at ${path}: ${reason}`
        : `Invalid QuotaKit configuration: ${reason}`,
    );
    this.path = path;
  }
}

/** The store failed or did not answer in time. */
export class QuotaStoreError extends QuotaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('quota_store', message, options);
  }
}
