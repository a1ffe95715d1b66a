import { type EvaluationContext, evaluateResource } from './evaluate.js';
import type { OperationPlan } from './operation-plan.js';
import type { QuotaCheckResult, QuotaDecision } from './results.js';

/**
 * The engine's {@link QuotaDecision}: `allowed` and `results` are plain own fields (it
 * spreads, compares and serialises like the object the design describes); whether the store
 * recorded the amounts is kept privately for the engine's ledger and telemetry.
 */
export class Decision implements QuotaDecision {
  readonly allowed: boolean;
  readonly results: Record<string, QuotaCheckResult>;
  readonly #recorded: boolean;

  constructor(allowed: boolean, plan: OperationPlan, context: EvaluationContext) {
    this.allowed = allowed;
    const results: Record<string, QuotaCheckResult> = {};
    for (const resourcePlan of plan.resources) {
      results[resourcePlan.resource] = evaluateResource(resourcePlan, context);
    }
    this.results = results;
    this.#recorded = context.applied;
  }

  /** Whether the store added the amounts (admitted, and the store answered). */
  get recorded(): boolean {
    return this.#recorded;
  }
}
