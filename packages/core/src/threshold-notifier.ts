import { LRUCache } from 'lru-cache';
import type { ThresholdEvent, ThresholdListener } from './events.js';
import type { QuotaCheckResult } from './results.js';
import type { QuotaStore, StoreClaimRequest } from './store.js';
import type { Subject } from './subject.js';

/** How long a crossing of a `total` rule (no window) stays claimed. */
const TOTAL_CLAIM_TTL_MS = 86_400_000;

const NOTIFIED = new Set(['approaching_limit', 'at_limit', 'exceeded']);

/**
 * Turns results into threshold events: once per rule, subject, window and status across
 * every engine on the store (a claim in the store decides which engine fires), delivered to
 * listeners off the hot path.
 */
export class ThresholdNotifier {
  readonly #listeners = new Set<ThresholdListener>();
  readonly #claim: (request: StoreClaimRequest) => boolean | Promise<boolean>;
  readonly #onError: (error: unknown) => void;
  /** Keys this engine already claimed or saw claimed: no store call for them again. */
  readonly #seen = new LRUCache<string, number>({ maxSize: 10_000, sizeCalculation: () => 1 });
  readonly #pending = new Set<Promise<void>>();

  constructor(
    store: QuotaStore & { claimSync?: (r: StoreClaimRequest) => boolean },
    onError: (error: unknown) => void,
  ) {
    this.#claim =
      typeof store.claimSync === 'function'
        ? store.claimSync.bind(store)
        : (request) => store.claim(request);
    this.#onError = onError;
  }

  /** Whether anyone listens: the engine skips all of this otherwise. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  add(listener: ThresholdListener): void {
    this.#listeners.add(listener);
  }

  remove(listener: ThresholdListener): void {
    this.#listeners.delete(listener);
  }

  /**
   * Looks for crossings in `results`; never throws, never delays the caller. With
   * `refusalsOnly` (a refused request: no usage moved), only the rules that did not admit it
   * are notified, as `exceeded` (shadow rules too: they are notified like any other); the
   * other rules' statuses judge usage the request would have brought, and notifying them
   * would use up their one event of the window before usage really gets there.
   */
  observe(
    results: Iterable<QuotaCheckResult>,
    subject: Subject,
    now: number,
    refusalsOnly = false,
  ): void {
    for (const result of results) {
      for (const rule of result.rules) {
        // A per_request cap judges one request and never accumulates: no usage crosses it.
        if (!NOTIFIED.has(rule.status) || rule.used === null || rule.period === 'per_request') {
          continue;
        }
        if (refusalsOnly && rule.allowed) continue;
        const windowEnd = rule.resetAt === null ? 'total' : rule.resetAt.getTime().toString(36);
        const key = `${result.resource}|${rule.period}|${windowEnd}|${rule.scope}|${rule.subjectId ?? ''}|${rule.status}|${rule.limit}`;
        const seenUntil = this.#seen.get(key);
        if (seenUntil !== undefined && seenUntil > now) continue;
        const ttlMs =
          rule.resetAt === null ? TOTAL_CLAIM_TTL_MS : Math.max(1, rule.resetAt.getTime() - now);
        this.#seen.set(key, now + ttlMs);
        const event: ThresholdEvent = {
          type: 'threshold',
          resource: result.resource,
          status: rule.status as ThresholdEvent['status'],
          subject: { ...subject },
          scope: rule.scope,
          used: rule.used,
          limit: rule.limit,
          remaining: rule.remaining ?? 0,
          period: rule.period,
          resetAt: rule.resetAt,
          at: new Date(now),
        };
        this.#track(this.#claimAndEmit({ now, key, ttlMs }, event));
      }
    }
  }

  /** Waits for claims and listeners in flight, then for each listener's own queue. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    await Promise.allSettled([...this.#listeners].map((listener) => listener.flush?.()));
  }

  async #claimAndEmit(request: StoreClaimRequest, event: ThresholdEvent): Promise<void> {
    // Yield first: the quota decision returns before any notification work happens.
    await Promise.resolve();
    if (!(await this.#claim(request))) return;
    for (const listener of this.#listeners) {
      try {
        const delivered = listener(event);
        if (delivered instanceof Promise) this.#track(delivered.then(undefined, this.#onError));
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  #track(work: Promise<void>): void {
    const guarded = work.then(undefined, this.#onError);
    this.#pending.add(guarded);
    guarded.finally(() => this.#pending.delete(guarded));
  }
}
