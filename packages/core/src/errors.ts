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

// On a class itself (not inherited): `instanceof` that class also accepts any error carrying
// the brand and, unless the value is '*', this code. Set only on QuotaError and
// QuotaExceededError. A class body that named its own class would make the bundler rename it
// (`_QuotaError`), and `new.target.name` would then be that.
const BRANDED_CODE = Symbol('quotakit.branded-code');

/**
 * Base class of every error QuotaKit throws. Carries a string `code`.
 * `instanceof QuotaError` also holds for a QuotaKit error from another copy of the package or
 * re-made as an SDK's error (see {@link quotaExceededErrorAs}); {@link isQuotaError} says the
 * same. Subclasses keep the ordinary check, except {@link QuotaExceededError}, so with several
 * copies of the package loaded compare `code` rather than a subclass.
 */
export class QuotaError extends Error {
  static readonly [BRANDED_CODE]: QuotaErrorCode | '*' = '*';

  static override [Symbol.hasInstance]<T>(
    this: abstract new (
      ...args: never[]
    ) => T,
    value: unknown,
  ): value is T {
    // biome-ignore lint/complexity/noThisInStatic: subclasses inherit it; `this` is the class asked.
    return instanceOrBranded(this, value);
  }

  /** Machine-readable code of the error class. */
  readonly code: QuotaErrorCode;
  readonly [BRAND] = true;

  constructor(code: QuotaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * `instanceof` for the QuotaKit error classes: the ordinary prototype check, and for a class
 * with its own {@link BRANDED_CODE} any branded error with that code.
 */
function instanceOrBranded(asked: object, value: unknown): boolean {
  if (Function.prototype[Symbol.hasInstance].call(asked, value)) return true;
  if (!Object.hasOwn(asked, BRANDED_CODE) || !isQuotaError(value)) return false;
  const code = (asked as { [BRANDED_CODE]: QuotaErrorCode | '*' })[BRANDED_CODE];
  return code === '*' || (value as { code?: unknown }).code === code;
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
 * `instanceof QuotaExceededError` also holds for a refusal re-made as an SDK's own error
 * ({@link quotaExceededErrorAs}) and for one from another copy of @quotakit/core: both carry
 * the QuotaKit brand and the code `quota_exceeded`.
 */
export class QuotaExceededError extends QuotaError {
  // Subclasses keep the ordinary check: only this class has its own branded code.
  static override readonly [BRANDED_CODE]: QuotaErrorCode | '*' = 'quota_exceeded';

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

/** An error class that takes a message, such as an SDK's base error class. */
export type ErrorClass = new (message: string) => Error;

// One subclass per foreign error class, made on first use.
const exceededAs = new WeakMap<ErrorClass, ErrorClass>();

/**
 * `error` as an instance of `errorClass` that is still a {@link QuotaExceededError}: it has
 * the same message, name, `code`, `result`, `results` and `retryAfterMs`, and both
 * `instanceof errorClass` and `instanceof QuotaExceededError` hold. For SDK helpers that pass
 * their own errors through unchanged but wrap any other (the openai and Anthropic stream
 * helpers turn a foreign error into their base error, with the original as `cause`).
 *
 * @example
 * throw quotaExceededErrorAs(Anthropic.AnthropicError, refusal);
 */
export function quotaExceededErrorAs(
  errorClass: ErrorClass,
  error: QuotaExceededError,
): QuotaExceededError {
  let Branded = exceededAs.get(errorClass);
  if (Branded === undefined) {
    // Named as a property is, so that logs show `QuotaExceededError`.
    Branded = { QuotaExceededError: class extends errorClass {} }.QuotaExceededError;
    exceededAs.set(errorClass, Branded);
  }
  const branded = new Branded(error.message);
  Object.defineProperties(branded, {
    name: { value: error.name, writable: true, configurable: true },
    code: { value: error.code, enumerable: true },
    result: { value: error.result, enumerable: true },
    results: { value: error.results, enumerable: true },
    retryAfterMs: { value: error.retryAfterMs, enumerable: true },
    [BRAND]: { value: true, enumerable: true },
    stack: { value: error.stack, writable: true, configurable: true },
  });
  return branded as unknown as QuotaExceededError;
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
  /** What is wrong with it, without the path. */
  readonly reason: string;

  constructor(path: string, reason: string) {
    super(
      'quota_config',
      path
        ? `Invalid QuotaKit configuration at ${path}: ${reason}`
        : `Invalid QuotaKit configuration: ${reason}`,
    );
    this.path = path;
    this.reason = reason;
  }
}

/** The store failed or did not answer in time. */
export class QuotaStoreError extends QuotaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('quota_store', message, options);
  }
}

/**
 * For store implementers: a read or consume that named an `overridesVersion` other than the
 * store's current one (another engine set or removed a run-time quota since the caller listed
 * them) was not applied. The engine then reads the overrides again and repeats the operation;
 * it never reaches an application. A QuotaStoreError, so that code which does not know it
 * treats it as a failed call.
 */
export class StaleOverridesError extends QuotaStoreError {
  /**
   * Marks the error for {@link isStaleOverridesError} across copies of the package: a
   * property, which minifiers keep, where a bundle may rename the class.
   */
  readonly staleOverrides = true;

  constructor(message = 'The run-time quotas changed since they were read: nothing was applied') {
    super(message);
  }
}

/**
 * Whether `error` is a {@link StaleOverridesError}, also one from another copy of the package
 * (a store built against its own dependency on @quotakit/core).
 */
export function isStaleOverridesError(error: unknown): boolean {
  return (
    error instanceof StaleOverridesError ||
    (isQuotaError(error) && (error as { staleOverrides?: unknown }).staleOverrides === true)
  );
}
