import { createQuotaEngine, MemoryStore, QuotaConfigError, type QuotaEngine } from '@quotakit/core';
import { quotaAdmin } from '@quotakit/express';
import express, { type Request } from 'express';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import { failingStore } from '../../../test-support/adapter-fixtures.js';
import { manualClock } from '../../../test-support/manual-clock.js';

const TOKEN = 'test-admin-token';
const START = '2026-03-10T12:00:30.000Z';

const bearer = (req: Request) => req.get('authorization') === `Bearer ${TOKEN}`;

function adminApp(engine: QuotaEngine, authorize: ((req: Request) => boolean) | null = bearer) {
  const clock = manualClock(START);
  const app = express();
  app.use('/admin', quotaAdmin({ engine, authorize: authorize ?? undefined, clock: clock.now }));
  return app;
}

function seededEngine(options: Parameters<typeof createQuotaEngine>[0] = {}) {
  const clock = manualClock(START);
  return createQuotaEngine({
    defaults: {
      llm_requests: { limit: 100, period: 'per_day' },
      llm_tokens: [
        { limit: 10_000, period: 'per_day' },
        { limit: 1_000, period: 'per_minute' },
      ],
    },
    clock: clock.now,
    ...options,
  });
}

const routes = [
  ['get', '/admin/status?userId=u1'],
  ['get', '/admin/quotas'],
  ['put', '/admin/quotas/user/u1/llm_tokens'],
  ['delete', '/admin/quotas/user/u1/llm_tokens'],
  ['get', '/admin/dashboard'],
] as const;

describe('quotaAdmin() authorization', () => {
  it.each(routes)('refuses %s %s with 403 when created without authorize', async (method, path) => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const app = adminApp(seededEngine(), null);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('no authorize function'));
    warn.mockRestore();
    const response = await request(app)[method](path).send({ limit: 1, period: 'per_day' });
    expect(response.status).toBe(403);
    expect(response.body.error).toBe('forbidden');
  });

  it.each(routes)('refuses %s %s with 401 without the bearer token', async (method, path) => {
    const engine = seededEngine();
    const app = adminApp(engine);
    const response = await request(app)
      [method](path)
      .set('authorization', 'Bearer wrong')
      .send({ limit: 1, period: 'per_day' });
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="quotakit"');
    expect(await engine.listQuotas()).toEqual([]); // nothing changed
  });

  it('passes the action to authorize', async () => {
    const actions: string[] = [];
    const app = express();
    app.use(
      '/admin',
      quotaAdmin({
        engine: seededEngine(),
        authorize: (_req, { action }) => {
          actions.push(action);
          return action === 'dashboard';
        },
      }),
    );
    await request(app).get('/admin/dashboard').expect(200);
    await request(app).get('/admin/status').expect(401);
    expect(actions).toEqual(['dashboard', 'status']);
  });
});

