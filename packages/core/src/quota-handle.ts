import type { QuotaEngine } from './engine.js';
import { QuotaValidationError } from './errors.js';
import type { Amounts, Reservation } from './reservation.js';
import type { ResourceName } from './resource-types.js';
import type { QuotaCheckResult, QuotaDecision } from './results.js';
import type { Subject } from './subject.js';

/** How an HTTP middleware takes a request's amounts. */
export type QuotaMode = 'consume' | 'reserve';

interface HandleInit {
  readonly engine: QuotaEngine;
  readonly mode: QuotaMode;
  readonly subject: Subject;
  readonly decision?: QuotaDecision;
  readonly reservation?: Reservation;
  readonly onError: (error: unknown) => void;
}

const NO_RESULTS: Readonly<Record<string, QuotaCheckResult>> = Object.freeze({});

/**
 * What a request handler behind `quota()` sees as `req.quota` (Express) or `c.get('quota')`
 * (Hono): who was charged, the engine's answer, and {@link record} to report what the
 * handler really spent.
 *
 * Recorded amounts count only when the response succeeds (neither thrown nor 5xx, and the
 * client stayed to the end):
 * - `mode: 'reserve'`: the reservation is committed with the recorded amounts (a resource
 *   not recorded is committed at its reserved amount) when the response finishes, and
 *   released whole when it fails;
 * - `mode: 'consume'`: the amounts were taken up front and stay taken; recorded amounts are
 *   recorded on top when the response finishes (where the adapter cannot see a streamed
 *   response end, each amount recorded after the handler answered counts straight away:
 *   {@link recordAtOnce}).
 *
 * @example
 * app.post('/chat', quota({ engine, mode: 'reserve', amounts: { llm_tokens: 4000 } }), async (req, res) => {
 *   const reply = await callModel(req.body);
 *   req.quota.record('llm_tokens', reply.usage.total_tokens);
 *   res.json(reply);
 * });
 */
export class QuotaHandle {
  /** The handle of a request that `skip` let through: it records nothing. */
  static readonly SKIPPED: QuotaHandle = Object.freeze(new QuotaHandle(undefined)) as QuotaHandle;

  /** `'skip'` when the request was skipped (nothing charged, `record` does nothing). */
  readonly mode: QuotaMode | 'skip';
  /** Who the request was charged to (from `identify`); undefined when skipped. */
  readonly subject: Subject | undefined;
  /** The engine's answer in consume mode. */
  readonly decision: QuotaDecision | undefined;
  /** The reservation in reserve mode. */
  readonly reservation: Reservation | undefined;
  readonly #engine: QuotaEngine | undefined;
  readonly #onError: (error: unknown) => void;
  #recorded: Record<string, number> | undefined;
  #settled = false;
  /** Consume mode, once the response has gone out: each record is recorded at once. */
  #atOnce = false;
  #watch: (() => void) | undefined;

  constructor(init: HandleInit | undefined) {
    this.mode = init?.mode ?? 'skip';
    this.subject = init?.subject;
    this.decision = init?.decision;
    this.reservation = init?.reservation;
    this.#engine = init?.engine;
    this.#onError = init?.onError ?? noop;
  }

  /** Results by resource, as the engine judged the request. Empty when skipped. */
  get results(): Readonly<Record<string, QuotaCheckResult>> {
    return this.reservation?.results ?? this.decision?.results ?? NO_RESULTS;
  }

  /** What the handler recorded so far, by resource. */
  get recorded(): Readonly<Amounts> {
    return { ...this.#recorded };
  }

  /**
   * Whether settling the handle will do something: a reservation that holds amounts, or
   * recorded amounts in consume mode, not settled yet.
   */
  get pending(): boolean {
    if (this.#settled || this.#engine === undefined) return false;
    if (this.reservation !== undefined) return this.reservation.allowed;
    return this.#recorded !== undefined;
  }

  /**
   * Records that the handler spent `amount` of `resource` (added to earlier records of it).
   * Nothing is written before the response finishes; see the class description. A record
   * after the response settled is not counted and goes to `onError`.
   *
   * @throws QuotaValidationError when `amount` is not a finite number.
   */
  record(resource: ResourceName, amount: number): void {
    if (typeof amount !== 'number' || !Number.isFinite(amount)) {
      throw new QuotaValidationError(
        `Amount for ${String(resource)} must be a finite number, got ${String(amount)}`,
      );
    }
    if (this.#engine === undefined) return;
    if (this.#atOnce) {
      this.#engine
        .recordUsage({ ...this.subject, resource, amount })
        .then(undefined, this.#onError);
      return;
    }
    if (this.#settled) {
      this.#onError(
        new QuotaValidationError(
          `quota.record(${JSON.stringify(resource)}) came after the response settled: not counted`,
        ),
      );
      return;
    }
    this.#recorded ??= Object.create(null) as Record<string, number>;
    this.#recorded[resource] = (this.#recorded[resource] ?? 0) + amount;
    const watch = this.#watch;
    if (watch !== undefined) {
      this.#watch = undefined;
      watch();
    }
  }

  /**
   * For adapters that cannot see a streamed response end (Hono in consume mode): the response
   * has gone out and has not failed, so from now on each amount the handler records (while its
   * body streams, say) is recorded at once, rather than held for a settlement that will not
   * come. Call it after {@link settle}, if any. Does nothing in reserve mode or for a skipped
   * request.
   */
  recordAtOnce(): void {
    if (this.#engine !== undefined && this.reservation === undefined) this.#atOnce = true;
  }

  /**
   * For adapters: calls `watch` once the handle has something to settle, at once when it
   * already has (a reservation), else on the first {@link record}. `watch` then arranges for
   * {@link settle} to run when the response ends.
   */
  whenPending(watch: () => void): void {
    if (this.pending) watch();
    else if (this.#engine !== undefined && !this.#settled) this.#watch = watch;
  }

  /**
   * Settles the handle; later calls do nothing. The adapters call it when the response is
   * over; an application may call it first, such as `settle(false)` from an Express error
   * handler for an error answered below 500, which the adapter cannot tell from a 4xx it
   * should commit. `succeeded` is false when the handler threw, answered 5xx or the client
   * went away: then a reservation is released whole and nothing recorded counts. Never
   * rejects: a store failure goes to `onError` (a reservation then returns by itself after
   * its `ttlMs`).
   */
  async settle(succeeded: boolean): Promise<void> {
    if (this.#settled || this.#engine === undefined) return;
    this.#settled = true;
    this.#watch = undefined;
    try {
      const { reservation } = this;
      if (reservation !== undefined) {
        if (succeeded) await reservation.commit(this.#recorded ?? {});
        else await reservation.release();
        return;
      }
      const recorded = this.#recorded;
      if (!succeeded || recorded === undefined) return;
      const subject = this.subject!;
      await Promise.all(
        Object.keys(recorded).map((resource) =>
          this.#engine!.recordUsage({ ...subject, resource, amount: recorded[resource]! }),
        ),
      );
    } catch (error) {
      this.#onError(error);
    }
  }
}

function noop(): void {}
