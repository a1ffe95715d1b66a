/** The part of a Node stream that batching needs: an ioredis client's socket. */
interface CorkableStream {
  cork(): void;
  uncork(): void;
}

/**
 * Writes the script calls of one tick to the client's socket a few at a time instead of one
 * system call each. When a busy server answers many requests at once, each reply from Redis
 * resumes many callers in the same tick and each sends its next call: written one by one,
 * those sends cost the process more (a system call per command) than the rest of the store
 * together, and Redis reads them one by one too.
 *
 * The first call of a tick is written at once, as without batching: a lone call waits for
 * nothing, and while no other call is in flight (one request at a time) nothing is held at
 * all, which costs nothing. Later calls of the same tick are held (`cork()`, Node's own
 * buffering of a stream's writes) and written `size` at a time, and whatever is held when the
 * tick ends goes out then (`process.nextTick`). Small batches, not one per tick, so that Redis starts
 * on the first while the process still sends the rest: a whole tick in one write measured
 * slower than none here, the two processes taking turns instead of working side by side.
 *
 * Applies to clients with a `stream` that corks (an ioredis `Redis`); a `Cluster` or another
 * client is written to as it always is. Other commands sent on the same client in that tick
 * wait with the batch (never longer than the end of the tick), in their order.
 */
export class WriteBatcher {
  readonly #size: number;
  /** The stream held since the first call of the current tick; undefined between ticks. */
  #corked: CorkableStream | undefined;
  /** Calls held since the last write. */
  #held = 0;

  /** @param size Calls written together; 1 turns batching off. */
  constructor(size: number) {
    this.#size = size;
  }

  /**
   * Called just after a command was handed to `client`; `othersInFlight` when other calls
   * still wait for their answers.
   */
  written(client: object, othersInFlight: boolean): void {
    if (this.#size <= 1) return;
    const corked = this.#corked;
    if (corked !== undefined && corked === (client as { stream?: unknown }).stream) {
      this.#held += 1;
      if (this.#held >= this.#size) {
        corked.uncork();
        corked.cork();
        this.#held = 0;
      }
      return;
    }
    if (!othersInFlight) return;
    const stream = (client as { stream?: Partial<CorkableStream> }).stream;
    if (typeof stream?.cork !== 'function' || typeof stream.uncork !== 'function') return;
    // Still held from this tick on a socket that has since been replaced (a reconnect):
    // written now, so that nothing waits on the old one.
    if (corked !== undefined) this.#release();
    stream.cork();
    this.#corked = stream as CorkableStream;
    this.#held = 0;
    process.nextTick(this.#release);
  }

  readonly #release = (): void => {
    const corked = this.#corked;
    if (corked === undefined) return;
    this.#corked = undefined;
    corked.uncork();
  };
}
