/** A call that must be settled before its deadline: told once when the deadline passes. */
export interface Abandonable {
  abandon(): void;
}

/**
 * One timer for every unsettled call with the same delay, instead of a `setTimeout` per call:
 * a call is only added to and removed from an ordered map, and the timer, armed for the
 * oldest call, rarely fires (calls settle long before their deadline). With one delay and a
 * monotonic clock, insertion order is deadline order, so a sweep stops at the first call
 * not yet due and re-arms for it.
 *
 * The timer is `unref()`ed: it never keeps a process alive (a process that ends has nothing
 * left to bill).
 */
export class AbandonmentTimer {
  readonly #delayMs: number;
  /** Unsettled calls and their deadlines (`performance.now()` ms), oldest first. */
  readonly #watched = new Map<Abandonable, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  private constructor(delayMs: number) {
    this.#delayMs = delayMs;
  }

  static readonly #byDelay = new Map<number, AbandonmentTimer>();

  /** The shared timer for `delayMs`, made on first use. */
  static after(delayMs: number): AbandonmentTimer {
    let timer = AbandonmentTimer.#byDelay.get(delayMs);
    if (timer === undefined) {
      timer = new AbandonmentTimer(delayMs);
      AbandonmentTimer.#byDelay.set(delayMs, timer);
    }
    return timer;
  }

  /** Calls `call.abandon()` once `delayMs` from now, unless {@link unwatch} comes first. */
  watch(call: Abandonable): void {
    const deadline = performance.now() + this.#delayMs;
    this.#watched.set(call, deadline);
    if (this.#timer === undefined) this.#arm(deadline);
  }

  /** The call settled: it is no longer due. Safe to call twice. */
  unwatch(call: Abandonable): void {
    this.#watched.delete(call);
  }

  #arm(deadline: number): void {
    this.#timer = setTimeout(this.#sweep, Math.max(0, deadline - performance.now()));
    (this.#timer as { unref?: () => void }).unref?.();
  }

  readonly #sweep = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    for (const [call, deadline] of this.#watched) {
      if (deadline > now) {
        this.#arm(deadline);
        return;
      }
      this.#watched.delete(call);
      call.abandon();
    }
  };
}
