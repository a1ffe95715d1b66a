import { createQuotaEngine } from '@quotakit/core';
import { PostgresStore } from '@quotakit/postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createPool,
  DATABASE_URL,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';
import { startWorker } from './worker-process.js';

const PROCESSES = 4;
const PER_PROCESS = 2_000;
const LIMIT = 1_000;
const NOW = Date.UTC(2030, 0, 15, 12);

const schema = uniqueSchema('processes');
const pool = postgresAvailable ? createPool() : undefined;

beforeAll(async () => {
  if (pool) await new PostgresStore({ pool, schema }).migrate();
});
afterAll(async () => {
  if (pool === undefined) return;
  await dropSchema(pool, schema);
  await pool.end();
});

describeWithPostgres('PostgresStore across processes', () => {
  const total = PROCESSES * PER_PROCESS;

  it(`admits exactly ${LIMIT} of ${total} consumes from ${PROCESSES} processes`, async () => {
    const userId = `consume-${schema}`;
    const workers = Array.from({ length: PROCESSES }, () =>
      startWorker({
        url: DATABASE_URL,
        schema,
        userId,
        mode: 'consume',
        count: PER_PROCESS,
        limit: LIMIT,
        now: NOW,
      }),
    );
    const lines = await Promise.all(workers.map((worker) => worker.waitFor(() => true)));
    const totals = { admitted: 0, unknown: 0 };
    for (const line of lines) {
      const { admitted, unknown } = JSON.parse(line) as typeof totals;
      totals.admitted += admitted;
      totals.unknown += unknown;
    }
    expect(totals).toEqual({ admitted: LIMIT, unknown: 0 });
    const engine = createQuotaEngine({
      store: new PostgresStore({ pool: pool!, schema }),
      clock: () => NOW,
      defaults: { llm_requests: { limit: LIMIT, period: 'per_day' } },
    });
    const status = await engine.getQuotaStatus('llm_requests', { userId });
    expect(status).toMatchObject({ used: LIMIT, remaining: 0, status: 'at_limit' });
    // The ledger holds one event per admitted consume, none for the refused ones.
    const events = [];
    for await (const event of engine.usageEvents({
      from: new Date(NOW - 1),
      to: new Date(NOW + 1),
      userId,
    })) {
      events.push(event);
    }
    expect(events).toHaveLength(LIMIT);
    expect(new Set(events.map((event) => event.id)).size).toBe(LIMIT);
  }, 180_000);
});
