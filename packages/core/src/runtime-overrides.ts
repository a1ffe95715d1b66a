import { LRUCache } from 'lru-cache';
import { RESERVED_RESOURCE_NAMES, RESOURCE_NAME_PATTERN, resolveRule } from './config.js';
import { isQuotaError, QuotaConfigError, QuotaStoreError, QuotaValidationError } from './errors.js';
import { ListingFailedError, OverrideDirectory } from './override-directory.js';
import { OVERRIDES_UNAVAILABLE, type RuntimeRules } from './rule-book.js';
import type { QuotaRule, QuotaScope, ResolvedRule } from './rules.js';
import type {
  OverrideFilter,
  OverrideKey,
  OverrideScope,
  QuotaStore,
  StoredOverride,
} from './store.js';
import { SUBJECT_SCOPES, type Subject } from './subject.js';
import { validateId } from './validation.js';

/** A rule as `setQuota` takes it: its scope is the override's. */
export type OverrideRule = Omit<QuotaRule, 'scope'>;

/**
 * Arguments of `engine.setQuota`: one rule (`limit`, `period`, ...) or several (`rules`) for
 * one resource of one user, agent, tenant or run.
 *
 * @example
 * await engine.setQuota({ scope: 'user', id: 'u1', resource: 'llm_tokens', limit: 5_000_000, period: 'per_day' });
 */
export type SetQuotaRequest = OverrideKey & (OverrideRule | { rules: readonly OverrideRule[] });

const OVERRIDE_SCOPES: ReadonlySet<string> = new Set(['user', 'agent', 'tenant', 'run']);
interface CachedOverrides {
  readonly fetchedAt: number;
  readonly overrides: readonly StoredOverride[];
}

/** Everything the engine hands over to manage run-time overrides. */
export interface RuntimeOverridesOptions {
  readonly store: QuotaStore;
  readonly clock: () => number;
  /** How long an engine trusts what it read of an id's overrides. */
  readonly cacheTtlMs: number;
  readonly thresholds: { warning: number; critical: number };
  readonly timed: <T>(operation: Promise<T>) => Promise<T>;
  /** The longest a store call may take (the store's own timeout, else the engine's). */
  readonly timeoutMs: number;
  readonly onError: (error: unknown) => void;
}

type SyncOverrideStore = QuotaStore & {
  readonly overrideCount: number;
  getOverridesSync(subject: Subject): readonly StoredOverride[];
};

/**
 * Run-time overrides (`setQuota` / `removeQuota`) kept in the store, so that every engine on
 * it sees them. An in-process store is read directly on every call. A networked one is listed
 * whole (one call, while it holds at most 10,000 overrides; see {@link OverrideDirectory}) or
 * else read once per id, and what was read is trusted for `cacheTtlMs` (by the engine's
 * clock), so another instance's change shows within that time and this instance's own
 * changes show at once. With a store that versions its overrides (`listVersionedOverrides`),
 * every read and consume names the listing's version and the store checks it, so that another
 * instance's change shows at the next decision as well.
 */
