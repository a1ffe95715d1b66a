import { createServer, type Server, type Socket } from 'node:net';
import { createQuotaEngine, QuotaStoreError } from '@quotakit/core';
import { PostgresStore } from '@quotakit/postgres';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createPool,
  DATABASE_URL,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';

const defaults = { llm_requests: { limit: 5, period: 'per_day' as const } };
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);

beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  // Rejections from late replies would surface on a later turn of the event loop.
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(unhandled).toEqual([]);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});

/** A port on 127.0.0.1 with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A server on 127.0.0.1 that accepts connections and never answers: a stalled database. */
async function blackHole(): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, sockets };
}

describe('PostgresStore without a database', () => {
  it('answers unknown, following failureMode, when nothing listens on the port', async () => {
    const pool = new pg.Pool({ host: '127.0.0.1', port: await closedPort(), user: 'postgres' });
    const store = new PostgresStore({ pool, timeoutMs: 1_000 });
    const open = createQuotaEngine({ store, defaults });
    const closed = createQuotaEngine({ store, defaults, failureMode: 'closed' });
    const [opened, refused] = await Promise.all([
      open.consume({ userId: 'u', amounts: { llm_requests: 1 } }),
      closed.consume({ userId: 'u', amounts: { llm_requests: 1 } }),
    ]);
    expect(opened).toMatchObject({
      allowed: true,
      results: { llm_requests: { status: 'unknown' } },
    });
    expect(refused).toMatchObject({
      allowed: false,
      results: { llm_requests: { status: 'unknown' } },
    });
    await expect(store.claim({ now: 0, key: 'k', ttlMs: 1 })).rejects.toBeInstanceOf(
      QuotaStoreError,
    );
    await pool.end();
  });

  it('gives up after timeoutMs on a server that never answers, and sends no pile of connection attempts', async () => {
    const hole = await blackHole();
    const pool = new pg.Pool({ host: '127.0.0.1', port: hole.port, user: 'postgres', max: 10 });
    pool.on('error', () => {});
    const store = new PostgresStore({ pool, timeoutMs: 200 });
    const engine = createQuotaEngine({ store, defaults, failureMode: 'closed' });
    const first = store.read({ now: 0, subject: {}, counters: [] });
    await expect(first).rejects.toThrow('PostgreSQL did not answer within 200 ms');
    // While the database is stalled, calls fail at once instead of each opening a connection
    // and waiting: one probe at a time goes out.
    const decisions = await Promise.all(
      Array.from({ length: 50 }, () =>
        engine.consume({ userId: 'u', amounts: { llm_requests: 1 } }),
      ),
    );
    for (const decision of decisions) {
      expect(decision).toMatchObject({
        allowed: false,
        results: { llm_requests: { status: 'unknown' } },
      });
    }
    expect(hole.sockets.length).toBeLessThanOrEqual(3);
    for (const socket of hole.sockets) socket.destroy();
    hole.server.close();
    await pool.end().catch(() => {});
  });
});

describeWithPostgres('PostgresStore when PostgreSQL stalls or drops connections', () => {
  const schema = uniqueSchema('outage');
  const admin = postgresAvailable ? createPool({ max: 3 }) : undefined;

  beforeAll(async () => {
    await new PostgresStore({ pool: admin!, schema }).migrate();
  });
  afterAll(async () => {
    await dropSchema(admin!, schema);
    await admin!.end();
  });

  /** Locks every counter row of the schema from another session until the returned release. */
  async function lockCounters(): Promise<() => Promise<void>> {
    const blocker = await admin!.connect();
    await blocker.query('BEGIN');
    await blocker.query(`SELECT * FROM "${schema}".counters FOR UPDATE`);
    return async () => {
      await blocker.query('COMMIT');
      blocker.release();
    };
  }

  async function sessionsOf(
    application: string,
  ): Promise<Array<{ pid: number; wait: string | null }>> {
    const { rows } = await admin!.query(
      `SELECT pid, wait_event_type AS wait FROM pg_stat_activity
       WHERE application_name = $1 AND state <> 'idle'`,
      [application],
    );
    return rows;
  }

  async function waitUntil(condition: () => Promise<boolean>, what: string): Promise<void> {
    for (let attempt = 0; attempt < 400; attempt++) {
      if (await condition()) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`gave up waiting for ${what}`);
  }

  it('answers unknown when rows stay locked past timeoutMs, lets go of them in PostgreSQL too, and counts again after', async () => {
    const application = `${schema}_locked`;
    const pool = createPool({ application_name: application });
    const store = new PostgresStore({ pool, schema, timeoutMs: 300 });
    const engine = createQuotaEngine({ store, defaults, failureMode: 'closed' });
    const userId = 'locked';
    expect((await engine.consume({ userId, amounts: { llm_requests: 1 } })).allowed).toBe(true);
    const release = await lockCounters();
    try {
      const stalled = await engine.consume({ userId, amounts: { llm_requests: 1 } });
      expect(stalled).toMatchObject({
        allowed: false,
        results: { llm_requests: { status: 'unknown' } },
      });
      // lock_timeout ended the statement in PostgreSQL as well: nothing of ours still waits.
      await waitUntil(
        async () => (await sessionsOf(application)).length === 0,
        'the stalled statement to end',
      );
    } finally {
      await release();
    }
    // Nothing was counted by the stalled call; the next calls count again.
    const decisions = [];
    for (let i = 0; i < 3; i++) {
      decisions.push(await engine.consume({ userId, amounts: { llm_requests: 1 } }));
    }
    expect(decisions.map((d) => d.results.llm_requests!.status)).not.toContain('unknown');
    expect(decisions.at(-1)!.results.llm_requests!.used).toBe(4);
    await pool.end();
  });

  it('answers unknown when its connection is killed mid-statement, without crashing, and reconnects', async () => {
    const application = `${schema}_killed`;
    // No 'error' listener of the test's own: the store's keep the process alive.
    const pool = new pg.Pool({ connectionString: DATABASE_URL, application_name: application });
    const store = new PostgresStore({ pool, schema, timeoutMs: 10_000 });
    const engine = createQuotaEngine({ store, defaults });
    const userId = 'killed';
    await engine.consume({ userId, amounts: { llm_requests: 1 } });
    const release = await lockCounters();
    let pending: ReturnType<typeof engine.consume>;
    try {
      pending = engine.consume({ userId, amounts: { llm_requests: 1 } });
      await waitUntil(
        async () => (await sessionsOf(application)).some((s) => s.wait === 'Lock'),
        'the consume to wait for the lock',
      );
      await admin!.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
        [application],
      );
      expect(await pending).toMatchObject({
        allowed: true,
        results: { llm_requests: { status: 'unknown' } },
      });
    } finally {
      await release();
    }
    // Idle connections dropped by the server: the pool emits 'error', nothing crashes.
    await admin!.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      [application],
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    let status = 'unknown';
    for (let attempt = 0; attempt < 20 && status === 'unknown'; attempt++) {
      status = (await engine.consume({ userId, amounts: { llm_requests: 1 } })).results
        .llm_requests!.status;
    }
    expect(status).not.toBe('unknown');
    expect((await engine.getQuotaStatus('llm_requests', { userId })).used).toBe(2);
    await store.close();
    await pool.end();
  });
});
