/**
 * Shared machinery of the benchmark suites: options from the environment, paired
 * quotakit-vs-peer throughput rounds on tinybench, heap measurement and table printing.
 *
 * A suite (engine-memory today; redis, postgres, http, llm later) is a module exporting a
 * {@link BenchSuite}; bench/run.ts runs them in order.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { Bench } from 'tinybench';

/** Options every suite receives, read once from the environment by {@link readOptions}. */
export interface BenchOptions {
  /** Rounds per case (BENCH_ROUNDS, default 5); the side that runs first alternates. */
  rounds: number;
  /** tinybench `time` per task and round, ms (BENCH_TIME_MS, default 1000). */
  timeMs: number;
  /** tinybench `warmupTime` per task and round, ms (BENCH_WARMUP_MS, default 250). */
  warmupMs: number;
  /** Distinct subjects of the many-subjects and memory cases (BENCH_SUBJECTS, default 100000). */
  subjects: number;
}

/** A benchmark module: bench/run.ts calls `run` and prints what it prints. */
export interface BenchSuite {
  /** Short name, used by BENCH_ONLY to select suites. */
  readonly name: string;
  /** One line printed above the suite's output. */
  readonly title: string;
  run(options: BenchOptions): Promise<void>;
}

/**
 * Awaited operations per tinybench sample. One sample is a loop of this many sequential awaited
 * calls (one operation in flight at any time), so the timer's own cost and resolution vanish
 * next to sub-microsecond operations.
 */
export const OPS_PER_SAMPLE = 1000;

export function readOptions(env: NodeJS.ProcessEnv = process.env): BenchOptions {
  return {
    rounds: positiveInt(env.BENCH_ROUNDS, 5, 'BENCH_ROUNDS'),
    timeMs: positiveInt(env.BENCH_TIME_MS, 1000, 'BENCH_TIME_MS'),
    warmupMs: positiveInt(env.BENCH_WARMUP_MS, 250, 'BENCH_WARMUP_MS'),
    subjects: positiveInt(env.BENCH_SUBJECTS, 100_000, 'BENCH_SUBJECTS'),
  };
}

