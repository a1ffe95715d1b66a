import type { Subject } from './subject.js';

/**
 * One amount recorded or committed, as kept for billing and audits. Appended to the engine's
 * ledger for every `recordUsage`, admitted `consume` and reservation `commit`.
 */
export interface UsageEvent {
  /** Unique and stable: a re-export carries the same id, so downstream can de-duplicate. */
  id: string;
  /** When the engine recorded the amount (engine clock). */
  at: Date;
  resource: string;
  amount: number;
  userId?: string;
  agentId?: string;
  tenantId?: string;
  runId?: string;
  taskId?: string;
  idempotencyKey?: string;
  /** Free-form data given with the record (model, provider, ...); `{}` when none. */
  metadata: Record<string, unknown>;
}

/** The fields of a {@link UsageEvent}, in the order exports use. */
export const USAGE_EVENT_FIELDS = [
  'id',
  'at',
  'resource',
  'amount',
  'userId',
  'agentId',
  'tenantId',
  'runId',
  'taskId',
  'idempotencyKey',
  'metadata',
] as const satisfies readonly (keyof UsageEvent)[];

/**
 * Which events to read: `at` in [from, to), and, when given, one subject id per scope and
 * one resource.
 */
export interface UsageQuery extends Subject {
  from: Date;
  to: Date;
  resource?: string;
}

/**
 * Where usage events are kept. The engine batches appends off the hot path and flushes
 * them on `close()` and before every query.
 */
export interface UsageLedger {
  /** Appends events; resolves once they are durable as far as this ledger goes. */
  append(events: readonly UsageEvent[]): Promise<void>;
  /** Events matching the query, oldest first. */
  query(query: UsageQuery): AsyncIterable<UsageEvent>;
  /** Releases resources. Optional. */
  close?(): Promise<void>;
}
