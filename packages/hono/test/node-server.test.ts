import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { createQuotaEngine } from '@quotakit/core';
import { type QuotaVariables, quota } from '@quotakit/hono';
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { serve as serveV1 } from 'hono-node-server-v1';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { reserveApp } from './reserve-app.js';

const rules = {
  llm_requests: { limit: 2, period: 'per_minute' as const },
  llm_tokens: { limit: 10_000, period: 'per_day' as const },
};

let server: ServerType | undefined;
afterEach(async () => {
  if (server === undefined) return;
  (server as http.Server).closeAllConnections();
  await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

type Serve = (options: { fetch: Hono['fetch']; hostname: string; port: number }) => ServerType;

// The current @hono/node-server and the 1.x line many applications still run: the adapter
// writes its headers to the Node response both expose as `c.env.outgoing`.
describe.each([
  { version: '2.x', serveWith: serve as Serve },
  { version: '1.x', serveWith: serveV1 as unknown as Serve },
])('quota() on a real @hono/node-server $version listener', ({ serveWith }) => {
  async function listen(app: Hono<{ Variables: QuotaVariables }>): Promise<string> {
    server = serveWith({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('keys callers by their address and refuses the third request with 429', async () => {
    const engine = createQuotaEngine({ defaults: rules });
    const app = new Hono<{ Variables: QuotaVariables }>();
    app.get('/chat', quota({ engine, amounts: { llm_requests: 1 } }), (c) =>
      c.json(c.get('quota').subject),
    );
    const base = await listen(app);
    const first = await fetch(`${base}/chat`);
    expect(await first.json()).toEqual({ userId: 'ip:127.0.0.1' });
    expect(first.headers.get('ratelimit-policy')).toBe('"llm_requests-per_minute"; q=2; w=60');
    expect(first.headers.get('ratelimit')).toMatch(/^"llm_requests-per_minute"; r=1; t=\d+$/);
    await fetch(`${base}/chat`);
    const third = await fetch(`${base}/chat`);
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await third.json()) as { error: string }).error).toBe('quota_exceeded');
  });

  it("sends both middlewares' headers whatever the handler answers with", async () => {
    const engine = createQuotaEngine({
      defaults: { ...rules, llm_requests: { limit: 10, period: 'per_minute' } },
    });
    const identify = () => ({ userId: 'u1' });
    const requests = quota({ engine, identify, amounts: { llm_requests: 1 } });
    const tokens = quota({ engine, identify, amounts: { llm_tokens: 500 } });
    const app = new Hono<{ Variables: QuotaVariables }>();
    app.get('/text', requests, tokens, (c) => c.text('ok'));
    app.get('/raw', requests, tokens, () => new Response('raw', { headers: { 'x-own': 'yes' } }));
    app.get('/stream', requests, tokens, (c) => c.body(new Blob(['streamed']).stream()));
    const base = await listen(app);
    for (const path of ['/text', '/raw', '/stream']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('ratelimit-policy')).toBe(
        '"llm_tokens-per_day"; q=10000; w=86400, "llm_requests-per_minute"; q=10; w=60',
      );
      expect(response.headers.get('ratelimit')).toMatch(
        /^"llm_tokens-per_day"; r=\d+; t=\d+, "llm_requests-per_minute"; r=\d; t=\d+$/,
      );
      await response.arrayBuffer();
      if (path === '/raw') expect(response.headers.get('x-own')).toBe('yes');
    }
  });

  it('releases the reservation when the client goes away mid-handler', async () => {
    const engine = createQuotaEngine({ defaults: rules });
    const used = async (resource: string) =>
      (await engine.getQuotaStatus(resource, { userId: 'u1' })).used;
    let entered!: () => void;
    const handlerEntered = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let finishHandler!: () => void;
    const handlerMayFinish = new Promise<void>((resolve) => {
      finishHandler = resolve;
    });
    let aborted!: () => void;
    const requestAborted = new Promise<void>((resolve) => {
      aborted = resolve;
    });
    let settled!: () => void;
    const middlewareDone = new Promise<void>((resolve) => {
      settled = resolve;
    });
    const app = new Hono<{ Variables: QuotaVariables }>();
    app.use(async (_c, next) => {
      await next();
      settled();
    });
    app.post(
      '/chat',
      quota({
        engine,
        mode: 'reserve',
        identify: () => ({ userId: 'u1' }),
        amounts: { llm_requests: 1, llm_tokens: 2000 },
      }),
      async (c) => {
        c.get('quota').record('llm_tokens', 300);
        c.req.raw.signal.addEventListener('abort', () => aborted());
        entered();
        await handlerMayFinish;
        return c.json({ late: true });
      },
    );
    const base = new URL(await listen(app));
    const client = http.request({
      host: base.hostname,
      port: base.port,
      method: 'POST',
      path: '/chat',
    });
    client.on('error', () => {}); // the abort below
    client.end();
    await handlerEntered;
    expect(await used('llm_tokens')).toBe(2000);
    client.destroy();
    // The handler is still waiting (an LLM call, say) and answers to nobody once it is done.
    await requestAborted;
    finishHandler();
    await middlewareDone;
    expect(await used('llm_tokens')).toBe(0);
    expect(await used('llm_requests')).toBe(0);
  });

  it('settles a streamed answer when its body ends, or releases it when the client leaves', async () => {
    const { app, used } = reserveApp(rules);
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => {
      resume = resolve;
    });
    app.get('/whole', (c) =>
      stream(c, async (body) => {
        await body.write('one ');
        c.get('quota').record('llm_tokens', 40);
        await body.write('two');
        c.get('quota').record('llm_tokens', 2);
      }),
    );
    app.get('/left', (c) =>
      stream(c, async (body) => {
        c.get('quota').record('llm_tokens', 40);
        await body.write('one ');
        await resumed;
        await body.write('two');
      }),
    );
    const base = await listen(app);
    const whole = await fetch(`${base}/whole`);
    expect(whole.headers.get('ratelimit-policy')).toContain('"llm_requests-per_minute"');
    expect(await whole.text()).toBe('one two');
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(42));

    const left = await fetch(`${base}/left`);
    const reader = left.body!.getReader();
    await reader.read();
    expect(await used('llm_tokens')).toBe(2042);
    await reader.cancel();
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(42));
    expect(await used('llm_requests')).toBe(1);
    resume();
  });
});
