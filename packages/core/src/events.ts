import type { QuotaPeriod } from './periods.js';
import type { QuotaScope } from './rules.js';
import type { QuotaStatus } from './statuses.js';
import type { Subject } from './subject.js';

/**
 * Fired when a subject's usage under one rule crosses into `approaching_limit`, `at_limit`
 * or `exceeded`: once per window and status across every engine sharing a store.
 */
export interface ThresholdEvent {
  type: 'threshold';
  resource: string;
  status: Extract<QuotaStatus, 'approaching_limit' | 'at_limit' | 'exceeded'>;
  subject: Subject;
  scope: QuotaScope;
  used: number;
  limit: number;
  remaining: number;
  period: QuotaPeriod;
  /** End of the window the crossing happened in; null for total and per_request rules. */
  resetAt: Date | null;
  /** When the engine saw the crossing (engine clock). */
  at: Date;
}

/**
 * Receives threshold events. Called off the hot path (never awaited by a quota decision);
 * a listener that throws or rejects is reported through the engine's `onError`, never to the
 * caller of the quota operation.
 */
export type ThresholdListener = ((event: ThresholdEvent) => void | Promise<void>) & {
  /** Awaited by `engine.close()`: deliver whatever is still queued. */
  flush?: () => Promise<void>;
};

/** Events an engine emits, by name. */
export interface QuotaEngineEvents {
  threshold: ThresholdEvent;
}
