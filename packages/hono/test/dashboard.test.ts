import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type ServerType, serve } from '@hono/node-server';
import { createQuotaEngine } from '@quotakit/core';
import { quotaAdmin } from '@quotakit/hono';
import { Hono } from 'hono';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_ARGS, findChromium } from '../../../test-support/adapter-fixtures.js';
import { manualClock } from '../../../test-support/manual-clock.js';

/** What the page functions below touch of the DOM (this project compiles without lib.dom). */
interface DomNode {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  style: { width: string };
  querySelector(selector: string): DomNode | null;
  querySelectorAll(selector: string): { length: number };
}
declare const getComputedStyle: (node: DomNode) => { backgroundColor: string };

const TOKEN = 'dashboard-token';
const START = '2026-03-10T12:00:30.000Z';
const OUTPUT = fileURLToPath(new URL('../../../test-output/', import.meta.url));
const executablePath = findChromium();
const required = process.env.QUOTAKIT_REQUIRE_SERVICES === '1';
if (executablePath === undefined && !required) {
  console.warn(
    'Chromium is not installed: skipping the dashboard test (apt-get install chromium, or set CHROMIUM_PATH)',
  );
}

describe.skipIf(executablePath === undefined && !required)('the dashboard in Chromium', () => {
  let server: ServerType;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    if (executablePath === undefined) {
      throw new Error('QUOTAKIT_REQUIRE_SERVICES=1 but Chromium is not installed');
    }
    const clock = manualClock(START);
    const engine = createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_requests: { limit: 100, period: 'per_day' },
        llm_tokens: [
          { limit: 1_000_000, period: 'per_day' },
          { limit: 20_000, period: 'per_minute' },
        ],
        database_queries: { limit: 500, period: 'per_hour' },
        cost_usd: { limit: 5, period: 'total' },
      },
    });
    await engine.consume({
      userId: 'u1',
      amounts: { llm_requests: 85, llm_tokens: 19_500, database_queries: 10 },
    });
    await engine.recordUsage({ userId: 'u1', resource: 'cost_usd', amount: 5.5 });
    const app = new Hono();
    app.route(
      '/admin',
      quotaAdmin({
        engine,
        clock: clock.now,
        authorize: (c, { action }) =>
          action === 'dashboard' || c.req.header('authorization') === `Bearer ${TOKEN}`,
      }),
    );
    server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  });

  afterAll(async () => {
    await browser?.close();
    (server as http.Server | undefined)?.closeAllConnections();
    server?.close();
  });

  it('asks for the token, then shows a bar per resource coloured by status', async () => {
    const page = await browser.newPage({ viewport: { width: 960, height: 760 } });
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().includes('401')) {
        problems.push(message.text());
      }
    });
    page.on('pageerror', (error) => problems.push(error.message));

    await page.goto(`${base}/admin/dashboard?userId=u1`);
    await page.locator('#token-row').waitFor({ state: 'visible' });
    expect(await page.locator('#message').textContent()).toBe(
      'Not authorized for the quota admin API',
    );
    await page.fill('input[name=token]', TOKEN);
    await page.click('button[type=submit]');
    await page.locator('body[data-loaded=true]').waitFor();

    expect(await page.locator('#message').textContent()).toBe('4 resources for userId u1');
    const quotas = await page.locator('li.quota').evaluateAll((items: unknown[]) =>
      (items as DomNode[]).map((item) => {
        const text = (selector: string) => item.querySelector(selector)?.textContent ?? null;
        const fill = item.querySelector('.fill')!;
        return {
          resource: item.dataset.resource,
          status: item.dataset.status,
          badge: text('.badge'),
          width: fill.style.width,
          colour: getComputedStyle(fill).backgroundColor,
          used: text('.used'),
          limit: text('.limit'),
          remaining: text('.remaining'),
          reset: text('.reset'),
          rules: item.querySelectorAll('.rules li').length,
        };
      }),
    );
    expect(quotas).toEqual([
      {
        resource: 'cost_usd',
        status: 'exceeded',
        badge: 'exceeded',
        width: '100%',
        colour: 'rgb(224, 49, 49)',
        used: '5.5',
        limit: '5',
        remaining: '0 left',
        reset: 'never resets',
        rules: 0,
      },
      {
        resource: 'database_queries',
        status: 'within_limit',
        badge: 'within limit',
        width: '2%',
        colour: 'rgb(47, 158, 68)',
        used: '10',
        limit: '500',
        remaining: '490 left',
        reset: 'resets in 59 min 30 s',
        rules: 0,
      },
      {
        resource: 'llm_requests',
        status: 'approaching_limit',
        badge: 'approaching limit',
        width: '85%',
        colour: 'rgb(230, 167, 0)',
        used: '85',
        limit: '100',
        remaining: '15 left',
        reset: 'resets in 11 h 59 min',
        rules: 0,
      },
      {
        resource: 'llm_tokens',
        status: 'at_limit',
        badge: 'at limit',
        width: '97.5%',
        colour: 'rgb(232, 89, 12)',
        used: '19,500',
        limit: '20,000',
        remaining: '500 left',
        reset: 'resets in 30 s',
        rules: 2,
      },
    ]);
    expect(await page.locator('li[data-resource=llm_tokens] .rules').textContent()).toContain(
      'llm_tokens-per_day: 19,500 / 1,000,000 · within limit · resets in 11 h 59 min',
    );
    expect(page.url()).toBe(`${base}/admin/dashboard?userId=u1`);
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: `${OUTPUT}dashboard-hono.png`, fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});
