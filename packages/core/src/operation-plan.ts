import type { TimeWindow, WindowCache } from './periods.js';
import {
  OVERRIDES_UNAVAILABLE,
  type RuleBook,
  type RuntimeRules,
  SCOPE_FIELDS,
} from './rule-book.js';
import type { ResolvedRule } from './rules.js';
import { fitsWithin } from './statuses.js';
import type { StoreLimit } from './store.js';
import type { Subject } from './subject.js';

/** One rule of a planned operation, pointing at the counters it reads. */
export interface RulePlan {
  readonly rule: ResolvedRule;
  readonly subjectId: string | null;
  /** Index of the rule's counter in the plan; -1 for per_request rules (no counter). */
  readonly counter: number;
  /** Index of the previous window's counter for sliding rules; -1 otherwise. */
  readonly previous: number;
  /** Weight of the previous window for sliding rules (how much of it still counts). */
  readonly weight: number;
  /** The current window; null for total and per_request. */
  readonly window: TimeWindow | null;
}

/** The rules of one resource in an operation. */
export interface ResourcePlan {
  readonly resource: string;
  readonly amount: number;
  readonly rules: readonly RulePlan[];
}

/** A counter as the plan builds it (ttl may grow when two rules share the counter). */
export interface PlannedCounter {
  key: string;
  amount: number;
  ttlMs: number | null;
}

/** A whole engine operation: every counter and limit of every rule it touches. */
export interface OperationPlan {
  // Replaced rather than pushed to while empty (see `append`).
  resources: ResourcePlan[];
  counters: PlannedCounter[];
  limits: StoreLimit[];
  /** An enforced per_request rule refuses: the store must not be asked to add anything. */
  perRequestRefused: boolean;
  /**
   * The store failed to give the subject's run-time overrides for this operation: it gets no
   * more than a turn of the event loop to decide, so that a decision waits one timeout, not
   * two (see {@link OVERRIDES_UNAVAILABLE}).
   */
  storeUnavailable: boolean;
  /**
   * The version of the run-time overrides the plan was made with, for a store that versions
   * them: the store applies the plan only at that version (see StoreRuleBoundRequest).
   */
  overridesVersion: string | undefined;
}

/**
 * Turns (resource, amount) pairs and a subject into an {@link OperationPlan}: which
 * counters to touch, with what TTLs, under which limits.
 *
 * Counter keys are `resource|period|windowStart|scope|id`. The id comes last and nothing
 * before it contains `|`, so any id maps to exactly one key without escaping. Rules of the
 * same scope, resource and period share a counter: usage is usage, whatever the limit.
 */
export class Planner {
  readonly #rules: RuleBook;
  readonly #windows: WindowCache;
  // Counter keys are memoised per rule, window and id: building a key and hashing the new
  // string costs more than the rest of an in-memory decision, while a cached key string
  // keeps its hash.
  readonly #keys = new WeakMap<ResolvedRule, RuleKeys>();

  constructor(rules: RuleBook, windows: WindowCache) {
    this.#rules = rules;
    this.#windows = windows;
  }

  /** Starts an empty plan. */
  begin(): OperationPlan {
    return {
      resources: [],
      counters: [],
      limits: [],
      perRequestRefused: false,
      storeUnavailable: false,
      overridesVersion: undefined,
    };
  }

  /**
   * Adds one resource to `plan`. `enforce` adds the limits of enforced rules (consume and
   * reserve); reads and unconditional records leave them out.
   */
  add(
    plan: OperationPlan,
    resource: string,
    amount: number,
    subject: Subject,
    now: number,
    enforce: boolean,
    runtime: RuntimeRules | null = null,
  ): ResourcePlan {
    if (runtime === OVERRIDES_UNAVAILABLE) plan.storeUnavailable = true;
    const bound = this.#rules.rulesFor(resource, subject, runtime);
    const rules: RulePlan[] = new Array(bound.length);
    for (let i = 0; i < bound.length; i++) {
      const rule = bound[i]!;
      const subjectId = rule.scope === 'global' ? null : subject[SCOPE_FIELDS[rule.scope]]!;
      rules[i] = this.#planRule(plan, rule, subjectId, amount, now, enforce);
    }
    const resourcePlan: ResourcePlan = { resource, amount, rules };
    plan.resources = append(plan.resources, resourcePlan);
    return resourcePlan;
  }

