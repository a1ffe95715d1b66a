/**
 * The HTTP adapters against the peer middlewares: @quotakit/express's quota() against
 * express-rate-limit (draft-8 headers), @quotakit/hono's quota() against hono-rate-limiter
 * (draft-7 headers, its newest), each beside an empty middleware as the floor.
 *
 * (1) In-process cost per request, without HTTP: the Express middlewares called with one
 *     reused request/response pair (Express's own prototypes over Node's IncomingMessage and
 *     ServerResponse, headers cleared after each call), the Hono apps through `app.request`;
 *     the sides take turns 100 requests at a time (see {@link measure}).
 * (2) Requests per second and p99 latency over HTTP on 127.0.0.1 with autocannon (its client
 *     in a worker thread, the servers on the main thread), every config in every round, the
 *     order reversed each round.
 *
 * Every limit is 1e9 in a one-minute window, never reached: every request takes the admit
 * path, and a refusal fails the run.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { createQuotaEngine } from '@quotakit/core';
import { quota as expressQuota } from '@quotakit/express';
import { quota as honoQuota } from '@quotakit/hono';
import autocannon from 'autocannon';
import express, { type RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { Hono, type MiddlewareHandler } from 'hono';
import { rateLimiter } from 'hono-rate-limiter';
import { type BenchOptions, type BenchSuite, median, printTable } from './harness.js';

// Never reached in a run (well under 1e8 operations), and within the range of real limits.
const HUGE = 1e9;
const WINDOW_MS = 60_000;
/** autocannon: seconds per config and round, rounds, connections. */
// Many short rounds rather than a few long ones: the machine's speed drifts within seconds, and
// the median of eight alternating rounds moves less than that of two.
const HTTP_SECONDS = 1;
const HTTP_ROUNDS = 8;
const CONNECTIONS = 10;

const engine = () =>
  createQuotaEngine({ defaults: { llm_requests: { limit: HUGE, period: 'per_minute' } } });

function refused(what: string, status: number): never {
  throw new Error(`${what} answered ${status}: a limit was reached, the benchmark is wrong`);
}

// --- (1) in process -------------------------------------------------------------------------

/** The Express middlewares under test; `fixedKey` keys every request as one caller. */
function expressMiddlewares(fixedKey: boolean): Record<string, RequestHandler> {
  return {
    'empty middleware': (_req, _res, next) => next(),
    '@quotakit/express quota()': expressQuota({
      engine: engine(),
      amounts: { llm_requests: 1 },
      ...(fixedKey && { identify: () => ({ userId: 'u1' }) }),
    }),
    'express-rate-limit': rateLimit({
      windowMs: WINDOW_MS,
      limit: HUGE,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      ...(fixedKey && { keyGenerator: () => 'u1' }),
    }),
  };
}

/** One request/response pair on Express's prototypes, reused by every call. */
function expressPair() {
  const app = express();
  const req = new http.IncomingMessage(null as never);
  const res = new http.ServerResponse(req);
  Object.setPrototypeOf(req, app.request);
  Object.setPrototypeOf(res, app.response);
  Object.defineProperty(req, 'ip', { value: '127.0.0.1' });
  Object.assign(req, { app, res, method: 'GET', url: '/', originalUrl: '/' });
  Object.assign(res, { app, req });
  return { req, res };
}

function expressSample(middleware: RequestHandler): (requests: number) => Promise<void> {
  const { req, res } = expressPair();
  const call = () =>
    new Promise<void>((resolve, reject) =>
      middleware(req as express.Request, res as express.Response, (error?: unknown) =>
        error === undefined ? resolve() : reject(error),
      ),
    );
  return async (requests) => {
    for (let i = 0; i < requests; i++) {
      await call();
      if (res.statusCode !== 200) refused('an Express middleware', res.statusCode);
      for (const name of res.getHeaderNames()) res.removeHeader(name);
    }
  };
}

function honoApps(): Record<string, Hono> {
  const app = (middleware?: MiddlewareHandler) => {
    const hono = new Hono();
    if (middleware !== undefined) hono.use(middleware);
    return hono.get('/', (c) => c.text('ok'));
  };
  return {
    'no middleware (app.request itself)': app(),
    'empty middleware': app(async (_c, next) => {
      await next();
    }),
    '@quotakit/hono quota()': app(
      honoQuota({
        engine: engine(),
        amounts: { llm_requests: 1 },
        identify: () => ({ userId: 'u1' }),
      }),
    ),
    'hono-rate-limiter': app(
      rateLimiter({
        windowMs: WINDOW_MS,
        limit: HUGE,
        standardHeaders: 'draft-7',
        keyGenerator: () => 'u1',
      }),
    ),
  };
}

