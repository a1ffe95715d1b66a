import type { Subject } from './subject.js';
import { UniqueIds } from './unique-ids.js';
import type { UsageEvent, UsageLedger } from './usage-ledger.js';

/** The metadata of events recorded without any: one shared, frozen empty object. */
export const NO_METADATA: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/** Extra fields a recorded amount may carry into its usage event. */
export interface UsageDetails {
  readonly taskId?: string | undefined;
  readonly idempotencyKey?: string | undefined;
  readonly metadata?: Record<string, unknown> | undefined;
}

/** One recorded amount, before it is given an id. */
export interface PendingUsage {
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
  readonly #ids = new UniqueIds();
  /** Consecutive failed appends: the back-off exponent, 0 when the ledger is healthy. */
  #failures = 0;
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
    // While the ledger fails, only the back-off timer retries: a full batch must not turn
    // every request into another attempt at writing everything held.
    if (this.#pending.length >= this.#batchSize && this.#failures === 0) void this.flush();
    else this.#schedule(this.#flushIntervalMs);
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

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delayMs);
    // Never keep a process alive for this timer; close() flushes what is left.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async #append(batch: PendingUsage[]): Promise<void> {
    let written = 0;
    try {
      while (written < batch.length) {
        const chunk = batch.slice(written, written + this.#batchSize);
        await this.#ledger.append(chunk.map((usage) => toUsageEvent(usage, this.#ids.next())));
        written += chunk.length;
      }
      this.#failures = 0;
    } catch (error) {
      this.#onError(error);
      // Keep what was not written for the next attempt, within bounds: the ledger may come
      // back. Attempts back off from flushIntervalMs, doubling, up to a minute.
      this.#failures += 1;
      this.#pending = batch.slice(written).concat(this.#pending);
      const excess = this.#pending.length - this.#maxPending;
      if (excess > 0) {
        this.#pending.splice(0, excess);
        this.#onError(new Error(`Usage ledger unavailable: dropped ${excess} usage events`));
      }
      this.#schedule(Math.min(60_000, this.#flushIntervalMs * 2 ** (this.#failures - 1)));
    }
  }
}

/** Turns a recorded amount into a {@link UsageEvent}. */
export function toUsageEvent(usage: PendingUsage, id: string): UsageEvent {
  const event: UsageEvent = {
    id,
    at: new Date(usage.at),
    resource: usage.resource,
    amount: usage.amount,
    metadata: usage.details?.metadata ?? NO_METADATA,
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
