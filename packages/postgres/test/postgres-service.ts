import pg from 'pg';
import { describe } from 'vitest';

/** The PostgreSQL every test file talks to. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Set by CI (.ci/run): a missing PostgreSQL fails the tests instead of skipping them. */
const REQUIRED = process.env.QUOTAKIT_REQUIRE_SERVICES === '1';

/** Connects once; true when PostgreSQL answers within a few seconds. */
async function reachable(): Promise<boolean> {
  const probe = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3_000 });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await probe.end().catch(() => {});
  }
}

/** Whether this file's PostgreSQL tests run; probed once per test file, at import. */
export const postgresAvailable = await reachable();

const skipReason = `PostgreSQL not reachable at ${DATABASE_URL}: skipping`;
if (!postgresAvailable) {
  if (REQUIRED) {
    throw new Error(
      `PostgreSQL not reachable at ${DATABASE_URL}, and QUOTAKIT_REQUIRE_SERVICES=1 requires it`,
    );
  }
  console.warn(skipReason);
}

/**
 * `describe` for tests that need PostgreSQL: skipped, with the reason in its name, when it is
 * not reachable (and QUOTAKIT_REQUIRE_SERVICES is not set).
 */
export function describeWithPostgres(name: string, body: () => void): void {
  describe.skipIf(!postgresAvailable)(postgresAvailable ? name : `${name} (${skipReason})`, body);
}

/** A schema of its own for a test file, so that files running side by side never meet. */
export function uniqueSchema(name: string): string {
  return `qk_test_${name}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

/** A pool on the test database; the caller ends it. */
export function createPool(options: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10, ...options });
  pool.on('error', () => {});
  return pool;
}

/** Drops a test schema and everything in it. */
export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}
