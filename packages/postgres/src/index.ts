export type { PostgresConnectionOptions } from './connection-options.js';
export type {
  AppliedMigration,
  MigrationComponent,
  MigrationResult,
} from './migrations.js';
export type { PgPool } from './pg-pool.js';
export { PostgresLedger, type PostgresLedgerOptions } from './postgres-ledger.js';
export { type CleanupResult, PostgresStore } from './postgres-store.js';
export type { PostgresCleanupOptions, PostgresStoreOptions } from './postgres-store-options.js';
export type {
  UsageReportDimension,
  UsageReportQuery,
  UsageReportRow,
  UsageReportWindow,
} from './usage-report.js';
