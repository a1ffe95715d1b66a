import type { StoredOverride } from './store.js';
import { SUBJECT_SCOPES, type Subject } from './subject.js';

/** Most overrides a store may hold for an engine to keep them all as a directory. */
export const MAX_DIRECTORY_SIZE = 10_000;
/** How long a store with more overrides than that is not listed again, in ms. */
const TOO_MANY_RETRY_MS = 60_000;

/**
 * Every run-time override of a networked store, listed in one call and trusted for the cache
 * time, while the store holds at most {@link MAX_DIRECTORY_SIZE}. Most subjects have none:
 * asked id by id, each new id cost a round trip of its own every cache period (with 100,000
 * users in turn and one override anywhere, every consume took two), where one listing
 * answers for them all.
 */
export class OverrideDirectory {
  readonly #list: () => Promise<ListedOverrides>;
  readonly #ttlMs: number;
  readonly #onError: (error: unknown) => void;
  /** Overrides by `scope|id`; undefined until listed, and after {@link forget}. */
  #byId: Map<string, StoredOverride[]> | undefined;
  /** The store's version of the listing in #byId, when the store versions its overrides. */
  #version: string | undefined;
  /** The last version the store said is out of date (see {@link forgetStale}). */
  #staleVersion: string | undefined;
  #listedAt = Number.NEGATIVE_INFINITY;
  #listing: Promise<void> | undefined;
  /** When (`performance.now()`) the listing in progress began. */
  #listingStartedAt = 0;
  /** Until when the store is known to hold too many overrides for a directory. */
  #tooManyUntil = Number.NEGATIVE_INFINITY;
  /** Counts {@link forget} calls: a listing begun before one is not installed. */
  #generation = 0;

  /**
   * @param list - every override of the store (its `listOverrides({})`), with their version
   *   when the store has one (`listVersionedOverrides()`).
   * @param ttlMs - how long a listing is trusted; 0 turns the directory off.
   * @param onError - receives a listing that failed.
   */
  constructor(
    list: () => Promise<ListedOverrides>,
    ttlMs: number,
    onError: (error: unknown) => void,
  ) {
    this.#list = list;
    this.#ttlMs = ttlMs;
    this.#onError = onError;
  }

  /** The overrides of the subject's ids from a listing younger than the ttl; else undefined. */
  peek(subject: Subject, now: number): readonly StoredOverride[] | undefined {
    const byId = this.#byId;
    if (byId === undefined || now - this.#listedAt >= this.#ttlMs) return undefined;
    // Most stores hold no override at all: no key to build for each of the subject's ids.
    if (byId.size === 0) return NONE;
    let found: readonly StoredOverride[] = NONE;
    for (const [scope, field] of SUBJECT_SCOPES) {
      const id = subject[field];
      if (id === undefined) continue;
      const own = byId.get(`${scope}|${id}`);
      if (own !== undefined) found = found.length === 0 ? own : [...found, ...own];
    }
    return found;
  }

  /**
   * The overrides of the subject's ids, listing the store again (one listing at a time,
   * shared by every caller) when the last listing is too old. Undefined when the directory
   * is off or the store holds too many overrides for one: ask id by id. A listing that fails
   * goes to `onError`, and the lookup rejects with a {@link ListingFailedError}.
   */
  async lookup(subject: Subject, now: number): Promise<readonly StoredOverride[] | undefined> {
    const listed = this.peek(subject, now);
    if (listed !== undefined) return listed;
    if (this.#ttlMs === 0 || now < this.#tooManyUntil) return undefined;
    if (this.#listing === undefined) {
      this.#listingStartedAt = performance.now();
      this.#listing = this.#relist(now).finally(() => {
        this.#listing = undefined;
      });
    }
    const startedAt = this.#listingStartedAt;
    try {
      await this.#listing;
    } catch (error) {
      this.#onError(error);
      throw new ListingFailedError(error, performance.now() - startedAt);
    }
    return this.#byId === undefined ? undefined : this.peek(subject, this.#listedAt);
  }

  /**
   * The store's version of the current listing: undefined when there is none, or the store
   * does not version its overrides. Read it together with a {@link peek} or {@link lookup}
   * answer, in the same turn.
   */
  get version(): string | undefined {
    return this.#byId === undefined ? undefined : this.#version;
  }

  /**
   * The store said that the listing at `version` is out of date: drops it, unless it has been
   * replaced already, and remembers the version, so that a listing under way that still comes
   * back with it is made again rather than installed. Many calls in flight learn it at once:
   * they share one new listing rather than throw away each other's (no `forget`, whose
   * listings under way are discarded and their callers left to per-id reads).
   */
  forgetStale(version: string): void {
    this.#staleVersion = version;
    if (this.#byId !== undefined && this.#version === version) {
      this.#byId = undefined;
      this.#version = undefined;
    }
  }

  /** Drops the listing, so that the next lookup lists again (after this engine's own change). */
  forget(): void {
    this.#byId = undefined;
    this.#version = undefined;
    this.#generation += 1;
  }

  async #relist(now: number): Promise<void> {
    const generation = this.#generation;
    let listed = await this.#list();
    // Begun before the store said this version is out of date: list once more.
    if (listed.version !== undefined && listed.version === this.#staleVersion) {
      listed = await this.#list();
    }
    const { overrides: all, version } = listed;
    // Begun before this engine changed an override: it may miss the change.
    if (generation !== this.#generation) return;
    if (all.length > MAX_DIRECTORY_SIZE) {
      this.#byId = undefined;
      this.#version = undefined;
      this.#tooManyUntil = now + TOO_MANY_RETRY_MS;
      return;
    }
    const byId = new Map<string, StoredOverride[]>();
    for (const override of all) {
      const key = `${override.scope}|${override.id}`;
      const own = byId.get(key);
      if (own === undefined) byId.set(key, [override]);
      else own.push(override);
    }
    this.#byId = byId;
    this.#version = version;
    this.#listedAt = now;
  }
}

/** What the directory lists: every override, with the store's version of them if it has one. */
export interface ListedOverrides {
  readonly overrides: readonly StoredOverride[];
  readonly version: string | undefined;
}

const NONE: readonly StoredOverride[] = Object.freeze([]);

/**
 * A listing of overrides failed; `elapsedMs` is how long it ran, from its start (callers that
 * joined it late waited less), so that a listing that used up its time can be told from one
 * refused at once.
 */
export class ListingFailedError extends Error {
  readonly elapsedMs: number;

  constructor(cause: unknown, elapsedMs: number) {
    super('Listing the run-time overrides failed', { cause });
    this.elapsedMs = elapsedMs;
  }
}