  #planRule(
    plan: OperationPlan,
    rule: ResolvedRule,
    subjectId: string | null,
    amount: number,
    now: number,
    enforce: boolean,
  ): RulePlan {
    const { period } = rule;
    if (period === 'per_request') {
      if (enforce && rule.mode === 'enforce' && !fitsWithin(amount, rule.limit)) {
        plan.perRequestRefused = true;
      }
      return { rule, subjectId, counter: -1, previous: -1, weight: 0, window: null };
    }
    let keys = this.#keys.get(rule);
    if (keys === undefined) {
      keys = new RuleKeys(rule);
      this.#keys.set(rule, keys);
    }
    const id = subjectId ?? '';
    if (period === 'total') {
      const counter = addCounter(plan, keys.current(null, id), amount, null);
      if (enforce && rule.mode === 'enforce') {
        plan.limits = append(plan.limits, { counter, limit: rule.limit });
      }
      return { rule, subjectId, counter, previous: -1, weight: 0, window: null };
    }
    const window = this.#windows.current(period, now);
    if (rule.algorithm === 'fixed') {
      const counter = addCounter(plan, keys.current(window, id), amount, window.end - now);
      if (enforce && rule.mode === 'enforce') {
        plan.limits = append(plan.limits, { counter, limit: rule.limit });
      }
      return { rule, subjectId, counter, previous: -1, weight: 0, window };
    }
    // Sliding: the current counter must outlive its window by one more window, because the
    // next window still reads it (weighted) as its previous one.
    const length = window.end - window.start;
    const counter = addCounter(plan, keys.current(window, id), amount, window.end - now + length);
    const previousWindow = this.#windows.previous(period, now);
    const previous = addCounter(plan, keys.previous(previousWindow, id), 0, null);
    const weight = (window.end - now) / length;
    if (enforce && rule.mode === 'enforce') {
      const limit = { counter, limit: rule.limit, previous, previousWeight: weight };
      plan.limits = append(plan.limits, limit);
    }
    return { rule, subjectId, counter, previous, weight, window };
  }
}

/**
 * Most keys cached per rule and window; past it the cache starts over (stays bounded, at
 * about 100 bytes an entry when the store does not share the key string). At 50,000, an
 * application cycling through 100,000 subjects missed on every call and ran a third slower
 * in memory (242k against 452k consumes a second measured here).
 */
const MAX_CACHED_KEYS = 200_000;

/** Key strings of one rule's counters: `resource|period|windowStart|scope|id`. */
class RuleKeys {
  readonly #head: string;
  readonly #tail: string;
  #currentWindow: TimeWindow | null | undefined;
  #currentKeys = new Map<string, string>();
  #previousWindow: TimeWindow | undefined;
  #previousKeys = new Map<string, string>();

  constructor(rule: ResolvedRule) {
    this.#head = `${rule.resource}|${rule.period}|`;
    this.#tail = `|${rule.scope}|`;
  }

  /** The key of `id`'s counter in `window` (null for total rules). */
  current(window: TimeWindow | null, id: string): string {
    if (this.#currentWindow !== window) {
      this.#currentWindow = window;
      this.#currentKeys = new Map();
    }
    return this.#lookup(this.#currentKeys, window, id);
  }

  /** The key of `id`'s counter in the previous window of a sliding rule. */
  previous(window: TimeWindow, id: string): string {
    if (this.#previousWindow !== window) {
      this.#previousWindow = window;
      this.#previousKeys = new Map();
    }
    return this.#lookup(this.#previousKeys, window, id);
  }

  #lookup(keys: Map<string, string>, window: TimeWindow | null, id: string): string {
    let key = keys.get(id);
    if (key === undefined) {
      if (keys.size >= MAX_CACHED_KEYS) keys.clear();
      key = this.#head + (window === null ? '' : window.start.toString(36)) + this.#tail + id;
      keys.set(id, key);
    }
    return key;
  }
}

function addCounter(
  plan: OperationPlan,
  key: string,
  amount: number,
  ttlMs: number | null,
): number {
  const counters = plan.counters;
  for (let i = 0; i < counters.length; i++) {
    const existing = counters[i]!;
    if (existing.key !== key) continue;
    // Two rules on one counter (say a fixed and a sliding per-minute rule): add once, keep
    // it as long as the longer-lived rule needs it.
    if (amount !== 0) existing.amount = amount;
    if (existing.ttlMs !== null && ttlMs !== null && ttlMs > existing.ttlMs) existing.ttlMs = ttlMs;
    return i;
  }
  const index = counters.length;
  plan.counters = append(counters, { key, amount, ttlMs });
  return index;
}

/**
 * `list` with `item` at the end. An empty list is replaced by a one-item literal: the first
 * push onto an empty array reserves room for 17 items (about 190 bytes), and a plan has three
 * such lists, which made them a fifth of what an in-memory decision allocates.
 */
function append<T>(list: T[], item: T): T[] {
  if (list.length === 0) return [item];
  list.push(item);
  return list;
}
