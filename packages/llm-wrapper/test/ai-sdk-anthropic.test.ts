/**
 * quotaMiddleware with Anthropic's AI SDK provider charges the input tokens Anthropic bills
 * (DESIGN section 7: input + cache writes + cache reads), under ai 6 with `@ai-sdk/anthropic` 3
 * (specification v3, which counts them all in its input), under ai 5 with `@ai-sdk/anthropic` 2
 * (v2, whose input count leaves the cache out: the middleware adds it back from the usage and
 * the provider's metadata) and, on Node 22 and later, which ai 7 needs, under ai 7 with
 * `@ai-sdk/anthropic` 4 and with `@ai-sdk/anthropic` 2 (whose usage ai 7 converts field by
 * field). Against the Messages API stand-in.
 */
import { createAnthropic as createAnthropicV3 } from '@ai-sdk/anthropic';
import { createQuotaEngine, type QuotaEngine } from '@quotakit/core';
import { quotaMiddleware } from '@quotakit/llm-wrapper';
import * as ai6 from 'ai';
import { createAnthropic as createAnthropicV2 } from 'ai-sdk-anthropic-v2';
import * as ai5 from 'ai-v5';
import { describe, expect, it } from 'vitest';
import { tokenEvents } from './helpers.js';
import { ANTHROPIC_USAGE, standInForFile } from './stand-in/index.js';

const standIn = await standInForFile();
const SUBJECT = { userId: 'anthropic-user' };
const PROMPT = 'Summarise the quarterly report in one line.';
const BILLED_INPUT =
  ANTHROPIC_USAGE.inputTokens +
  ANTHROPIC_USAGE.cacheCreationInputTokens +
  ANTHROPIC_USAGE.cacheReadInputTokens;

type Ai = Pick<typeof ai6, 'generateText' | 'streamText' | 'wrapLanguageModel'>;
type Model = Parameters<typeof ai6.wrapLanguageModel>[0]['model'];

const lines: { name: string; ai: Ai; model: () => Model }[] = [
  {
    name: 'ai 6 with @ai-sdk/anthropic 3 (v3)',
    ai: ai6 as Ai,
    model: () =>
      createAnthropicV3({ baseURL: `${standIn.url}/v1`, apiKey: 'test-key' })('claude-stand-in-1'),
  },
  {
    name: 'ai 5 with @ai-sdk/anthropic 2 (v2)',
    // ai 5's functions take its v2 models; typed as ai 6's for the shared cases.
    ai: ai5 as unknown as Ai,
    model: () =>
      createAnthropicV2({ baseURL: `${standIn.url}/v1`, apiKey: 'test-key' })(
        'claude-stand-in-1',
      ) as unknown as Model,
  },
];

// ai 7 and its providers are loaded only where they run (Node 22 and later).
if (Number(process.versions.node.split('.')[0]) >= 22) {
  const ai7 = (await import('ai-v7')) as unknown as Ai;
  const { createAnthropic: createAnthropicV4 } = await import('ai-sdk-anthropic-v4');
  lines.push(
    {
      name: 'ai 7 with @ai-sdk/anthropic 4 (v4)',
      ai: ai7,
      model: () =>
        createAnthropicV4({ baseURL: `${standIn.url}/v1`, apiKey: 'test-key' })(
          'claude-stand-in-1',
        ) as unknown as Model,
    },
    {
      name: 'ai 7 with @ai-sdk/anthropic 2 (v2, converted by ai 7)',
      ai: ai7,
      model: () =>
        createAnthropicV2({ baseURL: `${standIn.url}/v1`, apiKey: 'test-key' })(
          'claude-stand-in-1',
        ) as unknown as Model,
    },
  );
}

async function usedTokens(engine: QuotaEngine) {
  return (await engine.getQuotaStatus('llm_tokens', SUBJECT)).used;
}

for (const line of lines) {
  describe(`quotaMiddleware on ${line.name}`, () => {
    function setup() {
      const engine = createQuotaEngine({
        defaults: { llm_tokens: { limit: 100_000, period: 'per_day' } },
      });
      const model = line.ai.wrapLanguageModel({
        model: line.model(),
        middleware: quotaMiddleware({ engine, subject: SUBJECT, estimator: 'fast' }),
      });
      return { engine, model };
    }

    it('charges generateText the input Anthropic bills: input, cache writes and cache reads', async () => {
      const { engine, model } = setup();

      await line.ai.generateText({ model, prompt: PROMPT, maxOutputTokens: 300 });

      expect(await usedTokens(engine)).toBe(BILLED_INPUT + ANTHROPIC_USAGE.outputTokens);
      expect((await tokenEvents(engine, SUBJECT))[0]?.metadata).toMatchObject({
        provider: 'anthropic',
        inputTokens: BILLED_INPUT,
        cachedInputTokens: ANTHROPIC_USAGE.cacheReadInputTokens,
        estimated: false,
      });
    });

    it('charges streamText the same from its finish part', async () => {
      const { engine, model } = setup();

      const result = line.ai.streamText({ model, prompt: PROMPT, maxOutputTokens: 300 });
      for await (const _delta of result.textStream) {
        // read every delta
      }

      expect(await usedTokens(engine)).toBe(BILLED_INPUT + ANTHROPIC_USAGE.outputTokens);
    });
  });
}
