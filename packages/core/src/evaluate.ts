import { checkResult } from './check-result.js';
import type { ResourcePlan, RulePlan } from './operation-plan.js';
import type { QuotaCheckResult, RuleEvaluation } from './results.js';
import { fitsWithin, statusOf, statusSeverity } from './statuses.js';

/** How the store's values relate to the operation being reported. */
export interface EvaluationContext {
  /** Counter values before the operation, by plan counter index; null when the store failed. */
  readonly values: readonly number[] | null;
  readonly now: number;
  /** Whether the operation's amounts were added (consume/reserve admitted, record). */
  readonly applied: boolean;
  /** `allowed` for a decision the store could not make (failureMode). */
  readonly allowedWhenUnknown: boolean;
}

/**
 * Judges one resource of an operation: one {@link RuleEvaluation} per rule, and the
 * top-level fields from the binding rule.
 */
export function evaluateResource(plan: ResourcePlan, context: EvaluationContext): QuotaCheckResult {
  const { resource, amount } = plan;
  const count = plan.rules.length;
  if (count === 0) return checkResult(true, resource, amount, undefined, []);
  const rules: RuleEvaluation[] = new Array(count);
  for (let i = 0; i < count; i++) rules[i] = evaluateRule(plan.rules[i]!, amount, context);
  let binding = count === 1 ? rules[0]! : pickBinding(rules);
  let allowed = true;
  let retryAfterMs: number | undefined;
  let retryHelps = true;
  for (let i = 0; i < count; i++) {
    const rule = rules[i]!;
    if (rule.allowed || rule.mode !== 'enforce') continue;
    allowed = false;
    if (rule.retryAfterMs === undefined) retryHelps = false;
    else if (retryAfterMs === undefined || rule.retryAfterMs > retryAfterMs) {
      retryAfterMs = rule.retryAfterMs;
    }
  }
  if (context.values === null) {
    // The store did not answer. A per_request cap needs no counter, so what it refuses stays
    // refused (and binds); otherwise an enforced rule that needed the store binds, and
    // failureMode decides, so that the status says `unknown` rather than a cap's status.
    const cap = refusingCap(plan, rules);
    if (cap !== undefined) {
      binding = cap;
      allowed = false;
    } else {
      const unknown = rules.find((rule) => rule.mode === 'enforce' && rule.status === 'unknown');
      if (unknown !== undefined) {
        binding = unknown;
        allowed = context.allowedWhenUnknown;
      }
    }
  }
  const result = checkResult(allowed, resource, amount, binding, rules);
  if (!allowed && retryHelps && retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
  return result;
}

/** An enforced per_request rule that refuses the amount; undefined when none does. */
function refusingCap(
  plan: ResourcePlan,
  rules: readonly RuleEvaluation[],
): RuleEvaluation | undefined {
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (plan.rules[i]!.counter === -1 && rule.mode === 'enforce' && !rule.allowed) return rule;
  }
  return undefined;
}

