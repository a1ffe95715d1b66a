import { createQuotaEngine, type QuotaEngine } from '@quotakit/core';
import { quotaAdmin } from '@quotakit/hono';
import { type Context, Hono } from 'hono';
import { describe, expect, it, vi } from 'vitest';
import { manualClock } from '../../../test-support/manual-clock.js';

const TOKEN = 'test-admin-token';
const START = '2026-03-10T12:00:30.000Z';
const auth = { authorization: `Bearer ${TOKEN}` };

function adminApp(engine: QuotaEngine, withAuthorize = true) {
  const app = new Hono();
  app.route(
    '/admin',
    quotaAdmin({
      engine,
      clock: manualClock(START).now,
      authorize: withAuthorize
        ? (c: Context) => c.req.header('authorization') === `Bearer ${TOKEN}`
        : undefined,
    }),
  );
  return app;
}

const engineWithRules = () =>
  createQuotaEngine({
    defaults: { llm_requests: { limit: 100, period: 'per_day' } },
    clock: manualClock(START).now,
  });

const routes = [
  ['GET', '/admin/status?userId=u1'],
  ['GET', '/admin/quotas'],
  ['PUT', '/admin/quotas/user/u1/llm_requests'],
  ['DELETE', '/admin/quotas/user/u1/llm_requests'],
  ['GET', '/admin/dashboard'],
] as const;
const ruleBody = JSON.stringify({ limit: 5, period: 'per_day' });

describe('quotaAdmin() for Hono', () => {
  it.each(routes)('refuses %s %s with 403 without authorize', async (method, path) => {
    vi.spyOn(console, 'warn').mockImplementationOnce(() => {});
    const app = adminApp(engineWithRules(), false);
    const body = method === 'PUT' ? ruleBody : undefined;
    const response = await app.request(path, { method, body, headers: auth });
    expect(response.status).toBe(403);
  });

  it('lets authorize read the request as a web Request or through the context', async () => {
    const engine = engineWithRules();
    const app = new Hono();
    app.route(
      '/admin',
      quotaAdmin({
        engine,
        // Written against DESIGN's authorize(request): headers, url and method as on a Request.
        authorize: (request) => {
          const asRequest = request as unknown as Request;
          return (
            asRequest.headers.get('authorization') === `Bearer ${TOKEN}` &&
            asRequest.method === 'GET' &&
            new URL(asRequest.url).pathname === '/admin/status' &&
            request.req.header('authorization') === `Bearer ${TOKEN}`
          );
        },
      }),
    );
    expect((await app.request('/admin/status?userId=u1', { headers: auth })).status).toBe(200);
    expect((await app.request('/admin/status?userId=u1')).status).toBe(401);
  });

  it.each(routes)('refuses %s %s with 401 without the token', async (method, path) => {
    const engine = engineWithRules();
    const body = method === 'PUT' ? ruleBody : undefined;
    const response = await adminApp(engine).request(path, { method, body });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="quotakit"');
    expect(await engine.listQuotas()).toEqual([]);
  });

  it('reports the status of a subject', async () => {
    const engine = engineWithRules();
    await engine.consume({ userId: 'u1', amounts: { llm_requests: 96 } });
    const response = await adminApp(engine).request('/admin/status?userId=u1', { headers: auth });
    const body = (await response.json()) as { quotas: Record<string, unknown> };
    expect(Object.keys(body).sort()).toEqual(['quotas', 'subject']);
    expect(response.headers.get('quota-now')).toBe(START);
    expect(body.quotas.llm_requests).toMatchObject({ status: 'at_limit', used: 96, remaining: 4 });
  });

  it('sets and removes a run-time quota, decoding the id', async () => {
    const engine = engineWithRules();
    const app = adminApp(engine);
    const path = '/admin/quotas/tenant/acme%20%2F%20eu/llm_requests';
    const put = await app.request(path, { method: 'PUT', body: ruleBody, headers: auth });
    expect(put.status).toBe(200);
    expect((await engine.getQuotaStatus('llm_requests', { tenantId: 'acme / eu' })).limit).toBe(5);
    expect((await app.request(path, { method: 'DELETE', headers: auth })).status).toBe(200);
    expect((await app.request(path, { method: 'DELETE', headers: auth })).status).toBe(404);
    // A rule written out whole may name its scope, the path's.
    const whole = JSON.stringify({ limit: 7, period: 'per_day', scope: 'tenant' });
    expect((await app.request(path, { method: 'PUT', body: whole, headers: auth })).status).toBe(
      200,
    );
    expect((await engine.getQuotaStatus('llm_requests', { tenantId: 'acme / eu' })).limit).toBe(7);
  });

  it.each([
    ['malformed JSON', '{"limit":', 400, /^Invalid JSON body: /],
    [
      'a rule with an unknown key',
      '{"limit":5,"period":"per_day","id":"u2"}',
      400,
      /^Invalid rule/,
    ],
    ['a zero threshold', '{"limit":5,"period":"per_day","warningThreshold":0}', 400, /above 0/],
    [
      "a scope other than the path's",
      '{"limit":5,"period":"per_day","scope":"tenant"}',
      400,
      /scope "tenant" in the body is not the path's "user"/,
    ],
    [
      'a huge body',
      JSON.stringify({ limit: 1, period: 'per_day', name: 'x'.repeat(20_000) }),
      413,
      /16 KiB/,
    ],
  ])('answers PUT with %s by %i and changes nothing', async (_, body, status, message) => {
    const engine = engineWithRules();
    const response = await adminApp(engine).request('/admin/quotas/user/u1/llm_requests', {
      method: 'PUT',
      body,
      headers: { ...auth, 'content-type': 'application/json' },
    });
    expect(response.status).toBe(status);
    expect(((await response.json()) as { message: string }).message).toMatch(message);
    expect(await engine.listQuotas()).toEqual([]);
  });
});
