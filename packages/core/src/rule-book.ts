import type { ResolvedConfig, ScopedRules } from './config.js';
import type { QuotaScope, ResolvedRule } from './rules.js';
import type { Subject } from './subject.js';

/**
 * Run-time overrides that apply to one subject: scope -> resource -> rules. They take
 * precedence over configured overrides and defaults of the same scope.
 */
export type RuntimeRules = ReadonlyMap<QuotaScope, ReadonlyMap<string, readonly ResolvedRule[]>>;

/** A rule that binds a subject, with the id it counts (null for global rules). */
export interface BoundRule {
  readonly rule: ResolvedRule;
  readonly subjectId: string | null;
}

const ID_SCOPES: ReadonlyArray<readonly [Exclude<QuotaScope, 'global'>, keyof Subject]> = [
  ['user', 'userId'],
  ['agent', 'agentId'],
  ['tenant', 'tenantId'],
  ['run', 'runId'],
];

/**
 * Answers "which rules bind this subject for this resource?": per scope, an override for the
 * subject's id replaces the default rules of that scope; global rules bind everyone.
 */
export class RuleBook {
  readonly #defaults: ReadonlyMap<string, ScopedRules>;
  readonly #overrides: ResolvedConfig['overrides'];
  readonly #resources: ReadonlySet<string>;

  constructor(config: Pick<ResolvedConfig, 'defaults' | 'overrides' | 'resources'>) {
    this.#defaults = config.defaults;
    this.#overrides = config.overrides;
    this.#resources = config.resources;
  }

  /** Whether any rule names `resource` (configured, or a run-time override of the subject). */
  has(resource: string, runtime: RuntimeRules | null = null): boolean {
    if (this.#resources.has(resource)) return true;
    if (runtime === null) return false;
    for (const byResource of runtime.values()) if (byResource.has(resource)) return true;
    return false;
  }

  /** Every resource some rule names, including the subject's run-time overrides. */
  resources(runtime: RuntimeRules | null = null): Iterable<string> {
    if (runtime === null) return this.#resources;
    const all = new Set(this.#resources);
    for (const byResource of runtime.values())
      for (const resource of byResource.keys()) all.add(resource);
    return all;
  }

  /** The rules binding `subject` for `resource`, in scope order (user, agent, tenant, run, global). */
  rulesFor(resource: string, subject: Subject, runtime: RuntimeRules | null = null): BoundRule[] {
    const scoped = this.#defaults.get(resource);
    const bound: BoundRule[] = [];
    for (const [scope, field] of ID_SCOPES) {
      const id = subject[field];
      if (id === undefined) continue;
      const override =
        runtime?.get(scope)?.get(resource) ?? this.#overrides.get(scope)?.get(id)?.get(resource);
      const rules = override ?? scoped?.[scope];
      if (rules === undefined) continue;
      for (const rule of rules) bound.push({ rule, subjectId: id });
    }
    if (scoped !== undefined) {
      for (const rule of scoped.global) bound.push({ rule, subjectId: null });
    }
    return bound;
  }
}
