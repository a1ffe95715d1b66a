import { QuotaConfigError } from './errors.js';
import { optionKeys, rejectUnknownOptions } from './known-options.js';
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

const MEMORY_LEDGER_OPTIONS = optionKeys<MemoryLedgerOptions>({ maxEvents: true });

/** Numbers per event in the numbers row: time, amount, sequence (0 for an event with an id). */
const NUMBERS = 3;
const AT = 0;
const AMOUNT = 1;
const SEQUENCE = 2;
/** References per event in the references row, in this order. */
const REFERENCES = 9;
const ID = 0;
const RESOURCE = 1;
const USER_ID = 2;
const AGENT_ID = 3;
const TENANT_ID = 4;
const RUN_ID = 5;
const TASK_ID = 6;
const IDEMPOTENCY_KEY = 7;
const METADATA = 8;

/** An event's optional string fields and where each sits in its references. */
const OPTIONAL_FIELDS = [
  ['userId', USER_ID],
  ['agentId', AGENT_ID],
  ['tenantId', TENANT_ID],
  ['runId', RUN_ID],
  ['taskId', TASK_ID],
  ['idempotencyKey', IDEMPOTENCY_KEY],
] as const;

/**
 * The default ledger: the latest events in memory, in one process. Enough to look at
 * recent usage and to test exports; not a billing record.
 *
 * Events are kept in two long-lived arrays, not as a hundred thousand objects for the garbage
 * collector to walk on every collection: a Float64Array of numbers and an array of references
 * (strings, metadata), each event's entries side by side. Side by side, so that recording an
 * event touches two or three cache lines rather than a dozen columns: it happens once per
 * request, between requests that leave the caches cold.
 *
 * @example
 * const engine = createQuotaEngine({ ledger: new MemoryLedger({ maxEvents: 1_000_000 }) });
 */
export class MemoryLedger implements UsageLedger {
  readonly #capacity: number;
  /** `REFERENCES` entries per slot; grows as slots are first used. */
  readonly #references: unknown[] = [];
  /** Event ids of {@link recordSync} are this prefix and a sequence number. */
  readonly #idPrefix = `${globalThis.crypto.randomUUID()}-`;
  #sequence = 0;
  /** `NUMBERS` entries per slot; grows with the ledger (doubling, up to its capacity). */
  #numbers = new Float64Array(0);
  // A ring: appending never shifts anything.
  #start = 0;
  #size = 0;

  constructor(options: MemoryLedgerOptions = {}) {
    rejectUnknownOptions(options, MEMORY_LEDGER_OPTIONS, 'MemoryLedger');
    const maxEvents = options.maxEvents ?? 100_000;
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) {
      throw new QuotaConfigError(
        'maxEvents',
        `must be a positive whole number, got ${String(maxEvents)}`,
      );
    }
    this.#capacity = maxEvents;
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
    const numbers = this.#numbers;
    const n = slot * NUMBERS;
    numbers[n + AT] = at;
    numbers[n + AMOUNT] = amount;
    numbers[n + SEQUENCE] = this.#sequence;
    const references = this.#references;
    const r = slot * REFERENCES;
    references[r + ID] = undefined;
    references[r + RESOURCE] = resource;
    references[r + USER_ID] = subject.userId;
    references[r + AGENT_ID] = subject.agentId;
    references[r + TENANT_ID] = subject.tenantId;
    references[r + RUN_ID] = subject.runId;
    references[r + TASK_ID] = details?.taskId;
    references[r + IDEMPOTENCY_KEY] = details?.idempotencyKey;
    references[r + METADATA] = details?.metadata;
  }

  async append(events: readonly UsageEvent[]): Promise<void> {
    for (const event of events) {
      const slot = this.#nextSlot();
      const numbers = this.#numbers;
      const n = slot * NUMBERS;
      numbers[n + AT] = event.at.getTime();
      numbers[n + AMOUNT] = event.amount;
      numbers[n + SEQUENCE] = 0;
      const references = this.#references;
      const r = slot * REFERENCES;
      references[r + ID] = event.id;
      references[r + RESOURCE] = event.resource;
      references[r + USER_ID] = event.userId;
      references[r + AGENT_ID] = event.agentId;
      references[r + TENANT_ID] = event.tenantId;
      references[r + RUN_ID] = event.runId;
      references[r + TASK_ID] = event.taskId;
      references[r + IDEMPOTENCY_KEY] = event.idempotencyKey;
      references[r + METADATA] = event.metadata;
    }
  }

  async *query(query: UsageQuery): AsyncIterable<UsageEvent> {
    const from = query.from.getTime();
    const to = query.to.getTime();
    // A snapshot, so that appends during iteration neither skip nor repeat events.
    const matches: UsageEvent[] = [];
    const numbers = this.#numbers;
    const references = this.#references;
    for (let i = 0; i < this.#size; i++) {
      const slot = (this.#start + i) % this.#capacity;
      const at = numbers[slot * NUMBERS + AT]!;
      if (at < from || at >= to) continue;
      const r = slot * REFERENCES;
      if (query.resource !== undefined && references[r + RESOURCE] !== query.resource) continue;
      if (query.userId !== undefined && references[r + USER_ID] !== query.userId) continue;
      if (query.agentId !== undefined && references[r + AGENT_ID] !== query.agentId) continue;
      if (query.tenantId !== undefined && references[r + TENANT_ID] !== query.tenantId) continue;
      if (query.runId !== undefined && references[r + RUN_ID] !== query.runId) continue;
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
    const numbers = this.#numbers;
    const n = slot * NUMBERS;
    const references = this.#references;
    const r = slot * REFERENCES;
    const event: UsageEvent = {
      id:
        (references[r + ID] as string | undefined) ??
        this.#idPrefix + numbers[n + SEQUENCE]!.toString(36),
      at: new Date(numbers[n + AT]!),
      resource: references[r + RESOURCE] as string,
      amount: numbers[n + AMOUNT]!,
      metadata: { ...(references[r + METADATA] as Record<string, unknown> | undefined) },
    };
    for (const [field, index] of OPTIONAL_FIELDS) {
      const value = references[r + index] as string | undefined;
      if (value !== undefined) event[field] = value;
    }
    return event;
  }

  #ensureRoom(size: number): void {
    const slots = this.#numbers.length / NUMBERS;
    if (size <= slots) return;
    const length = Math.min(this.#capacity, Math.max(1024, slots * 2));
    const numbers = new Float64Array(length * NUMBERS);
    numbers.set(this.#numbers);
    this.#numbers = numbers;
  }
}
