import type { QuotaPeriod } from './periods.js';
import type { QuotaCheckResult, RuleEvaluation } from './results.js';
import { type QuotaStatus, statusSeverity } from './statuses.js';

/**
 * Where quota headers are written: a Web `Headers`, an Express response, or anything else
 * with these two methods. `append` adds a list item beside those already there (so two
 * middlewares on one route do not clobber each other); `set` replaces.
 */
export interface HeaderTarget {
  set(name: string, value: string): unknown;
  append(name: string, value: string): unknown;
}

/**
 * Which rate-limit headers an HTTP adapter sends.
 * - `'draft-8'`: `RateLimit-Policy` and `RateLimit` of the IETF RateLimit header fields draft
 *   (draft-ietf-httpapi-ratelimit-headers-08), one list item per rule;
 * - `'legacy'`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` of the
 *   binding rule;
 * - `false`: none, and no `Quota-Status` either (`Retry-After` still goes out on a refusal).
 */
export type RateLimitHeaderStyle = 'draft-8' | 'legacy' | false;

const FIXED_WINDOW_SECONDS: Partial<Record<QuotaPeriod, number>> = {
  per_minute: 60,
  per_hour: 3_600,
  per_day: 86_400,
  per_week: 604_800,
};

/**
 * Length in seconds of a rule's window, for the `w` parameter; undefined for `per_request`
 * and `total`, which have none. A month counts the days of the month that ends at `resetAt`.
 */
export function windowSeconds(period: QuotaPeriod, resetAt: Date | null): number | undefined {
  const fixed = FIXED_WINDOW_SECONDS[period];
  if (fixed !== undefined || period !== 'per_month' || resetAt === null) return fixed;
  // A day before the end is inside the month in every time zone (offsets stay under 15 h).
  const inside = new Date(resetAt.getTime() - 86_400_000);
  const days = new Date(
    Date.UTC(inside.getUTCFullYear(), inside.getUTCMonth() + 1, 0),
  ).getUTCDate();
  return days * 86_400;
}

/** Whole seconds from `nowMs` until `resetAt`, never negative. */
export function secondsUntil(resetAt: Date, nowMs: number): number {
  return Math.max(0, Math.ceil((resetAt.getTime() - nowMs) / 1000));
}

/**
 * Writes the rate-limit headers of a decision, in `style`, and a `Quota-Status` header for
 * every resource whose status is not `within_limit`:
 *
 * - draft-8 (the form express-rate-limit emits, so clients written for it work), one item per
 *   enforced rule of every resource, appended:
 *   `RateLimit-Policy: "llm_tokens-per_day"; q=1000000; w=86400` and
 *   `RateLimit: "llm_tokens-per_day"; r=150000; t=3600`. Shadow rules never refuse and are not
 *   advertised. `t` is the seconds until the window ends, or, for a rule that refuses, until
 *   it would admit the request again (as `Retry-After`; later than the window's end for a
 *   sliding rule). `w` and `t` are left out for `per_request` and `total` rules (no window);
 *   a rule the store could not read has its policy item but no `RateLimit` item. `q` and `r`
 *   are Integers in the draft, so fractional limits are rounded down. Each item names one
 *   policy: a rule of another scope than `user` with its default name gets its scope
 *   appended, `"llm_tokens-per_day-tenant"` (the rules of every scope share the default name),
 *   and a name already in the response a number, `"llm_tokens-per_minute-2"`.
 * - legacy, of the binding rule of the most constrained resource, replaced:
 *   `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch seconds, as
 *   express-rate-limit sends it).
 * - `Quota-Status` (QuotaKit's own, a Structured Fields list, appended): one item per resource
 *   that needs attention, with the most severe status of its enforced rules (the binding rule,
 *   the one with the least left, need not be the nearest its limit), `<status>;
 *   resource="<name>"`, e.g.
 *   `Quota-Status: approaching_limit; resource="llm_tokens", unknown; resource="llm_requests"`.
 *   Statuses are the engine's: approaching_limit, at_limit, exceeded, unknown.
 *
 * @param nowMs - the current time by the engine's clock, for `t`.
 * @example
 * const headers = new Headers();
 * writeQuotaHeaders(headers, decision.results, 'draft-8', Date.now());
 */