function evaluateRule(plan: RulePlan, amount: number, context: EvaluationContext): RuleEvaluation {
  const { rule, window } = plan;
  const evaluation: RuleEvaluation = {
    name: rule.name,
    scope: rule.scope,
    subjectId: plan.subjectId,
    limit: rule.limit,
    period: rule.period,
    algorithm: rule.algorithm,
    mode: rule.mode,
    source: rule.source,
    used: null,
    remaining: null,
    status: 'unknown',
    allowed: context.allowedWhenUnknown,
    resetAt: window === null ? null : new Date(window.end),
  };
  const { values } = context;
  if (plan.counter === -1) {
    // per_request: caps a single request and never accumulates.
    evaluation.used = 0;
    evaluation.remaining = rule.limit;
    evaluation.status = statusOf(amount, rule.limit, rule.warningThreshold, rule.criticalThreshold);
    evaluation.allowed = fitsWithin(amount, rule.limit);
    return evaluation;
  }
  if (values === null) return evaluation;
  const current = values[plan.counter]!;
  const previous = plan.previous === -1 ? 0 : values[plan.previous]!;
  const before = roundUsage(current + previous * plan.weight);
  const total = before + amount;
  const fits = fitsWithin(total, rule.limit);
  // After a write, usage includes the amount (a gauge release never goes below 0); a read
  // reports the state as it is and judges the request on top of it.
  const used = context.applied ? Math.max(0, total) : before;
  evaluation.used = used;
  evaluation.remaining = Math.max(0, rule.limit - used);
  evaluation.status = statusOf(
    context.applied ? used : total,
    rule.limit,
    rule.warningThreshold,
    rule.criticalThreshold,
  );
  evaluation.allowed = fits;
  if (!fits) {
    const retryAfterMs = retryAfter(plan, current, previous, amount, context.now);
    if (retryAfterMs !== undefined) evaluation.retryAfterMs = retryAfterMs;
  }
  return evaluation;
}

/**
 * Milliseconds until `amount` would fit under the rule, assuming no other usage; undefined
 * when waiting cannot help (the amount exceeds the limit itself, or a total/gauge limit that
 * only a release frees).
 */
function retryAfter(
  plan: RulePlan,
  current: number,
  previous: number,
  amount: number,
  now: number,
): number | undefined {
  const { rule, window } = plan;
  if (window === null || !fitsWithin(amount, rule.limit)) return undefined;
  if (rule.algorithm === 'fixed') return window.end - now;
  // Sliding estimate: current + previous * (end - t) / length. Find the first t where the
  // estimate leaves room for `amount`, in this window or, failing that, the next one (where
  // today's count becomes the weighted previous window).
  const length = window.end - window.start;
  const room = rule.limit - amount;
  let at: number;
  if (fitsWithin(current, room) && previous > 0) {
    at = window.end - (length * (room - current)) / previous;
  } else {
    at = window.end + (current > 0 ? length * (1 - room / current) : 0);
  }
  return Math.max(1, Math.ceil(at - now));
}

/**
 * The binding rule: when something refuses, the enforced refusal that frees up last;
 * otherwise the rule with the least headroom, the amount left (enforced rules before shadow
 * ones), whose `remaining` is then what the caller can still spend; among equal amounts, the
 * more severe status. So 10 left of 40 per minute binds before 500 left of 5000 per day (the
 * minute runs out first), even though the day is approaching its limit and the minute not.
 */
function pickBinding(rules: readonly RuleEvaluation[]): RuleEvaluation {
  let best = rules[0]!;
  for (let i = 1; i < rules.length; i++) {
    const candidate = rules[i]!;
    if (outranks(candidate, best)) best = candidate;
  }
  return best;
}

function outranks(a: RuleEvaluation, b: RuleEvaluation): boolean {
  const aRefuses = a.mode === 'enforce' && !a.allowed;
  const bRefuses = b.mode === 'enforce' && !b.allowed;
  if (aRefuses !== bRefuses) return aRefuses;
  if (aRefuses) return (a.retryAfterMs ?? Infinity) > (b.retryAfterMs ?? Infinity);
  if ((a.mode === 'enforce') !== (b.mode === 'enforce')) return a.mode === 'enforce';
  const left = (a.remaining ?? Infinity) - (b.remaining ?? Infinity);
  if (left !== 0 && !Number.isNaN(left)) return left < 0;
  return statusSeverity(a.status) > statusSeverity(b.status);
}

// Sliding estimates are products of fractions, and sums of fractional amounts carry float
// noise (0.1 + 0.2 = 0.30000000000000004): keep 12 significant digits, which drops the noise
// but keeps small amounts such as a cost of 0.0003525 USD exact.
function roundUsage(value: number): number {
  return Number.isInteger(value) ? value : Number(value.toPrecision(12));
}
