import Anthropic from '@anthropic-ai/sdk';
import { QuotaExceededError } from '@quotakit/core';
import { withQuota } from '@quotakit/llm-wrapper';
import { describe, expect, it } from 'vitest';
import { anthropicClient, HI, smallDailyBudget, testEngine, usageEvents, used } from './helpers.js';
import { rejectionOf } from './rejection-of.js';
import { describeAnthropicMajor } from './sdk-major-cases.js';
import {
  ANTHROPIC_USAGE,
  failingWith,
  LONG_SLOW_STREAM,
  REPLY_TEXT,
  standInForFile,
} from './stand-in/index.js';

const MODEL = 'claude-stand-in-1';
// input_tokens + cache_creation_input_tokens + cache_read_input_tokens
const INPUT =
  ANTHROPIC_USAGE.inputTokens +
  ANTHROPIC_USAGE.cacheCreationInputTokens +
  ANTHROPIC_USAGE.cacheReadInputTokens; // 152
const MESSAGE_TOKENS = INPUT + ANTHROPIC_USAGE.outputTokens; // 177

const standIn = await standInForFile();

describe('messages.create', () => {
  it('counts cache writes and reads as input', async () => {
    const engine = testEngine();
    const anthropic = withQuota(anthropicClient(standIn), { engine, subject: { userId: 'msg-1' } });
    const message = await anthropic.messages.create({
      model: MODEL,
      max_tokens: 300,
      messages: HI,
    });
    expect(message.content[0]).toMatchObject({ type: 'text', text: REPLY_TEXT });
    expect(await used(engine, { userId: 'msg-1' })).toEqual({
      llm_requests: 1,
      llm_tokens: MESSAGE_TOKENS,
    });
    const tokens = (await usageEvents(engine, { userId: 'msg-1' }))[1];
    expect(tokens?.metadata).toEqual({
      provider: 'anthropic',
      operation: 'chat',
      model: MODEL,
      inputTokens: INPUT,
      outputTokens: ANTHROPIC_USAGE.outputTokens,
      cachedInputTokens: ANTHROPIC_USAGE.cacheReadInputTokens,
      reasoningTokens: 0,
      estimated: false,
    });
  });

  it('takes message_delta output as running totals, not increments', async () => {
    const engine = testEngine();
    const anthropic = withQuota(anthropicClient(standIn), { engine, subject: { userId: 'msg-2' } });
    const stream = await anthropic.messages.create({
      model: MODEL,
      max_tokens: 300,
      messages: HI,
      stream: true,
    });
    let text = '';
    for await (const event of stream) {
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta')
        text += event.delta.text;
    }
    expect(text).toBe(REPLY_TEXT);
    expect(await used(engine, { userId: 'msg-2' })).toEqual({
      llm_requests: 1,
      llm_tokens: MESSAGE_TOKENS,
    });
  });

  it('keeps withResponse() working', async () => {
    const engine = testEngine();
    const anthropic = withQuota(anthropicClient(standIn), { engine, subject: { userId: 'msg-3' } });
    const { data, response } = await anthropic.messages
      .create({ model: MODEL, max_tokens: 300, messages: HI })
      .withResponse();
    expect(data.usage.output_tokens).toBe(ANTHROPIC_USAGE.outputTokens);
    expect(response.headers.get('request-id')).toBe('req_stand_in');
    expect((await used(engine, { userId: 'msg-3' })).llm_tokens).toBe(MESSAGE_TOKENS);
  });

  it('clamp lowers max_tokens', async () => {
    const engine = testEngine(smallDailyBudget(1_000));
    const anthropic = withQuota(anthropicClient(standIn), {
      engine,
      subject: { userId: 'msg-4' },
      onExceeded: 'clamp',
      estimator: 'fast',
    });
    const from = standIn.requests.length;
    await anthropic.messages.create({ model: MODEL, max_tokens: 8_000, messages: HI });
    // 'hi' = 1 token + 4 for the message.
    expect(standIn.requests[from]?.body.max_tokens).toBe(1_000 - 5);
  });
});

