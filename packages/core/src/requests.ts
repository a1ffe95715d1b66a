import type { Amounts } from './reservation.js';
import type { ResourceName } from './resource-types.js';
import type { QuotaStatusReport } from './results.js';
import type { Subject } from './subject.js';

/** Arguments of {@link QuotaEngine.checkQuota}. */
export interface CheckQuotaRequest extends Subject {
  resource: ResourceName;
  /** Amount the caller is about to spend. Defaults to `1`. */
  amount?: number;
}

/** Arguments of {@link QuotaEngine.recordUsage}. */
export interface RecordUsageRequest extends Subject {
  resource: ResourceName;
  /** Amount spent. Negative releases a gauge (and is an error on a counter). */
  amount: number;
  /** The task the usage belongs to, kept with the usage record. */
  taskId?: string;
  /**
   * A retried record with the same key, resource and subject is counted once (within
   * `idempotencyTtlMs`); the same key on another resource or subject is another record.
   */
  idempotencyKey?: string;
  /** Free-form data kept with the usage record (model, provider, ...). */
  metadata?: Record<string, unknown>;
}

/** Arguments of {@link QuotaEngine.consume}. */
export interface ConsumeRequest extends Subject {
  /** Amounts to take, by resource; all are admitted and recorded, or none. */
  amounts: Amounts;
}

/** Arguments of {@link QuotaEngine.reserve}. */
export interface ReserveRequest extends ConsumeRequest {
  /** How long the hold lasts if never settled. Defaults to the engine's `reservationTtlMs`. */
  ttlMs?: number;
}

/** Arguments of {@link QuotaEngine.acquire}. */
export interface AcquireRequest extends Subject {
  /** The gauge to take a slot of. Defaults to `'concurrent_tasks'`. */
  resource?: ResourceName;
  /** Slots to take. Defaults to `1`. */
  amount?: number;
  /** How long the lease lasts if never released. Defaults to the engine's `reservationTtlMs`. */
  ttlMs?: number;
}

/** Every quota binding one subject. */
export interface AllQuotasStatus {
  subject: Subject;
  /** One entry per resource that has a rule binding the subject. */
  quotas: Record<string, QuotaStatusReport>;
}
