/**
 * quotaMiddleware on ai 5 with @ai-sdk/openai 2: language models of specification v2, whose
 * usage comes as flat numbers, against the same stand-in as the ai 6 tests.
 */
import { createQuotaEngine, type QuotaEngine, QuotaExceededError } from '@quotakit/core';
import { type QuotaModelMiddlewareOptions, quotaMiddleware } from '@quotakit/llm-wrapper';
import { createOpenAI } from 'ai-sdk-openai-v2';
import { generateText, streamText, wrapLanguageModel } from 'ai-v5';
import { describe, expect, it } from 'vitest';
import { fastTokens, userPromptTokens } from './ai-sdk-stand-in/fixtures.js';
import { standInForFile } from './ai-sdk-stand-in/stand-in-for-file.js';
import { tokenEvents } from './helpers.js';
import { rejectionOf } from './rejection-of.js';

const standIn = await standInForFile();
const SUBJECT = { userId: 'ai5-user' };
const PROMPT = 'Summarise the quarterly report in one line.';

function setup(tokensPerDay = 100_000, options: Partial<QuotaModelMiddlewareOptions> = {}) {
  const engine = createQuotaEngine({
    defaults: {
      llm_requests: { limit: 100, period: 'per_day' },
      llm_tokens: { limit: tokensPerDay, period: 'per_day' },
    },
  });
  const model = wrapLanguageModel({
    model: createOpenAI({ baseURL: standIn.baseURL, apiKey: 'test-key' }).chat('gpt-4o'),
    // Typed by the ai 6 this package builds against; ai 5 reads the same functions.
    middleware: quotaMiddleware({
      engine,
      subject: SUBJECT,
      estimator: 'fast',
      ...options,
    }) as unknown as Parameters<typeof wrapLanguageModel>[0]['middleware'],
  });
  return { engine, model };
}

async function usedTokens(engine: QuotaEngine) {
  return (await engine.getQuotaStatus('llm_tokens', SUBJECT)).used;
}

describe('quotaMiddleware on ai 5 (specification v2, flat usage)', () => {
  it('charges a generateText call the usage it reports, cached and reasoning tokens included', async () => {
    const { engine, model } = setup();
    standIn.reply({
      chunks: ['Revenue grew ', '12 %.'],
      usage: { promptTokens: 120, cachedTokens: 20, completionTokens: 30, reasoningTokens: 10 },
    });

    const { text } = await generateText({ model, prompt: PROMPT, maxOutputTokens: 500 });

    expect(model.specificationVersion).toBe('v2');
    expect(text).toBe('Revenue grew 12 %.');
    expect(await usedTokens(engine)).toBe(150);
    expect((await tokenEvents(engine, SUBJECT))[0]?.metadata).toMatchObject({
      provider: 'openai',
      inputTokens: 120,
      outputTokens: 30,
      cachedInputTokens: 20,
      reasoningTokens: 10,
      estimated: false,
    });
  });

  it('charges a streamText call the usage of its finish part', async () => {
    const { engine, model } = setup();
    standIn.reply({
      chunks: ['one ', 'two ', 'three'],
      usage: { promptTokens: 40, completionTokens: 9 },
    });

    const result = streamText({ model, prompt: PROMPT, maxOutputTokens: 100 });
    let text = '';
    for await (const delta of result.textStream) text += delta;

    expect(text).toBe('one two three');
    expect(await usedTokens(engine)).toBe(49);
  });

  it('refuses a call the budget cannot hold before anything is sent', async () => {
    const { engine, model } = setup(300);

    const error = await rejectionOf<QuotaExceededError>(
      generateText({ model, prompt: PROMPT, maxOutputTokens: 500 }),
    );

    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error!.result.requested).toBe(userPromptTokens(PROMPT) + 500);
    expect(standIn.requests).toHaveLength(0);
    expect(await usedTokens(engine)).toBe(0);
  });

  it('with enforceDuringStream, ends a v2 stream as v2 streams end: error, then finish', async () => {
    const { engine, model } = setup(400, { enforceDuringStream: true });
    // 300 chunks of 2 tokens each, far more than the budget; then the response stays open.
    standIn.reply({
      chunks: Array.from({ length: 300 }, () => 'abcdefgh'),
      usage: { promptTokens: 999, completionTokens: 999 },
      holdAfterChunks: 300,
    });
    const errors: unknown[] = [];

    const result = streamText({
      model,
      prompt: PROMPT,
      maxOutputTokens: 100,
      onError: ({ error }) => {
        errors.push(error);
      },
    });
    let text = '';
    for await (const delta of result.textStream) text += delta;

    // As in the ai 6 test: the call may spend the rest of the budget, and is cut at the first
    // chunk past it.
    const chunksSent = Math.floor((400 - userPromptTokens(PROMPT)) / 2) + 1;
    expect(text).toBe('abcdefgh'.repeat(chunksSent));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(QuotaExceededError);
    expect(await result.finishReason).toBe('error');
    expect((await result.usage).outputTokens).toBe(chunksSent * fastTokens('abcdefgh'));
    expect(await usedTokens(engine)).toBe(userPromptTokens(PROMPT) + 2 * chunksSent);
  });
});
