import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createQuotaEngine, QuotaConfigError, type QuotaEngineOptions } from '@quotakit/core';
import { quota } from '@quotakit/express';
import express, { type RequestHandler } from 'express';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { failingStore } from '../../../test-support/adapter-fixtures.js';
import { manualClock } from '../../../test-support/manual-clock.js';

const START = '2026-03-10T12:00:30.000Z';
const DAY_LEFT_S = 12 * 3600 - 30;

const requestRules: QuotaEngineOptions['defaults'] = {
  llm_requests: [
    { limit: 10, period: 'per_minute' },
    { limit: 100, period: 'per_day' },
  ],
  llm_tokens: { limit: 10_000, period: 'per_day' },
};

function setup(options: Partial<Parameters<typeof quota>[0]> = {}, engineOptions = {}) {
  const clock = manualClock(START);
  const engine = createQuotaEngine({ defaults: requestRules, clock: clock.now, ...engineOptions });
  const app = express();
  app.get(
    '/chat',
    quota({
      engine,
      amounts: { llm_requests: 1 },
      identify: (req) => ({ userId: req.get('x-user') ?? 'anonymous' }),
      clock: clock.now,
      ...options,
    }),
    (req, res) => {
      res.json({ subject: req.quota.subject, mode: req.quota.mode });
    },
  );
  const used = async (resource: string, userId = 'u1') =>
    (await engine.getQuotaStatus(resource, { userId })).used;
  return { app, engine, clock, used };
}

