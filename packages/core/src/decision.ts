import { type EvaluationContext, evaluateResource } from './evaluate.js';
import type { OperationPlan } from './operation-plan.js';
import type { QuotaCheckResult, QuotaDecision } from './results.js';

/**
 * The engine's {@link QuotaDecision}. `allowed` is known when the store answers; `results`
 * are judged on first read, since many callers only look at `allowed` on the way through
 * (`JSON.stringify` includes them through `toJSON`).
 */
export class Decision implements QuotaDecision {
  readonly allowed: boolean;
  /** Whether the store added the amounts (admitted, and the store answered). Internal. */
  readonly recorded: boolean;
  #plan: OperationPlan | undefined;
  #context: EvaluationContext | undefined;
  #results: Record<string, QuotaCheckResult> | undefined;

  constructor(allowed: boolean, plan: OperationPlan, context: EvaluationContext) {
    this.allowed = allowed;
    this.recorded = context.applied;
    this.#plan = plan;
    this.#context = context;
  }

  /** Results by resource: the binding rule's figures and every rule evaluated. */
  get results(): Record<string, QuotaCheckResult> {
    if (this.#results === undefined) {
      const results: Record<string, QuotaCheckResult> = {};
      for (const resourcePlan of this.#plan!.resources) {
        results[resourcePlan.resource] = evaluateResource(resourcePlan, this.#context!);
      }
      this.#results = results;
      // The plan is not needed any more: let it go.
      this.#plan = undefined;
      this.#context = undefined;
    }
    return this.#results;
  }

  /** A plain object with `allowed` and `results`. */
  toJSON(): QuotaDecision {
    return { allowed: this.allowed, results: this.results };
  }
}
