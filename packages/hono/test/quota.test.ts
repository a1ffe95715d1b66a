import { createQuotaEngine, QuotaConfigError, type QuotaEngineOptions } from '@quotakit/core';
import { type QuotaOptions, type QuotaVariables, quota } from '@quotakit/hono';
import { type Context, Hono } from 'hono';
import { stream, streamSSE } from 'hono/streaming';
import { describe, expect, it, vi } from 'vitest';
import { failingStore } from '../../../test-support/adapter-fixtures.js';
import { manualClock } from '../../../test-support/manual-clock.js';
import { reserveApp } from './reserve-app.js';

const START = '2026-03-10T12:00:30.000Z';
const DAY_LEFT_S = 12 * 3600 - 30;

const requestRules: QuotaEngineOptions['defaults'] = {
  llm_requests: [
    { limit: 10, period: 'per_minute' },
    { limit: 100, period: 'per_day' },
  ],
  llm_tokens: { limit: 10_000, period: 'per_day' },
};

function setup(options: Partial<QuotaOptions> = {}, engineOptions: QuotaEngineOptions = {}) {
  const clock = manualClock(START);
  const engine = createQuotaEngine({ defaults: requestRules, clock: clock.now, ...engineOptions });
  const app = new Hono<{ Variables: QuotaVariables }>();
  app.get(
    '/chat',
    quota({
      engine,
      amounts: { llm_requests: 1 },
      identify: (c) => ({ userId: c.req.header('x-user') ?? 'anonymous' }),
      clock: clock.now,
      ...options,
    }),
    (c) => c.json({ subject: c.get('quota').subject, mode: c.get('quota').mode }),
  );
  const used = async (resource: string, userId = 'u1') =>
    (await engine.getQuotaStatus(resource, { userId })).used;
  const get = (headers: Record<string, string> = { 'x-user': 'u1' }) =>
    app.request('/chat', { headers });
  return { app, engine, clock, used, get };
}

