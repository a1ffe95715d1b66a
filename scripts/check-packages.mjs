// `pnpm run check:packages`: checks every publishable package the way a consumer meets it.
// Each package is built, then packed once with pnpm, which rewrites `workspace:*` to real
// versions as publishing would; that one tarball is what publint, attw and a fresh npm project
// all see, so no check looks at files that would not be published.
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);

// The export each package exists for; a package not listed here is still checked for resolving
// exports and for ESM/CJS parity, so adding a package never needs an edit to this script.
const MAIN_EXPORTS = {
  '@quotakit/core': 'createQuotaEngine',
  '@quotakit/redis': 'RedisStore',
  '@quotakit/express': 'quota',
  '@quotakit/hono': 'quota',
  '@quotakit/postgres': 'PostgresStore',
  '@quotakit/llm-wrapper': 'withQuota',
};

const started = performance.now();
let passed = 0;
let failed = 0;

function report(ok, label, details = []) {
  if (ok) passed += 1;
  else failed += 1;
  const lines = [`${ok ? '✓' : '✗'} ${label}`, ...details.map((line) => `    ${line}`)];
  console.log(lines.join('\n'));
}

/** The first line naming an error: a Node stack trace says little more for a consumer. */
function errorLine(output) {
  const lines = output.split('\n').map((line) => line.trim());
  return lines.find((line) => /^\w*Error\b/.test(line)) ?? tail(output, 1)[0] ?? '(no output)';
}

/** The last lines of a command's output: enough to see the error without the whole log. */
function tail(output, count = 25) {
  return output.trimEnd().split('\n').filter(Boolean).slice(-count);
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const begun = performance.now();
    const child = spawn(command, args, {
      cwd: root,
      ...options,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    // A missing binary emits 'error' and never a useful exit code; report it as a failure.
    child.on('error', (error) => resolve({ code: -1, stdout, output: String(error), ms: 0 }));
    child.on('close', (code) => {
      resolve({ code, stdout, output, ms: performance.now() - begun });
    });
  });
}

async function publishablePackages() {
  const packages = [];
  const entries = await readdir(join(root, 'packages'), { withFileTypes: true });
  for (const entry of entries.filter((item) => item.isDirectory())) {
    const dir = join(root, 'packages', entry.name);
    const manifestPath = join(dir, 'package.json');
    if (!existsSync(manifestPath)) continue;
    let manifest;
    try {
      manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    } catch (error) {
      report(false, `read packages/${entry.name}/package.json`, [String(error)]);
      continue;
    }
    if (manifest.private === true || !manifest.scripts?.build) continue;
    packages.push({ name: manifest.name, dir, manifest });
  }
  const names = new Set(packages.map((pkg) => pkg.name));
  for (const pkg of packages) {
    const { dependencies, peerDependencies, devDependencies } = pkg.manifest;
    const declared = Object.keys({ ...dependencies, ...peerDependencies, ...devDependencies });
    pkg.workspaceDeps = declared.filter((name) => names.has(name) && name !== pkg.name);
  }
  return packages;
}

/**
 * Builds package by package rather than with `pnpm -r build`, which stops at the first failure:
 * every package gets its own verdict, and independent ones build at the same time once their
 * workspace dependencies are built. Returns the packages that built.
 */
async function buildAll(packages) {
  const outcome = new Map();
  let pending = [...packages];
  while (pending.length > 0) {
    const ready = pending.filter((pkg) => pkg.workspaceDeps.every((dep) => outcome.has(dep)));
    if (ready.length === 0) {
      for (const pkg of pending) report(false, `build ${pkg.name}: workspace dependency cycle`);
      break;
    }
    pending = pending.filter((pkg) => !ready.includes(pkg));
    await Promise.all(
      ready.map(async (pkg) => {
        const brokenDep = pkg.workspaceDeps.find((dep) => outcome.get(dep) !== 'built');
        if (brokenDep) {
          outcome.set(pkg.name, 'failed');
          report(false, `build ${pkg.name}: not built, its dependency ${brokenDep} failed`);
          return;
        }
        const result = await run('pnpm', ['--filter', pkg.name, 'run', 'build']);
        outcome.set(pkg.name, result.code === 0 ? 'built' : 'failed');
        if (result.code === 0) report(true, `build ${pkg.name} (${seconds(result.ms)})`);
        else report(false, `build ${pkg.name}: exit code ${result.code}`, tail(result.output));
      }),
    );
  }
  return packages.filter((pkg) => outcome.get(pkg.name) === 'built');
}

