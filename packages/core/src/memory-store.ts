import { LRUCache } from 'lru-cache';
import { QuotaConfigError, StaleOverridesError } from './errors.js';
import { ExpiryQueue, type QueuedItem } from './expiry-queue.js';
import { optionKeys, rejectUnknownOptions } from './known-options.js';
import { fitsWithin } from './statuses.js';
import type {
  OverrideFilter,
  OverrideKey,
  QuotaStore,
  StoreClaimRequest,
  StoreConsumeRequest,
  StoreConsumeResult,
  StoreCounter,
  StoredOverride,
  StoreReadRequest,
  StoreReadResult,
  StoreRecordRequest,
  StoreRecordResult,
  StoreSettleRequest,
  StoreSettleResult,
  VersionedOverrides,
} from './store.js';
import type { Subject } from './subject.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /**
   * Most counters kept; the least recently used are dropped beyond it (a dropped counter
   * starts again from 0, so size it above your number of active subjects x rules).
   * Defaults to `1_000_000`.
   */
  maxCounters?: number;
  /** The same bound as {@link maxCounters}, by the name the design gives it; set one of the two. */
  capacity?: number;
  /** Most idempotency keys remembered. Defaults to `100_000`. */
  maxIdempotencyKeys?: number;
  /** Most notification claims remembered. Defaults to `100_000`. */
  maxClaims?: number;
}

const MEMORY_STORE_OPTIONS = optionKeys<MemoryStoreOptions>({
  maxCounters: true,
  capacity: true,
  maxIdempotencyKeys: true,
  maxClaims: true,
});

const unitSize = () => 1;

interface CounterEntry {
  value: number;
  /** Epoch ms (engine clock) after which the counter reads as 0; Infinity for never. */
  expiresAt: number;
}

interface HeldReservation extends QueuedItem {
  readonly id: string;
  readonly expiresAt: number;
  readonly keys: readonly string[];
  readonly amounts: readonly number[];
}

/**
 * The embedded default store: counters in a bounded LRU cache, one process.
 *
 * Every operation runs synchronously inside one call, so it is atomic within the process;
 * for several processes or machines use `@quotakit/redis` or `@quotakit/postgres`.
 * Time is the engine's clock (`now` of each request), never the wall clock, so injected
 * clocks expire windows and reservations as they would in production.
 *
 * @example
 * const engine = createQuotaEngine({ store: new MemoryStore({ maxCounters: 200_000 }) });
 */
export class MemoryStore implements QuotaStore {
  readonly #counters: LRUCache<string, CounterEntry>;
  readonly #idempotency: LRUCache<string, number>;
  readonly #claims: LRUCache<string, number>;
  /** Overrides by `scope|id`, then by resource. Never evicted: they are configuration. */
  readonly #overrides = new Map<string, Map<string, StoredOverride>>();
  #overrideCount = 0;
  /** Changes with every override written (see {@link listVersionedOverrides}). */
  #overridesVersion = '0';
  readonly #reservations = new Map<string, HeldReservation>();
  readonly #expiries = new ExpiryQueue<HeldReservation>();

  constructor(options: MemoryStoreOptions = {}) {
    rejectUnknownOptions(options, MEMORY_STORE_OPTIONS, 'MemoryStore');
    if (options.maxCounters !== undefined && options.capacity !== undefined) {
      throw new QuotaConfigError('capacity', 'is another name for maxCounters: set only one');
    }
    const maxCounters = options.maxCounters ?? options.capacity ?? 1_000_000;
    const maxIdempotencyKeys = options.maxIdempotencyKeys ?? 100_000;
    const maxClaims = options.maxClaims ?? 100_000;
    for (const [name, value] of [
      [options.capacity === undefined ? 'maxCounters' : 'capacity', maxCounters],
      ['maxIdempotencyKeys', maxIdempotencyKeys],
      ['maxClaims', maxClaims],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new QuotaConfigError(name, `must be a positive whole number, got ${String(value)}`);
      }
    }
    // Bounded by maxSize (each entry weighs 1) rather than `max`: lru-cache preallocates
    // `max` slots up front, which would cost tens of MB and ~100 ms per store at the default.
    this.#counters = new LRUCache({ maxSize: maxCounters, sizeCalculation: unitSize });
    this.#idempotency = new LRUCache({ maxSize: maxIdempotencyKeys, sizeCalculation: unitSize });
    this.#claims = new LRUCache({ maxSize: maxClaims, sizeCalculation: unitSize });
  }

  /** Number of counters currently held (expired ones included until they are dropped). */
  get size(): number {
    return this.#counters.size;
  }

  /**
   * Number of reservations held in memory: taken and not yet committed, released or expired.
   * (Counted from the expiry queue, which is what would grow if settled ones lingered.)
   */
  get heldReservations(): number {
    return this.#expiries.size;
  }

  read(request: StoreReadRequest): Promise<StoreReadResult> {
    return answer(() => this.readSync(request));
  }

