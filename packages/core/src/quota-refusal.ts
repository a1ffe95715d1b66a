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
  /** Milliseconds until a retry may pass, when waiting can help at all (`Retry-After`). */
  retryAfterMs: number | undefined;
  /** Every result of the refused request, by resource (empty for a 400). */
  results: Readonly<Record<string, QuotaCheckResult>>;
}

/**
 * The refusal of a request the engine (or the middleware's `failureMode`) did not admit.
 * The binding result is the refusing resource that frees up last; a refusal that waiting
 * cannot lift (a `per_request` cap, a `total` limit) has no `retryAfterMs`, and then no
 * `Retry-After` goes out. When no limit refused and the store did not answer, it is a 503.
 */
export function quotaRefusal(results: Readonly<Record<string, QuotaCheckResult>>): QuotaRefusal {
  let binding: QuotaCheckResult | undefined;
  let unknown: QuotaCheckResult | undefined;
  let retryAfterMs: number | undefined;
  let retryHelps = true;
  for (const resource in results) {
    const result = results[resource]!;
    if (result.status === 'unknown') {
      unknown ??= result;
      continue;
    }
    if (result.allowed) continue;
    const wait = result.retryAfterMs;
    if (wait === undefined) retryHelps = false;
    else if (retryAfterMs === undefined || wait > retryAfterMs) retryAfterMs = wait;
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
    retryAfterMs: retryHelps ? retryAfterMs : undefined,
    results,
  };
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
