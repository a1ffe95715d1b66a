import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createQuotaEngine } from '@quotakit/core';
import { quotaAdmin } from '@quotakit/express';
import express from 'express';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { CHROMIUM_ARGS, findChromium } from '../../../test-support/adapter-fixtures.js';
import { manualClock } from '../../../test-support/manual-clock.js';

/** What the page function below touches of the DOM (this project compiles without lib.dom). */
interface DomNode {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  style: { width: string };
  querySelector(selector: string): DomNode | null;
}

const TOKEN = 'dashboard-token';
const OUTPUT = fileURLToPath(new URL('../../../test-output/', import.meta.url));
const executablePath = findChromium();
const required = process.env.QUOTAKIT_REQUIRE_SERVICES === '1';
if (executablePath === undefined && !required) {
  console.warn(
    'Chromium is not installed: skipping the dashboard test (apt-get install chromium, or set CHROMIUM_PATH)',
  );
}

describe.skipIf(executablePath === undefined && !required)('the dashboard in Chromium', () => {
  it('shows the bars of a seeded agent, behind a bearer token sent by the browser', async () => {
    if (executablePath === undefined) {
      throw new Error('QUOTAKIT_REQUIRE_SERVICES=1 but Chromium is not installed');
    }
    const clock = manualClock('2026-03-10T23:30:00.000Z');
    const engine = createQuotaEngine({
      clock: clock.now,
      defaults: {
        llm_requests: { limit: 1000, period: 'per_day', scope: 'agent' },
        tool_creations: { limit: 20, period: 'per_week', scope: 'agent' },
      },
    });
    await engine.consume({
      agentId: 'researcher',
      amounts: { llm_requests: 960, tool_creations: 3 },
    });
    const app = express();
    app.use(
      '/ops/quotas',
      quotaAdmin({
        engine,
        clock: clock.now,
        authorize: (req) => req.get('authorization') === `Bearer ${TOKEN}`,
      }),
    );
    const server: http.Server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
    try {
      const page = await browser.newPage({
        viewport: { width: 960, height: 420 },
        extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` },
      });
      await page.goto(`http://127.0.0.1:${port}/ops/quotas/dashboard?agentId=researcher`);
      await page.locator('body[data-loaded=true]').waitFor();
      const bars = await page
        .locator('li.quota')
        .evaluateAll((items: unknown[]) =>
          (items as DomNode[]).map((item) => [
            item.dataset.resource,
            item.dataset.status,
            item.querySelector('.fill')!.style.width,
            item.querySelector('.numbers')?.textContent,
          ]),
        );
      expect(bars).toEqual([
        [
          'llm_requests',
          'at_limit',
          '96%',
          '960 / 1,000 used · 40 left · per day · resets in 30 min',
        ],
        [
          'tool_creations',
          'within_limit',
          '15%',
          '3 / 20 used · 17 left · per week · resets in 5 d',
        ],
      ]);
      mkdirSync(OUTPUT, { recursive: true });
      await page.screenshot({ path: `${OUTPUT}dashboard-express.png`, fullPage: true });

      // Express also serves the page as '/Dashboard/' (routes ignore case and a trailing
      // slash by default): it still finds the status route beside it.
      await page.goto(`http://127.0.0.1:${port}/ops/quotas/Dashboard/?agentId=researcher`);
      await page.locator('body[data-loaded=true]').waitFor();
      expect(await page.locator('li.quota').count()).toBe(2);
    } finally {
      await browser.close();
      server.closeAllConnections();
      server.close();
    }
  });
});
