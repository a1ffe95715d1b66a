import { ledgerSchemaV1 } from './ledger-schema.js';
import type { PgPool } from './pg-pool.js';
import { storeSchemaV1, storeSchemaV2 } from './store-schema.js';

/** What a set of migrations belongs to: the ledger alone, or the store (which needs it). */
export type MigrationComponent = 'ledger' | 'store';

/** One versioned change of a schema. */
interface Migration {
  readonly component: MigrationComponent;
  readonly version: number;
  readonly name: string;
  readonly sql: (schema: string) => string;
}

/**
 * Every migration, oldest first per component. Append new versions; never edit one that has
 * shipped (databases record the versions they have applied, not their text).
 */
const MIGRATIONS: readonly Migration[] = [
  { component: 'ledger', version: 1, name: 'usage events', sql: ledgerSchemaV1 },
  { component: 'store', version: 1, name: 'counters and reservations', sql: storeSchemaV1 },
  { component: 'store', version: 2, name: 'overrides version', sql: storeSchemaV2 },
];

/** A migration applied by one `migrate()` call. */
export interface AppliedMigration {
  readonly component: MigrationComponent;
  readonly version: number;
  readonly name: string;
}

/** What `migrate()` did. */
export interface MigrationResult {
  /** The schema migrated. */
  readonly schema: string;
  /** Migrations applied by this call, in order; empty when the schema was up to date. */
  readonly applied: readonly AppliedMigration[];
}

/**
 * Brings `schema` up to date for the given components, in one transaction: all applied, or
 * none. The transaction first takes an advisory lock of its own per schema, so processes
 * that migrate at the same moment take turns (PostgreSQL 15 fails concurrent
 * `CREATE OR REPLACE FUNCTION`s otherwise), and the later ones find nothing left to do.
 *
 * @param schema the schema name, unquoted (validated by the caller).
 */
export async function migrate(
  pool: PgPool,
  schema: string,
  components: readonly MigrationComponent[],
): Promise<MigrationResult> {
  const s = quoteIdentifier(schema);
  const client = await pool.connect();
  let broken: unknown;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
      MIGRATION_LOCK_CLASS,
      schema,
    ]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (
        component text NOT NULL,
        version integer NOT NULL,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (component, version))`,
    );
    const done = await client.query<{ component: string; version: number }>(
      `SELECT component, version FROM ${s}.schema_migrations`,
    );
    const have = new Set(done.rows.map((row) => `${row.component}:${row.version}`));
    const applied: AppliedMigration[] = [];
    for (const migration of MIGRATIONS) {
      if (!components.includes(migration.component)) continue;
      if (have.has(`${migration.component}:${migration.version}`)) continue;
      await client.query(migration.sql(s));
      await client.query(
        `INSERT INTO ${s}.schema_migrations (component, version, name) VALUES ($1, $2, $3)`,
        [migration.component, migration.version, migration.name],
      );
      applied.push({
        component: migration.component,
        version: migration.version,
        name: migration.name,
      });
    }
    await client.query('COMMIT');
    return { schema, applied };
  } catch (error) {
    broken = error;
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    // A connection that failed mid-transaction is not handed back to the pool.
    client.release(broken instanceof Error && !('severity' in broken) ? broken : undefined);
  }
}

/** First key of the advisory lock that serialises migrations (the second hashes the schema). */
const MIGRATION_LOCK_CLASS = 0x71_6b_6d_67; // 'qkmg'

/** `"name"`, with any `"` doubled: safe in SQL whatever the name. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
