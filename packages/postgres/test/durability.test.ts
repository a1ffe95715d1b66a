import { createQuotaEngine, type UsageEvent } from '@quotakit/core';
import { PostgresStore } from '@quotakit/postgres';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { amountFor } from './fixtures/worker-task.js';
import {
  createPool,
  DATABASE_URL,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';
import { startWorker } from './worker-process.js';

const COUNT = 2_000;
const LIMIT = 4_000;
const NOW = Date.UTC(2030, 2, 10, 9);
const KILL_AFTER = 600;

const schema = uniqueSchema('durability');
const pool = postgresAvailable ? createPool() : undefined;

beforeAll(async () => {
  if (pool) await new PostgresStore({ pool, schema }).migrate();
});
afterAll(async () => {
  if (pool === undefined) return;
  await dropSchema(pool, schema);
  await pool.end();
});

function engineOn(database: pg.Pool) {
  return createQuotaEngine({
    store: new PostgresStore({ pool: database, schema }),
    clock: () => NOW,
    defaults: { cost_usd: { limit: LIMIT, period: 'per_day' } },
  });
}

async function collect(events: AsyncIterable<UsageEvent>): Promise<UsageEvent[]> {
  const all: UsageEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

describeWithPostgres('PostgresStore durability', () => {
  it(`keeps every acknowledged record of a process killed part-way, once, with counters equal to the ledger`, async () => {
    const userId = `durable-${schema}`;
    const keyPrefix = `key-${schema}`;
    const worker = startWorker({
      url: DATABASE_URL,
      schema,
      userId,
      mode: 'record',
      count: COUNT,
      limit: LIMIT,
      now: NOW,
      inFlight: 8,
      keyPrefix,
    });
    await worker.waitFor((line, count) => line.startsWith('ack ') && count >= KILL_AFTER);
    worker.child.kill('SIGKILL');
    const { signal } = await worker.exited;
    expect(signal).toBe('SIGKILL');
    // Statements the process had sent still finish in PostgreSQL after it died: wait for its
    // sessions to end before reading.
    for (let attempt = 0; ; attempt++) {
      const { rows } = await pool!.query(
        'SELECT count(*)::int AS sessions FROM pg_stat_activity WHERE application_name = $1',
        [schema],
      );
      if (rows[0].sessions === 0) break;
      if (attempt > 300) throw new Error("the killed worker's sessions did not end");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const acknowledged = worker.lines
      .filter((line) => line.startsWith('ack '))
      .map((line) => line.slice(4));
    // Killed part-way: some records were acknowledged, not all of them.
    expect(acknowledged.length).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(worker.lines).not.toContain('done');

    const engine = engineOn(pool!);
    const range = { from: new Date(NOW - 1), to: new Date(NOW + 1), userId };
    const events = await collect(engine.usageEvents(range));
    const keys = events.map((event) => event.idempotencyKey!);
    // Every acknowledged record is there, none twice.
    expect(new Set(keys).size).toBe(keys.length);
    for (const key of acknowledged) expect(keys).toContain(key);
    // Fewer than all: the kill came before the end (records in flight may have committed).
    expect(keys.length).toBeLessThan(COUNT);
    // The counter equals the ledger's sum (quarters: exact in binary, in any order).
    const ledgerSum = events.reduce((sum, event) => sum + event.amount, 0);
    const afterKill = await engine.getQuotaStatus('cost_usd', { userId });
    expect(afterKill.used).toBe(ledgerSum);
    for (const event of events) {
      const i = Number(event.idempotencyKey!.slice(keyPrefix.length + 1));
      expect(event.amount).toBe(amountFor(i));
      expect(event.metadata).toEqual({ i });
    }

    // Retrying all 2,000 with the same keys adds exactly the missing ones.
    let expectedSum = 0;
    for (let i = 0; i < COUNT; i++) expectedSum += amountFor(i);
    for (let start = 0; start < COUNT; start += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, offset) => {
          const i = start + offset;
          return engine.recordUsage({
            userId,
            resource: 'cost_usd',
            amount: amountFor(i),
            idempotencyKey: `${keyPrefix}-${i}`,
            metadata: { i },
          });
        }),
      );
    }
    const all = await collect(engine.usageEvents(range));
    expect(all).toHaveLength(COUNT);
    expect(new Set(all.map((event) => event.idempotencyKey)).size).toBe(COUNT);
    const status = await engine.getQuotaStatus('cost_usd', { userId });
    expect(status.used).toBe(expectedSum);
    expect(all.reduce((sum, event) => sum + event.amount, 0)).toBe(expectedSum);

    // A new engine, on a pool of its own, reports the same statuses.
    const otherPool = createPool({ max: 2 });
    try {
      const fresh = engineOn(otherPool);
      expect(await fresh.getAllQuotasStatus({ userId })).toEqual(
        await engine.getAllQuotasStatus({ userId }),
      );
      expect((await fresh.getQuotaStatus('cost_usd', { userId })).status).toBe(status.status);
    } finally {
      await otherPool.end();
    }
  }, 180_000);
});
