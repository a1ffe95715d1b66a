import { createQuotaEngine, type QuotaEngineOptions } from '@quotakit/core';
import { type QuotaVariables, quota } from '@quotakit/hono';
import { Hono } from 'hono';

/**
 * An app whose every route reserves 1 request and 2,000 tokens for user u1 before its handler
 * runs, and `used(resource)`, what u1 has used of it now.
 */
export function reserveApp(defaults: QuotaEngineOptions['defaults']) {
  const engine = createQuotaEngine({ defaults });
  const app = new Hono<{ Variables: QuotaVariables }>();
  app.use(
    quota({
      engine,
      mode: 'reserve',
      identify: () => ({ userId: 'u1' }),
      amounts: { llm_requests: 1, llm_tokens: 2000 },
    }),
  );
  const used = async (resource: string) =>
    (await engine.getQuotaStatus(resource, { userId: 'u1' })).used;
  return { app, used };
}