  consume(request: StoreConsumeRequest): Promise<StoreConsumeResult> {
    return answer(() => this.consumeSync(request));
  }

  record(request: StoreRecordRequest): Promise<StoreRecordResult> {
    return answer(() => this.recordSync(request));
  }

  settle(request: StoreSettleRequest): Promise<StoreSettleResult> {
    return answer(() => this.settleSync(request));
  }

  getOverrides(request: { readonly subject: Subject }): Promise<readonly StoredOverride[]> {
    return Promise.resolve(this.getOverridesSync(request.subject));
  }

  setOverride(override: StoredOverride): Promise<void> {
    const key = `${override.scope}|${override.id}`;
    let byResource = this.#overrides.get(key);
    if (byResource === undefined) {
      byResource = new Map();
      this.#overrides.set(key, byResource);
    }
    if (!byResource.has(override.resource)) this.#overrideCount += 1;
    byResource.set(override.resource, freezeOverride(override));
    this.#overridesChanged();
    return Promise.resolve();
  }

  removeOverride(key: OverrideKey): Promise<boolean> {
    const byResource = this.#overrides.get(`${key.scope}|${key.id}`);
    const removed = byResource?.delete(key.resource) ?? false;
    if (removed) {
      this.#overrideCount -= 1;
      this.#overridesChanged();
    }
    if (byResource?.size === 0) this.#overrides.delete(`${key.scope}|${key.id}`);
    return Promise.resolve(removed);
  }

  listOverrides(filter: OverrideFilter): Promise<readonly StoredOverride[]> {
    const found: StoredOverride[] = [];
    for (const byResource of this.#overrides.values()) {
      for (const override of byResource.values()) {
        if (filter.scope !== undefined && override.scope !== filter.scope) continue;
        if (filter.id !== undefined && override.id !== filter.id) continue;
        found.push(override);
      }
    }
    return Promise.resolve(found);
  }

  /**
   * Every override with their version, which changes with each `setOverride` and
   * `removeOverride`; reads and consumes that name another version are refused with a
   * StaleOverridesError. (An engine reads an in-process store directly and needs no version:
   * this serves engines that see the store only through its asynchronous methods.)
   */
  async listVersionedOverrides(): Promise<VersionedOverrides> {
    return { version: this.#overridesVersion, overrides: await this.listOverrides({}) };
  }

  claim(request: StoreClaimRequest): Promise<boolean> {
    return Promise.resolve(this.claimSync(request));
  }

  /**
   * Nothing to release: the store holds no connection and no timer, and its memory goes with
   * it. Its counters stay, so an engine closed to flush its notifications (or one that shares
   * the store) goes on counting from where it was rather than from zero.
   */
  async close(): Promise<void> {}

  /** Number of run-time overrides held: 0 lets the engine skip override lookups. */
  get overrideCount(): number {
    return this.#overrideCount;
  }

  /** Synchronous {@link getOverrides}. */
  getOverridesSync(subject: Subject): StoredOverride[] {
    const found: StoredOverride[] = [];
    if (this.#overrideCount === 0) return found;
    const ids: Array<[string, string | undefined]> = [
      ['user', subject.userId],
      ['agent', subject.agentId],
      ['tenant', subject.tenantId],
      ['run', subject.runId],
    ];
    for (const [scope, id] of ids) {
      if (id === undefined) continue;
      const byResource = this.#overrides.get(`${scope}|${id}`);
      if (byResource !== undefined) found.push(...byResource.values());
    }
    return found;
  }

  #overridesChanged(): void {
    this.#overridesVersion = String(Number(this.#overridesVersion) + 1);
  }

  /** @throws StaleOverridesError when a request names an overrides version not current. */
  #checkVersion(version: string | undefined): void {
    if (version !== undefined && version !== this.#overridesVersion) {
      throw new StaleOverridesError();
    }
  }

  /** Synchronous {@link claim}. */
  claimSync(request: StoreClaimRequest): boolean {
    const claimedUntil = this.#claims.get(request.key);
    if (claimedUntil !== undefined && claimedUntil > request.now) return false;
    this.#claims.set(request.key, request.now + request.ttlMs);
    return true;
  }

  /** Synchronous {@link read}: lets the engine skip a promise on the in-memory hot path. */
  readSync(request: StoreReadRequest): StoreReadResult {
    this.#checkVersion(request.overridesVersion);
    this.#expireReservations(request.now);
    const { counters, now } = request;
    const values = new Array<number>(counters.length);
    for (let i = 0; i < counters.length; i++) {
      const entry = this.#counters.get(counters[i]!.key);
      values[i] = entry !== undefined && entry.expiresAt > now ? entry.value : 0;
    }
    return { values };
  }

