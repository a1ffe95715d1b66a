/**
 * The in-process engine with its default in-memory store, against rate-limiter-flexible's
 * RateLimiterMemory: awaited operations per second (one in flight) and heap per idle subject.
 *
 * Every limit is 1e9, never reached: both sides always take the admit path.
 */
import { createQuotaEngine, MemoryStore, type QuotaEngine } from '@quotakit/core';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import {
  type BenchOptions,
  type BenchSuite,
  collectAndMeasure,
  formatBytes,
  getGc,
  OPS_PER_SAMPLE,
  type PairedCase,
  printPairedTable,
  printTable,
  runPaired,
} from './harness.js';

// Never reached in a run (well under 1e8 operations), and within the range of real limits.
const HUGE = 1e9;
const DAY_S = 86_400;
const MINUTE_S = 60;
const PEER = 'rate-limiter-flexible';

const oneRule = () =>
  createQuotaEngine({ defaults: { llm_requests: { limit: HUGE, period: 'per_day' } } });

const threeRules = () =>
  createQuotaEngine({
    defaults: {
      llm_requests: [
        { limit: HUGE, period: 'per_day' },
        { limit: HUGE, period: 'per_day', scope: 'agent' },
        { limit: HUGE, period: 'per_minute', scope: 'global' },
      ],
    },
  });

const peerLimiter = (keyPrefix: string, duration = DAY_S) =>
  new RateLimiterMemory({ points: HUGE, duration, keyPrefix });

function refused(what: string): never {
  throw new Error(`${what} was refused: a limit was reached, the benchmark is wrong`);
}

/** Subject ids `user-0` … `user-(n-1)`, built before anything is measured. */
function subjectIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `user-${i}`);
}

/** The four throughput cases; engines and limiters live for the whole run (steady state). */
async function buildCases(ids: readonly string[]): Promise<PairedCase[]> {
  // (1) consume, one rule, one subject.
  const single = oneRule();
  const singlePeer = peerLimiter('single');

  // (2) consume, one rule, `ids.length` subjects cycled. Both sides are filled with every
  // subject first, so the measured loop updates existing counters in a map of that size.
  const many = oneRule();
  const manyPeer = peerLimiter('many');
  for (const userId of ids) {
    await many.consume({ userId, amounts: { llm_requests: 1 } });
    await manyPeer.consume(userId, 1);
  }
  let manyCursor = 0;
  let manyPeerCursor = 0;

  // (3) checkQuota vs get, one subject that already has usage (both read an existing counter).
  const check = oneRule();
  const checkPeer = peerLimiter('check');
  await check.consume({ userId: 'u1', amounts: { llm_requests: 1 } });
  await checkPeer.consume('u1', 1);

  // (4) consume under three rules (user, agent, global) vs three limiters awaited in sequence,
  // as a user would write it to stop at the first refusal (no atomicity on the peer's side).
  const three = threeRules();
  const userPeer = peerLimiter('user');
  const agentPeer = peerLimiter('agent');
  const globalPeer = peerLimiter('global', MINUTE_S);

  return [
    {
      name: 'consume · 1 rule · 1 subject',
      quotakit: async () => {
        for (let i = 0; i < OPS_PER_SAMPLE; i++) {
          const decision = await single.consume({ userId: 'u1', amounts: { llm_requests: 1 } });
          if (!decision.allowed) refused('consume');
        }
      },
      peer: async () => {
        for (let i = 0; i < OPS_PER_SAMPLE; i++) await singlePeer.consume('u1', 1);
      },
    },
    {
      name: `consume · 1 rule · ${ids.length.toLocaleString('en-US')} subjects`,
      quotakit: async () => {
        for (let i = 0; i < OPS_PER_SAMPLE; i++) {
          const userId = ids[manyCursor]!;
          manyCursor = manyCursor + 1 === ids.length ? 0 : manyCursor + 1;
          const decision = await many.consume({ userId, amounts: { llm_requests: 1 } });
          if (!decision.allowed) refused('consume');
        }
      },
      peer: async () => {
        for (let i = 0; i < OPS_PER_SAMPLE; i++) {
          const key = ids[manyPeerCursor]!;
          manyPeerCursor = manyPeerCursor + 1 === ids.length ? 0 : manyPeerCursor + 1;
          await manyPeer.consume(key, 1);
        }
      },
    },
    {
      name: 'checkQuota vs get · 1 subject',
      quotakit: async () => {
        for (let i = 0; i < OPS_PER_SAMPLE; i++) {
          const result = await check.checkQuota({
            userId: 'u1',
            resource: 'llm_requests',
            amount: 1,
          });
          if (!result.allowed) refused('checkQuota');
        }
      },
      peer: async () => {
        for (let i = 0; i < OPS_PER_SAMPLE; i++) {
          const res = await checkPeer.get('u1');
          if (res === null || res.remainingPoints < 1) refused('get');
        }
      },
    },
    {
      name: 'consume · 3 rules (user, agent, global)',
      quotakit: async () => {
        for (let i = 0; i < OPS_PER_SAMPLE; i++) {
          const decision = await three.consume({
            userId: 'u1',
            agentId: 'a1',
            amounts: { llm_requests: 1 },
          });
          if (!decision.allowed) refused('consume');
        }
      },
      peer: async () => {
        for (let i = 0; i < OPS_PER_SAMPLE; i++) {
          await userPeer.consume('u1', 1);
          await agentPeer.consume('a1', 1);
          await globalPeer.consume('all', 1);
        }
      },
    },
  ];
}