export class RuntimeOverrides {
  readonly #options: RuntimeOverridesOptions;
  readonly #sync: SyncOverrideStore | undefined;
  readonly #resolved = new WeakMap<StoredOverride, readonly ResolvedRule[]>();
  // Per id, used when the store holds too many overrides for the directory. At 10,000 an
  // application serving 100,000 users in turn missed on every call, and every consume took a
  // second round trip. About 150 bytes an entry.
  readonly #cache = new LRUCache<string, CachedOverrides>({
    maxSize: 100_000,
    sizeCalculation: () => 1,
  });

  readonly #directory: OverrideDirectory;
  /** The store versions its overrides and the directory is on: decisions name the version. */
  readonly #versioned: boolean;
  /** See {@link version}. */
  #peekedVersion: string | undefined;

  constructor(options: RuntimeOverridesOptions) {
    this.#options = options;
    const shared = options.store;
    this.#versioned = typeof shared.listVersionedOverrides === 'function' && options.cacheTtlMs > 0;
    this.#directory = new OverrideDirectory(
      this.#versioned
        ? () => options.timed(shared.listVersionedOverrides!())
        : () =>
            options
              .timed(shared.listOverrides({}))
              .then((overrides) => ({ overrides, version: undefined })),
      options.cacheTtlMs,
      options.onError,
    );
    const store = options.store as Partial<SyncOverrideStore>;
    this.#sync =
      typeof store.getOverridesSync === 'function' && typeof store.overrideCount === 'number'
        ? (options.store as SyncOverrideStore)
        : undefined;
  }

  /**
   * The subject's run-time overrides when they are known without waiting: from an in-process
   * store, null when the store knows that none exist at all (`hasNoOverrides`), or from a
   * listing or per-id reads younger than `cacheTtlMs`; undefined when {@link forSubject} must
   * ask.
   */
  peek(subject: Subject): RuntimeRules | null | undefined {
    this.#peekedVersion = undefined;
    if (this.#sync !== undefined) return this.forSubjectSync(subject);
    // A versioned store's hint would leave the decision without a version to check.
    if (!this.#versioned && this.#options.store.hasNoOverrides?.() === true) return null;
    const now = this.#options.clock();
    const listed = this.#directory.peek(subject, now);
    if (listed !== undefined) {
      if (this.#versioned) this.#peekedVersion = this.#directory.version;
      return this.#index(listed);
    }
    return this.#cached(subject, now);
  }

  /**
   * The version of the listing behind the last {@link peek} answer, when the store versions
   * its overrides and the answer came from its listing; undefined otherwise (per-id reads
   * carry no version: nothing to check). Read in the same turn as that answer: a decision
   * that had to wait for {@link forSubject} peeks again after it, so that the rules and the
   * version it names come from one listing.
   */
  get version(): string | undefined {
    return this.#peekedVersion;
  }

  /**
   * A decision's rules once {@link forSubject} has answered: the listing's, by {@link peek},
   * when one is in place by now (so that {@link version} names the listing they come from),
   * else `fetched` (no version). Call it in the turn the lookup resumes in.
   */
  settledLookup(subject: Subject, fetched: RuntimeRules | null): RuntimeRules | null {
    const listed = this.peek(subject);
    return listed === undefined ? fetched : listed;
  }

  /**
   * The store said the overrides changed since the listing at `version`: list them again
   * (and read no id from what was cached before either), unless that is under way already.
   */
  forgetStale(version: string | undefined): void {
    if (version === undefined) return;
    this.#directory.forgetStale(version);
    this.#cache.clear();
  }

  /** From the cache alone: undefined unless every id of the subject is cached and fresh. */
  #cached(subject: Subject, now: number): RuntimeRules | null | undefined {
    let found: readonly StoredOverride[] = [];
    for (const [scope, field] of SUBJECT_SCOPES) {
      const id = subject[field];
      if (id === undefined) continue;
      const cached = this.#cache.get(`${scope}|${id}`);
      if (cached === undefined || now - cached.fetchedAt >= this.#options.cacheTtlMs) {
        return undefined;
      }
      if (cached.overrides.length > 0) found = [...found, ...cached.overrides];
    }
    return this.#index(found);
  }

  /** The subject's run-time overrides from an in-process store; null when there are none. */
  forSubjectSync(subject: Subject): RuntimeRules | null {
    const store = this.#sync!;
    if (store.overrideCount === 0) return null;
    return this.#index(store.getOverridesSync(subject));
  }

  /**
   * The subject's run-time overrides, from the cache or the store; null when there are none,
   * {@link OVERRIDES_UNAVAILABLE} when the store could not answer (reported to `onError`).
   */
  async forSubject(subject: Subject): Promise<RuntimeRules | null> {
    if (this.#sync) return this.forSubjectSync(subject);
    const now = this.#options.clock();
    let listed: readonly StoredOverride[] | undefined;
    try {
      listed = await this.#directory.lookup(subject, now);
    } catch (error) {
      // A listing that used up its time: no second wait for the ids (the operation then
      // gives the store only what is left, nothing). One refused at once comes from a store
      // that knows it cannot list now, and may still answer for the subject's ids
      // (RedisStore's insurance store does).
      const elapsedMs = error instanceof ListingFailedError ? error.elapsedMs : Infinity;
      if (elapsedMs >= this.#options.timeoutMs / 2) return OVERRIDES_UNAVAILABLE;
      listed = undefined;
    }
    if (listed !== undefined) return this.#index(listed);
    // Too many overrides for a directory: id by id, each cached.
    const found: StoredOverride[] = [];
    let missing: Subject | undefined;
    for (const [scope, field] of SUBJECT_SCOPES) {
      const id = subject[field];
      if (id === undefined) continue;
      const cached = this.#cache.get(`${scope}|${id}`);
      if (cached !== undefined && now - cached.fetchedAt < this.#options.cacheTtlMs) {
        found.push(...cached.overrides);
      } else {
        missing ??= {};
        missing[field] = id;
      }
    }
    if (missing !== undefined) {
      const fetched = await this.#fetch(missing, now);
      if (fetched === undefined) return OVERRIDES_UNAVAILABLE;
      found.push(...fetched);
    }
    return this.#index(found);
  }

  /**
   * Validates and stores an override; this engine sees it at once.
   *
   * @throws QuotaValidationError for a bad scope, id, resource or rule (nothing is stored).
   * @throws QuotaConfigError for a rule the store cannot enforce (one that crosses shards).
   */
  async set(request: SetQuotaRequest): Promise<StoredOverride> {
    const key = validateKey(request);
    const input = request as { rules?: readonly OverrideRule[] } & Partial<OverrideRule>;
    const rules: QuotaRule[] =
      input.rules !== undefined
        ? [...input.rules]
        : [{ ...stripKey(request as OverrideKey & OverrideRule) }];
    if (!Array.isArray(rules) || rules.length === 0) {
      throw new QuotaValidationError('rules must list at least one rule');
    }
    const resolved = rules.map((rule, index) => this.#resolveOne(key, rule, index, rules.length));
    try {
      this.#options.store.checkRules?.(resolved);
    } catch (error) {
      // A rule the store cannot enforce (one that crosses shards) is a QuotaConfigError, as at
      // construction (DESIGN section 5); one from another copy of the package (RedisStore's own
      // dependency) is made this copy's, so that `instanceof` holds for the caller.
      if (isQuotaError(error) && error.code === 'quota_config') {
        if (error instanceof QuotaConfigError) throw error;
        const { path = '', reason = error.message } = error as Partial<QuotaConfigError>;
        throw new QuotaConfigError(path, reason);
      }
      throw error;
    }
    const stored: StoredOverride = {
      ...key,
      rules: rules.map((rule, index) => ruleFrom(resolved[index]!, rule)),
    };
    await this.#store('store the quota', this.#options.store.setOverride(stored));
    this.#cache.delete(`${key.scope}|${key.id}`);
    this.#directory.forget();
    return stored;
  }

  /**
   * Deletes an override; resolves false when there was none.
   *
   * @throws QuotaValidationError for a bad scope, id or resource.
   */
  async remove(request: OverrideKey): Promise<boolean> {
    const key = validateKey(request);
    const removed = await this.#store('remove the quota', this.#options.store.removeOverride(key));
    this.#cache.delete(`${key.scope}|${key.id}`);
    this.#directory.forget();
    return removed;
  }

  /** Run-time overrides matching the filter. */
  async list(filter: OverrideFilter = {}): Promise<readonly StoredOverride[]> {
    if (filter.scope !== undefined && !OVERRIDE_SCOPES.has(filter.scope)) {
      throw new QuotaValidationError(
        `scope must be one of user, agent, tenant, run, got ${String(filter.scope)}`,
      );
    }
    if (filter.id !== undefined) validateId(filter.id, 'id');
    return this.#store('list quotas', this.#options.store.listOverrides(filter));
  }

  /** A store call that fails as a QuotaStoreError, whatever the store threw. */
  async #store<T>(what: string, operation: Promise<T>): Promise<T> {
    try {
      return await this.#options.timed(operation);
    } catch (error) {
      if (error instanceof QuotaStoreError) throw error;
      throw new QuotaStoreError(`Could not ${what}: the quota store failed`, { cause: error });
    }
  }

  /** The overrides of the subject's ids from the store; undefined when it could not answer. */
  async #fetch(subject: Subject, now: number): Promise<readonly StoredOverride[] | undefined> {
    let overrides: readonly StoredOverride[];
    try {
      overrides = await this.#options.timed(this.#options.store.getOverrides({ subject }));
    } catch (error) {
      // Nothing is cached: the next call asks again.
      this.#options.onError(error);
      return undefined;
    }
    for (const [scope, field] of SUBJECT_SCOPES) {
      const id = subject[field];
      if (id === undefined) continue;
      const own = overrides.filter((o) => o.scope === scope && o.id === id);
      this.#cache.set(`${scope}|${id}`, { fetchedAt: now, overrides: own });
    }
    return overrides;
  }

  #index(overrides: readonly StoredOverride[]): RuntimeRules | null {
    if (overrides.length === 0) return null;
    const byScope = new Map<QuotaScope, Map<string, readonly ResolvedRule[]>>();
    for (const override of overrides) {
      let rules = this.#resolved.get(override);
      if (rules === undefined) {
        try {
          rules = override.rules.map((rule, index) =>
            this.#resolveOne(override, rule, index, override.rules.length),
          );
        } catch (error) {
          // A stored rule this engine cannot read (written by a newer version, say) must not
          // break quota checks: report it and keep the configured rules.
          this.#options.onError(error);
          continue;
        }
        this.#resolved.set(override, rules);
      }
      let byResource = byScope.get(override.scope);
      if (byResource === undefined) {
        byResource = new Map();
        byScope.set(override.scope, byResource);
      }
      byResource.set(override.resource, rules);
    }
    return byScope.size === 0 ? null : byScope;
  }

  #resolveOne(key: OverrideKey, rule: QuotaRule, index: number, count: number): ResolvedRule {
    const path = count > 1 ? `rules.${index}` : 'rule';
    try {
      if (rule.scope !== undefined && rule.scope !== key.scope) {
        throw new QuotaConfigError(`${path}.scope`, `must be the override's scope '${key.scope}'`);
      }
      return resolveRule(
        key.resource,
        { ...rule, scope: key.scope },
        'override',
        this.#options.thresholds,
        path,
      );
    } catch (error) {
      if (error instanceof QuotaConfigError) {
        throw new QuotaValidationError(
          `Invalid quota for ${key.scope} ${JSON.stringify(key.id)}: ${error.message.replace(/^Invalid QuotaKit configuration at /, '')}`,
        );
      }
      throw error;
    }
  }
}

