import { resourceKind } from './resource-types.js';
import type { QuotaCheckResult } from './results.js';

/** The JSON body of a refused HTTP request. */
export interface QuotaRefusalBody {
  /**
   * `quota_exceeded` (429): a limit refused the request;
   * `quota_unavailable` (503): the quota store did not answer and the failure mode is closed;
   * `invalid_quota_request` (400): the request asked for an amount that is not a number.
   */
  error: 'quota_exceeded' | 'quota_unavailable' | 'invalid_quota_request';
  /** The binding result's message, e.g. `Quota exceeded for llm_tokens. Limit: 1000000, cannot proceed.` */
  message: string;
  /** The binding result: the resource and rule that refused (absent for a 400). */
  quota?: QuotaCheckResult;
}

/** An HTTP refusal, as both adapters send it unless `onExceeded` answers instead. */
export interface QuotaRefusal {
  /** 429 for a limit, 503 for a store that did not answer (failure mode closed), 400 for bad input. */
  status: 400 | 429 | 503;
  body: QuotaRefusalBody;
  /**
   * Milliseconds a client should wait before it tries again, sent as `Retry-After`: set on
   * every 429 (see {@link quotaRefusal} for what it is when waiting cannot lift the refusal),
   * undefined for a 400 or a 503.
   */
  retryAfterMs: number | undefined;
  /** Every result of the refused request, by resource (empty for a 400). */
  results: Readonly<Record<string, QuotaCheckResult>>;
}

/**
 * How long a client should wait when waiting cannot lift a refusal: a gauge at its level (a
 * release can free it at any moment) is worth asking again soon...
 */
const GAUGE_RETRY_MS = 1_000;
/**
 * ...while limit 0, an amount above the limit itself, a `per_request` cap or a spent `total`
 * budget never frees up by waiting, not even when the window ends (a client that honours
 * `Retry-After` would sleep until then, up to a month, to be refused again): not too often.
 */
const NEVER_RETRY_MS = 60_000;

/**
 * The refusal of a request the engine (or the middleware's `failureMode`) did not admit.
 * The binding result is the refusing resource that frees up last. When no limit refused and
 * the store did not answer, it is a 503.
 *
 * A 429 always says when to retry (`Retry-After`): the time until every refusing rule admits
 * the request again, when waiting can do that; when it cannot (limit 0, an amount above the
 * limit itself, a `per_request` cap, a spent `total` budget), 1 second for a gauge
 * (`concurrent_tasks`, `memory_usage`, `storage_space`: a release can free it at any moment)
 * and 60 seconds otherwise.
 */
export function quotaRefusal(results: Readonly<Record<string, QuotaCheckResult>>): QuotaRefusal {
  let binding: QuotaCheckResult | undefined;
  let unknown: QuotaCheckResult | undefined;
  let retryAfterMs = 0;
  for (const resource in results) {
    const result = results[resource]!;
    if (result.status === 'unknown') {
      unknown ??= result;
      continue;
    }
    if (result.allowed) continue;
    const wait = result.retryAfterMs;
    retryAfterMs = Math.max(retryAfterMs, wait ?? waitWhenWaitingCannotHelp(result));
    if (
      binding === undefined ||
      (binding.retryAfterMs !== undefined && (wait ?? Infinity) > binding.retryAfterMs)
    ) {
      binding = result;
    }
  }
  if (binding === undefined) {
    const quota = unknown ?? firstOf(results);
    return {
      status: 503,
      body: { error: 'quota_unavailable', message: quota?.message ?? 'Quota unavailable', quota },
      retryAfterMs: undefined,
      results,
    };
  }
  return {
    status: 429,
    body: { error: 'quota_exceeded', message: binding.message, quota: binding },
    retryAfterMs,
    results,
  };
}

/** The wait to advertise for a refused result that carries no `retryAfterMs`. */
function waitWhenWaitingCannotHelp(result: QuotaCheckResult): number {
  return resourceKind(result.resource) === 'gauge' ? GAUGE_RETRY_MS : NEVER_RETRY_MS;
}

/** A 400 for a request whose amounts are not numbers (nothing was counted). */
export function invalidQuotaRequest(message: string): QuotaRefusal {
  return {
    status: 400,
    body: { error: 'invalid_quota_request', message },
    retryAfterMs: undefined,
    results: {},
  };
}

function firstOf(
  results: Readonly<Record<string, QuotaCheckResult>>,
): QuotaCheckResult | undefined {
  for (const resource in results) return results[resource];
  return undefined;
}
