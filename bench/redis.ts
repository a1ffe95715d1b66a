/**
 * The engine on RedisStore against rate-limiter-flexible's RateLimiterRedis, both on the same
 * Redis (REDIS_URL, default redis://127.0.0.1:6379): consume throughput with 1 and 64
 * operations in flight, on one subject and on many, and with three rules.
 *
 * Every limit is 1e9, never reached: both sides always take the admit path, and a quotakit
 * decision that says `unknown` (the store did not answer) fails the run rather than counting
 * as a fast answer. Skipped, with a message, when Redis is not reachable.
 */
import { createQuotaEngine, type QuotaEngine } from '@quotakit/core';
import { RedisStore } from '@quotakit/redis';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import {
  type BenchOptions,
  type BenchSuite,
  inFlightSample,
  OPS_PER_SAMPLE,
  type PairedCase,
  printPairedTable,
  runAlternating,
  runInFlight,
} from './harness.js';

// Never reached in a run (well under 1e8 operations), and within the range of real limits.
const HUGE = 1e9;
const DAY_S = 86_400;
const MINUTE_S = 60;
const PEER = 'rate-limiter-flexible';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Operations in flight in the concurrent cases: a busy server's worth of requests. */
const IN_FLIGHT = 64;
/** Operations in flight while filling counters before measuring. */
const FILL_IN_FLIGHT = 64;

function refused(what: string): never {
  throw new Error(`${what} was refused or unknown: the benchmark is wrong or Redis is failing`);
}

async function reachable(): Promise<boolean> {
  const probe = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

async function connect(): Promise<Redis> {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  client.on('error', (error: Error) => process.stderr.write(`redis: ${error.message}\n`));
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
  return client;
}

/** Deletes every key under a pattern, in bounded batches. */
async function deleteKeys(client: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  for (let pass = 0; pass < 1_000_000; pass++) {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) await client.unlink(...keys);
    cursor = next;
    if (cursor === '0') return;
  }
}

interface Sides {
  engine(rules: 'one' | 'three'): QuotaEngine;
  peer(name: string, duration?: number): RateLimiterRedis;
}

