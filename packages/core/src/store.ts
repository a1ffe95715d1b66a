import type { QuotaRule, ResolvedRule } from './rules.js';
import type { Subject } from './subject.js';
import type { UsageEvent, UsageLedger } from './usage-ledger.js';

/**
 * One counter an operation touches. Keys are built by the engine and identify the scope,
 * subject id, resource, period and window; a store may prefix them but must treat them as
 * opaque data (they contain arbitrary user ids).
 */
export interface StoreCounter {
  /** Opaque key, unique per (scope, id, resource, period, window). */
  readonly key: string;
  /**
   * Amount to add when the operation applies. 0 reads the counter without writing it;
   * negative amounts release (values never go below 0).
   */
  readonly amount: number;
  /** How long the counter must live from `now` once written; null keeps it forever. */
  readonly ttlMs: number | null;
}

/**
 * A limit the operation must respect. Usage is `value(counter)` plus, for sliding windows,
 * `value(previous) * previousWeight`. The operation is admitted only if, for every limit,
 * `usage + amount(counter) <= limit`; usage already past a limit refuses even an amount of 0.
 */
export interface StoreLimit {
  /** Index into the request's counters. */
  readonly counter: number;
  readonly limit: number;
  /** Index of the previous window's counter (sliding windows only). */
  readonly previous?: number;
  /** Weight of the previous window, in [0, 1]. */
  readonly previousWeight?: number;
}

/** Fields every store request carries. */
export interface StoreRequestBase {
  /** The engine clock's current time in epoch ms: the store's only notion of time. */
  readonly now: number;
  /** Who the operation is for (a store may shard by tenant or user). */
  readonly subject: Subject;
  readonly counters: readonly StoreCounter[];
}

/** Fields of the requests whose outcome depends on the subject's rules (reads, consumes). */
export interface StoreRuleBoundRequest {
  /**
   * For a store with {@link QuotaStore.listVersionedOverrides}: the version of the run-time
   * overrides the engine planned with. When the store's current version differs, it applies
   * nothing and rejects with a StaleOverridesError (the engine lists again and repeats).
   * Undefined: no check.
   */
  readonly overridesVersion?: string;
}

/** Every run-time override of a store and the version they are at ({@link QuotaStore.listVersionedOverrides}). */
export interface VersionedOverrides {
  /**
   * Changes with every write of an override; opaque. Undefined when this listing cannot be
   * checked (a PostgreSQL schema not yet migrated): decisions then name no version.
   */
  readonly version: string | undefined;
  readonly overrides: readonly StoredOverride[];
}

/** Read counters; nothing is written. */
export interface StoreReadRequest extends StoreRequestBase, StoreRuleBoundRequest {}

/** Check every limit and, if all admit, add every amount. */
export interface StoreConsumeRequest extends StoreRequestBase, StoreRuleBoundRequest {
  readonly limits: readonly StoreLimit[];
  /**
   * Keep the added amounts as a reservation under this id until it is settled, or until
   * `ttlMs` passes, when the store returns them by itself.
   */
  readonly hold?: { readonly id: string; readonly ttlMs: number };
  /**
   * Only for a store with a {@link QuotaStore.ledger}, and never with `hold`: the usage
   * events to append in the same atomic step, if and only if the amounts are admitted.
   */
  readonly usage?: readonly UsageEvent[];
}

/** Add every amount unconditionally, once per idempotency key. */
export interface StoreRecordRequest extends StoreRequestBase {
  /** When set, a second record with the same key within `idempotencyTtlMs` changes nothing. */
  readonly idempotencyKey?: string;
  readonly idempotencyTtlMs: number;
  /**
   * Only for a store with a {@link QuotaStore.ledger}: the usage events to append in the same
   * atomic step, unless the idempotency key is a duplicate.
   */
  readonly usage?: readonly UsageEvent[];
}

/** Return a reservation's held amounts and add the given ones, in one step. */
export interface StoreSettleRequest extends StoreRequestBase {
  readonly reservationId: string;
  /**
   * Only for a store with a {@link QuotaStore.ledger}: the usage events of the committed
   * amounts, appended in the same atomic step as they are added.
   */
  readonly usage?: readonly UsageEvent[];
}

/** Counter values as they were before the operation (after a settle's return). */
export interface StoreReadResult {
  /** One value per request counter, in order. */
  readonly values: readonly number[];
}

export interface StoreConsumeResult extends StoreReadResult {
  /** True when every limit admitted and every amount was added; false when nothing was. */
  readonly allowed: boolean;
}

export interface StoreRecordResult extends StoreReadResult {
  /** True when the idempotency key had been seen: nothing was added. */
  readonly duplicate: boolean;
}