  /** Synchronous {@link consume}. */
  consumeSync(request: StoreConsumeRequest): StoreConsumeResult {
    this.#checkVersion(request.overridesVersion);
    const { now, counters, limits } = request;
    this.#expireReservations(now);
    const entries = this.#lookup(counters, now);
    const values = valuesOf(entries, counters.length);
    for (const limit of limits) {
      let used = values[limit.counter]!;
      if (limit.previous !== undefined) {
        used += values[limit.previous]! * (limit.previousWeight ?? 0);
      }
      const amount = counters[limit.counter]!.amount;
      if (!fitsWithin(used + amount, limit.limit)) return { allowed: false, values };
    }
    this.#add(counters, entries, now);
    if (request.hold) this.#hold(request.hold.id, request.hold.ttlMs, counters, now);
    return { allowed: true, values };
  }

  /** Synchronous {@link record}. */
  recordSync(request: StoreRecordRequest): StoreRecordResult {
    const { now, counters, idempotencyKey } = request;
    this.#expireReservations(now);
    const entries = this.#lookup(counters, now);
    const values = valuesOf(entries, counters.length);
    if (idempotencyKey !== undefined) {
      const seenUntil = this.#idempotency.get(idempotencyKey);
      if (seenUntil !== undefined && seenUntil > now) return { duplicate: true, values };
      this.#idempotency.set(idempotencyKey, now + request.idempotencyTtlMs);
    }
    this.#add(counters, entries, now);
    return { duplicate: false, values };
  }

  /** Synchronous {@link settle}. */
  settleSync(request: StoreSettleRequest): StoreSettleResult {
    const { now, counters } = request;
    this.#expireReservations(now);
    const held = this.#reservations.get(request.reservationId);
    if (held) this.#return(held, now);
    const entries = this.#lookup(counters, now);
    const values = valuesOf(entries, counters.length);
    this.#add(counters, entries, now);
    return { found: held !== undefined, values };
  }

  // Reused by every synchronous call (they never interleave): one allocation less per call.
  #scratch: (CounterEntry | undefined)[] = [];

  /**
   * Live entries of the counters (undefined for absent or expired ones), one LRU lookup each,
   * in a scratch array valid until the next call.
   */
  #lookup(counters: readonly StoreCounter[], now: number): (CounterEntry | undefined)[] {
    // Slots past counters.length keep stale entries from earlier calls; every reader stops
    // at counters.length (shrinking the array would cost more than the lookups).
    const entries = this.#scratch;
    for (let i = 0; i < counters.length; i++) {
      const entry = this.#counters.get(counters[i]!.key);
      entries[i] = entry !== undefined && entry.expiresAt > now ? entry : undefined;
    }
    return entries;
  }

  #add(
    counters: readonly StoreCounter[],
    entries: readonly (CounterEntry | undefined)[],
    now: number,
  ): void {
    for (let i = 0; i < counters.length; i++) {
      const counter = counters[i]!;
      if (counter.amount === 0) continue;
      const expiresAt = counter.ttlMs === null ? Number.POSITIVE_INFINITY : now + counter.ttlMs;
      const entry = entries[i];
      if (entry === undefined) {
        if (counter.amount > 0) {
          this.#counters.set(counter.key, { value: counter.amount, expiresAt });
        }
        continue;
      }
      entry.value = Math.max(0, entry.value + counter.amount);
      if (expiresAt > entry.expiresAt) entry.expiresAt = expiresAt;
    }
  }

  #hold(id: string, ttlMs: number, counters: readonly StoreCounter[], now: number): void {
    const keys: string[] = [];
    const amounts: number[] = [];
    for (const counter of counters) {
      if (counter.amount > 0) {
        keys.push(counter.key);
        amounts.push(counter.amount);
      }
    }
    const held: HeldReservation = { id, expiresAt: now + ttlMs, keys, amounts, queueIndex: -1 };
    this.#reservations.set(id, held);
    this.#expiries.push(held);
  }

  #return(held: HeldReservation, now: number): void {
    this.#reservations.delete(held.id);
    this.#expiries.remove(held);
    for (let i = 0; i < held.keys.length; i++) {
      const entry = this.#counters.get(held.keys[i]!);
      if (entry !== undefined && entry.expiresAt > now) {
        entry.value = Math.max(0, entry.value - held.amounts[i]!);
      }
    }
  }

  #expireReservations(now: number): void {
    if (this.#expiries.size === 0) return;
    for (let held = this.#expiries.popExpired(now); held; held = this.#expiries.popExpired(now)) {
      this.#return(held, now);
    }
  }
}

// Stored overrides are shared with every engine on the store: keep them immutable.
function freezeOverride(override: StoredOverride): StoredOverride {
  return Object.freeze({
    scope: override.scope,
    id: override.id,
    resource: override.resource,
    rules: Object.freeze(override.rules.map((rule) => Object.freeze({ ...rule }))),
  });
}

function valuesOf(entries: readonly (CounterEntry | undefined)[], count: number): number[] {
  const values = new Array<number>(count);
  for (let i = 0; i < count; i++) values[i] = entries[i]?.value ?? 0;
  return values;
}

/** A synchronous answer as a promise: a throw becomes a rejection, as from any store. */
function answer<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}