function validateKey(request: OverrideKey): OverrideKey {
  if (typeof request !== 'object' || request === null) {
    throw new QuotaValidationError('expected an object with scope, id and resource');
  }
  const { scope, id, resource } = request;
  if (typeof scope !== 'string' || !OVERRIDE_SCOPES.has(scope)) {
    throw new QuotaValidationError(
      `scope must be one of user, agent, tenant, run, got ${JSON.stringify(scope)}`,
    );
  }
  validateId(id, 'id');
  if (
    typeof resource !== 'string' ||
    !RESOURCE_NAME_PATTERN.test(resource) ||
    RESERVED_RESOURCE_NAMES.has(resource)
  ) {
    throw new QuotaValidationError(
      `resource must be 1 to 64 letters, digits, _, . or -, got ${JSON.stringify(resource)}`,
    );
  }
  return { scope: scope as OverrideScope, id, resource };
}

function stripKey(request: OverrideKey & OverrideRule): OverrideRule {
  const { scope: _scope, id: _id, resource: _resource, ...rule } = request;
  return rule;
}

/** The rule as stored: only the fields the caller set, plus the override's scope. */
function ruleFrom(resolved: ResolvedRule, input: QuotaRule): QuotaRule {
  const rule: QuotaRule = { limit: resolved.limit, period: resolved.period, scope: resolved.scope };
  if (input.algorithm !== undefined) rule.algorithm = input.algorithm;
  if (input.warningThreshold !== undefined) rule.warningThreshold = input.warningThreshold;
  if (input.criticalThreshold !== undefined) rule.criticalThreshold = input.criticalThreshold;
  if (input.mode !== undefined) rule.mode = input.mode;
  if (input.name !== undefined) rule.name = input.name;
  return rule;
}
