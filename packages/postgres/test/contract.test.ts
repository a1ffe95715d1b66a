import { describeStoreContract } from '@quotakit/core/testing';
import { PostgresStore } from '@quotakit/postgres';
import pgV811 from 'pg-v8-11';
import { afterAll } from 'vitest';
import {
  createPool,
  DATABASE_URL,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';

// The race tests fire 2,000 operations at once: 20 connections, the rest queue in the pool.
const pool = postgresAvailable ? createPool({ max: 20 }) : undefined;
// pg 8.11.0, the oldest pg the peer range admits (every other test runs the current 8.x).
const oldestPool = postgresAvailable
  ? new pgV811.Pool({ connectionString: DATABASE_URL, max: 20 })
  : undefined;
oldestPool?.on('error', () => {});

const runs = [
  { name: 'PostgresStore', pool, schema: uniqueSchema('contract') },
  {
    name: 'PostgresStore over pg 8.11.0',
    pool: oldestPool,
    schema: uniqueSchema('contract_pg811'),
  },
];

afterAll(async () => {
  if (pool === undefined) return;
  for (const run of runs) await dropSchema(pool, run.schema);
  await oldestPool?.end();
  await pool.end();
});

for (const run of runs) {
  describeWithPostgres(run.name, () => {
    describeStoreContract(
      run.name,
      async () => {
        // Cleanup every 50 operations, so that the suite runs it often, next to everything else.
        const store = new PostgresStore({
          pool: run.pool!,
          schema: run.schema,
          // Long: the suite's races queue thousands of operations on one row, one at a time.
          timeoutMs: 60_000,
          cleanup: { everyOperations: 50 },
        });
        await store.migrate();
        return store;
      },
      { ledger: true },
    );
  });
}
