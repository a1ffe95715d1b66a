import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createQuotaEngine } from '@quotakit/core';
import { RedisStore } from '@quotakit/redis';
import { afterAll, expect, it } from 'vitest';
import type { WorkerTask } from './fixtures/quota-worker.js';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  REDIS_URL,
  redisAvailable,
  uniquePrefix,
} from './redis-service.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/quota-worker.ts', import.meta.url));
const PROCESSES = 4;
const PER_PROCESS = 2_000;
const LIMIT = 1_000;

const prefix = uniquePrefix('processes');
const client = redisAvailable ? connect() : undefined;
const children = new Set<ChildProcess>();

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  if (client === undefined) return;
  await deleteKeys(client, prefix);
  await client.quit();
});

/**
 * Starts a worker process (tsx from the workspace root, which also maps @quotakit/* to the
 * sources) and resolves with its first line of output.
 */
function startWorker(task: Omit<WorkerTask, 'url' | 'prefix'>): {
  child: ChildProcess;
  firstLine: Promise<string>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    cwd: ROOT,
    env: {
      ...process.env,
      TSX_TSCONFIG_PATH: `${ROOT}tsconfig.json`,
      QUOTA_WORKER: JSON.stringify({ ...task, url: REDIS_URL, prefix }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const firstLine = new Promise<string>((resolve, reject) => {
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const end = stdout.indexOf('\n');
      if (end >= 0) resolve(stdout.slice(0, end));
    });
    child.on('exit', (code, signal) =>
      reject(new Error(`worker exited (${code ?? signal}) without output: ${stderr}`)),
    );
  });
  return { child, firstLine };
}

/** Runs PROCESSES workers at once; their summed { admitted, unknown }. */
async function race(mode: WorkerTask['mode'], userId: string) {
  const lines = await Promise.all(
    Array.from(
      { length: PROCESSES },
      () =>
        startWorker({ mode, userId, count: PER_PROCESS, limit: LIMIT, ttlMs: 600_000 }).firstLine,
    ),
  );
  const totals = { admitted: 0, unknown: 0 };
  for (const line of lines) {
    const { admitted, unknown } = JSON.parse(line) as typeof totals;
    totals.admitted += admitted;
    totals.unknown += unknown;
  }
  return totals;
}

function engineAt(clock: () => number) {
  return createQuotaEngine({
    store: new RedisStore({ client: client!, prefix, timeoutMs: 5_000 }),
    clock,
    defaults: {
      llm_requests: { limit: LIMIT, period: 'per_day' },
      llm_tokens: { limit: LIMIT, period: 'per_day' },
      concurrent_tasks: { limit: LIMIT, period: 'total' },
    },
  });
}

describeWithRedis('RedisStore across processes', () => {
  const total = PROCESSES * PER_PROCESS;

  it(`admits exactly ${LIMIT} of ${total} consumes from ${PROCESSES} processes`, async () => {
    const userId = `consume-${prefix}`;
    expect(await race('consume', userId)).toEqual({ admitted: LIMIT, unknown: 0 });
    const status = await engineAt(Date.now).getQuotaStatus('llm_requests', { userId });
    expect(status).toMatchObject({ used: LIMIT, remaining: 0 });
  }, 120_000);

  it(`admits exactly ${LIMIT} of ${total} reservations, each committed, from ${PROCESSES} processes`, async () => {
    const userId = `reserve-${prefix}`;
    expect(await race('reserve', userId)).toEqual({ admitted: LIMIT, unknown: 0 });
    const status = await engineAt(Date.now).getQuotaStatus('llm_requests', { userId });
    expect(status.used).toBe(LIMIT);
  }, 120_000);

  it(`grants exactly ${LIMIT} of ${total} leases from ${PROCESSES} processes`, async () => {
    const userId = `lease-${prefix}`;
    expect(await race('lease', userId)).toEqual({ admitted: LIMIT, unknown: 0 });
    const status = await engineAt(Date.now).getQuotaStatus('concurrent_tasks', { userId });
    expect(status.used).toBe(LIMIT);
  }, 120_000);

  it('returns what a killed process held once the reservation ttl has passed', async () => {
    const userId = `killed-${prefix}`;
    const ttlMs = 30_000;
    const { child, firstLine } = startWorker({
      mode: 'hold',
      userId,
      count: 1,
      limit: LIMIT,
      ttlMs,
    });
    expect(await firstLine).toBe('held');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    // The engine's clock decides when a reservation has expired, so no test sleeps: the same
    // store read at the worker's time and a ttl later.
    const now = Date.now();
    expect((await engineAt(() => now).getQuotaStatus('llm_tokens', { userId })).used).toBe(5);
    const later = engineAt(() => now + ttlMs + 1);
    expect((await later.getQuotaStatus('llm_tokens', { userId })).used).toBe(0);
    // Returned once, not on every read.
    const consumed = await later.consume({ userId, amounts: { llm_tokens: LIMIT } });
    expect(consumed.allowed).toBe(true);
  }, 60_000);
});
