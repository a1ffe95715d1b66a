import { createRequire } from 'node:module';
import { createQuotaEngine } from '@quotakit/core';
import { quota, quotaAdmin } from '@quotakit/express';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';

// Express 4, installed beside Express 5 under an alias; same API for what the adapter uses.
const express4 = createRequire(import.meta.url)('express4') as typeof import('express');

describe('@quotakit/express on Express 4', () => {
  it('is Express 4', () => {
    expect(createRequire(import.meta.url)('express4/package.json').version).toMatch(/^4\./);
  });

  it('admits, refuses and commits as on Express 5', async () => {
    const engine = createQuotaEngine({
      defaults: {
        llm_requests: { limit: 2, period: 'per_minute' },
        llm_tokens: { limit: 10_000, period: 'per_day' },
      },
    });
    const app = express4();
    app.post(
      '/chat',
      quota({ engine, mode: 'reserve', amounts: { llm_requests: 1, llm_tokens: 1000 } }),
      (req, res) => {
        req.quota.record('llm_tokens', 120);
        res.json({ subject: req.quota.subject });
      },
    );
    const first = await request(app).post('/chat').expect(200);
    expect(first.body.subject).toEqual({ userId: 'ip:127.0.0.1' });
    expect(first.headers['ratelimit-policy']).toBe(
      '"llm_requests-per_minute"; q=2; w=60, "llm_tokens-per_day"; q=10000; w=86400',
    );
    await request(app).post('/chat').expect(200);
    const refused = await request(app).post('/chat').expect(429);
    expect(refused.body.error).toBe('quota_exceeded');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    const subject = { userId: 'ip:127.0.0.1' };
    await vi.waitFor(async () =>
      expect((await engine.getQuotaStatus('llm_tokens', subject)).used).toBe(240),
    );
  });

  it('releases when the handler passes an error to next', async () => {
    const engine = createQuotaEngine({
      defaults: { llm_tokens: { limit: 10_000, period: 'per_day' } },
    });
    const app = express4();
    app.post(
      '/chat',
      quota({
        engine,
        mode: 'reserve',
        identify: () => ({ userId: 'u1' }),
        amounts: { llm_tokens: 1000 },
      }),
      (_req, _res, next) => next(new Error('model down')),
    );
    await request(app).post('/chat').expect(500);
    await vi.waitFor(async () =>
      expect((await engine.getQuotaStatus('llm_tokens', { userId: 'u1' })).used).toBe(0),
    );
  });

  it('serves the admin router', async () => {
    const engine = createQuotaEngine({
      defaults: { llm_requests: { limit: 5, period: 'per_day' } },
    });
    const app = express4();
    app.use(
      '/admin',
      quotaAdmin({ engine, authorize: (req) => req.get('authorization') === 'Bearer t' }),
    );
    await request(app).get('/admin/status?userId=u1').expect(401);
    await request(app)
      .put('/admin/quotas/user/u1/llm_requests')
      .set('authorization', 'Bearer t')
      .send({ limit: 50, period: 'per_day' })
      .expect(200);
    const status = await request(app)
      .get('/admin/status?userId=u1')
      .set('authorization', 'Bearer t');
    expect(status.body.quotas.llm_requests.limit).toBe(50);
  });
});
