/**
 * The engine on PostgresStore against rate-limiter-flexible's RateLimiterPostgres, both on the
 * same PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test), each with a
 * pg Pool of its own: consume throughput with 1 and 32 operations in flight, on one subject
 * and on many; then the usage ledger's ingestion rate (PostgresLedger, batched by the engine).
 *
 * Every limit is 1e9, never reached: both sides always take the admit path, and a quotakit
 * decision that says `unknown` (the store did not answer) fails the run rather than counting
 * as a fast answer. Skipped, with a message, when PostgreSQL is not reachable.
 */
import { createQuotaEngine, MemoryStore, type QuotaEngine, type UsageEvent } from '@quotakit/core';
import { PostgresLedger, PostgresStore } from '@quotakit/postgres';
import pg from 'pg';
import { RateLimiterPostgres } from 'rate-limiter-flexible';
import {
  type BenchOptions,
  type BenchSuite,
  formatOps,
  inFlightSample,
  median,
  OPS_PER_SAMPLE,
  type PairedCase,
  printPairedTable,
  printTable,
  runAlternating,
  runInFlight,
} from './harness.js';

const HUGE = 1e9;
const DAY_S = 86_400;
const PEER = 'rate-limiter-flexible';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Operations in flight in the concurrent cases. */
const IN_FLIGHT = 32;
/** Connections per side: enough for IN_FLIGHT statements to queue in the pool, not in Node. */
const POOL_SIZE = 16;
/** Subjects of the many-subjects case (capped: each must be filled once before measuring). */
const MAX_SUBJECTS = 10_000;
/** Events per ledger ingestion measurement. */
const LEDGER_EVENTS = 20_000;
/** Single-event appends per measurement of the unbatched baseline. */
const UNBATCHED_EVENTS = 1_000;

function refused(what: string): never {
  throw new Error(
    `${what} was refused or unknown: the benchmark is wrong or PostgreSQL is failing`,
  );
}

async function reachable(): Promise<boolean> {
  const probe = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2_000 });
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

function newPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: POOL_SIZE });
  pool.on('error', (error) => process.stderr.write(`pg: ${error.message}\n`));
  return pool;
}

function peerLimiter(pool: pg.Pool, tableName: string): Promise<RateLimiterPostgres> {
  return new Promise((resolve, reject) => {
    const limiter: RateLimiterPostgres = new RateLimiterPostgres(
      { storeClient: pool, storeType: 'pool', tableName, points: HUGE, duration: DAY_S },
      (error?: Error) => (error ? reject(error) : resolve(limiter)),
    );
  });
}

async function consumeCases(
  engine: QuotaEngine,
  limiter: RateLimiterPostgres,
  ids: readonly string[],
): Promise<PairedCase[]> {
  const consume = async (userId: string) => {
    const decision = await engine.consume({ userId, amounts: { llm_requests: 1 } });
    if (!decision.allowed || decision.results.llm_requests!.status === 'unknown') {
      refused('consume');
    }
  };
  const peerConsume = async (key: string) => {
    await limiter.consume(key, 1);
  };
  const started = performance.now();
  await runInFlight(ids.length, IN_FLIGHT, (i) => consume(ids[i]!));
  await runInFlight(ids.length, IN_FLIGHT, (i) => peerConsume(ids[i]!));
  process.stderr.write(
    `  filled ${ids.length.toLocaleString('en-US')} subjects on each side in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
  let cursor = 0;
  let peerCursor = 0;
  const subjects = `${ids.length.toLocaleString('en-US')} subjects`;
  return [
    {
      name: 'consume · 1 rule · 1 subject · 1 in flight',
      quotakit: inFlightSample(() => consume('u1'), 1),
      peer: inFlightSample(() => peerConsume('u1'), 1),
    },
    {
      name: `consume · 1 rule · 1 subject · ${IN_FLIGHT} in flight`,
      quotakit: inFlightSample(() => consume('u1'), IN_FLIGHT),
      peer: inFlightSample(() => peerConsume('u1'), IN_FLIGHT),
    },
    {
      name: `consume · 1 rule · ${subjects} · ${IN_FLIGHT} in flight`,
      quotakit: inFlightSample(() => consume(ids[cursor++ % ids.length]!), IN_FLIGHT),
      peer: inFlightSample(() => peerConsume(ids[peerCursor++ % ids.length]!), IN_FLIGHT),
    },
  ];
}

/** consume with the ledger written in the same transaction vs with no ledger at all. */
async function ledgerCost(store: PostgresStore, options: BenchOptions): Promise<void> {
  const withLedger = createQuotaEngine({
    store,
    defaults: { llm_requests: { limit: HUGE, period: 'per_day' } },
  });
  const withoutLedger = createQuotaEngine({
    store,
    ledger: false,
    defaults: { llm_requests: { limit: HUGE, period: 'per_day' } },
  });
  const run = (engine: QuotaEngine) =>
    inFlightSample(async () => {
      const decision = await engine.consume({ userId: 'cost', amounts: { llm_requests: 1 } });
      if (!decision.allowed || decision.results.llm_requests!.status === 'unknown') {
        refused('consume');
      }
    }, IN_FLIGHT);
  const results = await runAlternating(
    [
      {
        name: `consume · 1 subject · ${IN_FLIGHT} in flight: ledger row in the transaction (quotakit) vs ledger: false (peer column)`,
        quotakit: run(withLedger),
        peer: run(withoutLedger),
      },
    ],
    options,
  );
  printPairedTable(results, 'ledger: false');
}

/**
 * Ledger ingestion: an engine on a MemoryStore with a PostgresLedger (the engine's writer
 * batches 500 events per append), events per second from the first consume until
 * `engine.close()` has flushed the last batch; and, as the baseline, single-event appends.
 */
async function ledgerIngestion(
  pool: pg.Pool,
  schema: string,
  options: BenchOptions,
): Promise<void> {
  const ledger = new PostgresLedger({ pool, schema });
  await ledger.migrate();
  const batched: number[] = [];
  const single: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const engine = createQuotaEngine({
      store: new MemoryStore(),
      ledger,
      defaults: { llm_tokens: { limit: HUGE, period: 'per_day' } },
    });
    const started = performance.now();
    for (let i = 0; i < LEDGER_EVENTS; i++) {
      const decision = await engine.consume({
        userId: `user-${i % 100}`,
        amounts: { llm_tokens: 100 + (i % 900) },
      });
      if (!decision.allowed) refused('consume');
    }
    await engine.close();
    batched.push((LEDGER_EVENTS * 1000) / (performance.now() - started));

    const at = new Date();
    const begun = performance.now();
    for (let i = 0; i < UNBATCHED_EVENTS; i++) {
      const event: UsageEvent = {
        id: `single-${round}-${i}-${process.pid}`,
        at,
        resource: 'llm_tokens',
        amount: 100,
        userId: `user-${i % 100}`,
        metadata: {},
      };
      await ledger.append([event]);
    }
    single.push((UNBATCHED_EVENTS * 1000) / (performance.now() - begun));
    process.stderr.write(`  ledger round ${round + 1}/${options.rounds}\n`);
  }
  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${schema}".usage_events`);
  const expected = options.rounds * (LEDGER_EVENTS + UNBATCHED_EVENTS);
  if (rows[0].n !== expected) {
    throw new Error(`the ledger holds ${rows[0].n} events, expected ${expected}`);
  }
  printTable(
    ['ledger ingestion (PostgresLedger)', 'events/s (median)', 'range (rounds)'],
    [
      [
        `engine on MemoryStore + PostgresLedger, batches of 500, ${LEDGER_EVENTS.toLocaleString('en-US')} consumes then close()`,
        formatOps(median(batched)),
        `${formatOps(Math.min(...batched))}–${formatOps(Math.max(...batched))}`,
      ],
      [
        'ledger.append of one event at a time, awaited',
        formatOps(median(single)),
        `${formatOps(Math.min(...single))}–${formatOps(Math.max(...single))}`,
      ],
    ],
    [false, true, true],
  );
}