interface MemoryFigures {
  /** Heap and off-heap memory taken by one more empty engine or limiter. */
  fixedHeap: number;
  fixedExternal: number;
  /** Heap growth per subject after one consume each, divided by the subject count. */
  perSubject: number;
}

/** Empty instances created to measure the fixed cost (an average: one alone is lost in noise). */
const FIXED_COST_INSTANCES = 20;

/** Creates an instance and uses it; it is garbage once this returns. */
async function useOnce<T>(
  create: () => T,
  consumeOnce: (target: T, id: string) => Promise<unknown>,
): Promise<void> {
  const warm = create();
  for (let i = 0; i < 1000; i++) await consumeOnce(warm, `warm-up-${i % 10}`);
}

/**
 * Heap per idle subject: a full GC, one consume for each subject on an empty engine (or
 * limiter), another full GC; the heap growth divided by the number of subjects. The ids exist
 * before the first measurement, so only what the library keeps per subject is counted.
 *
 * The fixed cost is that of one more empty instance once the library has been used in the
 * process (a throwaway instance pays lazy one-time set-up first), averaged over
 * FIXED_COST_INSTANCES instances.
 */
async function measureMemory<T>(
  gc: () => void,
  ids: readonly string[],
  create: () => T,
  consumeOnce: (target: T, id: string) => Promise<unknown>,
  holds: (target: T) => number,
): Promise<MemoryFigures> {
  await useOnce(create, consumeOnce);
  const empty = collectAndMeasure(gc);
  const instances = Array.from({ length: FIXED_COST_INSTANCES }, create);
  const created = collectAndMeasure(gc);
  const target = instances[0]!;
  for (const id of ids) await consumeOnce(target, id);
  const filled = collectAndMeasure(gc);
  // Reading the instances after the last measurement keeps them alive through it.
  const held = holds(target);
  if (held !== ids.length) throw new Error(`expected ${ids.length} subjects held, found ${held}`);
  if (instances.length !== FIXED_COST_INSTANCES) throw new Error('instances lost');
  return {
    fixedHeap: (created.heapUsed - empty.heapUsed) / FIXED_COST_INSTANCES,
    fixedExternal: (created.external - empty.external) / FIXED_COST_INSTANCES,
    perSubject: (filled.heapUsed - created.heapUsed) / ids.length,
  };
}

async function memorySection(ids: readonly string[]): Promise<void> {
  const { gc, fromFlag } = getGc();
  if (!fromFlag) {
    console.log('(gc enabled at run time; run node with --expose-gc to use the flag instead)');
  }
  // The MemoryStore is passed in only to read its size; it is the engine's default store.
  const quotakit = await measureMemory(
    gc,
    ids,
    (): { engine: QuotaEngine; store: MemoryStore } => {
      const store = new MemoryStore();
      const engine = createQuotaEngine({
        store,
        defaults: { llm_requests: { limit: HUGE, period: 'per_day' } },
      });
      return { engine, store };
    },
    ({ engine }, userId) => engine.consume({ userId, amounts: { llm_requests: 1 } }),
    ({ store }) => store.size,
  );
  const peer = await measureMemory(
    gc,
    ids,
    () => peerLimiter('memory'),
    (limiter, key) => limiter.consume(key, 1),
    (limiter) => limiter.dump().storage.length,
  );
  printTable(
    ['memory (1 rule, heapUsed after full GC)', 'quotakit', PEER],
    [
      [
        `bytes per idle subject (${ids.length.toLocaleString('en-US')} subjects)`,
        `${Math.round(quotakit.perSubject)} B`,
        `${Math.round(peer.perSubject)} B`,
      ],
      [
        'one more empty engine / limiter, JS heap',
        formatBytes(quotakit.fixedHeap),
        formatBytes(peer.fixedHeap),
      ],
      [
        'one more empty engine / limiter, off-heap',
        formatBytes(quotakit.fixedExternal),
        formatBytes(peer.fixedExternal),
      ],
    ],
    [false, true, true],
  );
}

async function run(options: BenchOptions): Promise<void> {
  const ids = subjectIds(options.subjects);

  console.log('\nMemory per idle subject');
  await memorySection(ids);

  console.log(
    `\nThroughput: awaited operations per second, one in flight; median of ${options.rounds} rounds` +
      ` (tinybench time ${options.timeMs} ms, warm-up ${options.warmupMs} ms per side and round)`,
  );
  const cases = await buildCases(ids);
  const results = await runPaired(cases, options);
  printPairedTable(results, PEER);
}

export const engineMemory: BenchSuite = {
  name: 'engine-memory',
  title: `@quotakit/core with its in-memory store vs ${PEER} RateLimiterMemory`,
  run,
};