describe('quota() decisions and headers', () => {
  it('admits with exact draft-8 headers, one item per rule', async () => {
    const { app, used } = setup();
    const response = await request(app).get('/chat').set('x-user', 'u1').expect(200);
    expect(response.body).toEqual({ subject: { userId: 'u1' }, mode: 'consume' });
    expect(response.headers['ratelimit-policy']).toBe(
      '"llm_requests-per_minute"; q=10; w=60, "llm_requests-per_day"; q=100; w=86400',
    );
    expect(response.headers.ratelimit).toBe(
      `"llm_requests-per_minute"; r=9; t=30, "llm_requests-per_day"; r=99; t=${DAY_LEFT_S}`,
    );
    expect(response.headers['quota-status']).toBeUndefined();
    expect(response.headers['retry-after']).toBeUndefined();
    expect(await used('llm_requests')).toBe(1);
  });

  it('says approaching_limit, then at_limit, then refuses with 429 and Retry-After', async () => {
    const { app, engine, clock } = setup();
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 7 } });
    const approaching = await request(app).get('/chat').set('x-user', 'u1').expect(200);
    expect(approaching.headers['quota-status']).toBe('approaching_limit; resource="llm_requests"');
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 1 } });
    const atLimit = await request(app).get('/chat').set('x-user', 'u1').expect(200);
    expect(atLimit.headers['quota-status']).toBe('at_limit; resource="llm_requests"');
    expect(atLimit.headers.ratelimit).toMatch(/^"llm_requests-per_minute"; r=0; t=30, /);

    clock.advance(12_000);
    const refused = await request(app).get('/chat').set('x-user', 'u1').expect(429);
    expect(refused.headers['retry-after']).toBe('18');
    expect(refused.headers['quota-status']).toBe('exceeded; resource="llm_requests"');
    expect(refused.headers.ratelimit).toBe(
      `"llm_requests-per_minute"; r=0; t=18, "llm_requests-per_day"; r=90; t=${DAY_LEFT_S - 12}`,
    );
    expect(refused.body).toMatchObject({
      error: 'quota_exceeded',
      message: 'Quota exceeded for llm_requests. Limit: 10, cannot proceed.',
      quota: {
        resource: 'llm_requests',
        status: 'exceeded',
        limit: 10,
        used: 10,
        period: 'per_minute',
      },
    });
    expect(refused.body.quota.resetAt).toBe('2026-03-10T12:01:00.000Z');

    clock.advance(18_000); // the next minute: admitted again
    await request(app).get('/chat').set('x-user', 'u1').expect(200);
  });

  it('sends the legacy headers of the tightest rule when asked', async () => {
    const { app } = setup({ headers: 'legacy' });
    const response = await request(app).get('/chat').set('x-user', 'u1').expect(200);
    expect(response.headers['x-ratelimit-limit']).toBe('10');
    expect(response.headers['x-ratelimit-remaining']).toBe('9');
    expect(response.headers['x-ratelimit-reset']).toBe(String(Date.parse(START) / 1000 + 30));
    expect(response.headers.ratelimit).toBeUndefined();
  });

  it('sends no quota headers with headers: false, but still Retry-After on a refusal', async () => {
    const { app, engine } = setup({ headers: false });
    const allowed = await request(app).get('/chat').set('x-user', 'u1').expect(200);
    expect(allowed.headers.ratelimit).toBeUndefined();
    expect(allowed.headers['ratelimit-policy']).toBeUndefined();
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 9 } });
    const refused = await request(app).get('/chat').set('x-user', 'u1').expect(429);
    expect(refused.headers['retry-after']).toBe('30');
    expect(refused.headers['quota-status']).toBeUndefined();
  });

  it('sends Retry-After on every 429, also where waiting cannot lift the refusal', async () => {
    const { app } = setup({}, { defaults: { llm_requests: { limit: 0, period: 'per_day' } } });
    const refused = await request(app).get('/chat').set('x-user', 'u1').expect(429);
    // limit 0 blocks the resource: waiting cannot help, so a client is asked not to come
    // back too often (the end of the day would change nothing).
    expect(refused.headers['retry-after']).toBe('60');
    const lease = setup(
      { amounts: { concurrent_tasks: 1 } },
      { defaults: { concurrent_tasks: { limit: 0, period: 'total' } } },
    );
    const busy = await request(lease.app).get('/chat').set('x-user', 'u1').expect(429);
    expect(busy.headers['retry-after']).toBe('1');
  });

  it('appends to the headers of another quota middleware on the same route', async () => {
    const clock = manualClock(START);
    const engine = createQuotaEngine({ defaults: requestRules, clock: clock.now });
    const identify = () => ({ userId: 'u1' });
    const app = express();
    app.get(
      '/both',
      quota({ engine, identify, amounts: { llm_requests: 1 }, clock: clock.now }),
      quota({ engine, identify, amounts: { llm_tokens: 500 }, clock: clock.now }),
      (_req, res) => {
        res.end();
      },
    );
    const response = await request(app).get('/both').expect(200);
    expect(response.headers['ratelimit-policy']).toBe(
      '"llm_requests-per_minute"; q=10; w=60, "llm_requests-per_day"; q=100; w=86400, ' +
        '"llm_tokens-per_day"; q=10000; w=86400',
    );
    expect(response.headers.ratelimit).toContain('"llm_tokens-per_day"; r=9500; t=');
  });

  it('keys anonymous callers by address by default', async () => {
    const { app, engine } = setup({ identify: undefined });
    const response = await request(app).get('/chat').expect(200);
    expect(response.body.subject).toEqual({ userId: 'ip:127.0.0.1' });
    const status = await engine.getQuotaStatus('llm_requests', { userId: 'ip:127.0.0.1' });
    expect(status.used).toBe(1);
  });

  it('lets skipped requests through uncharged, with a handle that records nothing', async () => {
    const { app, used } = setup({ skip: (req) => req.get('x-internal') === 'yes' });
    const response = await request(app).get('/chat').set('x-user', 'u1').set('x-internal', 'yes');
    expect(response.status).toBe(200);
    expect(response.body.mode).toBe('skip');
    expect(response.headers.ratelimit).toBeUndefined();
    expect(await used('llm_requests')).toBe(0);
  });

  it('hands refusals to onExceeded with the headers already set', async () => {
    const { app, engine } = setup({
      onExceeded: (_req, res, refusal) => {
        res.status(refusal.status).type('text').send(`slow down: ${refusal.body.message}`);
      },
    });
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 10 } });
    const response = await request(app).get('/chat').set('x-user', 'u1').expect(429);
    expect(response.text).toBe(
      'slow down: Quota exceeded for llm_requests. Limit: 10, cannot proceed.',
    );
    expect(response.headers['retry-after']).toBe('30');
  });
});