async function run(options: BenchOptions): Promise<void> {
  if (!(await reachable())) {
    console.log(`PostgreSQL not reachable at ${DATABASE_URL}: skipping the postgres suite.`);
    return;
  }
  const schema = `qk_bench_${process.pid}`;
  const ledgerSchema = `qk_bench_ledger_${process.pid}`;
  const peerTable = `rlf_bench_${process.pid}`;
  // One pool per side, so that neither side's statements queue behind the other's.
  const quotakitPool = newPool();
  const peerPool = newPool();
  const store = new PostgresStore({ pool: quotakitPool, schema });
  try {
    await store.migrate();
    const engine = createQuotaEngine({
      store,
      defaults: { llm_requests: { limit: HUGE, period: 'per_day' } },
    });
    const limiter = await peerLimiter(peerPool, peerTable);
    const ids = Array.from(
      { length: Math.min(options.subjects, MAX_SUBJECTS) },
      (_, i) => `user-${i}`,
    );
    console.log(
      `\nThroughput on PostgreSQL ${DATABASE_URL.replace(/\/\/[^@]*@/, '//')}: operations per ` +
        `second with 1 and ${IN_FLIGHT} in flight, a pool of ${POOL_SIZE} connections per side; ` +
        `median of ${options.rounds} rounds (${options.timeMs} ms per side and round, the ` +
        `sides taking turns ${OPS_PER_SAMPLE.toLocaleString('en-US')} operations at a time, ` +
        `after ${options.warmupMs} ms of warm-up)`,
    );
    const cases = await consumeCases(engine, limiter, ids);
    printPairedTable(await runAlternating(cases, options), PEER);
    console.log('\nWhat the usage ledger costs on the consume path (same store, same run)');
    await ledgerCost(store, options);
    console.log('\nUsage ledger ingestion');
    await ledgerIngestion(quotakitPool, ledgerSchema, options);
  } finally {
    await store.close();
    const cleanup = Promise.all([
      quotakitPool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`),
      quotakitPool.query(`DROP SCHEMA IF EXISTS "${ledgerSchema}" CASCADE`),
      peerPool.query(`DROP TABLE IF EXISTS "${peerTable}"`),
    ]);
    const timeout = new Promise((resolve) => setTimeout(resolve, 30_000).unref());
    await Promise.race([cleanup.catch(() => {}), timeout]);
    await Promise.all([quotakitPool.end(), peerPool.end()]);
  }
}

export const postgres: BenchSuite = {
  name: 'postgres',
  title: `@quotakit/core on @quotakit/postgres PostgresStore vs ${PEER} RateLimiterPostgres`,
  run,
};