export function writeQuotaHeaders(
  target: HeaderTarget,
  results: Readonly<Record<string, QuotaCheckResult>>,
  style: RateLimitHeaderStyle,
  nowMs: number,
): void {
  let policy = '';
  let limits = '';
  let statuses = '';
  let binding: QuotaCheckResult | undefined;
  // Policy names of this response: each must name one policy (draft-08). The first needs no
  // list; a list is made only for a second.
  let firstName: string | undefined;
  let names: string[] | undefined;
  for (const resource in results) {
    const result = results[resource]!;
    const status = worstStatus(result);
    if (status !== 'within_limit') {
      statuses += `${statuses === '' ? '' : ', '}${status}; resource="${resource}"`;
    }
    if (style === 'legacy') {
      if (result.limit !== null && (binding === undefined || tighter(result, binding))) {
        binding = result;
      }
      continue;
    }
    if (style !== 'draft-8') continue;
    const rules = result.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      if (rule.mode !== 'enforce') continue;
      let name = rule.scope === 'user' ? rule.name : scopedName(rule, resource);
      if (firstName === undefined) firstName = name;
      else {
        // A second enforced rule: only now is there anything to compare names with.
        names ??= [firstName];
        if (names.includes(name)) name = numberedName(name, names);
        names.push(name);
      }
      const item = policyItem(rule, name);
      policy = policy === '' ? item.text : `${policy}, ${item.text}`;
      if (rule.remaining === null) continue;
      limits += `${limits === '' ? '' : ', '}${item.quotedName}; r=${Math.floor(rule.remaining)}`;
      // A refusing rule resets, for this request, when it would admit it again: for a sliding
      // window that is later than the window's end, and `t` must agree with `Retry-After`.
      if (!rule.allowed && rule.retryAfterMs !== undefined) {
        limits += `; t=${retryAfterSeconds(rule.retryAfterMs)}`;
      } else if (rule.resetAt !== null) {
        limits += `; t=${secondsUntil(rule.resetAt, nowMs)}`;
      }
    }
  }
  if (policy !== '') target.append('RateLimit-Policy', policy);
  if (limits !== '') target.append('RateLimit', limits);
  if (binding !== undefined) writeLegacyHeaders(target, binding);
  if (statuses !== '') target.append('Quota-Status', statuses);
}

/**
 * The most severe status of a result's enforced rules: the binding rule is the one with the
 * least left, which need not be the one nearest its limit (10 of 40 per minute left binds
 * while the day is approaching its limit), and the header must still warn.
 */
function worstStatus(result: QuotaCheckResult): QuotaStatus {
  let worst = result.status;
  const rules = result.rules;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (rule.mode === 'enforce' && statusSeverity(rule.status) > statusSeverity(worst)) {
      worst = rule.status;
    }
  }
  return worst;
}

/** A rule's `RateLimit-Policy` item, and its quoted name for the `RateLimit` item. */
interface PolicyItem {
  readonly limit: number;
  readonly windowSeconds: number | undefined;
  readonly quotedName: string;
  readonly text: string;
}

/** Most policy items remembered; past it the cache starts over (rule names are few). */
const MAX_POLICY_ITEMS = 1_000;
const policyItems = new Map<string, PolicyItem>();

/**
 * The policy item of a rule, `"<name>"; q=<limit>; w=<window seconds>`. It changes only with
 * the rule's limit or window length, so it is built once and reused: every allowed response
 * carries it, and a string built fresh each time costs more to format and for the runtime to
 * validate than the lookup.
 */
function policyItem(rule: RuleEvaluation, name: string): PolicyItem {
  const w = windowSeconds(rule.period, rule.resetAt);
  const known = policyItems.get(name);
  if (known !== undefined && known.limit === rule.limit && known.windowSeconds === w) return known;
  if (policyItems.size >= MAX_POLICY_ITEMS) policyItems.clear();
  const quotedName = `"${name}"`;
  let text = `${quotedName}; q=${Math.floor(rule.limit)}`;
  if (w !== undefined) text += `; w=${w}`;
  const item: PolicyItem = { limit: rule.limit, windowSeconds: w, quotedName, text };
  policyItems.set(name, item);
  return item;
}

/**
 * The policy name of a rule of another scope than `user`: its default name,
 * `<resource>-<period>`, is shared by the rules of every scope, so it gets its scope appended
 * (`"llm_tokens-per_day-tenant"`), whichever rules bind the subject; a name the user chose is
 * kept.
 */
function scopedName(rule: RuleEvaluation, resource: string): string {
  const { name, period } = rule;
  const isDefault =
    name.length === resource.length + 1 + period.length &&
    name.startsWith(resource) &&
    name.endsWith(period) &&
    name.charCodeAt(resource.length) === 45; // '-'
  return isDefault ? `${name}-${rule.scope}` : name;
}

/** `name` with the first number from 2 on that makes it unlike every name in `taken`. */
function numberedName(name: string, taken: readonly string[]): string {
  for (let n = 2; ; n++) {
    const numbered = `${name}-${n}`;
    if (!taken.includes(numbered)) return numbered;
  }
}

/**
 * Writes `Retry-After` in delta-seconds (RFC 9110, section 10.2.3), rounded up so that a
 * client waiting that long finds the window reset.
 */
export function writeRetryAfter(target: HeaderTarget, retryAfterMs: number): void {
  target.set('Retry-After', String(retryAfterSeconds(retryAfterMs)));
}

function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}

function writeLegacyHeaders(target: HeaderTarget, result: QuotaCheckResult): void {
  target.set('X-RateLimit-Limit', String(Math.floor(result.limit!)));
  if (result.remaining !== null) {
    target.set('X-RateLimit-Remaining', String(Math.floor(result.remaining)));
  }
  if (result.resetAt !== null) {
    target.set('X-RateLimit-Reset', String(Math.ceil(result.resetAt.getTime() / 1000)));
  }
}

/** Whether `a` leaves less room than `b`: a worse status, else less headroom for its limit. */
function tighter(a: QuotaCheckResult, b: QuotaCheckResult): boolean {
  const severity = statusSeverity(a.status) - statusSeverity(b.status);
  if (severity !== 0) return severity > 0;
  return headroom(a) < headroom(b);
}

function headroom(result: QuotaCheckResult): number {
  if (result.remaining === null || result.limit === null) return Number.POSITIVE_INFINITY;
  return result.limit === 0 ? 0 : result.remaining / result.limit;
}