async function pack(pkg, destination) {
  const result = await run('pnpm', ['pack', '--pack-destination', destination, '--json'], {
    cwd: pkg.dir,
  });
  try {
    if (result.code !== 0) throw new Error(`exit code ${result.code}`);
    const tarball = JSON.parse(result.stdout).filename;
    const { size } = await stat(tarball);
    report(true, `pack ${pkg.name} (${basename(tarball)}, ${Math.round(size / 1024)} kB)`);
    return { pkg, tarball };
  } catch (error) {
    report(false, `pack ${pkg.name}: ${error.message}`, tail(result.output));
    return null;
  }
}

async function checkPublint({ pkg, tarball }) {
  try {
    const data = await readFile(tarball);
    // Without pkgDir, publint lints the unpacked tarball rather than the source folder.
    const { messages, pkg: manifest } = await publint({
      pack: { tarball: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) },
      level: 'warning',
    });
    const errors = messages.filter((message) => message.type === 'error').length;
    const warnings = messages.length - errors;
    const counts = messages.length > 0 ? ` (${errors} errors, ${warnings} warnings)` : '';
    const details = messages.map(
      (message) => `${message.type}: ${formatMessage(message, manifest, { color: false })}`,
    );
    report(errors === 0, `publint ${pkg.name}${counts}`, details);
  } catch (error) {
    report(false, `publint ${pkg.name}: ${error.message}`);
  }
}

/**
 * attw reads the same pnpm tarball (`attw --pack` would run `npm pack`, leaving `workspace:*`
 * in the manifest). The default `strict` profile also checks node10 resolution, which
 * TypeScript users on `moduleResolution: node` still get; `typesVersions` serves them subpaths.
 */
async function checkTypesAreWrong({ pkg, tarball }) {
  const result = await run(bin('attw'), [tarball, '--format', 'ascii', '--no-color', '--no-emoji']);
  if (result.code === 0) report(true, `attw ${pkg.name}`);
  else report(false, `attw ${pkg.name}: exit code ${result.code}`, tail(result.output, 60));
}

/**
 * An empty npm project. Its package.json matters: without one, npm walks up the tree and may
 * install into whatever folder above has a package.json or node_modules.
 */
