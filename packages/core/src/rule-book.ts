import type { ResolvedConfig, ScopedRules } from './config.js';
import type { QuotaScope, ResolvedRule } from './rules.js';
import type { Subject } from './subject.js';

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

  /** Whether any rule names `resource`. */
  has(resource: string): boolean {
    return this.#resources.has(resource);
  }

  /** Every resource some rule names. */
  resources(): Iterable<string> {
    return this.#resources;
  }

  /** The rules binding `subject` for `resource`, in scope order (user, agent, tenant, run, global). */
  rulesFor(resource: string, subject: Subject): BoundRule[] {
    const scoped = this.#defaults.get(resource);
    const bound: BoundRule[] = [];
    for (const [scope, field] of ID_SCOPES) {
      const id = subject[field];
      if (id === undefined) continue;
      const override = this.#overrides.get(scope)?.get(id)?.get(resource);
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
