import type { QuotaCheckResult, RuleEvaluation } from './results.js';
import { quotaMessage } from './statuses.js';

/**
 * Builds a {@link QuotaCheckResult}: a plain object (its fields are own, enumerable data, so
 * results spread, compare and serialise like any object), with the binding rule's figures,
 * or the unlimited answer when no rule binds the subject.
 */
export function checkResult(
  allowed: boolean,
  resource: string,
  requested: number,
  binding: RuleEvaluation | undefined,
  rules: RuleEvaluation[],
): QuotaCheckResult {
  if (binding === undefined) {
    return {
      allowed,
      resource,
      status: 'within_limit',
      requested,
      used: 0,
      limit: null,
      remaining: null,
      period: null,
      resetAt: null,
      scope: null,
      message: quotaMessage('within_limit', resource, null, null),
      rules,
    };
  }
  return {
    allowed,
    resource,
    status: binding.status,
    requested,
    used: binding.used,
    limit: binding.limit,
    remaining: binding.remaining,
    period: binding.period,
    resetAt: binding.resetAt,
    scope: binding.scope,
    message: quotaMessage(binding.status, resource, binding.limit, binding.remaining),
    rules,
  };
}