describe('quota() with amounts from the request', () => {
  const tokenApp = () =>
    setup({ amounts: (req) => ({ llm_requests: 1, llm_tokens: req.get('x-token-estimate') }) });

  it('parses amounts read from headers', async () => {
    const { app, used } = tokenApp();
    await request(app).get('/chat').set('x-user', 'u1').set('x-token-estimate', '1500').expect(200);
    expect(await used('llm_tokens')).toBe(1500);
  });

  it.each(['abc', '-5', '1e3', 'Infinity', ''])(
    'answers 400 for the amount %j and counts nothing',
    async (estimate) => {
      const { app, used } = tokenApp();
      const response = await request(app)
        .get('/chat')
        .set('x-user', 'u1')
        .set('x-token-estimate', estimate)
        .expect(400);
      expect(response.body).toEqual({
        error: 'invalid_quota_request',
        message: `Invalid amount for llm_tokens: expected a finite number of 0 or more, got ${JSON.stringify(estimate)}`,
      });
      expect(await used('llm_requests')).toBe(0);
      expect(await used('llm_tokens')).toBe(0);
    },
  );

  it('answers 400 for an id the engine refuses', async () => {
    const { app } = setup();
    const response = await request(app).get('/chat').set('x-user', 'x'.repeat(600)).expect(400);
    expect(response.body.message).toBe('userId must be at most 512 characters, got 600');
  });
});