describe('quota() decisions and headers', () => {
  it('admits with exact draft-8 headers, one item per rule', async () => {
    const { get, used } = setup();
    const response = await get();
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ subject: { userId: 'u1' }, mode: 'consume' });
    expect(response.headers.get('ratelimit-policy')).toBe(
      '"llm_requests-per_minute"; q=10; w=60, "llm_requests-per_day"; q=100; w=86400',
    );
    expect(response.headers.get('ratelimit')).toBe(
      `"llm_requests-per_minute"; r=9; t=30, "llm_requests-per_day"; r=99; t=${DAY_LEFT_S}`,
    );
    expect(response.headers.get('quota-status')).toBeNull();
    expect(await used('llm_requests')).toBe(1);
  });

  it('says approaching_limit, then at_limit, then refuses with 429 and Retry-After', async () => {
    const { get, engine, clock } = setup();
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 7 } });
    const approaching = await get();
    expect(approaching.headers.get('quota-status')).toBe(
      'approaching_limit; resource="llm_requests"',
    );
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 1 } });
    const atLimit = await get();
    expect(atLimit.status).toBe(200);
    expect(atLimit.headers.get('quota-status')).toBe('at_limit; resource="llm_requests"');

    clock.advance(12_000);
    const refused = await get();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('18');
    expect(refused.headers.get('ratelimit')).toBe(
      `"llm_requests-per_minute"; r=0; t=18, "llm_requests-per_day"; r=90; t=${DAY_LEFT_S - 12}`,
    );
    expect(await refused.json()).toMatchObject({
      error: 'quota_exceeded',
      message: 'Quota exceeded for llm_requests. Limit: 10, cannot proceed.',
      quota: { resource: 'llm_requests', status: 'exceeded', resetAt: '2026-03-10T12:01:00.000Z' },
    });
    clock.advance(18_000);
    expect((await get()).status).toBe(200);
  });

  it('sends the legacy headers when asked', async () => {
    const response = await setup({ headers: 'legacy' }).get();
    expect(response.headers.get('x-ratelimit-limit')).toBe('10');
    expect(response.headers.get('x-ratelimit-remaining')).toBe('9');
    expect(response.headers.get('x-ratelimit-reset')).toBe(String(Date.parse(START) / 1000 + 30));
    expect(response.headers.get('ratelimit')).toBeNull();
  });

  it('puts the headers on a Response the handler built itself, even an immutable one', async () => {
    const engine = createQuotaEngine({ defaults: requestRules });
    const app = new Hono();
    const metered = quota({
      engine,
      identify: () => ({ userId: 'u1' }),
      amounts: { llm_requests: 1 },
    });
    app.get('/raw', metered, () => new Response('raw'));
    app.get('/redirect', metered, () => Response.redirect('http://localhost/elsewhere', 302));
    for (const path of ['/raw', '/redirect']) {
      const response = await app.request(path);
      expect(response.headers.get('ratelimit-policy')).toContain('"llm_requests-per_minute"; q=10');
    }
  });

  it('sends Retry-After on every 429, also where waiting cannot lift the refusal', async () => {
    const { get } = setup({}, { defaults: { llm_requests: { limit: 0, period: 'per_day' } } });
    const refused = await get();
    expect(refused.status).toBe(429);
    // limit 0 blocks the resource: waiting cannot help, so a client is asked not to come
    // back too often (the end of the day would change nothing).
    expect(refused.headers.get('retry-after')).toBe('60');
    const lease = setup(
      { amounts: { concurrent_tasks: 1 } },
      { defaults: { concurrent_tasks: { limit: 0, period: 'total' } } },
    );
    const busy = await lease.get();
    expect(busy.status).toBe(429);
    expect(busy.headers.get('retry-after')).toBe('1');
  });

  it('appends to the headers of another quota middleware on the same route', async () => {
    const engine = createQuotaEngine({ defaults: requestRules });
    const identify = () => ({ userId: 'u1' });
    const requests = quota({ engine, identify, amounts: { llm_requests: 1 } });
    const tokens = quota({ engine, identify, amounts: { llm_tokens: 500 } });
    const app = new Hono();
    app.get('/both', requests, tokens, (c) => c.text('ok'));
    app.get('/raw', requests, tokens, () => new Response('raw'));
    const response = await app.request('/both');
    // Each middleware writes once the handler has answered: the inner one first.
    expect(response.headers.get('ratelimit-policy')).toBe(
      '"llm_tokens-per_day"; q=10000; w=86400, ' +
        '"llm_requests-per_minute"; q=10; w=60, "llm_requests-per_day"; q=100; w=86400',
    );
    const raw = await app.request('/raw');
    expect(raw.headers.get('ratelimit-policy')).toBe(response.headers.get('ratelimit-policy'));
    expect(raw.headers.get('ratelimit')).toContain('"llm_requests-per_minute"; r=8; t=');
    expect(raw.headers.get('ratelimit')).toContain('"llm_tokens-per_day"; r=9000; t=');
  });

  it('lets skipped requests through uncharged', async () => {
    const { get, used } = setup({ skip: (c: Context) => c.req.header('x-internal') === 'yes' });
    const response = await get({ 'x-user': 'u1', 'x-internal': 'yes' });
    expect(await response.json()).toMatchObject({ mode: 'skip' });
    expect(response.headers.get('ratelimit')).toBeNull();
    expect(await used('llm_requests')).toBe(0);
  });

  it('hands refusals to onExceeded, then adds the headers', async () => {
    const { get, engine } = setup({
      onExceeded: (c, refusal) => c.text(`slow down: ${refusal.body.message}`, refusal.status),
    });
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 10 } });
    const response = await get();
    expect(response.status).toBe(429);
    expect(await response.text()).toBe(
      'slow down: Quota exceeded for llm_requests. Limit: 10, cannot proceed.',
    );
    expect(response.headers.get('retry-after')).toBe('30');
  });

  it('refuses bad options at construction', () => {
    const engine = createQuotaEngine();
    expect(() => quota({ engine, amounts: { llm_requests: Number.NaN } })).toThrow(
      QuotaConfigError,
    );
    expect(() => quota({ engine, amounts: { llm_requests: 1 }, ttlMs: -1 })).toThrow(
      'Invalid QuotaKit configuration at ttlMs: must be above 0',
    );
  });
});

describe('quota() with amounts from the request', () => {
  const tokenApp = () =>
    setup({ amounts: (c) => ({ llm_requests: 1, llm_tokens: c.req.query('tokens') }) });

  it('parses amounts read from the query', async () => {
    const { app, used } = tokenApp();
    await app.request('/chat?tokens=1500', { headers: { 'x-user': 'u1' } });
    expect(await used('llm_tokens')).toBe(1500);
  });

  it.each(['abc', '-5', '0x10', 'NaN'])('answers 400 for %j and counts nothing', async (tokens) => {
    const { app, used } = tokenApp();
    const response = await app.request(`/chat?tokens=${tokens}`, { headers: { 'x-user': 'u1' } });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: 'invalid_quota_request',
      message: `Invalid amount for llm_tokens: expected a finite number of 0 or more, got ${JSON.stringify(tokens)}`,
    });
    expect(await used('llm_requests')).toBe(0);
  });
});

describe('quota() with a failing store', () => {
  it('fails open: admits, and the headers say unknown', async () => {
    const response = await setup({}, { store: failingStore(), failureMode: 'open' }).get();
    expect(response.status).toBe(200);
    expect(response.headers.get('quota-status')).toBe('unknown; resource="llm_requests"');
    expect(response.headers.get('ratelimit')).toBeNull();
  });

  it('fails closed: 503, never a hang or a 500', async () => {
    const response = await setup({}, { store: failingStore(), failureMode: 'closed' }).get();
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: 'quota_unavailable' });
    expect(response.headers.get('quota-status')).toBe('unknown; resource="llm_requests"');
  });

  it("lets the middleware's failureMode override the engine's", async () => {
    const closed = setup({ failureMode: 'closed' }, { store: failingStore(), failureMode: 'open' });
    expect((await closed.get()).status).toBe(503);
    const open = setup({ failureMode: 'open' }, { store: failingStore(), failureMode: 'closed' });
    expect((await open.get()).status).toBe(200);
  });
});

