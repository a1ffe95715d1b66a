import { describeStoreContract } from '@quotakit/core/testing';
import { PostgresStore } from '@quotakit/postgres';
import { afterAll } from 'vitest';
import {
  createPool,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';

const schema = uniqueSchema('contract');
// The race tests fire 2,000 operations at once: 20 connections, the rest queue in the pool.
const pool = postgresAvailable ? createPool({ max: 20 }) : undefined;

afterAll(async () => {
  if (pool === undefined) return;
  await dropSchema(pool, schema);
  await pool.end();
});

describeWithPostgres('PostgresStore', () => {
  describeStoreContract(
    'PostgresStore',
    async () => {
      // Cleanup every 50 operations, so that the suite runs it often, next to everything else.
      const store = new PostgresStore({
        pool: pool!,
        schema,
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