export interface StoreSettleResult extends StoreReadResult {
  /** False when the reservation had already been settled or had expired. */
  readonly found: boolean;
}

/** Scopes that can carry per-id overrides (global rules have no id). */
export type OverrideScope = 'user' | 'agent' | 'tenant' | 'run';

/** A run-time override as a store keeps it: the rules of one resource for one id. */
export interface StoredOverride {
  readonly scope: OverrideScope;
  readonly id: string;
  readonly resource: string;
  /** The rules as configured (validated by the engine before they are stored). */
  readonly rules: readonly QuotaRule[];
}

/** Identifies one stored override. */
export interface OverrideKey {
  readonly scope: OverrideScope;
  readonly id: string;
  readonly resource: string;
}

/** Filters for listing overrides; both optional. */
export interface OverrideFilter {
  readonly scope?: OverrideScope;
  readonly id?: string;
}

/** Claims a one-time key (threshold notifications) for `ttlMs` from `now`. */
export interface StoreClaimRequest {
  readonly now: number;
  readonly key: string;
  readonly ttlMs: number;
}

/**
 * The seam between the engine and where counters (and run-time overrides) live. The engine plans a whole operation
 * (every counter of every rule it touches) and hands it over at once, so a networked store
 * can apply it in one round trip; the store decides.
 *
 * Guarantees every store must give (checked by `@quotakit/core/testing`):
 * - each method is atomic: no other operation on the same counters interleaves with it, across
 *   processes and machines for a shared store;
 * - `consume` adds all amounts or none;
 * - counters whose `ttlMs` has passed (by the requests' `now`) read as 0;
 * - a reservation not settled within its `ttlMs` has its amounts returned;
 * - values never go below 0.
 */
export interface QuotaStore {
  read(request: StoreReadRequest): Promise<StoreReadResult>;
  consume(request: StoreConsumeRequest): Promise<StoreConsumeResult>;
  record(request: StoreRecordRequest): Promise<StoreRecordResult>;
  settle(request: StoreSettleRequest): Promise<StoreSettleResult>;
  /** Every override for any of the subject's ids (user, agent, tenant, run). */
  getOverrides(request: { readonly subject: Subject }): Promise<readonly StoredOverride[]>;
  /** Creates or replaces the override for (scope, id, resource). */
  setOverride(override: StoredOverride): Promise<void>;
  /** Deletes one override; resolves false when there was none. */
  removeOverride(key: OverrideKey): Promise<boolean>;
  /** Overrides matching the filter, in no particular order. */
  listOverrides(filter: OverrideFilter): Promise<readonly StoredOverride[]>;
  /**
   * Optional: every override with the version of the whole set, read atomically. A store that
   * offers it changes the version with every `setOverride` and `removeOverride`, and honours
   * `overridesVersion` in read and consume requests: an engine then decides with every other
   * engine's run-time quotas as they stand, instead of as it last listed them (up to
   * `overrideCacheTtlMs` before).
   */
  listVersionedOverrides?(): Promise<VersionedOverrides>;
  /**
   * Atomically claims `key`: true for the first caller until `ttlMs` passes, false for every
   * other caller meanwhile, across every engine sharing the store.
   */
  claim(request: StoreClaimRequest): Promise<boolean>;
  /**
   * Optional: refuses rules this store cannot enforce correctly, by throwing a
   * QuotaConfigError (a Redis Cluster store sharded by tenant cannot keep a global counter
   * atomic with a tenant's, for example). The engine calls it at construction once per
   * configured resource (defaults, then each override), with that resource's rules, and
   * before storing a run-time override; it re-throws a refusal with the configuration path.
   */
  checkRules?(rules: readonly ResolvedRule[]): void;
  /**
   * Optional: the longest any call of this store takes before it fails by itself (RedisStore's
   * `timeoutMs`). When it is within the engine's `storeTimeoutMs`, the engine adds no timer of
   * its own to each call.
   */
  readonly timeoutMs?: number;
  /**
   * Optional: true while the store knows, without a round trip, that no run-time override
   * exists at all (RedisStore and PostgresStore learn it from their replies, for their
   * `overrideHintMs`). The engine then skips override lookups entirely; it must only say true
   * when `getOverrides` would answer with nothing for every subject.
   */
  hasNoOverrides?(): boolean;
  /**
   * Optional: a usage ledger the store keeps itself, written atomically with the counters
   * (PostgresStore's). When present and the engine is given no `ledger` option, the engine
   * passes the usage events of each recorded amount in the request's `usage`, and reads
   * `usageEvents` and `exportUsage` from this ledger; counters and ledger then agree even
   * after a crash.
   */
  readonly ledger?: UsageLedger;
  /** Releases connections and timers. Optional. */
  close?(): Promise<void>;
}
