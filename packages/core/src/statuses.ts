/**
 * Where a subject stands against a limit. String values are part of the API.
 *
 * With r = used / limit (for a check, (used + requested) / limit):
 * - `exceeded`: the request would take usage past the limit (or usage is already past it);
 * - `at_limit`: r >= criticalThreshold (default 0.95);
 * - `approaching_limit`: r >= warningThreshold (default 0.8);
 * - `within_limit`: below that;
 * - `unknown`: the store could not answer; `allowed` then follows the engine's `failureMode`.
 */
export const QuotaStatus = {
  WITHIN_LIMIT: 'within_limit',
  APPROACHING_LIMIT: 'approaching_limit',
  AT_LIMIT: 'at_limit',
  EXCEEDED: 'exceeded',
  UNKNOWN: 'unknown',
} as const;

/** One of the five quota statuses. */
export type QuotaStatus = (typeof QuotaStatus)[keyof typeof QuotaStatus];

/** All five statuses, from the most relaxed to the most severe, then unknown. */
export const QUOTA_STATUSES: readonly QuotaStatus[] = Object.freeze(Object.values(QuotaStatus));

/** Default ratio of the limit at which a subject is `approaching_limit`. */
export const DEFAULT_WARNING_THRESHOLD = 0.8;
/** Default ratio of the limit at which a subject is `at_limit`. */
export const DEFAULT_CRITICAL_THRESHOLD = 0.95;

// Amounts may be fractional (cost_usd, sliding estimates); a tolerance keeps 0.1 + 0.2 within a
// limit of 0.3 instead of refusing on a rounding error.
const EPSILON = 1e-9;

/** Whether `total` stays within `limit`, allowing for floating-point rounding. */
export function fitsWithin(total: number, limit: number): boolean {
  return total <= limit + EPSILON * Math.max(limit, 1);
}

/**
 * The status of a usage level `total` (used + requested) against `limit`.
 * A limit of 0 blocks the resource: nothing more fits, so it is `at_limit` at rest and
 * `exceeded` for any positive request.
 */
export function statusOf(
  total: number,
  limit: number,
  warningThreshold: number,
  criticalThreshold: number,
): QuotaStatus {
  if (!fitsWithin(total, limit)) return 'exceeded';
  if (limit === 0) return 'at_limit';
  const ratio = total / limit;
  if (ratio >= criticalThreshold) return 'at_limit';
  if (ratio >= warningThreshold) return 'approaching_limit';
  return 'within_limit';
}

/** How severe a status is, for picking the worst of several (unknown ranks lowest). */
export function statusSeverity(status: QuotaStatus): number {
  switch (status) {
    case 'exceeded':
      return 4;
    case 'at_limit':
      return 3;
    case 'approaching_limit':
      return 2;
    case 'within_limit':
      return 1;
    default:
      return 0;
  }
}

/** An integer in V8's small-integer range: turned into text fast, with nothing to remember. */
function isSmallInteger(amount: number): boolean {
  return amount <= 0x7fffffff && amount >= -0x80000000 && Number.isInteger(amount);
}

// The last amount formatted the slow way, and its text: messages repeat the same limit on
// every call, and a large limit (1e12 tokens) costs far more to format than to compare.
let lastAmount = Number.NaN;
let lastText = '';

/**
 * Formats an amount for a message in plain decimal notation, never with an exponent (the
 * design's messages show `Remaining: 900000/1000000`): integers as they are, whatever their
 * size; other numbers with every digit of their whole part and 12 significant digits in all
 * (at least 6 decimals), which drops float noise (0.1 + 0.2 is 0.3) but keeps small amounts
 * such as a cost of 0.0000525 USD or a limit of 1e-7.
 */
export function formatAmount(amount: number): string {
  if (isSmallInteger(amount)) return String(amount);
  if (amount === lastAmount) return lastText;
  let text: string;
  if (!Number.isFinite(amount)) {
    text = String(amount);
  } else if (!Number.isInteger(amount)) {
    text = fractionText(amount);
  } else if (amount > 0 && amount <= Number.MAX_SAFE_INTEGER) {
    // Larger integers are slow to turn into text directly; two small halves give the same
    // digits in about half the time.
    const high = Math.floor(amount / 1e9);
    text = String(high) + String(amount - high * 1e9).padStart(9, '0');
  } else {
    // From 1e21 on JavaScript writes an exponent; BigInt gives every digit of the double.
    text = BigInt(amount).toString();
  }
  lastAmount = amount;
  lastText = text;
  return text;
}

/**
 * A non-integer in plain decimals: every digit of its whole part, and its fraction to 12
 * significant digits in all, at least 6 decimals (`1234567890123.45`, `12.3456789`, `0.3` for
 * 0.1 + 0.2, `0.0000001` for 1e-7).
 */
function fractionText(amount: number): string {
  const magnitude = Math.floor(Math.log10(Math.abs(amount)));
  // At most 100 decimals (toFixed's range).
  const decimals = Math.min(100, Math.max(6, 11 - magnitude));
  const rounded = Number(amount.toFixed(decimals));
  // The shortest text of the rounded double, unless JavaScript would write an exponent
  // (below 1e-6): then its digits spelt out.
  const text = String(rounded);
  return text.includes('e') ? rounded.toFixed(decimals).replace(/\.?0+$/, '') : text;
}

/** Most limits whose text is remembered; past it the memory starts over (limits are few). */
const MAX_LIMIT_TEXTS = 1_000;
const limitTexts = new Map<number, string>();

/**
 * {@link formatAmount} of a rule's limit, remembered: every message repeats the limits of the
 * few rules there are, while the remaining amounts beside them change with every call (and
 * would push a limit out of formatAmount's single remembered value).
 */
function formatLimit(limit: number): string {
  if (isSmallInteger(limit)) return String(limit);
  let text = limitTexts.get(limit);
  if (text === undefined) {
    if (limitTexts.size >= MAX_LIMIT_TEXTS) limitTexts.clear();
    text = formatAmount(limit);
    limitTexts.set(limit, text);
  }
  return text;
}

/**
 * The human-readable message of a decision, exactly as the design fixes it, e.g.
 * `Quota exceeded for llm_tokens. Limit: 1000000, cannot proceed.` or
 * `Quota OK for llm_tokens. Remaining: 900000/1000000`.
 */
export function quotaMessage(
  status: QuotaStatus,
  resource: string,
  limit: number | null,
  remaining: number | null,
): string {
  if (status === 'unknown') {
    return `Quota status unknown for ${resource}: the quota store did not answer.`;
  }
  if (limit === null) return `Quota OK for ${resource}. Remaining: unlimited`;
  if (status === 'exceeded') {
    return `Quota exceeded for ${resource}. Limit: ${formatLimit(limit)}, cannot proceed.`;
  }
  const tail = `${resource}. Remaining: ${formatAmount(remaining ?? 0)}/${formatLimit(limit)}`;
  if (status === 'at_limit') return `Quota at limit for ${tail}`;
  if (status === 'approaching_limit') return `Quota approaching limit for ${tail}`;
  return `Quota OK for ${tail}`;
}
