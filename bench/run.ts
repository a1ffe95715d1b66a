/**
 * Runs the benchmark suites in order and prints their tables.
 *
 *   pnpm bench                       (builds @quotakit/core first, see bench/README.md)
 *   BENCH_ONLY=engine-memory BENCH_ROUNDS=3 pnpm bench
 *
 * A later suite (redis, postgres, http, llm) is a module exporting a BenchSuite, added to
 * SUITES below.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineMemory } from './engine-memory.js';
import { type BenchSuite, readOptions } from './harness.js';
import { httpSuite } from './http.js';
import { llmWrapper } from './llm-wrapper.js';
import { postgres } from './postgres.js';
import { redis } from './redis.js';
import { telemetry } from './telemetry.js';

const SUITES: readonly BenchSuite[] = [
  engineMemory,
  telemetry,
  redis,
  postgres,
  httpSuite,
  llmWrapper,
];

/** Name, version and location of an installed package, found from its entry point. */
function packageInfo(specifier: string): string {
  try {
    const entry = fileURLToPath(import.meta.resolve(specifier));
    let dir = dirname(entry);
    for (let depth = 0; depth < 6; depth++) {
      try {
        const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
          name?: string;
          version?: string;
        };
        if (manifest.name === specifier) {
          return `${specifier}@${manifest.version} (${relative(process.cwd(), entry)})`;
        }
      } catch {
        // No package.json here: go up.
      }
      dir = dirname(dir);
    }
    return `${specifier} (${relative(process.cwd(), entry)})`;
  } catch (error) {
    return `${specifier}: not resolved (${(error as Error).message})`;
  }
}

/**
 * When and from what the built @quotakit/core was made: the newest mtime and a hash of the
 * JavaScript files next to its entry point (other people may rebuild it between two runs).
 */
function distFingerprint(entryUrl: string): string {
  const dir = dirname(fileURLToPath(entryUrl));
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.js'))
    .sort();
  const hash = createHash('sha256');
  let newest = 0;
  for (const name of files) {
    hash.update(name).update(readFileSync(join(dir, name)));
    newest = Math.max(newest, statSync(join(dir, name)).mtimeMs);
  }
  return `built ${new Date(newest).toISOString()}, sha256 of ${files.length} .js files ${hash.digest('hex').slice(0, 12)}`;
}

function printHeader(): void {
  const cpus = os.cpus();
  console.log('quotakit benchmarks');
  console.log(`date:     ${new Date().toISOString()}`);
  console.log(
    `node:     ${process.version} (V8 ${process.versions.v8}), ${os.platform()} ${os.arch()}`,
  );
  console.log(`cpu:      ${cpus[0]?.model ?? 'unknown'} x ${cpus.length}`);
  console.log(`memory:   ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`);
  for (const specifier of ['@quotakit/core', 'rate-limiter-flexible', 'tinybench']) {
    console.log(`package:  ${packageInfo(specifier)}`);
  }
  const core = import.meta.resolve('@quotakit/core');
  if (core.includes('/dist/')) {
    console.log(`core:     ${distFingerprint(core)}`);
  } else {
    console.log(
      'WARNING: @quotakit/core resolves to its source, not the built dist: run with ' +
        '`tsx --tsconfig bench/tsconfig.json` after `pnpm --filter @quotakit/core build`.',
    );
  }
}

async function main(): Promise<void> {
  const options = readOptions();
  const only = process.env.BENCH_ONLY?.split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const suites = only?.length ? SUITES.filter((suite) => only.includes(suite.name)) : SUITES;
  if (suites.length === 0) {
    throw new Error(
      `BENCH_ONLY matches no suite; suites are: ${SUITES.map((s) => s.name).join(', ')}`,
    );
  }
  printHeader();
  console.log(
    `options:  rounds ${options.rounds}, time ${options.timeMs} ms, warm-up ${options.warmupMs} ms, ` +
      `subjects ${options.subjects}`,
  );
  const started = performance.now();
  for (const suite of suites) {
    console.log(`\n## ${suite.name}: ${suite.title}`);
    await suite.run(options);
  }
  console.log(`\ndone in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
