import type { ResourceName } from './resource-types.js';
import type { QuotaCheckResult, QuotaDecision } from './results.js';

/**
 * What a commit adds to the usage events of the amounts it records.
 *
 * @example
 * await reservation.commit({ llm_tokens: 1234 }, { metadata: { model: 'gpt-4o', provider: 'openai' } });
 */
export interface CommitOptions {
  /** Free-form data for the usage events (model, provider, ...). Defaults to `{}`. */
  readonly metadata?: Record<string, unknown>;
  /** The task the spending belongs to. */
  readonly taskId?: string;
}

/** Amounts by resource, e.g. `{ llm_requests: 1, llm_tokens: 500 }`. */
export type Amounts = Partial<Record<ResourceName, number>>;

/** What a reservation's commit recorded. */
export interface CommitResult {
  /**
   * True when the reservation had already expired (its hold was returned by ttlMs): the
   * actual amounts were still recorded, since the spending happened.
   */
  expired: boolean;
  /** Results after recording, by resource. */
  results: Record<string, QuotaCheckResult>;
}

/**
 * Amounts held for a subject until they are committed, released, or returned by themselves
 * when `expiresAt` passes. Holding the estimate stops concurrent callers from all passing
 * the same check.
 *
 * @example
 * const reservation = await engine.reserve({ userId, amounts: { llm_tokens: 4000 }, ttlMs: 30_000 });
 * if (!reservation.allowed) return refuse(reservation.results);
 * try {
 *   const reply = await callModel();
 *   await reservation.commit({ llm_tokens: reply.usage.total_tokens });
 * } finally {
 *   await reservation.release(); // no-op after a commit
 * }
 */
export interface Reservation {
  /** Unique id of the reservation in the store. */
  readonly id: string;
  /** Whether every resource was admitted (and is now held). */
  readonly allowed: boolean;
  /** Results by resource; `used` includes the held amounts when admitted. */
  readonly results: Record<string, QuotaCheckResult>;
  /** When the hold is returned unless settled first. */
  readonly expiresAt: Date;
  /**
   * Records the actual amounts (even above the estimate) and returns the rest of the hold.
   * Resources missing from `actualAmounts` are committed at their reserved amount; pass 0 to
   * return one whole. A refused reservation commits nothing.
   *
   * `options.metadata` and `options.taskId` go into the usage events of the committed
   * amounts.
   *
   * @throws QuotaValidationError for bad amounts, metadata or a second commit (nothing changes).
   * @throws QuotaStoreError when the store fails; the hold then stays until it expires.
   */
  commit(actualAmounts?: Amounts, options?: CommitOptions): Promise<CommitResult>;
  /** Returns the whole hold. Safe to call after a commit or twice: later calls do nothing. */
  release(): Promise<void>;
}

/**
 * A slot of a gauge (by default one `concurrent_tasks`) held until released or until
 * `expiresAt` passes, so a crashed process leaks nothing.
 */
export interface Lease {
  readonly id: string;
  readonly allowed: boolean;
  readonly result: QuotaCheckResult;
  readonly expiresAt: Date;
  /** Gives the slot back. Safe to call twice. */
  release(): Promise<void>;
}

/** The engine side of a reservation: how to settle it in the store. */
export type SettleFunction = (
  reserved: ReadonlyMap<string, number>,
  actualAmounts: Amounts | null,
  options: CommitOptions | undefined,
) => Promise<CommitResult>;

const EMPTY_COMMIT: CommitResult = Object.freeze({ expired: false, results: {} }) as CommitResult;

/** A {@link Reservation} bound to the engine that made it. */
export class ReservationHandle implements Reservation {
  // Own, enumerable fields: a reservation spreads, logs and compares like a plain object.
  readonly id: string;
  readonly allowed: boolean;
  readonly results: Record<string, QuotaCheckResult>;
  readonly expiresAt: Date;
  readonly #reserved: ReadonlyMap<string, number>;
  readonly #settle: SettleFunction;
  readonly #onSecondCommit: () => never;
  #settled: boolean;

  constructor(init: {
    id: string;
    decision: QuotaDecision;
    expiresAt: number;
    reserved: ReadonlyMap<string, number>;
    settle: SettleFunction;
    onSecondCommit: () => never;
  }) {
    this.id = init.id;
    this.allowed = init.decision.allowed;
    this.results = init.decision.results;
    this.expiresAt = new Date(init.expiresAt);
    this.#reserved = init.reserved;
    this.#settle = init.settle;
    this.#onSecondCommit = init.onSecondCommit;
    // A refused reservation holds nothing: settling it is a no-op.
    this.#settled = !init.decision.allowed;
  }

  /** A plain object for logs and HTTP bodies. */
  toJSON(): Pick<Reservation, 'id' | 'allowed' | 'results' | 'expiresAt'> {
    return { id: this.id, allowed: this.allowed, results: this.results, expiresAt: this.expiresAt };
  }

  async commit(actualAmounts?: Amounts, options?: CommitOptions): Promise<CommitResult> {
    if (this.#settled) {
      if (!this.allowed) return EMPTY_COMMIT;
      this.#onSecondCommit();
    }
    // Marked before the await so that a concurrent second commit or release cannot settle
    // twice; a failed settle un-marks it so the caller may try again.
    this.#settled = true;
    try {
      return await this.#settle(this.#reserved, actualAmounts ?? {}, options);
    } catch (error) {
      this.#settled = false;
      throw error;
    }
  }

  async release(): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    try {
      await this.#settle(this.#reserved, null, undefined);
    } catch (error) {
      this.#settled = false;
      throw error;
    }
  }
}

/** A {@link Lease} over a one-resource reservation. */
export class LeaseHandle implements Lease {
  // Own, enumerable fields: a lease spreads, logs and compares like a plain object.
  readonly id: string;
  readonly allowed: boolean;
  readonly result: QuotaCheckResult;
  readonly expiresAt: Date;
  readonly #reservation: Reservation;

  constructor(reservation: Reservation, resource: string) {
    this.id = reservation.id;
    this.allowed = reservation.allowed;
    this.result = reservation.results[resource]!;
    this.expiresAt = reservation.expiresAt;
    this.#reservation = reservation;
  }

  release(): Promise<void> {
    return this.#reservation.release();
  }
}
