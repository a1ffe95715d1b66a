/**
 * The newest majors of the SDKs the peer ranges admit, openai 7 and ai 7 (with
 * @ai-sdk/openai 4, language model specification v4), against the same stand-ins as the
 * 6.x tests. Both need Node 22 or later: vitest.config.ts leaves this file out on older
 * Node (CI runs it under Node 24).
 */
import { createQuotaEngine, QuotaExceededError } from '@quotakit/core';
import { quotaMiddleware, withQuota } from '@quotakit/llm-wrapper';
import { createOpenAI } from 'ai-sdk-openai-v4';
import { generateText, streamText, wrapLanguageModel } from 'ai-v7';
import OpenAI from 'openai-v7';
import { describe, expect, it } from 'vitest';
import { standInForFile as aiSdkStandInForFile } from './ai-sdk-stand-in/stand-in-for-file.js';
import { HI, HI_ESTIMATE, recorded, smallDailyBudget, testEngine, used } from './helpers.js';
import { rejectionOf } from './rejection-of.js';
import {
  EMBEDDING_TOKENS_PER_INPUT,
  OPENAI_USAGE,
  REPLY_TEXT,
  RESPONSES_USAGE,
  standInForFile,
} from './stand-in/index.js';

const CHAT_TOKENS = OPENAI_USAGE.promptTokens + OPENAI_USAGE.completionTokens;

const standIn = await standInForFile();
const aiSdkStandIn = await aiSdkStandInForFile();

function openai7() {
  return new OpenAI({ baseURL: standIn.openaiBaseURL, apiKey: 'test-key', maxRetries: 0 });
}

describe('withQuota on openai 7', () => {
  it('charges a chat completion the usage it reports, and keeps withResponse()', async () => {
    const engine = testEngine();
    const subject = { userId: 'v7-chat' };
    const openai = withQuota(openai7(), { engine, subject });

    const { data, response } = await openai.chat.completions
      .create({ model: 'gpt-4o', messages: HI })
      .withResponse();

    expect(data.choices[0]!.message.content).toBe(REPLY_TEXT);
    expect(response.status).toBe(200);
    expect(await used(engine, subject)).toEqual({ llm_requests: 1, llm_tokens: CHAT_TOKENS });
  });

  it('hides the usage chunk it asked for in a stream and charges the usage', async () => {
    const engine = testEngine();
    const subject = { userId: 'v7-stream' };
    const openai = withQuota(openai7(), { engine, subject });

    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]!.delta.content ?? '';

    expect(text).toBe(REPLY_TEXT);
    expect(await used(engine, subject)).toEqual({ llm_requests: 1, llm_tokens: CHAT_TOKENS });
  });

  it('meters the stream() helper once, and responses and embeddings by their usage', async () => {
    const engine = testEngine();
    const subject = { userId: 'v7-helpers' };
    const openai = withQuota(openai7(), { engine, subject });

    const final = await openai.chat.completions
      .stream({ model: 'gpt-4o', messages: HI })
      .finalChatCompletion();
    const response = await openai.responses.create({ model: 'o4-mini', input: 'Say hello' });
    await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });

    expect(final.choices[0]!.message.content).toBe(REPLY_TEXT);
    expect(response.output_text).toBe(REPLY_TEXT);
    expect(await recorded(engine, subject)).toEqual({
      llm_requests: 3,
      llm_tokens:
        CHAT_TOKENS +
        RESPONSES_USAGE.inputTokens +
        RESPONSES_USAGE.outputTokens +
        2 * EMBEDDING_TOKENS_PER_INPUT,
    });
  });

  it('refuses a call the budget cannot hold without sending it', async () => {
    const engine = createQuotaEngine({ defaults: smallDailyBudget(HI_ESTIMATE + 10) });
    const subject = { userId: 'v7-refused' };
    const openai = withQuota(openai7(), { engine, subject, estimator: 'fast' });
    const sent = standIn.requests.length;

    const error = await rejectionOf<QuotaExceededError>(
      openai.chat.completions.create({ model: 'gpt-4o', messages: HI, max_tokens: 100 }),
    );

    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error).toBeInstanceOf(OpenAI.OpenAIError);
    expect(standIn.requests.length).toBe(sent);
    expect(await recorded(engine, subject)).toEqual({});
  });
});

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