describe('quotaAdmin() routes', () => {
  const auth = { authorization: `Bearer ${TOKEN}` };

  it('GET /status reports every quota of the subject, with the server time', async () => {
    const engine = seededEngine();
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 85, llm_tokens: 900 } });
    const response = await request(adminApp(engine))
      .get('/admin/status?userId=u1')
      .set(auth)
      .expect(200);
    expect(response.headers['cache-control']).toBe('no-store');
    // getAllQuotasStatus as JSON, nothing added; the server's time comes as a header.
    expect(Object.keys(response.body).sort()).toEqual(['quotas', 'subject']);
    expect(response.body.subject).toEqual({ userId: 'u1' });
    expect(response.headers['quota-now']).toBe(START);
    expect(response.body.quotas.llm_requests).toMatchObject({
      status: 'approaching_limit',
      used: 85,
      limit: 100,
      remaining: 15,
      period: 'per_day',
      resetAt: '2026-03-11T00:00:00.000Z',
    });
    expect(response.body.quotas.llm_tokens).toMatchObject({
      status: 'approaching_limit',
      used: 900,
      limit: 1000,
      period: 'per_minute',
    });
    expect(response.body.quotas.llm_tokens.rules).toHaveLength(2);
  });

  it('GET /status answers 400 for a bad id', async () => {
    const response = await request(adminApp(seededEngine()))
      .get(`/admin/status?userId=${'x'.repeat(513)}`)
      .set(auth)
      .expect(400);
    expect(response.body).toEqual({
      error: 'invalid_request',
      message: 'userId must be at most 512 characters, got 513',
    });
  });

  it('PUT sets a run-time quota, GET /quotas lists it, DELETE removes it', async () => {
    const engine = seededEngine();
    const app = adminApp(engine);
    const put = await request(app)
      .put('/admin/quotas/user/a%2Fb%20c/llm_tokens')
      .set(auth)
      .send({ limit: 5000, period: 'per_day', name: 'trial' })
      .expect(200);
    expect(put.body.quota).toMatchObject({ scope: 'user', id: 'a/b c', resource: 'llm_tokens' });
    const status = await engine.getQuotaStatus('llm_tokens', { userId: 'a/b c' });
    expect(status).toMatchObject({ limit: 5000, rules: [{ name: 'trial' }] });

    const list = await request(app).get('/admin/quotas?scope=user').set(auth).expect(200);
    expect(list.body.quotas).toHaveLength(1);

    await request(app).delete('/admin/quotas/user/a%2Fb%20c/llm_tokens').set(auth).expect(200);
    const again = await request(app)
      .delete('/admin/quotas/user/a%2Fb%20c/llm_tokens')
      .set(auth)
      .expect(404);
    expect(again.body.error).toBe('not_found');
  });

  it("PUT takes a rule written out whole, scope included, when it is the path's", async () => {
    const engine = seededEngine();
    await request(adminApp(engine))
      .put('/admin/quotas/user/u1/llm_tokens')
      .set(auth)
      .send({ limit: 700, period: 'per_day', scope: 'user' })
      .expect(200);
    expect((await engine.getQuotaStatus('llm_tokens', { userId: 'u1' })).limit).toBe(700);
  });

  it('PUT takes several rules', async () => {
    const engine = seededEngine();
    await request(adminApp(engine))
      .put('/admin/quotas/agent/a1/llm_requests')
      .set(auth)
      .send({
        rules: [
          { limit: 10, period: 'per_minute' },
          { limit: 50, period: 'per_day' },
        ],
      })
      .expect(200);
    const status = await engine.getQuotaStatus('llm_requests', { agentId: 'a1' });
    expect(status.rules.map((rule) => rule.limit)).toEqual([10, 50]);
  });

  it.each([
    ['malformed JSON', '{"limit": 5', /^Invalid JSON body: /],
    ['an array', [{ limit: 5, period: 'per_day' }], /^The body must be a JSON object/],
    ['no body', undefined, /^The body must be a JSON object/],
    ['a string limit', { limit: '5', period: 'per_day' }, /^Invalid rule at limit: /],
    ['an unknown key', { limit: 5, period: 'per_day', colour: 'red' }, /^Invalid rule: /],
    [
      "a scope other than the path's",
      { limit: 5, period: 'per_day', scope: 'global' },
      /^Invalid rule: scope "global" in the body is not the path's "user"/,
    ],
    ['a negative limit', { limit: -5, period: 'per_day' }, /limit: must be 0 or more/],
    ['an unknown period', { limit: 5, period: 'per_year' }, /period: must be one of/],
    ['an empty rule list', { rules: [] }, /^Invalid rule at rules: /],
  ])('PUT answers 400 for %s and changes nothing', async (_, body, message) => {
    const engine = seededEngine();
    let put = request(adminApp(engine)).put('/admin/quotas/user/u1/llm_tokens').set(auth);
    if (typeof body === 'string') put = put.set('content-type', 'application/json').send(body);
    else if (body !== undefined) put = put.send(body);
    const response = await put.expect(400);
    expect(response.body.error).toBe('invalid_request');
    expect(response.body.message).toMatch(message);
    expect(await engine.listQuotas()).toEqual([]);
  });

  it('PUT answers 400 for a bad scope and 413 for a huge body', async () => {
    const app = adminApp(seededEngine());
    const scope = await request(app)
      .put('/admin/quotas/planet/u1/llm_tokens')
      .set(auth)
      .send({ limit: 5, period: 'per_day' })
      .expect(400);
    expect(scope.body.message).toMatch(/^scope must be one of user, agent, tenant, run/);
    await request(app)
      .put('/admin/quotas/user/u1/llm_tokens')
      .set(auth)
      .send({ limit: 5, period: 'per_day', name: 'x'.repeat(20_000) })
      .expect(413);
  });

  it('PUT answers 400 for a rule the store cannot enforce (one that crosses shards)', async () => {
    // Like a RedisStore with shardBy: 'user', where an agent's counter would span shards.
    const store = Object.assign(new MemoryStore(), {
      checkRules(rules: readonly { scope: string; resource: string }[]) {
        const crossing = rules.find((rule) => rule.scope === 'agent');
        if (crossing) {
          throw new QuotaConfigError(`rules.${crossing.resource}`, 'an agent rule crosses shards');
        }
      },
    });
    const engine = seededEngine({ store });
    const response = await request(adminApp(engine))
      .put('/admin/quotas/agent/a1/llm_tokens')
      .set(auth)
      .send({ limit: 5, period: 'per_day' })
      .expect(400);
    expect(response.body).toMatchObject({
      error: 'invalid_request',
      message: expect.stringMatching(/an agent rule crosses shards/),
    });
    expect(await engine.listQuotas()).toEqual([]);
  });

  it('answers 503 when the store does not answer in time', async () => {
    const hanging = { ...failingStore(), setOverride: () => new Promise<never>(() => {}) };
    const engine = seededEngine({ store: hanging, storeTimeoutMs: 100 });
    const response = await request(adminApp(engine))
      .put('/admin/quotas/user/u1/llm_tokens')
      .set(auth)
      .send({ limit: 5, period: 'per_day' })
      .expect(503);
    expect(response.body.error).toBe('store_unavailable');
  });

  it('GET /dashboard serves one self-contained page under a strict CSP', async () => {
    const response = await request(adminApp(seededEngine()))
      .get('/admin/dashboard')
      .set(auth)
      .expect(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['content-security-policy']).toMatch(
      /^default-src 'none'; style-src 'sha256-[\w+/=]+'; script-src 'sha256-[\w+/=]+'; connect-src 'self'/,
    );
    expect(response.text).toContain('<title>QuotaKit usage</title>');
    expect(response.text).not.toMatch(/<(script|link)[^>]+(src|href)=/);
  });
});
