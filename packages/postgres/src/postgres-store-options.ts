import { optionKeys, QuotaConfigError, rejectUnknownOptions } from '@quotakit/core';
import {
  type PostgresConnectionOptions,
  type ResolvedConnectionOptions,
  resolveConnectionOptions,
} from './connection-options.js';

/** How PostgresStore removes rows that have expired, with no cron to set up. */
export interface PostgresCleanupOptions {
  /**
   * One cleanup runs in the background after this many counting operations of a store
   * (consume, record, settle), by the clock of the operation that triggers it.
   * Defaults to `1_000`.
   */
  everyOperations?: number;
  /** Most rows deleted per table and cleanup, so that none takes long. Defaults to `1_000`. */
  batchSize?: number;
  /**
   * How long past its expiry a row is kept before it is deleted, in ms: engines sharing a
   * schema whose clocks disagree by less than this never lose a row another one still
   * counts. Expired rows read as 0 (and expired reservations as returned) at once
   * regardless. Defaults to `300_000` (five minutes).
   */
  graceMs?: number;
}

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions extends PostgresConnectionOptions {
  /**
   * Background deletion of expired counters, reservations, idempotency keys and claims;
   * `false` turns it off (call `store.cleanup()` yourself then). Usage events are never
   * deleted. Defaults to `{ everyOperations: 1_000, batchSize: 1_000, graceMs: 300_000 }`.
   */
  cleanup?: PostgresCleanupOptions | false;
  /**
   * While a lookup at most this many ms old showed that no run-time override exists at all,
   * `getOverrides` answers at once, which saves a round trip per new subject. Another
   * instance's first `setQuota` thus shows here within this time (on top of the engine's
   * `overrideCacheTtlMs`); this instance's own writes show at once. `0` always asks.
   * Defaults to `1_000`.
   */
  overrideHintMs?: number;
}

/** {@link PostgresStoreOptions} after validation, every default filled in. */
export interface ResolvedPostgresStoreOptions extends ResolvedConnectionOptions {
  /** 0: no background cleanup. */
  readonly cleanupEvery: number;
  readonly cleanupBatch: number;
  readonly cleanupGraceMs: number;
  readonly overrideHintMs: number;
}

const STORE_OPTIONS = optionKeys<PostgresStoreOptions>({
  pool: true,
  schema: true,
  timeoutMs: true,
  preparedStatements: true,
  cleanup: true,
  overrideHintMs: true,
});
const CLEANUP_OPTIONS = optionKeys<PostgresCleanupOptions>({
  everyOperations: true,
  batchSize: true,
  graceMs: true,
});

/**
 * Validates PostgresStore options once, at construction.
 *
 * @throws QuotaConfigError naming the bad option and the reason.
 */
export function resolvePostgresStoreOptions(
  options: PostgresStoreOptions,
): ResolvedPostgresStoreOptions {
  const connection = resolveConnectionOptions(options, 'PostgresStore', STORE_OPTIONS);
  const cleanup = options.cleanup ?? {};
  if (cleanup !== false && (typeof cleanup !== 'object' || cleanup === null)) {
    throw new QuotaConfigError('cleanup', 'must be an object or false');
  }
  if (cleanup !== false) {
    rejectUnknownOptions(cleanup, CLEANUP_OPTIONS, 'PostgresStore', 'cleanup.');
  }
  const settings = cleanup === false ? {} : cleanup;
  const everyOperations = settings.everyOperations ?? 1_000;
  const batchSize = settings.batchSize ?? 1_000;
  const graceMs = settings.graceMs ?? 300_000;
  for (const [name, value, least] of [
    ['everyOperations', everyOperations, 1],
    ['batchSize', batchSize, 1],
    ['graceMs', graceMs, 0],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < least) {
      throw new QuotaConfigError(
        `cleanup.${name}`,
        `must be a whole number of at least ${least}, got ${String(value)}`,
      );
    }
  }
  const overrideHintMs = options.overrideHintMs ?? 1_000;
  if (!Number.isSafeInteger(overrideHintMs) || overrideHintMs < 0) {
    throw new QuotaConfigError(
      'overrideHintMs',
      `must be 0 or more whole ms, got ${String(overrideHintMs)}`,
    );
  }
  return {
    ...connection,
    overrideHintMs,
    cleanupEvery: cleanup === false ? 0 : everyOperations,
    cleanupBatch: batchSize,
    cleanupGraceMs: graceMs,
  };
}