function positiveInt(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** One sample's worth of work: OPS_PER_SAMPLE awaited operations, one after the other. */
export type Sample = () => Promise<void>;

/** One case: the same job done by quotakit and by the peer library. */
export interface PairedCase {
  readonly name: string;
  readonly quotakit: Sample;
  readonly peer: Sample;
}

/** A case's figures over all rounds. */
export interface PairedResult {
  readonly name: string;
  /** ops/s of each round, in round order. */
  readonly quotakit: readonly number[];
  readonly peer: readonly number[];
}

type Side = 'quotakit' | 'peer';

/** One operation of a networked suite; `i` counts the operations of a sample. */
export type Operation = (i: number) => Promise<void>;

/**
 * One sample of a networked suite: OPS_PER_SAMPLE operations, `inFlight` at a time (1: each
 * awaited in turn).
 */
export function inFlightSample(operation: Operation, inFlight: number): Sample {
  if (inFlight === 1) {
    return async () => {
      for (let i = 0; i < OPS_PER_SAMPLE; i++) await operation(i);
    };
  }
  return () => runInFlight(OPS_PER_SAMPLE, inFlight, operation);
}

/** Runs `operation` `count` times, `inFlight` at a time (filling counters before measuring). */
export async function runInFlight(
  count: number,
  inFlight: number,
  operation: Operation,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await operation(next++);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

/** Measures both sides of one case in one round: ops/s per side. */
type CaseMeasurer = (
  pairedCase: PairedCase,
  order: readonly Side[],
) => Promise<Record<Side, number>>;

/**
 * Runs every case for `options.rounds` rounds through `measureCase`, quotakit first in even
 * rounds and the peer first in odd ones, and logs each round.
 */
async function inRounds(
  cases: readonly PairedCase[],
  options: BenchOptions,
  log: (line: string) => void,
  measureCase: CaseMeasurer,
): Promise<PairedResult[]> {
  const results = cases.map((c) => ({
    name: c.name,
    quotakit: [] as number[],
    peer: [] as number[],
  }));
  for (let round = 0; round < options.rounds; round++) {
    const order: readonly Side[] = round % 2 === 0 ? ['quotakit', 'peer'] : ['peer', 'quotakit'];
    const started = performance.now();
    for (let i = 0; i < cases.length; i++) {
      const opsPerSecond = await measureCase(cases[i]!, order);
      for (const side of order) results[i]![side].push(opsPerSecond[side]);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    log(`  round ${round + 1}/${options.rounds} (${order.join(' first, then ')}) ${seconds} s`);
  }
  return results;
}

const logToStderr = (line: string) => process.stderr.write(`${line}\n`);

/**
 * Runs every case for `options.rounds` rounds. Each round gives each case a fresh tinybench
 * Bench holding both sides (warm-up of both, then both measured), quotakit first in even rounds
 * and the peer first in odd ones. A round's ops/s is total operations / total measured time
 * (so garbage-collection pauses count). Networked suites use {@link runAlternating}.
 */
export function runPaired(
  cases: readonly PairedCase[],
  options: BenchOptions,
  log: (line: string) => void = logToStderr,
): Promise<PairedResult[]> {
  return inRounds(cases, options, log, async (pairedCase, order) => {
    const bench = new Bench({
      name: pairedCase.name,
      time: options.timeMs,
      warmup: true,
      warmupTime: options.warmupMs,
      throws: true,
    });
    for (const side of order) bench.add(side, pairedCase[side]);
    await bench.run();
    const opsPerSecond = { quotakit: 0, peer: 0 };
    for (const side of order) {
      const result = bench.getTask(side)?.result;
      if (result === undefined || result.error !== undefined || !(result.period > 0)) {
        throw new Error(`${pairedCase.name} / ${side}: no result`, { cause: result?.error });
      }
      opsPerSecond[side] = (OPS_PER_SAMPLE * 1000) / result.period;
    }
    return opsPerSecond;
  });
}

/**
 * For networked suites: runs every case for `options.rounds` rounds, the two sides taking
 * turns one sample (OPS_PER_SAMPLE operations) at a time, after a warm-up of both, until each
 * has been measured for `options.timeMs`; the peer starts in odd rounds. A round's ops/s is
 * total operations / total measured time. Taking turns a sample at a time, rather than a
 * second at a time, is what makes the ratio hold on these machines: the server's speed swings
 * by a quarter within seconds, and a side measured during a slow second lost a round it would
 * have won a second later.
 */
export function runAlternating(
  cases: readonly PairedCase[],
  options: BenchOptions,
  log: (line: string) => void = logToStderr,
): Promise<PairedResult[]> {
  return inRounds(cases, options, log, async (pairedCase, order) => {
    const warmUntil = performance.now() + options.warmupMs;
    while (performance.now() < warmUntil) {
      for (const side of order) await pairedCase[side]();
    }
    const spentMs = { quotakit: 0, peer: 0 };
    const samples = { quotakit: 0, peer: 0 };
    // Bounded: a sample takes well under timeMs, and every turn adds to both sides.
    while (spentMs.quotakit < options.timeMs || spentMs.peer < options.timeMs) {
      for (const side of order) {
        const sampleStarted = performance.now();
        await pairedCase[side]();
        spentMs[side] += performance.now() - sampleStarted;
        samples[side] += 1;
      }
    }
    return {
      quotakit: (samples.quotakit * OPS_PER_SAMPLE * 1000) / spentMs.quotakit,
      peer: (samples.peer * OPS_PER_SAMPLE * 1000) / spentMs.peer,
    };
  });
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Prints the medians of {@link runPaired}'s results, with the spread of per-round ratios. */
export function printPairedTable(results: readonly PairedResult[], peerName: string): void {
  const rows = results.map((r) => {
    const q = median(r.quotakit);
    const p = median(r.peer);
    const ratios = r.quotakit.map((value, i) => value / r.peer[i]!);
    return [
      r.name,
      formatOps(q),
      formatOps(p),
      `${(q / p).toFixed(2)}x`,
      `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`,
    ];
  });
  printTable(
    ['case', 'quotakit ops/s', `${peerName} ops/s`, 'quotakit/peer', 'ratio range (rounds)'],
    rows,
    [false, true, true, true, true],
  );
}

export function formatOps(opsPerSecond: number): string {
  return Math.round(opsPerSecond).toLocaleString('en-US');
}

export function formatBytes(bytes: number): string {
  if (Math.abs(bytes) >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${Math.round(bytes).toLocaleString('en-US')} B`;
}

/** Prints a Markdown table with aligned columns (readable in a terminal, pastable in a README). */
export function printTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  alignRight: readonly boolean[] = [],
): void {
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((r) => r[col]!.length)));
  const line = (cells: readonly string[]) =>
    `| ${cells
      .map((cell, col) =>
        alignRight[col] ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!),
      )
      .join(' | ')} |`;
  console.log(line(header));
  console.log(
    `|${widths.map((w, col) => (alignRight[col] ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`,
  );
  for (const row of rows) console.log(line(row));
}

let cachedGc: (() => void) | undefined;

/**
 * The garbage collector, from `--expose-gc` (NODE_OPTIONS=--expose-gc or `tsx --expose-gc`);
 * without the flag, it is switched on at run time through v8.setFlagsFromString, which works on
 * Node 20 but is not guaranteed by Node, so the flag is preferred.
 */
export function getGc(): { gc: () => void; fromFlag: boolean } {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return { gc: exposed, fromFlag: true };
  if (cachedGc === undefined) {
    v8.setFlagsFromString('--expose-gc');
    cachedGc = vm.runInNewContext('gc') as () => void;
  }
  return { gc: cachedGc, fromFlag: false };
}

/** Heap figures after full collections. */
export interface HeapSnapshot {
  heapUsed: number;
  /** Memory outside the JS heap (ArrayBuffers and typed arrays among it). */
  external: number;
}

export function collectAndMeasure(gc: () => void): HeapSnapshot {
  // A few passes: weak references and finalizers can free more on the next one.
  for (let i = 0; i < 3; i++) gc();
  const { heapUsed, external } = process.memoryUsage();
  return { heapUsed, external };
}
