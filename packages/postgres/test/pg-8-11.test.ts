/**
 * PostgresStore over pg 8.11.0, the oldest pg the peer range admits (the other tests run the
 * current 8.x): the store contract, usage ledger included.
 */
import { describeStoreContract } from '@quotakit/core/testing';
import { PostgresStore } from '@quotakit/postgres';
import pg from 'pg-v8-11';
import { afterAll } from 'vitest';
import {
  createPool,
  DATABASE_URL,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';

const schema = uniqueSchema('pg_8_11');
// The race tests fire 2,000 operations at once: 20 connections, the rest queue in the pool.
const pool = postgresAvailable
  ? new pg.Pool({ connectionString: DATABASE_URL, max: 20 })
  : undefined;
pool?.on('error', () => {});

afterAll(async () => {
  if (pool === undefined) return;
  // Dropped through the current pg, which the helper is typed for.
  const cleanup = createPool();
  await dropSchema(cleanup, schema);
  await cleanup.end();
  await pool.end();
});

describeWithPostgres('PostgresStore over pg 8.11.0', () => {
  describeStoreContract(
    'PostgresStore (pg 8.11.0)',
    async () => {
      const store = new PostgresStore({
        pool: pool!,
        schema,
        // Long: the suite's races queue thousands of operations on one row, one at a time.
        timeoutMs: 60_000,
      });
      await store.migrate();
      return store;
    },
    { ledger: true },
  );
});
