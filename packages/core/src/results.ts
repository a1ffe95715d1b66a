import type { QuotaPeriod } from './periods.js';
import type { QuotaAlgorithm, QuotaRuleMode, QuotaScope } from './rules.js';
import type { QuotaStatus } from './statuses.js';

/** How one rule judged a request. Listed in every result's `rules`. */
export interface RuleEvaluation {
  /** The rule's name (defaults to `<resource>-<period>`). */
  name: string;
  scope: QuotaScope;
  /** The subject id the rule counted, null for global rules. */
  subjectId: string | null;
  limit: number;
  period: QuotaPeriod;
  algorithm: QuotaAlgorithm;
  mode: QuotaRuleMode;
  source: 'default' | 'override';
  /** Usage counted by this rule; null when the store did not answer. */
  used: number | null;
  /** max(0, limit - used); null when the store did not answer. */
  remaining: number | null;
  status: QuotaStatus;
  /** Whether this rule alone admits the request (a shadow rule may say false without refusing). */
  allowed: boolean;
  /** End of the current window; null for total and per_request. */
  resetAt: Date | null;
  /** When this rule refused: milliseconds until a retry may pass it, if waiting can help. */
  retryAfterMs?: number;
}

/**
 * The answer for one resource. Top-level fields describe the binding rule: the one with the
 * least headroom (when refused, the refusing rule that frees up last).
 */
export interface QuotaCheckResult {
  allowed: boolean;
  resource: string;
  status: QuotaStatus;
  /** The amount asked for. */
  requested: number;
  /**
   * Usage under the binding rule. For a check, the current state without the request; after
   * consume or reserve, including what was taken. Null when the store did not answer.
   */
  used: number | null;
  /** The binding rule's limit; null when no rule binds the subject (unlimited). */
  limit: number | null;
  /** max(0, limit - used); null when unlimited or unknown. */
  remaining: number | null;
  period: QuotaPeriod | null;
  /** End of the binding rule's window; null for total, per_request and unlimited. */
  resetAt: Date | null;
  /** When refused: milliseconds until a retry may succeed, if waiting can help at all. */
  retryAfterMs?: number;
  scope: QuotaScope | null;
  message: string;
  /** Every rule evaluated for this resource. */
  rules: RuleEvaluation[];
}

/** A subject's standing on one resource, without a request. */
export interface QuotaStatusReport {
  resource: string;
  status: QuotaStatus;
  used: number | null;
  limit: number | null;
  remaining: number | null;
  period: QuotaPeriod | null;
  resetAt: Date | null;
  message: string;
  rules: RuleEvaluation[];
}

/** The result of an atomic operation over several resources. */
export interface QuotaDecision {
  /** True when every resource was admitted (and so all were recorded), false when none was. */
  allowed: boolean;
  results: Record<string, QuotaCheckResult>;
}