async function writeProject(dir, name) {
  await mkdir(dir);
  const manifest = { name, version: '0.0.0', private: true };
  await writeFile(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

const nodeEval = (project, code, type) =>
  run(process.execPath, [`--input-type=${type}`, '--eval', code], { cwd: project });

// Resolves each specifier on its own, so one broken subpath does not hide the others.
const resolveEach = (resolve, specifiers) => `
const results = ${JSON.stringify(specifiers)}.map((specifier) => {
  try {
    return { target: ${resolve}(specifier) };
  } catch (error) {
    return { error: error.message.split('\\n')[0] };
  }
});
console.log(JSON.stringify(results));`;

/** Every export subpath resolves, to an existing file, in both module systems. */
async function checkExportsResolve(pkg, project) {
  const subpaths = Object.keys(pkg.manifest.exports ?? { '.': null }).filter(
    (subpath) => subpath.startsWith('.') && !subpath.includes('*'),
  );
  const specifiers = subpaths.map((subpath) => pkg.name + subpath.slice(1));
  const [esm, cjs] = await Promise.all([
    nodeEval(project, resolveEach('import.meta.resolve', specifiers), 'module'),
    nodeEval(project, resolveEach('require.resolve', specifiers), 'commonjs'),
  ]);
  const problems = [];
  for (const [resolver, result] of [
    ['import.meta.resolve', esm],
    ['require.resolve', cjs],
  ]) {
    if (result.code !== 0) {
      problems.push(`${resolver}: ${errorLine(result.output)}`);
      continue;
    }
    JSON.parse(result.stdout).forEach(({ target, error }, index) => {
      const call = `${resolver}('${specifiers[index]}')`;
      const file = target?.startsWith('file:') ? fileURLToPath(target) : target;
      if (error) problems.push(`${call}: ${error}`);
      else if (!existsSync(file)) problems.push(`${call}: ${file} is missing`);
    });
  }
  const label = `exports of ${pkg.name} resolve in ESM and CJS: ${subpaths.join(', ')}`;
  report(problems.length === 0, label, problems);
}

/** Evaluates the package in both module systems: same exports, and the main one is there. */
async function checkModuleSystems(pkg, project) {
  const name = JSON.stringify(pkg.name);
  const describe = (ns) =>
    `console.log(JSON.stringify(Object.fromEntries(Object.keys(${ns}).sort().map((key) => [key, typeof ${ns}[key]]))))`;
  const [esm, cjs] = await Promise.all([
    nodeEval(project, `const ns = await import(${name});\n${describe('ns')}`, 'module'),
    nodeEval(project, `const ns = require(${name});\n${describe('ns')}`, 'commonjs'),
  ]);
  const main = MAIN_EXPORTS[pkg.name];
  const shapes = {};
  for (const [system, verb, result] of [
    ['ESM', 'import', esm],
    ['CJS', 'require', cjs],
  ]) {
    const label = `${system} ${verb}('${pkg.name}')`;
    if (result.code !== 0) {
      report(false, `${label}: exit code ${result.code}`, [errorLine(result.output)]);
      continue;
    }
    const shape = JSON.parse(result.stdout);
    shapes[system] = shape;
    const count = `${Object.keys(shape).length} export(s)`;
    if (main === undefined) report(Object.keys(shape).length > 0, `${label}: ${count}`);
    else if (shape[main] === 'function') report(true, `${label}: ${count}, ${main} is a function`);
    else
      report(false, `${label}: ${count}, ${main} is ${shape[main] ?? 'missing'}, not a function`);
  }
  if (shapes.ESM && shapes.CJS) {
    const names = new Set([...Object.keys(shapes.ESM), ...Object.keys(shapes.CJS)]);
    const differences = [...names]
      .filter((key) => shapes.ESM[key] !== shapes.CJS[key])
      .map(
        (key) => `${key}: ESM ${shapes.ESM[key] ?? 'absent'}, CJS ${shapes.CJS[key] ?? 'absent'}`,
      );
    report(differences.length === 0, `ESM and CJS exports of ${pkg.name} match`, differences);
  }
}

// One admitted and one refused consume: the engine really runs, not merely loads.
// The error classes keep their names through the bundler (a class named inside its own body
// comes out renamed, \`_QuotaError\`, and so would every error's \`name\`).
const CONSUME_TWICE = `
for (const [name, ErrorClass] of Object.entries(errorClasses)) {
  if (ErrorClass.name !== name) throw new Error(name + ' is named ' + ErrorClass.name);
}
const engine = createQuotaEngine({ defaults: { llm_requests: { limit: 1, period: 'per_day' } } });
const request = { userId: 'consumer-check', amounts: { llm_requests: 1 } };
const first = await engine.consume(request);
const second = await engine.consume(request);
await engine.close();
if (!first.allowed || second.allowed) {
  throw new Error('expected admitted then refused, got ' + first.allowed + ', ' + second.allowed);
}`;

const ERROR_CLASSES = `const errorClasses = {
  QuotaError: core.QuotaError,
  QuotaExceededError: core.QuotaExceededError,
  QuotaValidationError: core.QuotaValidationError,
  QuotaConfigError: core.QuotaConfigError,
  QuotaStoreError: core.QuotaStoreError,
  TaskTimeoutError: core.TaskTimeoutError,
};`;

async function checkCoreEngine(project) {
  const esm = nodeEval(
    project,
    `import * as core from '@quotakit/core';\n${ERROR_CLASSES}\nconst { createQuotaEngine } = core;\n${CONSUME_TWICE}`,
    'module',
  );
  const cjs = nodeEval(
    project,
    `const core = require('@quotakit/core');\n${ERROR_CLASSES}\nconst { createQuotaEngine } = core;
(async () => {${CONSUME_TWICE}})().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});`,
    'commonjs',
  );
  for (const [system, result] of [
    ['ESM', await esm],
    ['CJS', await cjs],
  ]) {
    const label = `${system} @quotakit/core: error classes keep their names; an engine admits one consume and refuses the next`;
    report(result.code === 0, label, result.code === 0 ? [] : [errorLine(result.output)]);
  }
}

// The @ts-expect-error line fails the check if the types ever resolve to `any`.
const CONSUMER_TYPES = `import {
  createQuotaEngine,
  type QuotaDecision,
  type QuotaEngineOptions,
} from '@quotakit/core';
import type { StoreContractOptions } from '@quotakit/core/testing';

const options: QuotaEngineOptions = { defaults: { llm_requests: { limit: 1, period: 'per_day' } } };
const engine = createQuotaEngine(options);

export async function spend(userId: string): Promise<boolean> {
  const decision: QuotaDecision = await engine.consume({ userId, amounts: { llm_requests: 1 } });
  return decision.allowed;
}

// @ts-expect-error amounts are numbers by resource
void engine.consume({ userId: 'u1', amounts: 'one' });

export const contract: StoreContractOptions = { concurrency: 10 };
`;

/** Type-checks as an ESM (.mts) and a CJS (.cts) consumer, so both .d.ts and .d.cts are used. */
async function checkCoreTypes(project) {
  await writeFile(join(project, 'consumer.mts'), CONSUMER_TYPES);
  await writeFile(join(project, 'consumer.cts'), CONSUMER_TYPES);
  const options = ['--module', 'nodenext', '--moduleResolution', 'nodenext', '--noEmit'];
  const strictness = ['--strict', '--skipLibCheck', 'false'];
  const files = ['consumer.mts', 'consumer.cts'];
  const result = await run(bin('tsc'), [...options, ...strictness, ...files], { cwd: project });
  const label = '@quotakit/core types check in a consumer (.mts and .cts, nodenext, strict)';
  report(result.code === 0, label, result.code === 0 ? [] : tail(result.output));
}

/**
 * All tarballs go into one `npm install`, so `@quotakit/core` in the others' dependencies
 * resolves to its tarball rather than to the registry. npm's default peer handling is what a
 * consumer gets: required peers (ioredis, express, hono) are installed, so the adapters can be
 * evaluated, and the optional vitest peer of core is not.
 */
async function checkConsumer(packed, project) {
  await writeProject(project, 'quotakit-consumer-check');
  const tarballs = packed.map((item) => item.tarball);
  const install = await run(
    'npm',
    // --prefer-offline: the metadata warmNpmCache fetched a minute ago is fresh enough.
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...tarballs],
    { cwd: project },
  );
  const label = `npm install of ${tarballs.length} tarballs into a fresh project`;
  if (install.code !== 0) {
    report(false, `${label}: exit code ${install.code}`, tail(install.output));
    return;
  }
  report(true, `${label} (${seconds(install.ms)})`);
  const hasCore = packed.some((item) => item.pkg.name === '@quotakit/core');
  await Promise.all([
    ...packed.map(({ pkg }) => checkExportsResolve(pkg, project)),
    ...packed.map(({ pkg }) => checkModuleSystems(pkg, project)),
    hasCore && checkCoreEngine(project),
    hasCore && checkCoreTypes(project),
  ]);
}

// The oldest OpenTelemetry API core's range admits, and an SDK of its time.
const OLD_OTEL_API = '@opentelemetry/api@1.3.0';
const OLD_OTEL_SDK = '@opentelemetry/sdk-trace-base@1.8.0';

// The application registers its SDK through its own (old) API; the engine must share that
// API and report to that SDK. A second, newer copy of the API in core would see the old
// registration as incompatible and report nothing, without a word.
const OLD_OTEL_APP = `
const { trace } = require('@opentelemetry/api');
const sdk = require('@opentelemetry/sdk-trace-base');
const exporter = new sdk.InMemorySpanExporter();
const provider = new sdk.BasicTracerProvider();
provider.addSpanProcessor(new sdk.SimpleSpanProcessor(exporter));
trace.setGlobalTracerProvider(provider);
const apiOfCore = require.resolve('@opentelemetry/api', {
  paths: [require.resolve('@quotakit/core')],
});
if (apiOfCore !== require.resolve('@opentelemetry/api')) {
  throw new Error('@quotakit/core has its own @opentelemetry/api: ' + apiOfCore);
}
const { createQuotaEngine } = require('@quotakit/core');
const engine = createQuotaEngine({ defaults: { llm_requests: { limit: 5, period: 'per_day' } } });
engine.consume({ userId: 'otel-check', amounts: { llm_requests: 1 } }).then(async () => {
  await engine.close();
  const names = exporter.getFinishedSpans().map((span) => span.name);
  if (!names.includes('quota.consume')) throw new Error('spans: ' + JSON.stringify(names));
}).catch((error) => {
  console.error(error);
  process.exitCode = 1;
});`;

/**
 * An application still on the oldest OpenTelemetry API that core's range admits: npm shares
 * the application's API with core, and the engine's spans reach the application's SDK.
 */
async function checkOldOpenTelemetry(core, project) {
  await writeProject(project, 'quotakit-old-otel-check');
  const label = `${core.pkg.name} reports spans to an application on ${OLD_OTEL_API}`;
  const install = await run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--loglevel=error',
      core.tarball,
      OLD_OTEL_API,
      OLD_OTEL_SDK,
    ],
    { cwd: project },
  );
  if (install.code !== 0) {
    report(false, `${label}: npm install exit code ${install.code}`, tail(install.output));
    return;
  }
  const result = await nodeEval(project, OLD_OTEL_APP, 'commonjs');
  report(result.code === 0, label, result.code === 0 ? [] : [errorLine(result.output)]);
}