async function buildCases(sides: Sides, ids: readonly string[]): Promise<PairedCase[]> {
  const one = sides.engine('one');
  const consumeOne: (userId: string) => Promise<void> = async (userId) => {
    const decision = await one.consume({ userId, amounts: { llm_requests: 1 } });
    if (!decision.allowed || decision.results.llm_requests!.status === 'unknown') {
      refused('consume');
    }
  };
  const peerOne = sides.peer('one');
  const peerConsume = async (key: string) => {
    await peerOne.consume(key, 1);
  };

  // Both sides meet every subject once before measuring: the loops update existing keys.
  const started = performance.now();
  await runInFlight(ids.length, FILL_IN_FLIGHT, (i) => consumeOne(ids[i]!));
  await runInFlight(ids.length, FILL_IN_FLIGHT, (i) => peerConsume(ids[i]!));
  process.stderr.write(
    `  filled ${ids.length.toLocaleString('en-US')} subjects on each side in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
  let cursor = 0;
  let peerCursor = 0;
  const manyIds = () => ids[cursor++ % ids.length]!;
  const manyPeerIds = () => ids[peerCursor++ % ids.length]!;

  const three = sides.engine('three');
  const userPeer = sides.peer('three-user');
  const agentPeer = sides.peer('three-agent');
  const globalPeer = sides.peer('three-global', MINUTE_S);

  const subjects = `${ids.length.toLocaleString('en-US')} subjects`;
  return [
    {
      name: 'consume · 1 rule · 1 subject · 1 in flight',
      quotakit: inFlightSample(() => consumeOne('u1'), 1),
      peer: inFlightSample(() => peerConsume('u1'), 1),
    },
    {
      name: `consume · 1 rule · 1 subject · ${IN_FLIGHT} in flight`,
      quotakit: inFlightSample(() => consumeOne('u1'), IN_FLIGHT),
      peer: inFlightSample(() => peerConsume('u1'), IN_FLIGHT),
    },
    {
      name: `consume · 1 rule · ${subjects} · 1 in flight`,
      quotakit: inFlightSample(() => consumeOne(manyIds()), 1),
      peer: inFlightSample(() => peerConsume(manyPeerIds()), 1),
    },
    {
      name: `consume · 1 rule · ${subjects} · ${IN_FLIGHT} in flight`,
      quotakit: inFlightSample(() => consumeOne(manyIds()), IN_FLIGHT),
      peer: inFlightSample(() => peerConsume(manyPeerIds()), IN_FLIGHT),
    },
    {
      name: 'consume · 3 rules (user, agent, global) · 1 in flight',
      quotakit: inFlightSample(async () => {
        const decision = await three.consume({
          userId: 'u1',
          agentId: 'a1',
          amounts: { llm_requests: 1 },
        });
        if (!decision.allowed || decision.results.llm_requests!.status === 'unknown') {
          refused('consume');
        }
      }, 1),
      peer: inFlightSample(async () => {
        await userPeer.consume('u1', 1);
        await agentPeer.consume('a1', 1);
        await globalPeer.consume('all', 1);
      }, 1),
    },
  ];
}

async function run(options: BenchOptions): Promise<void> {
  if (!(await reachable())) {
    console.log(`Redis not reachable at ${REDIS_URL}: skipping the redis suite.`);
    return;
  }
  const prefix = `qk-bench-${process.pid}`;
  const peerPrefix = `rlf-bench-${process.pid}`;
  // One connection per side, so that neither side's commands queue behind the other's.
  const quotakitClient = await connect();
  const peerClient = await connect();
  // The default timeoutMs (100) is about outages; a loaded benchmark machine can stall an
  // answer that long, and an `unknown` fails the run, so allow a second.
  const store = new RedisStore({ client: quotakitClient, prefix, timeoutMs: 1_000 });
  const engines: QuotaEngine[] = [];
  const sides: Sides = {
    engine(rules) {
      const engine = createQuotaEngine({
        store,
        defaults: {
          llm_requests:
            rules === 'one'
              ? { limit: HUGE, period: 'per_day' }
              : [
                  { limit: HUGE, period: 'per_day' },
                  { limit: HUGE, period: 'per_day', scope: 'agent' },
                  { limit: HUGE, period: 'per_minute', scope: 'global' },
                ],
        },
      });
      engines.push(engine);
      return engine;
    },
    peer: (name, duration = DAY_S) =>
      new RateLimiterRedis({
        storeClient: peerClient,
        points: HUGE,
        duration,
        keyPrefix: `${peerPrefix}-${name}`,
      }),
  };
  try {
    const ids = Array.from({ length: options.subjects }, (_, i) => `user-${i}`);
    console.log(
      `\nThroughput on Redis ${REDIS_URL}: operations per second with 1 and ${IN_FLIGHT} in ` +
        `flight; median of ${options.rounds} rounds (${options.timeMs} ms per side and round, ` +
        `the sides taking turns ${OPS_PER_SAMPLE.toLocaleString('en-US')} operations at a ` +
        `time, after ${options.warmupMs} ms of warm-up)`,
    );
    const cases = await buildCases(sides, ids);
    const results = await runAlternating(cases, options);
    printPairedTable(results, PEER);
  } finally {
    for (const engine of engines) await engine.close();
    // Bounded: after a failure the connections may be gone, and the keys expire anyway.
    const cleanup = Promise.all([
      deleteKeys(quotakitClient, `{${prefix}}*`),
      deleteKeys(peerClient, `${peerPrefix}-*`),
    ]);
    const timeout = new Promise((resolve) => setTimeout(resolve, 30_000).unref());
    await Promise.race([cleanup.catch(() => {}), timeout]);
    quotakitClient.disconnect();
    peerClient.disconnect();
  }
}

export const redis: BenchSuite = {
  name: 'redis',
  title: `@quotakit/core on @quotakit/redis RedisStore vs ${PEER} RateLimiterRedis`,
  run,
};
