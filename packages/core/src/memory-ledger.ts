import type { UsageEvent, UsageLedger, UsageQuery } from './usage-ledger.js';

/** Options of {@link MemoryLedger}. */
export interface MemoryLedgerOptions {
  /**
   * Most events kept; the oldest are dropped beyond it (use a PostgresLedger to keep every
   * event for billing). Defaults to `100_000`.
   */
  maxEvents?: number;
}

/**
 * The default ledger: the latest events in memory, in one process. Enough to look at
 * recent usage and to test exports; not a billing record.
 *
 * @example
 * const engine = createQuotaEngine({ ledger: new MemoryLedger({ maxEvents: 1_000_000 }) });
 */
export class MemoryLedger implements UsageLedger {
  readonly #maxEvents: number;
  // A ring buffer: appending never shifts the array.
  readonly #events: (UsageEvent | undefined)[] = [];
  #start = 0;
  #size = 0;

  constructor(options: MemoryLedgerOptions = {}) {
    const maxEvents = options.maxEvents ?? 100_000;
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) {
      throw new RangeError('MemoryLedger option maxEvents must be a positive integer');
    }
    this.#maxEvents = maxEvents;
  }

  /** Number of events held. */
  get size(): number {
    return this.#size;
  }

  async append(events: readonly UsageEvent[]): Promise<void> {
    for (const event of events) {
      const index = (this.#start + this.#size) % this.#maxEvents;
      this.#events[index] = event;
      if (this.#size < this.#maxEvents) this.#size += 1;
      else this.#start = (this.#start + 1) % this.#maxEvents;
    }
  }

  async *query(query: UsageQuery): AsyncIterable<UsageEvent> {
    const from = query.from.getTime();
    const to = query.to.getTime();
    // A snapshot, so that appends during iteration neither skip nor repeat events.
    const snapshot: UsageEvent[] = [];
    for (let i = 0; i < this.#size; i++) {
      const event = this.#events[(this.#start + i) % this.#maxEvents]!;
      const at = event.at.getTime();
      if (at < from || at >= to) continue;
      if (query.resource !== undefined && event.resource !== query.resource) continue;
      if (query.userId !== undefined && event.userId !== query.userId) continue;
      if (query.agentId !== undefined && event.agentId !== query.agentId) continue;
      if (query.tenantId !== undefined && event.tenantId !== query.tenantId) continue;
      if (query.runId !== undefined && event.runId !== query.runId) continue;
      snapshot.push(event);
    }
    snapshot.sort((a, b) => a.at.getTime() - b.at.getTime());
    yield* snapshot;
  }
}
