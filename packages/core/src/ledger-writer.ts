import type { Subject } from './subject.js';
import type { UsageEvent, UsageLedger } from './usage-ledger.js';

/** Extra fields a recorded amount may carry into its usage event. */
export interface UsageDetails {
  readonly taskId?: string | undefined;
  readonly idempotencyKey?: string | undefined;
  readonly metadata?: Record<string, unknown> | undefined;
}

interface PendingUsage {
  readonly at: number;
  readonly resource: string;
  readonly amount: number;
  readonly subject: Subject;
  readonly details: UsageDetails | undefined;
}

/** Options of {@link LedgerWriter}. */
export interface LedgerWriterOptions {
  /** Events per append. Defaults to `500`. */
  readonly batchSize?: number;
  /** Longest wait before a partial batch is appended, in ms. Defaults to `1_000`. */
  readonly flushIntervalMs?: number;
  /** Most events held while the ledger fails; beyond it the oldest are dropped and reported. */
  readonly maxPending?: number;
}

/**
 * Batches usage events off the hot path: a decision only pushes a small record; ids are
 * made and the ledger written in batches, on a timer, before a query and on close.
 */
export class LedgerWriter {
  readonly #ledger: UsageLedger;
  readonly #onError: (error: unknown) => void;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxPending: number;
  #pending: PendingUsage[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(
    ledger: UsageLedger,
    onError: (error: unknown) => void,
    options: LedgerWriterOptions = {},
  ) {
    this.#ledger = ledger;
    this.#onError = onError;
    this.#batchSize = options.batchSize ?? 500;
    this.#flushIntervalMs = options.flushIntervalMs ?? 1_000;
    this.#maxPending = options.maxPending ?? 100_000;
  }

  /** Queues one recorded amount. Never throws, never waits. */
  add(
    at: number,
    resource: string,
    amount: number,
    subject: Subject,
    details?: UsageDetails,
  ): void {
    this.#pending.push({ at, resource, amount, subject, details });
    if (this.#pending.length >= this.#batchSize) {
      void this.flush();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => void this.flush(), this.#flushIntervalMs);
      // Never keep a process alive for this timer; close() flushes what is left.
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Appends everything queued so far; resolves when the ledger has it (or reported failing). */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#pending;
    if (batch.length === 0) return this.#writing;
    this.#pending = [];
    // Appends run one after another, so the ledger sees events in the order they happened.
    this.#writing = this.#writing.then(() => this.#append(batch));
    return this.#writing;
  }

  async #append(batch: PendingUsage[]): Promise<void> {
    const events = batch.map(toUsageEvent);
    try {
      for (let i = 0; i < events.length; i += this.#batchSize) {
        await this.#ledger.append(events.slice(i, i + this.#batchSize));
      }
    } catch (error) {
      this.#onError(error);
      // Keep them for the next flush, within bounds: the ledger may come back.
      this.#pending = batch.concat(this.#pending);
      const excess = this.#pending.length - this.#maxPending;
      if (excess > 0) {
        this.#pending.splice(0, excess);
        this.#onError(new Error(`Usage ledger unavailable: dropped ${excess} usage events`));
      }
    }
  }
}

/** Turns a recorded amount into a {@link UsageEvent} with a fresh id. */
export function toUsageEvent(usage: PendingUsage): UsageEvent {
  const event: UsageEvent = {
    id: globalThis.crypto.randomUUID(),
    at: new Date(usage.at),
    resource: usage.resource,
    amount: usage.amount,
    metadata: usage.details?.metadata ?? {},
  };
  const { subject, details } = usage;
  if (subject.userId !== undefined) event.userId = subject.userId;
  if (subject.agentId !== undefined) event.agentId = subject.agentId;
  if (subject.tenantId !== undefined) event.tenantId = subject.tenantId;
  if (subject.runId !== undefined) event.runId = subject.runId;
  if (details?.taskId !== undefined) event.taskId = details.taskId;
  if (details?.idempotencyKey !== undefined) event.idempotencyKey = details.idempotencyKey;
  return event;
}
