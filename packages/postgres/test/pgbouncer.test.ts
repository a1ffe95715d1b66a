import { createQuotaEngine } from '@quotakit/core';
import { describeStoreContract } from '@quotakit/core/testing';
import { PostgresStore } from '@quotakit/postgres';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { pgbouncerProgram, startPgBouncer } from './pgbouncer.js';
import { DATABASE_URL, dropSchema, postgresAvailable, uniqueSchema } from './postgres-service.js';

// .ci/run installs PgBouncer: there, a missing one fails this file instead of skipping it.
const program = pgbouncerProgram();
if (postgresAvailable && program === undefined && process.env.QUOTAKIT_REQUIRE_SERVICES === '1') {
  throw new Error('pgbouncer not found, and QUOTAKIT_REQUIRE_SERVICES=1 requires it');
}
const runs = postgresAvailable && program !== undefined;
const skipReason = postgresAvailable ? 'pgbouncer not installed' : 'PostgreSQL not reachable';
if (!runs) console.warn(`PgBouncer tests: ${skipReason}: skipping`);

const bouncer = runs ? await startPgBouncer(program!, DATABASE_URL) : undefined;
// The race tests fire 2,000 operations at once: 20 client connections, the rest queue.
const viaBouncer = bouncer ? new pg.Pool({ connectionString: bouncer.url, max: 20 }) : undefined;
viaBouncer?.on('error', () => {});
const schema = uniqueSchema('pgbouncer');

afterAll(async () => {
  if (viaBouncer !== undefined) {
    await dropSchema(viaBouncer, schema);
    await viaBouncer.end();
  }
  await bouncer?.stop();
});

/** A store that talks through PgBouncer, migrated through it too (one transaction). */
async function storeBehindBouncer() {
  const store = new PostgresStore({
    pool: viaBouncer!,
    schema,
    preparedStatements: false,
    timeoutMs: 60_000,
  });
  await store.migrate();
  return store;
}

describe.skipIf(!runs)(
  runs
    ? 'PostgresStore behind PgBouncer in transaction mode, preparedStatements: false'
    : `PostgresStore behind PgBouncer (${skipReason}: skipping)`,
  () => {
    it('admits exactly the limit from concurrent calls, and writes one ledger event each', async () => {
      const store = await storeBehindBouncer();
      const engine = createQuotaEngine({
        store,
        defaults: { llm_requests: { limit: 100, period: 'per_day' } },
      });
      const from = new Date(Date.now() - 1_000);
      const decisions = await Promise.all(
        Array.from({ length: 150 }, () =>
          engine.consume({ userId: 'bounced', amounts: { llm_requests: 1 } }),
        ),
      );
      expect(decisions.map((d) => d.results.llm_requests!.status)).not.toContain('unknown');
      expect(decisions.filter((d) => d.allowed)).toHaveLength(100);
      let events = 0;
      for await (const _ of engine.usageEvents({ from, to: new Date(), userId: 'bounced' })) {
        events += 1;
      }
      expect(events).toBe(100);
    });

    describeStoreContract('through PgBouncer', () => storeBehindBouncer(), { ledger: true });
  },
);