describe('quota() options are checked at construction', () => {
  const engine = createQuotaEngine();
  it.each([
    [{ engine, amounts: { llm_requests: -1 } }, 'amounts.llm_requests'],
    [{ engine, amounts: {} }, 'amounts'],
    [{ engine, amounts: { llm_requests: 1 }, headers: 'draft-7' }, 'headers'],
    [{ engine, amounts: { llm_requests: 1 }, mode: 'hold' }, 'mode'],
    [{ engine, amounts: { llm_requests: 1 }, failuremode: 'open' }, ''],
    [{ engine: {}, amounts: { llm_requests: 1 } }, 'engine'],
  ])('refuses %o', (options, path) => {
    let error: unknown;
    try {
      quota(options as never);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(QuotaConfigError);
    expect((error as QuotaConfigError).path).toBe(path);
  });
});

describe('quota() with a failing store', () => {
  it('fails open: admits, and the headers say unknown', async () => {
    const { app } = setup({}, { store: failingStore(), failureMode: 'open' });
    const response = await request(app).get('/chat').set('x-user', 'u1').expect(200);
    expect(response.headers['quota-status']).toBe('unknown; resource="llm_requests"');
    expect(response.headers['ratelimit-policy']).toContain('"llm_requests-per_minute"; q=10; w=60');
    expect(response.headers.ratelimit).toBeUndefined();
  });

  it('fails closed: 503 with the status unknown, never a hang or a 500', async () => {
    const { app } = setup({}, { store: failingStore(), failureMode: 'closed' });
    const response = await request(app).get('/chat').set('x-user', 'u1').expect(503);
    expect(response.body).toMatchObject({
      error: 'quota_unavailable',
      message: 'Quota status unknown for llm_requests: the quota store did not answer.',
      quota: { status: 'unknown' },
    });
    expect(response.headers['quota-status']).toBe('unknown; resource="llm_requests"');
    expect(response.headers['retry-after']).toBeUndefined();
  });

  it("lets the middleware's failureMode override the engine's", async () => {
    const closed = setup({ failureMode: 'closed' }, { store: failingStore(), failureMode: 'open' });
    await request(closed.app).get('/chat').set('x-user', 'u1').expect(503);
    const open = setup({ failureMode: 'open' }, { store: failingStore(), failureMode: 'closed' });
    await request(open.app).get('/chat').set('x-user', 'u1').expect(200);
  });
});

describe('quota() in reserve mode', () => {
  function reserveApp(handler: RequestHandler) {
    const clock = manualClock(START);
    const engine = createQuotaEngine({ defaults: requestRules, clock: clock.now });
    const app = express();
    app.post(
      '/chat',
      quota({
        engine,
        mode: 'reserve',
        identify: () => ({ userId: 'u1' }),
        amounts: { llm_requests: 1, llm_tokens: 2000 },
        clock: clock.now,
      }),
      handler,
    );
    const used = async (resource: string) =>
      (await engine.getQuotaStatus(resource, { userId: 'u1' })).used;
    return { app, used };
  }

  it('holds the estimate while the handler runs and commits what it recorded', async () => {
    let usedDuring: number | null = null;
    const { app, used } = reserveApp(async (req, res) => {
      usedDuring = await used('llm_tokens');
      req.quota.record('llm_tokens', 300);
      req.quota.record('llm_tokens', 50);
      res.json({ reserved: req.quota.reservation?.allowed });
    });
    const response = await request(app).post('/chat').expect(200);
    expect(response.body).toEqual({ reserved: true });
    expect(response.headers.ratelimit).toContain('"llm_tokens-per_day"; r=8000; t=');
    expect(usedDuring).toBe(2000);
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(350));
    expect(await used('llm_requests')).toBe(1); // not recorded: committed at its reserved amount
  });

  it('releases everything when the handler throws', async () => {
    const { app, used } = reserveApp(async (req) => {
      req.quota.record('llm_tokens', 300);
      throw new Error('model timed out');
    });
    await request(app).post('/chat').expect(500);
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(0));
    expect(await used('llm_requests')).toBe(0);
  });

  it('releases everything when the handler answers 5xx', async () => {
    const { app, used } = reserveApp((req, res) => {
      req.quota.record('llm_tokens', 300);
      res.status(502).json({ error: 'upstream failed' });
    });
    await request(app).post('/chat').expect(502);
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(0));
    expect(await used('llm_requests')).toBe(0);
  });

  it('releases an error answered below 500 when the error handler settles it as failed', async () => {
    const { app, used } = reserveApp(async (req) => {
      req.quota.record('llm_tokens', 300);
      throw Object.assign(new Error('bad input'), { status: 422 });
    });
    // Express hides the error from middleware: the README's error handler says it failed.
    app.use(((error, req, res, _next) => {
      void req.quota?.settle(false);
      res.status(error.status ?? 500).json({ error: error.message });
    }) as express.ErrorRequestHandler);
    await request(app).post('/chat').expect(422);
    await vi.waitFor(async () => expect(await used('llm_requests')).toBe(0));
    expect(await used('llm_tokens')).toBe(0);
  });

  describe('on a real listener', () => {
    let server: http.Server | undefined;
    afterEach(() => {
      server?.closeAllConnections();
      server?.close();
    });

    it('releases when the client goes away mid-handler', async () => {
      let entered!: () => void;
      const handlerEntered = new Promise<void>((resolve) => {
        entered = resolve;
      });
      let finishHandler!: () => void;
      const handlerMayFinish = new Promise<void>((resolve) => {
        finishHandler = resolve;
      });
      const { app, used } = reserveApp(async (req, res) => {
        req.quota.record('llm_tokens', 300);
        entered();
        await handlerMayFinish;
        res.json({ late: true });
      });
      server = app.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;
      const client = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/chat' });
      client.on('error', () => {}); // the abort below
      client.end();
      await handlerEntered;
      expect(await used('llm_tokens')).toBe(2000);
      client.destroy();
      await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(0));
      finishHandler(); // the handler answers to nobody: nothing it recorded counts
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await used('llm_tokens')).toBe(0);
      expect(await used('llm_requests')).toBe(0);
    });
  });
});

describe('quota() in consume mode records on success only', () => {
  it('adds recorded amounts when the response succeeds, not when it fails', async () => {
    const engine = createQuotaEngine({ defaults: requestRules });
    const app = express();
    const metered = quota({
      engine,
      identify: () => ({ userId: 'u1' }),
      amounts: { llm_requests: 1 },
    });
    app.get('/ok', metered, (req, res) => {
      req.quota.record('llm_tokens', 700);
      res.end();
    });
    app.get('/fail', metered, (req, res) => {
      req.quota.record('llm_tokens', 900);
      res.status(500).end();
    });
    await request(app).get('/ok').expect(200);
    await request(app).get('/fail').expect(500);
    await vi.waitFor(async () =>
      expect((await engine.getQuotaStatus('llm_tokens', { userId: 'u1' })).used).toBe(700),
    );
    expect((await engine.getQuotaStatus('llm_requests', { userId: 'u1' })).used).toBe(2);
  });
});
