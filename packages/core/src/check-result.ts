import type { QuotaPeriod } from './periods.js';
import type { QuotaCheckResult, RuleEvaluation } from './results.js';
import type { QuotaScope } from './rules.js';
import { type QuotaStatus, quotaMessage } from './statuses.js';

/**
 * The engine's {@link QuotaCheckResult}. `message` is built on first read (formatting large
 * numbers costs more than the rest of an in-memory decision) and is included by
 * `JSON.stringify` through `toJSON`, so HTTP bodies and logs carry it as any other field.
 */
export class CheckResult implements QuotaCheckResult {
  allowed: boolean;
  readonly resource: string;
  status: QuotaStatus;
  readonly requested: number;
  used: number | null;
  limit: number | null;
  remaining: number | null;
  period: QuotaPeriod | null;
  resetAt: Date | null;
  retryAfterMs?: number;
  scope: QuotaScope | null;
  rules: RuleEvaluation[];
  #message: string | undefined;

  constructor(
    allowed: boolean,
    resource: string,
    requested: number,
    binding: RuleEvaluation | undefined,
    rules: RuleEvaluation[],
  ) {
    this.allowed = allowed;
    this.resource = resource;
    this.requested = requested;
    this.rules = rules;
    if (binding === undefined) {
      // No rule binds the subject: unlimited.
      this.status = 'within_limit';
      this.used = 0;
      this.limit = null;
      this.remaining = null;
      this.period = null;
      this.resetAt = null;
      this.scope = null;
    } else {
      this.status = binding.status;
      this.used = binding.used;
      this.limit = binding.limit;
      this.remaining = binding.remaining;
      this.period = binding.period;
      this.resetAt = binding.resetAt;
      this.scope = binding.scope;
    }
  }

  /** The decision in words, exactly as the design fixes it. */
  get message(): string {
    this.#message ??= quotaMessage(this.status, this.resource, this.limit, this.remaining);
    return this.#message;
  }

  /** A plain object with every field, `message` included. */
  toJSON(): QuotaCheckResult {
    const json: QuotaCheckResult = {
      allowed: this.allowed,
      resource: this.resource,
      status: this.status,
      requested: this.requested,
      used: this.used,
      limit: this.limit,
      remaining: this.remaining,
      period: this.period,
      resetAt: this.resetAt,
      scope: this.scope,
      message: this.message,
      rules: this.rules,
    };
    if (this.retryAfterMs !== undefined) json.retryAfterMs = this.retryAfterMs;
    return json;
  }
}
