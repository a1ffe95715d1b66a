import {
  optionKeys,
  QuotaConfigError,
  QuotaValidationError,
  type UsageEvent,
  type UsageLedger,
  type UsageQuery,
} from '@quotakit/core';
import { type PostgresConnectionOptions, resolveConnectionOptions } from './connection-options.js';
import { type MigrationResult, migrate, quoteIdentifier } from './migrations.js';
import type { PgPool } from './pg-pool.js';
import { QueryRunner, type Statement, schemaStatement } from './query-runner.js';
import { usageConditions } from './usage-filter.js';
import { reportStatement, type UsageReportQuery, type UsageReportRow } from './usage-report.js';
import { toUsageEvent, USAGE_COLUMNS, type UsageRow, usagePayload } from './usage-rows.js';

/** Options of {@link PostgresLedger}. */
export interface PostgresLedgerOptions extends PostgresConnectionOptions {
  /**
   * Events read per round trip while `query` iterates (an export of millions of events
   * streams page by page, never holding them all). Defaults to `1_000`.
   */
  pageSize?: number;
}

const LEDGER_OPTIONS = optionKeys<PostgresLedgerOptions>({
  pool: true,
  schema: true,
  timeoutMs: true,
  preparedStatements: true,
  pageSize: true,
});

/**
 * The usage ledger in PostgreSQL: every recorded amount as a row of `usage_events`, kept for
 * invoices and audits, queried by time and subject, summed into reports and exported by the
 * engine (`engine.usageEvents`, `engine.exportUsage`).
 *
 * Use it alone for an engine whose counters live elsewhere (memory, Redis): the engine
 * batches appends off the hot path (so events still buffered when a process dies are lost;
 * `engine.close()` flushes them). A {@link PostgresStore} brings one of its own,
 * `store.ledger`, whose events are written in the same transaction as the counters instead.
 *
 * Appends are idempotent by event id: a batch retried after a timeout never doubles an event.
 *
 * @example
 * import { Pool } from 'pg';
 * import { createQuotaEngine } from '@quotakit/core';
 * import { RedisStore } from '@quotakit/redis';
 * import { PostgresLedger } from '@quotakit/postgres';
 *
 * const ledger = new PostgresLedger({ pool: new Pool({ connectionString: process.env.DATABASE_URL }) });
 * await ledger.migrate();
 * const engine = createQuotaEngine({ store: new RedisStore({ client }), ledger, defaults });
 */
export class PostgresLedger implements UsageLedger {
  /** The schema holding `usage_events`. */
  readonly schema: string;
  readonly #pool: PgPool;
  readonly #runner: QueryRunner;
  readonly #pageSize: number;
  readonly #append: Statement;
  readonly #table: string;