function honoSample(app: Hono): (requests: number) => Promise<void> {
  return async (requests) => {
    for (let i = 0; i < requests; i++) {
      const response = await app.request('/');
      if (response.status !== 200) refused('a Hono app', response.status);
    }
  };
}

/** Requests per interleaved sample: short, so that every side meets the same machine. */
const REQUESTS_PER_SAMPLE = 100;

/**
 * µs per call of each side, one figure per round: the median of that round's samples.
 *
 * The sides take turns sample by sample (one sample of each, then the same again in reverse
 * order) rather than each running for a stretch of its own as a tinybench task does: on these
 * shared 2-core machines the speed drifts by a fifth within seconds, and a side measured
 * during a slow stretch lost or won by that much. Interleaved, a slow stretch slows every
 * side alike, and the medians of repeated runs agree to a few percent.
 */
async function measure(
  sides: Record<string, (requests: number) => Promise<void>>,
  options: BenchOptions,
  label: string,
): Promise<Map<string, number[]>> {
  const names = Object.keys(sides);
  const perRound = new Map(names.map((name) => [name, [] as number[]]));
  const sample = async (name: string) => {
    const started = performance.now();
    await sides[name]!(REQUESTS_PER_SAMPLE);
    return ((performance.now() - started) * 1000) / REQUESTS_PER_SAMPLE;
  };
  const warmUpUntil = performance.now() + options.warmupMs * names.length;
  while (performance.now() < warmUpUntil) for (const name of names) await sample(name);
  for (let round = 0; round < options.rounds; round++) {
    const samples = new Map(names.map((name) => [name, [] as number[]]));
    // Each side gets about `timeMs` of samples per round, as a tinybench task would.
    const until = performance.now() + options.timeMs * names.length;
    for (let turn = 0; performance.now() < until; turn++) {
      const order = turn % 2 === 0 ? names : [...names].reverse();
      for (const name of order) samples.get(name)!.push(await sample(name));
    }
    for (const name of names) perRound.get(name)!.push(median(samples.get(name)!));
    process.stderr.write(`  ${label}: round ${round + 1}/${options.rounds}\n`);
  }
  return perRound;
}

function printCosts(perRound: Map<string, number[]>, floor: string): void {
  const floorMedian = median(perRound.get(floor)!);
  const rows = [...perRound].map(([name, values]) => {
    const us = median(values);
    return [
      name,
      us.toFixed(2),
      name === floor ? '—' : (us - floorMedian).toFixed(2),
      `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`,
    ];
  });
  printTable(['middleware', 'µs per request', `µs above ${floor}`, 'range (rounds)'], rows, [
    false,
    true,
    true,
    true,
  ]);
}

// --- (2) over HTTP --------------------------------------------------------------------------

interface Target {
  readonly name: string;
  readonly url: string;
}