/**
 * Fetches the metadata of the packages' third-party dependencies into npm's cache while the
 * builds keep the CPU busy, so the consumer install later makes few round trips yet still
 * starts from an empty project. A lockfile-only install in a scratch folder resolves the whole
 * tree without unpacking it; a failure is ignored, as the consumer install reports it too.
 */
function warmNpmCache(packages, scratch) {
  const names = new Set(packages.map((pkg) => pkg.name));
  const specs = new Set();
  for (const { manifest } of packages) {
    const optional = manifest.peerDependenciesMeta ?? {};
    const peers = Object.entries(manifest.peerDependencies ?? {}).filter(
      ([name]) => !optional[name]?.optional,
    );
    for (const [name, range] of [...Object.entries(manifest.dependencies ?? {}), ...peers]) {
      if (!names.has(name)) specs.add(`${name}@${range}`);
    }
  }
  if (specs.size === 0) return Promise.resolve();
  return writeProject(scratch, 'quotakit-npm-warm-up')
    .then(() =>
      run('npm', ['install', '--no-audit', '--no-fund', '--package-lock-only', ...specs], {
        cwd: scratch,
      }),
    )
    .catch(() => undefined);
}

const work = await mkdtemp(join(tmpdir(), 'quotakit-check-packages-'));
let warming = Promise.resolve();
// Ctrl-C or a cancelled CI job must not leave tarballs and a node_modules behind.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
]) {
  process.once(signal, () => {
    rmSync(work, { recursive: true, force: true });
    process.exit(code);
  });
}