describe('quota() in reserve mode', () => {
  it('holds the estimate while the handler runs and commits what it recorded', async () => {
    const { app, used } = reserveApp(requestRules);
    let usedDuring: number | null = null;
    app.post('/chat', async (c) => {
      usedDuring = await used('llm_tokens');
      c.get('quota').record('llm_tokens', 350);
      return c.json({ ok: true });
    });
    const response = await app.request('/chat', { method: 'POST' });
    expect(response.status).toBe(200);
    expect(usedDuring).toBe(2000);
    expect(await used('llm_tokens')).toBe(350);
    expect(await used('llm_requests')).toBe(1);
  });

  it('releases everything when the handler throws', async () => {
    const { app, used } = reserveApp(requestRules);
    app.post('/chat', (c) => {
      c.get('quota').record('llm_tokens', 350);
      throw new Error('model timed out');
    });
    expect((await app.request('/chat', { method: 'POST' })).status).toBe(500);
    expect(await used('llm_tokens')).toBe(0);
    expect(await used('llm_requests')).toBe(0);
  });

  it('releases everything when the handler answers 5xx', async () => {
    const { app, used } = reserveApp(requestRules);
    app.post('/chat', (c) => {
      c.get('quota').record('llm_tokens', 350);
      return c.json({ error: 'upstream failed' }, 502);
    });
    expect((await app.request('/chat', { method: 'POST' })).status).toBe(502);
    expect(await used('llm_tokens')).toBe(0);
  });

  it('commits what a streamed answer records once its body has ended', async () => {
    const { app, used } = reserveApp(requestRules);
    app.post('/chat', (c) =>
      streamSSE(c, async (sse) => {
        await sse.writeSSE({ data: 'Hello' });
        c.get('quota').record('llm_tokens', 20);
        await sse.writeSSE({ data: 'world' });
        c.get('quota').record('llm_tokens', 22);
      }),
    );
    const response = await app.request('/chat', { method: 'POST' });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    expect(response.headers.get('ratelimit')).toContain('r=');
    // Still held while the body has not been read.
    expect(await used('llm_tokens')).toBe(2000);
    expect(await response.text()).toBe('data: Hello\n\ndata: world\n\n');
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(42));
    expect(await used('llm_requests')).toBe(1);
  });

  it('releases a streamed answer the client cancels midway', async () => {
    const { app, used } = reserveApp(requestRules);
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => {
      resume = resolve;
    });
    app.post('/chat', (c) =>
      stream(c, async (body) => {
        c.get('quota').record('llm_tokens', 20);
        await body.write('first');
        await resumed;
        await body.write('second');
      }),
    );
    const response = await app.request('/chat', { method: 'POST' });
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('first');
    await reader.cancel();
    resume();
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(0));
    expect(await used('llm_requests')).toBe(0);
  });

  it('counts what a consume-mode handler records while its answer streams', async () => {
    const engine = createQuotaEngine({ defaults: requestRules });
    const app = new Hono<{ Variables: QuotaVariables }>();
    app.use(quota({ engine, identify: () => ({ userId: 'u2' }), amounts: { llm_requests: 1 } }));
    app.get('/stream', (c) => {
      c.get('quota').record('llm_tokens', 10);
      return stream(c, async (body) => {
        await body.write('tokens');
        c.get('quota').record('llm_tokens', 54);
      });
    });
    app.get('/failed', (c) => {
      setTimeout(() => c.get('quota').record('llm_tokens', 1_000), 1);
      return c.json({ error: 'upstream' }, 502);
    });
    const tokens = async () => (await engine.getQuotaStatus('llm_tokens', { userId: 'u2' })).used;
    expect(await (await app.request('/stream')).text()).toBe('tokens');
    await vi.waitFor(async () => expect(await tokens()).toBe(64));
    expect((await app.request('/failed')).status).toBe(502);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await tokens()).toBe(64);
  });

  it('settles a stream answered through a destructured body() as well', async () => {
    const { app, used } = reserveApp(requestRules);
    app.post('/chat', ({ body, get }) => {
      const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
      void (async () => {
        const writer = writable.getWriter();
        await writer.write(new TextEncoder().encode('tokens'));
        get('quota').record('llm_tokens', 64);
        await writer.close();
      })();
      return body(readable);
    });
    const response = await app.request('/chat', { method: 'POST' });
    expect(await response.text()).toBe('tokens');
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(64));
  });
});