  /**
   * @throws QuotaConfigError naming the bad option.
   */
  constructor(options: PostgresLedgerOptions) {
    const { pool, schema, timeoutMs, preparedStatements } = resolveConnectionOptions(
      options,
      'PostgresLedger',
      LEDGER_OPTIONS,
    );
    const pageSize = options.pageSize ?? 1_000;
    if (!Number.isSafeInteger(pageSize) || pageSize < 1) {
      throw new QuotaConfigError('pageSize', `must be a positive whole number, got ${pageSize}`);
    }
    this.schema = schema;
    this.#pool = pool;
    this.#runner = new QueryRunner(pool, timeoutMs);
    this.#pageSize = pageSize;
    this.#table = `${quoteIdentifier(schema)}.usage_events`;
    this.#append = schemaStatement(
      schema,
      'append_usage',
      `SELECT ${quoteIdentifier(schema)}.append_usage($1::json) AS written`,
      preparedStatements,
    );
  }

  /**
   * Creates or upgrades the ledger's table in `schema` (versioned migrations; idempotent,
   * and safe when several processes run it at once). Needed once per database, before the
   * first append; `PostgresStore.migrate()` includes it.
   */
  migrate(): Promise<MigrationResult> {
    return migrate(this.#pool, this.schema, ['ledger']);
  }

  /** Appends events in one statement; an event whose id is already there is skipped. */
  async append(events: readonly UsageEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.#runner.query(this.#append, [usagePayload(events)]);
  }

  /**
   * Events with `at` in [from, to) matching the subject ids and resource given, oldest first
   * (events of the same instant in the order they were written), read page by page.
   *
   * @throws QuotaValidationError for a bad range or ids (when iteration starts).
   */
  async *query(query: UsageQuery): AsyncIterable<UsageEvent> {
    const values: unknown[] = [];
    const conditions = usageConditions(query, values);
    const base = values.length;
    const where = conditions.join(' AND ');
    const first = `SELECT ${USAGE_COLUMNS} FROM ${this.#table} WHERE ${where}
      ORDER BY at, seq LIMIT ${this.#pageSize}`;
    const next = `SELECT ${USAGE_COLUMNS} FROM ${this.#table} WHERE ${where}
      AND (at, seq) > ($${base + 1}::timestamptz, $${base + 2}::bigint)
      ORDER BY at, seq LIMIT ${this.#pageSize}`;
    let cursor: UsageRow | undefined;
    for (;;) {
      const page =
        cursor === undefined
          ? await this.#runner.query<UsageRow>({ text: first }, values)
          : await this.#runner.query<UsageRow>({ text: next }, [
              ...values,
              cursor.at_text,
              cursor.seq,
            ]);
      for (const row of page.rows) yield toUsageEvent(row);
      if (page.rows.length < this.#pageSize) return;
      cursor = page.rows[page.rows.length - 1];
    }
  }

  /**
   * Deletes the events with `at` before `before`, oldest first, `batchSize` at a time (each
   * batch its own statement, so that appends and queries never wait long on it), and resolves
   * with how many went. The ledger otherwise keeps every event: prune what your invoices and
   * audits no longer need, after exporting it if it must be kept elsewhere
   * (`engine.exportUsage`). Counters are not touched.
   *
   * @param options.batchSize - Events per statement. Defaults to `10_000`.
   * @throws QuotaValidationError for a `before` that is not a valid Date or a bad
   *   `batchSize`, before anything is deleted.
   * @example
   * // Keep 13 months of usage.
   * const cutoff = new Date();
   * cutoff.setUTCMonth(cutoff.getUTCMonth() - 13);
   * const deleted = await store.ledger.prune({ before: cutoff });
   */
  async prune(options: { before: Date; batchSize?: number }): Promise<number> {
    if (typeof options !== 'object' || options === null) {
      throw new QuotaValidationError('prune needs { before }');
    }
    const { before, batchSize = 10_000 } = options;
    if (!(before instanceof Date) || Number.isNaN(before.getTime())) {
      throw new QuotaValidationError('before must be a valid Date');
    }
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new QuotaValidationError(`batchSize must be a positive whole number, got ${batchSize}`);
    }
    // Oldest first through the (at, seq) index, so that each batch finds its rows at once.
    const statement = {
      text: `DELETE FROM ${this.#table} WHERE id IN (
        SELECT id FROM ${this.#table} WHERE at < $1::timestamptz ORDER BY at, seq LIMIT $2)`,
    };
    const cutoff = before.toISOString();
    let deleted = 0;
    for (;;) {
      const result = await this.#runner.query(statement, [cutoff, batchSize]);
      const count = result.rowCount ?? 0;
      deleted += count;
      if (count < batchSize) return deleted;
    }
  }

  /**
   * Sums usage per window, resource and subject over [from, to): what an invoice or a usage
   * dashboard needs, computed in the database. Rows come oldest window first, then by
   * resource and the grouped ids.
   *
   * @throws QuotaValidationError for a bad range, window, field or time zone.
   * @example
   * // Tokens per tenant and day of March, in the customer's time zone.
   * const rows = await ledger.report({
   *   from: new Date('2026-03-01T00:00:00+01:00'), to: new Date('2026-04-01T00:00:00+02:00'),
   *   resource: 'llm_tokens', groupBy: ['tenantId'], window: 'per_day', timeZone: 'Europe/Berlin',
   * });
   * // [{ windowStart, windowEnd, resource: 'llm_tokens', tenantId: 'acme', amount: 1234567, events: 89 }, ...]
   */
  async report(query: UsageReportQuery): Promise<UsageReportRow[]> {
    const statement = reportStatement(quoteIdentifier(this.schema), query);
    const result = await this.#runner.query({ text: statement.text }, statement.values);
    return result.rows.map(statement.read);
  }

  /** Nothing to release: the pool belongs to the application. */
  async close(): Promise<void> {}
}
