/** A call waiting for its answer until a deadline; see {@link TimeoutQueue}. */
export interface Expiring {
  /** The `performance.now()` past which the call has waited too long. */
  readonly deadline: number;
  /** True once the call has its answer (or has expired): the queue then only forgets it. */
  readonly settled: boolean;
  /** Called once, when the deadline passes while the call is not settled. */
  expire(): void;
}

/** Slots of a new queue; it doubles when full and keeps its size (the most calls in flight). */
const INITIAL_SLOTS = 16;

/**
 * The deadlines of calls that all wait the same `timeoutMs`, kept by one timer instead of one
 * per call: a timer per call (create, unref, clear) costs more than the rest of a call's
 * bookkeeping, and with a single timeout the deadlines come in the order the calls do, so a
 * queue sorted by deadline is a plain FIFO (a ring, so that it allocates nothing per call).
 *
 * The timer runs only while calls wait: it fires at the deadline of the oldest unsettled call
 * (never before it, as a timer of its own would), expires every call then due and is armed again
 * for the next one. It is `unref()`ed: waiting calls never keep a process alive.
 */
export class TimeoutQueue {
  readonly #timeoutMs: number;
  #slots: Array<Expiring | undefined> = new Array(INITIAL_SLOTS);
  /** Index of the oldest call not yet forgotten. */
  #head = 0;
  #size = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Calls watched: those waiting, and settled ones not yet forgotten behind an older one still
   * waiting. About the number of calls in flight.
   */
  get size(): number {
    return this.#size;
  }

  /** The deadline of a call that starts now. */
  deadline(): number {
    return performance.now() + this.#timeoutMs;
  }

  /** Watches a call whose deadline is at most `timeoutMs` away, later than any added before. */
  add(call: Expiring): void {
    if (this.#size === this.#slots.length) this.#grow();
    const slots = this.#slots;
    slots[(this.#head + this.#size) & (slots.length - 1)] = call;
    this.#size += 1;
    // An armed timer fires by the oldest deadline; this one is later.
    if (this.#timer === undefined) this.#arm(this.#timeoutMs);
  }

  /**
   * Forgets the settled calls at the front: called when a call settles, it keeps the queue about
   * as long as the number of calls in flight (answers mostly come in the order of the calls).
   */
  trim(): void {
    const slots = this.#slots;
    const mask = slots.length - 1;
    let head = this.#head;
    let size = this.#size;
    while (size > 0 && slots[head]!.settled) {
      slots[head] = undefined;
      head = (head + 1) & mask;
      size -= 1;
    }
    this.#head = head;
    this.#size = size;
  }

  #grow(): void {
    const slots = this.#slots;
    const grown = new Array<Expiring | undefined>(slots.length * 2);
    for (let i = 0; i < this.#size; i++) grown[i] = slots[(this.#head + i) & (slots.length - 1)];
    this.#slots = grown;
    this.#head = 0;
  }

  #arm(delayMs: number): void {
    const timer = setTimeout(this.#sweep, delayMs);
    timer.unref?.();
    this.#timer = timer;
  }

  readonly #sweep = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    const slots = this.#slots;
    const mask = slots.length - 1;
    while (this.#size > 0) {
      const call = slots[this.#head]!;
      if (!call.settled) {
        if (call.deadline > now) break;
        call.expire();
      }
      slots[this.#head] = undefined;
      this.#head = (this.#head + 1) & mask;
      this.#size -= 1;
    }
    if (this.#size > 0) {
      this.#arm(Math.max(1, Math.ceil(slots[this.#head]!.deadline - now)));
    }
  };
}
