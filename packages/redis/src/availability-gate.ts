import type { RedisScriptClient } from './redis-client.js';

/** Client states (ioredis Redis and Cluster) in which nothing can reach Redis. */
const DOWN_STATES: ReadonlySet<string> = new Set(['reconnecting', 'disconnecting', 'close', 'end']);

/** A probe unanswered for this long is given up on, so that one lost reply cannot block all. */
const PROBE_GIVE_UP_MS = 5_000;

/**
 * Most commands left to wait in the client's offline queue for its first connection: enough
 * for a burst of requests at start-up, bounded if that connection never comes.
 */
export const MAX_WAITING_FOR_FIRST_CONNECTION = 1_000;

/**
 * What {@link AvailabilityGate.enter} lets a caller do; a `'probe'` reports its command's
 * outcome with {@link AvailabilityGate.probeSettled}.
 */
export type Passage = 'refused' | 'send' | 'probe' | 'queued';

/**
 * Decides whether a command may be sent now, so that an outage costs callers no waiting and
 * leaves no growing queue of commands behind:
 * - before the client's first connection (a new or lazy client), commands wait for it in the
 *   client's offline queue, each within the caller's timeout, up to
 *   {@link MAX_WAITING_FOR_FIRST_CONNECTION} at once (a passage `'queued'`, reported with
 *   {@link AvailabilityGate.queuedSettled}): requests that arrive while a service starts are
 *   counted rather than answered `unknown`;
 * - while the client is disconnected or reconnecting, nothing is sent (ioredis would hold it in
 *   its offline queue, with default settings for as long as reconnection takes);
 * - while it connects again after an outage, or after a command went unanswered past the
 *   timeout (an open but stalled connection: a paused or overloaded server, a partition not yet
 *   noticed, a first connection that never completes), one command at a time goes out as a
 *   probe, until Redis answers again; the rest, and the override reads that may not probe,
 *   fail at once.
 */
export class AvailabilityGate {
  readonly #client: RedisScriptClient;
  #stalled = false;
  #probeSentAt: number | undefined;
  /** A state other than ready was seen: the next ready is a new connection. */
  #reconnected = false;
  /** The client has been ready once: later connecting states are reconnections. */
  #everReady = false;
  /** Commands sent before the first connection whose outcome has not come back. */
  #waitingForConnection = 0;

  constructor(client: RedisScriptClient) {
    this.#client = client;
  }

  /**
   * @param mayProbe false for a call that should fail at once rather than go out as the probe
   * of a stalled connection (see LuaScript.probes).
   */
  enter(mayProbe = true): Passage {
    const status = this.#client.status;
    if (status === undefined || status === 'ready') {
      this.#everReady = true;
      if (this.#reconnected) {
        // A new connection: whatever stalled the old one is gone with it.
        this.#reconnected = false;
        this.#stalled = false;
        this.#probeSentAt = undefined;
      }
      if (!this.#stalled) return 'send';
    } else {
      this.#reconnected = true;
      if (DOWN_STATES.has(status)) return 'refused';
      // Until one of them has waited out its timeout: a first connection that opens and then
      // never completes (a server that accepts and does not answer) is a stall like any other.
      if (
        !this.#everReady &&
        !this.#stalled &&
        this.#waitingForConnection < MAX_WAITING_FOR_FIRST_CONNECTION
      ) {
        this.#waitingForConnection += 1;
        return 'queued';
      }
    }
    if (!mayProbe) return 'refused';
    const now = performance.now();
    if (this.#probeSentAt !== undefined && now - this.#probeSentAt < PROBE_GIVE_UP_MS) {
      return 'refused';
    }
    this.#probeSentAt = now;
    return 'probe';
  }

  /** A command sent before the first connection came back, with a reply or an error. */
  queuedSettled(): void {
    this.#waitingForConnection -= 1;
  }

  /** The probe's command came back, with a reply or an error: another may go. */
  probeSettled(): void {
    this.#probeSentAt = undefined;
  }

  /** Redis answered (even late, even with an error reply): it is there. */
  answered(): void {
    this.#stalled = false;
  }

  /** A command timed out or the connection failed under it. */
  failed(): void {
    this.#stalled = true;
  }
}
