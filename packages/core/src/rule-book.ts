import type { ResolvedConfig, ScopedRules } from './config.js';
import type { QuotaScope, ResolvedRule } from './rules.js';
import type { Subject } from './subject.js';

/**
 * Run-time overrides that apply to one subject: scope -> resource -> rules. They take
 * precedence over configured overrides and defaults of the same scope.
 */
export type RuntimeRules = ReadonlyMap<QuotaScope, ReadonlyMap<string, readonly ResolvedRule[]>>;

/**
 * The run-time overrides of a subject whose store could not give them (it failed or timed
 * out): no overrides for planning, and a sign that the operation must not wait on the store a
 * second time. The store gets no more than a turn of the event loop to answer (an insured
 * RedisStore answers from its insurance store at once); after that the decision is `unknown`
 * (failureMode), so that it ends within about one store timeout.
 */
export const OVERRIDES_UNAVAILABLE: RuntimeRules = new Map();

/** The subject field that holds a scope's id. */
export const SCOPE_FIELDS: Readonly<Record<Exclude<QuotaScope, 'global'>, keyof Subject>> = {
  user: 'userId',
  agent: 'agentId',
  tenant: 'tenantId',
  run: 'runId',
};

const ID_SCOPES: ReadonlyArray<readonly [Exclude<QuotaScope, 'global'>, keyof Subject]> = [
  ['user', 'userId'],
  ['agent', 'agentId'],
  ['tenant', 'tenantId'],
  ['run', 'runId'],
];

const NO_RULES: readonly ResolvedRule[] = Object.freeze([]);

/**
 * Answers "which rules bind this subject for this resource?": per scope, an override for the
 * subject's id replaces the default rules of that scope; global rules bind everyone.
 */
export class RuleBook {
  readonly #defaults: ReadonlyMap<string, ScopedRules>;
  readonly #overrides: ResolvedConfig['overrides'];
  readonly #resources: ReadonlySet<string>;
  /** Rules by resource, then by which ids the subject has (a 4-bit mask). */
  readonly #memo = new Map<string, (readonly ResolvedRule[] | undefined)[]>();

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

  /**
   * The rules binding `subject` for `resource`, in scope order (user, agent, tenant, run,
   * global). A rule counts the subject's id of its scope (none for global).
   */
  rulesFor(
    resource: string,
    subject: Subject,
    runtime: RuntimeRules | null = null,
  ): readonly ResolvedRule[] {
    const mask =
      (subject.userId === undefined ? 0 : 1) |
      (subject.agentId === undefined ? 0 : 2) |
      (subject.tenantId === undefined ? 0 : 4) |
      (subject.runId === undefined ? 0 : 8);
    if (runtime === null && !this.#hasStaticOverride(resource, subject)) {
      // The common case depends only on which ids are present: memoised per resource.
      let byMask = this.#memo.get(resource);
      if (byMask === undefined) {
        byMask = new Array(16);
        this.#memo.set(resource, byMask);
      }
      let rules = byMask[mask];
      if (rules === undefined) {
        rules = this.#collect(resource, subject, null);
        byMask[mask] = rules;
      }
      return rules;
    }
    return this.#collect(resource, subject, runtime);
  }

  #hasStaticOverride(resource: string, subject: Subject): boolean {
    if (this.#overrides.size === 0) return false;
    for (const [scope, field] of ID_SCOPES) {
      const id = subject[field];
      if (id !== undefined && this.#overrides.get(scope)?.get(id)?.has(resource)) return true;
    }
    return false;
  }

  #collect(
    resource: string,
    subject: Subject,
    runtime: RuntimeRules | null,
  ): readonly ResolvedRule[] {
    const scoped = this.#defaults.get(resource);
    const bound: ResolvedRule[] = [];
    for (const [scope, field] of ID_SCOPES) {
      const id = subject[field];
      if (id === undefined) continue;
      const rules =
        runtime?.get(scope)?.get(resource) ??
        this.#overrides.get(scope)?.get(id)?.get(resource) ??
        scoped?.[scope];
      if (rules !== undefined) bound.push(...rules);
    }
    if (scoped !== undefined) bound.push(...scoped.global);
    return bound.length === 0 ? NO_RULES : bound;
  }
}
