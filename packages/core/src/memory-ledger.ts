import type { UsageDetails } from './ledger-writer.js';
import type { Subject } from './subject.js';
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
 * Events are kept in columns (typed arrays for times and amounts, references for strings) so
 * that a full ledger is a handful of long-lived arrays, not a hundred thousand objects for the
 * garbage collector to walk on every collection.
 *
 * @example
 * const engine = createQuotaEngine({ ledger: new MemoryLedger({ maxEvents: 1_000_000 }) });
 */
export class MemoryLedger implements UsageLedger {
  readonly #capacity: number;
  readonly #id: (string | undefined)[];
  readonly #resource: (string | undefined)[];
  readonly #userId: (string | undefined)[];
  readonly #agentId: (string | undefined)[];
  readonly #tenantId: (string | undefined)[];
  readonly #runId: (string | undefined)[];
  readonly #taskId: (string | undefined)[];
  readonly #idempotencyKey: (string | undefined)[];
  readonly #metadata: (Record<string, unknown> | undefined)[];
  /** Event ids of {@link recordSync} are this prefix and a sequence number. */
  readonly #idPrefix = `${globalThis.crypto.randomUUID()}-`;
  #sequence = 0;
  // Typed columns grow with the ledger (doubling, up to its capacity) rather than being
  // allocated at full size up front.
  #times = new Float64Array(0);
  #amounts = new Float64Array(0);
  #sequences = new Float64Array(0);
  // A ring: appending never shifts anything.
  #start = 0;
  #size = 0;

  constructor(options: MemoryLedgerOptions = {}) {
    const maxEvents = options.maxEvents ?? 100_000;
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) {
      throw new RangeError('MemoryLedger option maxEvents must be a positive integer');
    }
    this.#capacity = maxEvents;
    this.#id = [];
    this.#resource = [];
    this.#userId = [];
    this.#agentId = [];
    this.#tenantId = [];
    this.#runId = [];
    this.#taskId = [];
    this.#idempotencyKey = [];
    this.#metadata = [];
  }

  /** Number of events held. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends one amount at once, with no allocation: the engine's path for this in-process
   * ledger (no batching needed). The event's id is made when it is read, from a sequence
   * number, and stays the same on every read.
   */
  recordSync(
    at: number,
    resource: string,
    amount: number,
    subject: Subject,
    details?: UsageDetails,
  ): void {
    const slot = this.#nextSlot();
    this.#sequence += 1;
    this.#times[slot] = at;
    this.#amounts[slot] = amount;
    this.#sequences[slot] = this.#sequence;
    this.#id[slot] = undefined;
    this.#resource[slot] = resource;
    this.#userId[slot] = subject.userId;
    this.#agentId[slot] = subject.agentId;
    this.#tenantId[slot] = subject.tenantId;
    this.#runId[slot] = subject.runId;
    this.#taskId[slot] = details?.taskId;
    this.#idempotencyKey[slot] = details?.idempotencyKey;
    this.#metadata[slot] = details?.metadata;
  }

  async append(events: readonly UsageEvent[]): Promise<void> {
    for (const event of events) {
      const slot = this.#nextSlot();
      this.#times[slot] = event.at.getTime();
      this.#amounts[slot] = event.amount;
      this.#id[slot] = event.id;
      this.#resource[slot] = event.resource;
      this.#userId[slot] = event.userId;
      this.#agentId[slot] = event.agentId;
      this.#tenantId[slot] = event.tenantId;
      this.#runId[slot] = event.runId;
      this.#taskId[slot] = event.taskId;
      this.#idempotencyKey[slot] = event.idempotencyKey;
      this.#metadata[slot] = event.metadata;
    }
  }

  async *query(query: UsageQuery): AsyncIterable<UsageEvent> {
    const from = query.from.getTime();
    const to = query.to.getTime();
    // A snapshot, so that appends during iteration neither skip nor repeat events.
    const matches: UsageEvent[] = [];
    for (let i = 0; i < this.#size; i++) {
      const slot = (this.#start + i) % this.#capacity;
      const at = this.#times[slot]!;
      if (at < from || at >= to) continue;
      if (query.resource !== undefined && this.#resource[slot] !== query.resource) continue;
      if (query.userId !== undefined && this.#userId[slot] !== query.userId) continue;
      if (query.agentId !== undefined && this.#agentId[slot] !== query.agentId) continue;
      if (query.tenantId !== undefined && this.#tenantId[slot] !== query.tenantId) continue;
      if (query.runId !== undefined && this.#runId[slot] !== query.runId) continue;
      matches.push(this.#event(slot));
    }
    matches.sort((a, b) => a.at.getTime() - b.at.getTime());
    yield* matches;
  }

  #nextSlot(): number {
    if (this.#size < this.#capacity) {
      this.#size += 1;
      this.#ensureRoom(this.#size);
      return this.#size - 1;
    }
    const slot = this.#start;
    this.#start = (this.#start + 1) % this.#capacity;
    return slot;
  }

  #event(slot: number): UsageEvent {
    const event: UsageEvent = {
      id: this.#id[slot] ?? this.#idPrefix + this.#sequences[slot]!.toString(36),
      at: new Date(this.#times[slot]!),
      resource: this.#resource[slot]!,
      amount: this.#amounts[slot]!,
      metadata: { ...this.#metadata[slot] },
    };
    const optional = [
      ['userId', this.#userId[slot]],
      ['agentId', this.#agentId[slot]],
      ['tenantId', this.#tenantId[slot]],
      ['runId', this.#runId[slot]],
      ['taskId', this.#taskId[slot]],
      ['idempotencyKey', this.#idempotencyKey[slot]],
    ] as const;
    for (const [field, value] of optional) if (value !== undefined) event[field] = value;
    return event;
  }

  #ensureRoom(size: number): void {
    if (size <= this.#times.length) return;
    const length = Math.min(this.#capacity, Math.max(1024, this.#times.length * 2));
    const times = new Float64Array(length);
    times.set(this.#times);
    const amounts = new Float64Array(length);
    amounts.set(this.#amounts);
    const sequences = new Float64Array(length);
    sequences.set(this.#sequences);
    this.#times = times;
    this.#amounts = amounts;
    this.#sequences = sequences;
  }
}
