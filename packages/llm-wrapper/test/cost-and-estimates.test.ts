import { readdirSync, readFileSync } from 'node:fs';
import { createQuotaEngine, definePriceTable, QuotaExceededError } from '@quotakit/core';
import {
  estimatePromptTokens,
  loadExactTokenizer,
  MEDIA_PART_TOKENS,
  withQuota,
} from '@quotakit/llm-wrapper';
import { countTokens } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { HI, openaiClient, recorded, tokenEvents } from './helpers.js';
import { rejectionOf } from './rejection-of.js';
import { OPENAI_USAGE, standInForFile } from './stand-in/index.js';

const standIn = await standInForFile();

const prices = definePriceTable({
  'gpt-4o': { inputPerMillion: 2.5, cachedInputPerMillion: 1.25, outputPerMillion: 10 },
});

describe('cost_usd', () => {
  it('records the cost of a call through the price table', async () => {
    const engine = createQuotaEngine({
      defaults: {
        llm_tokens: { limit: 1_000_000, period: 'per_day' },
        cost_usd: { limit: 5, period: 'per_month' },
      },
    });
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'cost-1' },
      prices,
    });
    await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      max_completion_tokens: 100,
    });
    const { promptTokens, cachedTokens, completionTokens } = OPENAI_USAGE;
    const cost =
      ((promptTokens - cachedTokens) * 2.5 + cachedTokens * 1.25 + completionTokens * 10) / 1e6;
    const totals = await recorded(engine, { userId: 'cost-1' });
    expect(totals.cost_usd).toBeCloseTo(cost, 12);
    // Statuses keep small amounts exact (to 12 significant digits).
    expect((await engine.getQuotaStatus('cost_usd', { userId: 'cost-1' })).used).toBe(cost);
    const [tokens] = await tokenEvents(engine, { userId: 'cost-1' });
    expect(tokens?.metadata.costUsd).toBeCloseTo(cost, 12);
  });

  it('refuses a call whose estimated cost the money budget cannot hold', async () => {
    const engine = createQuotaEngine({
      defaults: { cost_usd: { limit: 0.001, period: 'per_month' } },
    });
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'cost-2' },
      prices,
    });
    const before = standIn.requests.length;
    // 1000 output tokens at $10 per million: $0.01 > $0.001.
    const error = await openai.chat.completions
      .create({ model: 'gpt-4o', messages: HI, max_completion_tokens: 1_000 })
      .catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect((error as QuotaExceededError).result.resource).toBe('cost_usd');
    expect(standIn.requests.length).toBe(before);
  });
});

describe('estimates', () => {
  it('counts exactly with gpt-tokenizer when it is installed', async () => {
    expect(await loadExactTokenizer()).toBe(true);
    const engine = createQuotaEngine({
      defaults: { llm_tokens: { limit: 10, period: 'per_day' } },
    });
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'est-1' },
      estimator: 'exact',
    });
    const content = 'internationalization '.repeat(20);
    const error = await rejectionOf<QuotaExceededError>(
      openai.chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content }],
        max_completion_tokens: 100,
      }),
    );
    // Message text + 4 per message + 3 priming + the cap.
    expect(error?.result.requested).toBe(countTokens(content) + 4 + 3 + 100);
    expect(countTokens(content)).not.toBe(Math.ceil(content.length / 4));
  });

  it('counts media parts at a flat rate and token arrays one each', () => {
    const count = (text: string) => text.length;
    expect(
      estimatePromptTokens(
        [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'abcd' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            ],
          },
        ],
        count,
      ),
    ).toBe(4 + MEDIA_PART_TOKENS + 4);
    expect(estimatePromptTokens([[1, 2, 3], [4]], count)).toBe(4);
  });

  it('keeps node: modules out of the main entry', () => {
    const dir = new URL('../src/', import.meta.url);
    for (const file of readdirSync(dir)) {
      if (file === 'node.ts' || !file.endsWith('.ts')) continue;
      expect(readFileSync(new URL(file, dir), 'utf8'), file).not.toMatch(/from 'node:/);
    }
  });
});
