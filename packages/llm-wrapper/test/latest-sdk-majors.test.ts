/**
 * The newest majors of the SDKs the peer ranges admit, openai 7 and ai 7 (with
 * @ai-sdk/openai 4, language model specification v4), against the same stand-ins as the
 * 6.x tests. Both need Node 22 or later: vitest.config.ts leaves this file out on older
 * Node (CI runs it under Node 24).
 */
import { createQuotaEngine, QuotaExceededError } from '@quotakit/core';
import { quotaMiddleware } from '@quotakit/llm-wrapper';
import { createOpenAI } from 'ai-sdk-openai-v4';
import { generateText, streamText, wrapLanguageModel } from 'ai-v7';
import OpenAI from 'openai-v7';
import { describe, expect, it } from 'vitest';
import { standInForFile as aiSdkStandInForFile } from './ai-sdk-stand-in/stand-in-for-file.js';
import { rejectionOf } from './rejection-of.js';
import { describeOpenAIMajor } from './sdk-major-cases.js';
import { standInForFile } from './stand-in/index.js';

const standIn = await standInForFile();
const aiSdkStandIn = await aiSdkStandInForFile();

describeOpenAIMajor('openai 7', OpenAI, standIn);

describe('quotaMiddleware on ai 7 (specification v4)', () => {
  function setup(limit = 100_000) {
    const engine = createQuotaEngine({
      defaults: {
        llm_requests: { limit: 100, period: 'per_day' },
        llm_tokens: { limit, period: 'per_day' },
      },
    });
    const model = wrapLanguageModel({
      model: createOpenAI({ baseURL: aiSdkStandIn.baseURL, apiKey: 'test-key' }).chat('gpt-4o'),
      // Typed by the ai 6 this package builds against (a v3 middleware); ai 7 wants a v4 one,
      // which it reads the same way. In an application on ai 7 the type is ai 7's.
      middleware: quotaMiddleware({
        engine,
        subject: { userId: 'u1' },
        estimator: 'fast',
      }) as unknown as Parameters<typeof wrapLanguageModel>[0]['middleware'],
    });
    const usedOf = async (resource: string) =>
      (await engine.getQuotaStatus(resource, { userId: 'u1' })).used;
    return { model, usedOf };
  }

  it('sees a v4 model and charges a generateText call the usage it reports', async () => {
    const { model, usedOf } = setup();
    aiSdkStandIn.reply({
      chunks: ['Revenue grew ', '12 %.'],
      usage: { promptTokens: 120, cachedTokens: 20, completionTokens: 30, reasoningTokens: 10 },
    });

    const { text } = await generateText({ model, prompt: 'Summarise.', maxOutputTokens: 500 });

    expect(model.specificationVersion).toBe('v4');
    expect(text).toBe('Revenue grew 12 %.');
    expect(await usedOf('llm_tokens')).toBe(150);
    expect(await usedOf('llm_requests')).toBe(1);
  });

  it('charges a streamText call the usage of its finish part', async () => {
    const { model, usedOf } = setup();
    aiSdkStandIn.reply({
      chunks: ['one ', 'two ', 'three'],
      usage: { promptTokens: 40, completionTokens: 9 },
    });

    const result = streamText({ model, prompt: 'Count to three.', maxOutputTokens: 100 });
    let text = '';
    for await (const delta of result.textStream) text += delta;

    expect(text).toBe('one two three');
    expect(await usedOf('llm_tokens')).toBe(49);
  });

  it('refuses a call the budget cannot hold before anything is sent', async () => {
    const { model, usedOf } = setup(50);

    const error = await rejectionOf<QuotaExceededError>(
      generateText({ model, prompt: 'Summarise.', maxOutputTokens: 500 }),
    );

    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error!.result.resource).toBe('llm_tokens');
    expect(aiSdkStandIn.requests).toHaveLength(0);
    expect(await usedOf('llm_requests')).toBe(0);
  });
});