try {
  // Inside the workspace, Node would find the workspace's node_modules and hide missing deps.
  if (work.startsWith(root)) {
    throw new Error(`the temp dir ${work} is inside the workspace ${root}`);
  }
  const packages = await publishablePackages();
  console.log(`Checking ${packages.map((pkg) => pkg.name).join(', ')}`);
  warming = warmNpmCache(packages, join(work, 'npm-warm-up'));
  const built = await buildAll(packages);
  const tarballDir = join(work, 'tarballs');
  await mkdir(tarballDir);
  const packed = (await Promise.all(built.map((pkg) => pack(pkg, tarballDir)))).filter(Boolean);
  if (packed.length > 0) {
    await Promise.all([
      ...packed.map(checkPublint),
      ...packed.map(checkTypesAreWrong),
      warming.then(() => checkConsumer(packed, join(work, 'consumer'))),
      ...packed
        .filter((item) => item.pkg.name === '@quotakit/core')
        .map((core) => warming.then(() => checkOldOpenTelemetry(core, join(work, 'old-otel')))),
    ]);
  }
} catch (error) {
  report(false, `check-packages stopped: ${error.stack ?? error}`);
} finally {
  // The warm-up may still be writing into the temp dir when every build failed.
  await warming;
  rmSync(work, { recursive: true, force: true });
}

const elapsed = seconds(performance.now() - started);
console.log(`\n${passed} passed, ${failed} failed in ${elapsed}`);
if (failed > 0) process.exitCode = 1;
