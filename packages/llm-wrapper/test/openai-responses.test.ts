import { withQuota } from '@quotakit/llm-wrapper';
import { describe, expect, it } from 'vitest';
import { openaiClient, smallDailyBudget, testEngine, usageEvents, used } from './helpers.js';
import {
  EMBEDDING_TOKENS_PER_INPUT,
  REPLY_TEXT,
  RESPONSES_USAGE,
  standInForFile,
} from './stand-in/index.js';

const RESPONSE_TOKENS = RESPONSES_USAGE.inputTokens + RESPONSES_USAGE.outputTokens; // 90

const standIn = await standInForFile();

describe('responses.create', () => {
  it('records the usage of a response, reasoning and cached tokens in the metadata', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'resp-1' } });
    const response = await openai.responses.create({
      model: 'o4-mini',
      input: 'Say hello',
      max_output_tokens: 200,
    });
    expect(response.output_text).toBe(REPLY_TEXT);
    expect(await used(engine, { userId: 'resp-1' })).toEqual({
      llm_requests: 1,
      llm_tokens: RESPONSE_TOKENS,
    });
    const tokens = (await usageEvents(engine, { userId: 'resp-1' }))[1];
    expect(tokens?.metadata).toMatchObject({
      model: 'o4-mini-2025-04-16',
      cachedInputTokens: RESPONSES_USAGE.cachedTokens,
      reasoningTokens: RESPONSES_USAGE.reasoningTokens,
      estimated: false,
    });
  });

  it('records the usage of response.completed in a stream', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'resp-2' } });
    const stream = await openai.responses.create({
      model: 'o4-mini',
      input: 'Say hello',
      stream: true,
    });
    let text = '';
    const types = new Set<string>();
    for await (const event of stream) {
      types.add(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    expect(text).toBe(REPLY_TEXT);
    expect(types.has('response.completed')).toBe(true);
    expect(await used(engine, { userId: 'resp-2' })).toEqual({
      llm_requests: 1,
      llm_tokens: RESPONSE_TOKENS,
    });
  });

  it('records the usage of response.incomplete', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'resp-3' } });
    const stream = await openai.responses.create(
      { model: 'o4-mini', input: 'Say hello', stream: true },
      { headers: { 'x-stand-in-final': 'incomplete' } },
    );
    let last = '';
    for await (const event of stream) last = event.type;
    expect(last).toBe('response.incomplete');
    const tokens = (await usageEvents(engine, { userId: 'resp-3' }))[1];
    expect(tokens?.amount).toBe(RESPONSE_TOKENS);
    expect(tokens?.metadata.estimated).toBe(false);
  });

  it('clamp lowers max_output_tokens', async () => {
    const engine = testEngine(smallDailyBudget(500));
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'resp-4' },
      onExceeded: 'clamp',
      estimator: 'fast',
    });
    const from = standIn.requests.length;
    await openai.responses.create({
      model: 'o4-mini',
      input: 'Say hello',
      max_output_tokens: 4_000,
    });
    // 'Say hello' = 3 tokens + 3 priming.
    expect(standIn.requests[from]?.body.max_output_tokens).toBe(500 - 6);
  });
});

describe('embeddings.create', () => {
  it('records the input tokens of every input, and no output', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'emb-1' } });
    const result = await openai.embeddings.create({
      model: 'text-embedding-3-small',
      input: ['first text', 'second text'],
    });
    // The SDK's own base64 decoding (a _thenUnwrap of its own) still works.
    expect(Array.from(result.data[0]!.embedding)).toEqual([0.25, -0.5, 0.75]);
    expect(await used(engine, { userId: 'emb-1' })).toEqual({
      llm_requests: 1,
      llm_tokens: 2 * EMBEDDING_TOKENS_PER_INPUT,
    });
    const tokens = (await usageEvents(engine, { userId: 'emb-1' }))[1];
    expect(tokens?.metadata).toMatchObject({ operation: 'embeddings', outputTokens: 0 });
  });
});
