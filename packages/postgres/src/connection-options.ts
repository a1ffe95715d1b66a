import { QuotaConfigError, rejectUnknownOptions } from '@quotakit/core';
import type { PgPool } from './pg-pool.js';

/** Options PostgresStore and PostgresLedger share. */
export interface PostgresConnectionOptions {
  /**
   * A `pg` Pool (`new Pool({ connectionString })`). The application owns it: nothing here
   * ends it. Size it for the operations you run at once: each holds a connection for one
   * statement.
   */
  pool: PgPool;
  /**
   * The PostgreSQL schema holding the tables, created by `migrate()`. Stores and ledgers with
   * different schemas on one database never see each other's data. A plain identifier: 1 to
   * 63 letters, digits and underscores, not starting with a digit. Defaults to `'quotakit'`.
   */
  schema?: string;
  /**
   * Longest wait per operation, in ms, waiting for a free connection included. Past it the
   * call rejects with a QuotaStoreError (the engine's decision becomes `unknown` and follows
   * its `failureMode`); row-lock waits inside PostgreSQL end at the same bound
   * (`lock_timeout`), so a stalled operation never holds others' rows for longer.
   * Defaults to `5_000`.
   */
  timeoutMs?: number;
  /**
   * Whether each statement is prepared once per connection, under a name, rather than parsed
   * and planned on every call. Set `false` behind a connection pooler in transaction mode that
   * does not follow prepared statements from one server connection to the next (PgBouncer
   * before 1.21, or with `max_prepared_statements = 0`; Supavisor): there a named statement
   * prepared on one server connection is missing on the next, and the call fails. Defaults to
   * `true`.
   */
  preparedStatements?: boolean;
}

/** {@link PostgresConnectionOptions} after validation. */
export interface ResolvedConnectionOptions {
  readonly pool: PgPool;
  readonly schema: string;
  readonly timeoutMs: number;
  readonly preparedStatements: boolean;
}

const SCHEMA_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Validates the shared options once, at construction.
 *
 * @param owner the class being built, for the messages.
 * @param known every option the owner takes, these included.
 * @throws QuotaConfigError naming the bad option and the reason.
 */
export function resolveConnectionOptions(
  options: PostgresConnectionOptions,
  owner: string,
  known: ReadonlySet<string>,
): ResolvedConnectionOptions {
  if (typeof options !== 'object' || options === null) {
    throw new QuotaConfigError('', `${owner} expects an options object with a pool`);
  }
  rejectUnknownOptions(options, known, owner);
  const { pool } = options;
  if (
    typeof pool !== 'object' ||
    pool === null ||
    typeof pool.connect !== 'function' ||
    typeof pool.on !== 'function'
  ) {
    throw new QuotaConfigError('pool', 'must be a pg Pool');
  }
  const schema = options.schema ?? 'quotakit';
  if (typeof schema !== 'string' || !SCHEMA_PATTERN.test(schema)) {
    throw new QuotaConfigError(
      'schema',
      `must be 1 to 63 letters, digits or underscores, not starting with a digit, got ${JSON.stringify(schema)}`,
    );
  }
  const timeoutMs = options.timeoutMs ?? 5_000;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new QuotaConfigError(
      'timeoutMs',
      `must be a positive whole number of ms, got ${String(timeoutMs)}`,
    );
  }
  const preparedStatements = options.preparedStatements ?? true;
  if (typeof preparedStatements !== 'boolean') {
    throw new QuotaConfigError(
      'preparedStatements',
      `must be true or false, got ${String(preparedStatements)}`,
    );
  }
  return { pool, schema, timeoutMs, preparedStatements };
}