async function startServers(): Promise<{ targets: Target[]; close: () => Promise<void> }> {
  const servers: (http.Server | ServerType)[] = [];
  const targets: Target[] = [];
  const listen = async (name: string, server: http.Server | ServerType) => {
    servers.push(server);
    if (!server.listening) await once(server, 'listening');
    targets.push({ name, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` });
  };
  for (const [name, middleware] of Object.entries(expressMiddlewares(false))) {
    const app = express();
    if (name !== 'empty middleware') app.use(middleware);
    app.get('/', (_req, res) => {
      res.send('ok');
    });
    await listen(
      `Express · ${name === 'empty middleware' ? 'bare' : name}`,
      app.listen(0, '127.0.0.1'),
    );
  }
  const honoApp = (middleware?: MiddlewareHandler) => {
    const app = new Hono();
    if (middleware !== undefined) app.use(middleware);
    return app;
  };
  const apps: Record<string, Hono> = {
    bare: honoApp(),
    '@quotakit/hono quota()': honoApp(
      honoQuota({ engine: engine(), amounts: { llm_requests: 1 } }),
    ),
    'hono-rate-limiter': honoApp(
      rateLimiter({
        windowMs: WINDOW_MS,
        limit: HUGE,
        standardHeaders: 'draft-7',
        keyGenerator: (c) =>
          (c.env as { incoming: http.IncomingMessage }).incoming.socket.remoteAddress ?? '',
      }),
    ),
  };
  for (const [name, app] of Object.entries(apps)) {
    app.get('/', (c) => c.text('ok'));
    await listen(`Hono · ${name}`, serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }));
  }
  const close = async () => {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise((resolve) => {
            (server as http.Server).closeAllConnections();
            server.close(resolve);
          }),
      ),
    );
  };
  return { targets, close };
}

/** One autocannon run, and the servers' main-thread time per request while it ran. */
async function load(
  url: string,
  seconds: number,
): Promise<{ result: autocannon.Result; mainThreadUs: number }> {
  // autocannon runs in a worker thread: the main thread's activity is the servers' alone.
  const before = performance.eventLoopUtilization();
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    workers: 1,
  });
  const used = performance.eventLoopUtilization(before);
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
  }
  return { result, mainThreadUs: (used.active * 1000) / result.requests.total };
}

async function httpSection(): Promise<void> {
  const { targets, close } = await startServers();
  try {
    for (const target of targets) await load(target.url, 1); // warm-up, not counted
    const rps = new Map(targets.map((t) => [t.name, [] as number[]]));
    const p99 = new Map(targets.map((t) => [t.name, [] as number[]]));
    const mainThread = new Map(targets.map((t) => [t.name, [] as number[]]));
    for (let round = 0; round < HTTP_ROUNDS; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        const { result, mainThreadUs } = await load(target.url, HTTP_SECONDS);
        rps.get(target.name)!.push(result.requests.average);
        p99.get(target.name)!.push(result.latency.p99);
        mainThread.get(target.name)!.push(mainThreadUs);
      }
      process.stderr.write(`  http: round ${round + 1}/${HTTP_ROUNDS}\n`);
    }
    const rows = targets.map(({ name }) => {
      const framework = name.split(' · ')[0]!;
      const bare = median(rps.get(`${framework} · bare`)!);
      const value = median(rps.get(name)!);
      return [
        name,
        Math.round(value).toLocaleString('en-US'),
        `${(value / bare).toFixed(2)}`,
        `${Math.round(Math.min(...rps.get(name)!)).toLocaleString('en-US')}–` +
          Math.round(Math.max(...rps.get(name)!)).toLocaleString('en-US'),
        median(p99.get(name)!).toFixed(1),
        median(mainThread.get(name)!).toFixed(1),
      ];
    });
    printTable(
      ['app', 'requests/s', 'of bare', 'range (rounds)', 'p99 ms', 'main-thread µs/request'],
      rows,
      [false, true, true, true, true, true],
    );
    // Each round measures a middleware and its peer one after the other: their ratio within a
    // round is taken seconds apart, where the medians above can come from minutes apart.
    const pairs = [
      ['Express', '@quotakit/express quota()', 'express-rate-limit'],
      ['Hono', '@quotakit/hono quota()', 'hono-rate-limiter'],
    ] as const;
    const ratioRows = pairs.map(([framework, ours, peer]) => {
      const oursByRound = rps.get(`${framework} · ${ours}`)!;
      const peerByRound = rps.get(`${framework} · ${peer}`)!;
      const ratios = oursByRound.map((value, round) => value / peerByRound[round]!);
      // What the middleware adds to the server's own time per request, over the bare app.
      const bare = median(mainThread.get(`${framework} · bare`)!);
      const added = (name: string) =>
        (median(mainThread.get(`${framework} · ${name}`)!) - bare).toFixed(1);
      return [
        `${ours} / ${peer}`,
        `${median(ratios).toFixed(2)}x`,
        `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`,
        `${added(ours)} / ${added(peer)}`,
      ];
    });
    console.log(
      '\nAgainst the peer: requests per second round by round, main-thread time per request',
    );
    printTable(
      [
        'middleware / peer',
        'requests/s, median of rounds',
        'range (rounds)',
        'main-thread µs/request above bare',
      ],
      ratioRows,
      [false, true, true, true],
    );
  } finally {
    await close();
  }
}

async function run(options: BenchOptions): Promise<void> {
  console.log(
    `\nIn-process cost per request (median of ${options.rounds} rounds; in a round the sides ` +
      `take turns, ${REQUESTS_PER_SAMPLE} sequential requests at a time, for about ` +
      `${options.timeMs} ms each; a round's figure is the median of its samples)`,
  );
  console.log('\nExpress: middleware(req, res, next) on a reused request/response pair');
  const expressSides = Object.fromEntries(
    Object.entries(expressMiddlewares(true)).map(([name, mw]) => [name, expressSample(mw)]),
  );
  printCosts(await measure(expressSides, options, 'express in-process'), 'empty middleware');

  console.log("\nHono: app.request('/')");
  const honoSides = Object.fromEntries(
    Object.entries(honoApps()).map(([name, app]) => [name, honoSample(app)]),
  );
  printCosts(await measure(honoSides, options, 'hono in-process'), 'empty middleware');

  console.log(
    `\nOver HTTP on 127.0.0.1: autocannon, ${CONNECTIONS} connections, ${HTTP_SECONDS} s per app ` +
      `and round, ${HTTP_ROUNDS} rounds (order reversed every other round), median; callers ` +
      'keyed by address',
  );
  await httpSection();
}

export const httpSuite: BenchSuite = {
  name: 'http',
  title:
    '@quotakit/express and @quotakit/hono vs express-rate-limit and hono-rate-limiter, and an empty middleware',
  run,
};