// messages.create plain and streamed, messages.stream() counted once with its events and
// finalMessage(), and a refusal: the cases every major of the SDK runs.
describeAnthropicMajor('@anthropic-ai/sdk 1.x', Anthropic, standIn);

describe('messages.stream', () => {
  it('commits input from message_start and an output estimate when aborted', async () => {
    const engine = testEngine();
    const anthropic = withQuota(anthropicClient(standIn), {
      engine,
      subject: { userId: 'ms-2' },
      estimator: 'fast',
    });
    const index = standIn.requests.length;
    const stream = anthropic.messages.stream(
      { model: MODEL, max_tokens: 3_000, messages: HI },
      LONG_SLOW_STREAM,
    );
    let deltas = 0;
    for await (const event of stream) {
      if (event.type === 'content_block_delta') deltas += 1;
      if (deltas === 4) break;
    }
    expect((await standIn.settled(index)).aborted).toBe(true);
    const tokens = (await usageEvents(engine, { userId: 'ms-2' }))[1];
    // Input as message_start reported it; output estimated from 4 × 'word '.
    expect(tokens?.amount).toBe(INPUT + Math.ceil(20 / 4));
    expect(tokens?.metadata).toMatchObject({ estimated: true, inputTokens: INPUT });
  });

  it('fails the stream with a QuotaExceededError when refused, sending nothing', async () => {
    const engine = testEngine(smallDailyBudget(100));
    const anthropic = withQuota(anthropicClient(standIn), { engine, subject: { userId: 'ms-3' } });
    const from = standIn.requests.length;
    const stream = anthropic.messages.stream({ model: MODEL, max_tokens: 4_000, messages: HI });
    const errors: unknown[] = [];
    stream.on('error', (error) => errors.push(error));
    const error = await rejectionOf<QuotaExceededError>(stream.finalMessage());
    // The stream helper passes its own SDK's errors on as they are, and the refusal is one.
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error).toBeInstanceOf(Anthropic.AnthropicError);
    expect(error).toMatchObject({
      name: 'QuotaExceededError',
      code: 'quota_exceeded',
      result: { resource: 'llm_tokens', status: 'exceeded' },
    });
    expect(error?.results.llm_tokens?.allowed).toBe(false);
    expect(errors).toEqual([error]);
    expect(standIn.requests.length).toBe(from);
  });

  it('releases the tokens when the provider answers 500', async () => {
    const engine = testEngine();
    const anthropic = withQuota(anthropicClient(standIn), { engine, subject: { userId: 'ms-4' } });
    await expect(
      anthropic.messages.create({ model: MODEL, max_tokens: 300, messages: HI }, failingWith(500)),
    ).rejects.toMatchObject({ status: 500 });
    expect(await used(engine, { userId: 'ms-4' })).toEqual({ llm_requests: 1, llm_tokens: 0 });
  });
});

describe('beta.messages', () => {
  it('meters create and stream() like messages, counting each call once', async () => {
    const engine = testEngine();
    const userId = 'beta-1';
    const anthropic = withQuota(anthropicClient(standIn), { engine, subject: { userId } });
    const before = standIn.requests.length;
    await anthropic.beta.messages.create({ model: MODEL, max_tokens: 300, messages: HI });
    const final = await anthropic.beta.messages
      .stream({ model: MODEL, max_tokens: 300, messages: HI })
      .finalMessage();
    expect(final.content[0]).toMatchObject({ type: 'text' });
    expect(standIn.requests.length).toBe(before + 2);
    expect(await used(engine, { userId })).toEqual({
      llm_requests: 2,
      llm_tokens: 2 * MESSAGE_TOKENS,
    });
  });

  it('refuses a beta call over budget without sending it', async () => {
    const engine = testEngine({ llm_tokens: { limit: 100, period: 'per_day' } });
    const anthropic = withQuota(anthropicClient(standIn), {
      engine,
      subject: { userId: 'beta-2' },
    });
    const before = standIn.requests.length;
    await expect(
      anthropic.beta.messages.create({ model: MODEL, max_tokens: 300, messages: HI }),
    ).rejects.toBeInstanceOf(QuotaExceededError);
    expect(standIn.requests.length).toBe(before);
  });
});
