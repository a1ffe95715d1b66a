import { QuotaExceededError } from '@quotakit/core';
import { withQuota } from '@quotakit/llm-wrapper';
import type OpenAI from 'openai';
import { OpenAIError } from 'openai';
import type { Stream } from 'openai/streaming';
import { describe, expect, it } from 'vitest';
import {
  HI,
  HI_ESTIMATE,
  openaiClient,
  recorded,
  smallDailyBudget,
  testEngine,
  tokenEvents,
  usageEvents,
  used,
} from './helpers.js';
import { rejectionOf } from './rejection-of.js';
import {
  CHUNK_TEXT,
  failingWith,
  LONG_SLOW_STREAM,
  OPENAI_USAGE,
  REPLY_TEXT,
  standInForFile,
} from './stand-in/index.js';

const CHAT_TOKENS = OPENAI_USAGE.promptTokens + OPENAI_USAGE.completionTokens; // 80

const standIn = await standInForFile();

/** The requests to `path` the stand-in received since the one at index `from`. */
function requestsTo(path: string, from: number) {
  return standIn.requests.slice(from).filter((request) => request.path === path);
}

/**
 * Starts a long, slow chat stream (LONG_SLOW_STREAM) metered for `userId` with the fast
 * estimate; `index` is the position of its request at the stand-in.
 */
async function startLongStream(userId: string) {
  const engine = testEngine();
  const openai = withQuota(openaiClient(standIn), {
    engine,
    subject: { userId },
    estimator: 'fast',
  });
  const index = standIn.requests.length;
  const stream = await openai.chat.completions.create(
    { model: 'gpt-4o', messages: HI, stream: true },
    LONG_SLOW_STREAM,
  );
  return { engine, index, stream };
}

/**
 * Reads a chat stream until `count` chunks carried text, then stops: by leaving the loop,
 * or by aborting the stream's controller (and reading on to where the abort ends it).
 */
async function stopAfterTextChunks(
  stream: Stream<OpenAI.Chat.ChatCompletionChunk>,
  count: number,
  by: 'break' | 'abort',
) {
  let seen = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta.content) seen += 1;
    if (seen === count) {
      if (by === 'break') break;
      stream.controller.abort();
    }
  }
}

describe('chat.completions.create', () => {
  it('records the reported usage with its metadata', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'chat-1' } });
    const completion = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      max_completion_tokens: 100,
    });
    expect(completion.choices[0]?.message.content).toBe(REPLY_TEXT);
    expect(await used(engine, { userId: 'chat-1' })).toEqual({
      llm_requests: 1,
      llm_tokens: CHAT_TOKENS,
    });
    const [tokens] = await tokenEvents(engine, { userId: 'chat-1' });
    expect(tokens?.amount).toBe(CHAT_TOKENS);
    expect(tokens?.metadata).toEqual({
      provider: 'openai',
      operation: 'chat',
      model: 'gpt-4o-2024-08-06',
      inputTokens: OPENAI_USAGE.promptTokens,
      outputTokens: OPENAI_USAGE.completionTokens,
      cachedInputTokens: OPENAI_USAGE.cachedTokens,
      reasoningTokens: OPENAI_USAGE.reasoningTokens,
      estimated: false,
    });
  });

  it('keeps withResponse() and asResponse() working, charging each call once', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'chat-2' } });
    const params = { model: 'gpt-4o', messages: HI, max_completion_tokens: 100 };
    const { data, response, request_id } = await openai.chat.completions
      .create(params)
      .withResponse();
    expect(data.usage?.prompt_tokens).toBe(OPENAI_USAGE.promptTokens);
    expect(response.status).toBe(200);
    expect(request_id).toBe('req_stand_in');

    const raw = await openai.chat.completions.create(params).asResponse();
    const body = (await raw.json()) as { usage: { completion_tokens: number } };
    expect(body.usage.completion_tokens).toBe(OPENAI_USAGE.completionTokens);
    expect(await used(engine, { userId: 'chat-2' })).toEqual({
      llm_requests: 2,
      llm_tokens: 2 * CHAT_TOKENS,
    });
  });

  it('charges an estimate, marked estimated, when a compatible server reports no usage', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'chat-3' },
      estimator: 'fast',
    });
    await openai.chat.completions.create(
      { model: 'gpt-4o', messages: HI },
      { headers: { 'x-stand-in-no-usage': '1' } },
    );
    const [tokens] = await tokenEvents(engine, { userId: 'chat-3' });
    expect(tokens?.amount).toBe(HI_ESTIMATE + Math.ceil(REPLY_TEXT.length / 4));
    expect(tokens?.metadata.estimated).toBe(true);
  });

  it('refuses a call the budget cannot hold without making a request', async () => {
    const engine = testEngine(smallDailyBudget(100));
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'chat-4' } });
    await engine.recordUsage({ userId: 'chat-4', resource: 'llm_tokens', amount: 50 });
    const before = standIn.requests.length;
    // Fits the limit, not what is left of it today: retrying tomorrow helps.
    const error = await rejectionOf(
      openai.chat.completions.create({ model: 'gpt-4o', messages: HI, max_completion_tokens: 60 }),
    );
    expect(error).toBeInstanceOf(QuotaExceededError);
    const refusal = error as QuotaExceededError;
    expect(refusal.result.resource).toBe('llm_tokens');
    expect(refusal.message).toBe('Quota exceeded for llm_tokens. Limit: 100, cannot proceed.');
    expect(refusal.retryAfterMs).toBeGreaterThan(0);
    expect(refusal.results.llm_requests?.allowed).toBe(true);
    expect(standIn.requests.length).toBe(before);
    expect(await used(engine, { userId: 'chat-4' })).toEqual({ llm_requests: 0, llm_tokens: 50 });
  });

  it('reserves the output cap times n', async () => {
    const engine = testEngine(smallDailyBudget(1_000));
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'chat-5' },
      estimator: 'fast',
    });
    // 3 × 400 = 1200 output tokens cannot fit 1000; one choice of 400 can.
    await expect(
      openai.chat.completions.create({
        model: 'gpt-4o',
        messages: HI,
        max_completion_tokens: 400,
        n: 3,
      }),
    ).rejects.toMatchObject({ result: { resource: 'llm_tokens', requested: HI_ESTIMATE + 1200 } });
    await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      max_completion_tokens: 400,
    });
    expect((await used(engine, { userId: 'chat-5' })).llm_tokens).toBe(CHAT_TOKENS);
  });

  it('clamp lowers max_completion_tokens to what the budget allows', async () => {
    const engine = testEngine(smallDailyBudget(1_000));
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'chat-6' },
      estimator: 'fast',
      onExceeded: 'clamp',
      minOutputTokens: 50,
    });
    const from = standIn.requests.length;
    await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      max_completion_tokens: 5_000,
    });
    const [sent] = requestsTo('/v1/chat/completions', from);
    expect(sent?.body.max_completion_tokens).toBe(1_000 - HI_ESTIMATE);
    expect((await used(engine, { userId: 'chat-6' })).llm_tokens).toBe(CHAT_TOKENS);

    // 920 left: legacy max_tokens is the field lowered when it is the one the caller set.
    await openai.chat.completions.create({ model: 'gpt-4o', messages: HI, max_tokens: 5_000 });
    const [, legacy] = requestsTo('/v1/chat/completions', from);
    expect(legacy?.body.max_tokens).toBe(1_000 - CHAT_TOKENS - HI_ESTIMATE);
    expect(legacy?.body.max_completion_tokens).toBeUndefined();

    // 840 left: below minOutputTokens a clamp would be useless, so the call is refused.
    await engine.recordUsage({ userId: 'chat-6', resource: 'llm_tokens', amount: 800 });
    await expect(
      openai.chat.completions.create({
        model: 'gpt-4o',
        messages: HI,
        max_completion_tokens: 5_000,
      }),
    ).rejects.toBeInstanceOf(QuotaExceededError);
    expect(requestsTo('/v1/chat/completions', from)).toHaveLength(2);
  });

  it('releases the tokens of a call the provider failed and counts the request', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'chat-7' } });
    const from = standIn.requests.length;
    await expect(
      openai.chat.completions.create({ model: 'gpt-4o', messages: HI }, failingWith(500)),
    ).rejects.toMatchObject({ status: 500 });
    expect(standIn.requests.length - from).toBe(1);
    expect(await used(engine, { userId: 'chat-7' })).toEqual({ llm_requests: 1, llm_tokens: 0 });
    const [event] = await usageEvents(engine, { userId: 'chat-7' });
    expect(event?.metadata).toMatchObject({ failed: true, status: 500, model: 'gpt-4o' });
  });

  it('counts one request for the SDK retries of one call, and none with countFailedRequests: false', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn, 2), { engine, subject: { userId: 'chat-8' } });
    const from = standIn.requests.length;
    await expect(
      openai.chat.completions.create({ model: 'gpt-4o', messages: HI }, failingWith(503)),
    ).rejects.toMatchObject({ status: 503 });
    expect(standIn.requests.length - from).toBe(3);
    expect(await used(engine, { userId: 'chat-8' })).toEqual({ llm_requests: 1, llm_tokens: 0 });

    const uncounted = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'chat-9' },
      countFailedRequests: false,
    });
    await expect(
      uncounted.chat.completions.create({ model: 'gpt-4o', messages: HI }, failingWith(400)),
    ).rejects.toMatchObject({ status: 400 });
    expect(await used(engine, { userId: 'chat-9' })).toEqual({ llm_requests: 0, llm_tokens: 0 });
  });

  it('never overspends with 20 concurrent calls against a nearly spent budget', async () => {
    const limit = 1_000;
    const engine = testEngine({
      llm_requests: { limit: 1_000, period: 'per_day' },
      llm_tokens: { limit, period: 'per_day' },
    });
    const subject = { userId: 'chat-10' };
    await engine.recordUsage({ ...subject, resource: 'llm_tokens', amount: 700 });
    const openai = withQuota(openaiClient(standIn), { engine, subject, estimator: 'fast' });
    // 200 characters: 50 tokens + 4 for the message + 3 priming = 57, the stand-in's count.
    const messages = [{ role: 'user' as const, content: 'x'.repeat(200) }];
    const estimate = 57 + 30;
    const from = standIn.requests.length;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        openai.chat.completions.create({ model: 'gpt-4o', messages, max_completion_tokens: 30 }),
      ),
    );
    const admitted = outcomes.filter((outcome) => outcome.status === 'fulfilled').length;
    const refused = outcomes.filter(
      (outcome) => outcome.status === 'rejected' && outcome.reason instanceof QuotaExceededError,
    ).length;
    expect(admitted).toBe(Math.floor(300 / estimate)); // 3
    expect(refused).toBe(20 - admitted);
    expect(standIn.requests.length - from).toBe(admitted);
    const tokens = (await used(engine, subject)).llm_tokens!;
    expect(tokens).toBe(700 + admitted * CHAT_TOKENS);
    expect(tokens).toBeLessThanOrEqual(limit + Math.max(0, CHAT_TOKENS - estimate));
  });
});

describe('chat.completions.create with stream', () => {
  it('asks for usage, hides the usage-only chunk and records the exact usage', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'stream-1' } });
    const from = standIn.requests.length;
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      stream: true,
    });
    expect(stream.controller).toBeInstanceOf(AbortController);
    let text = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      // Naive code the extra chunk would crash: choices[0] is undefined on it.
      text += chunk.choices[0]!.delta.content ?? '';
      expect(chunk.usage ?? undefined).toBeUndefined();
    }
    expect(text).toBe(REPLY_TEXT);
    expect(chunks).toBe(REPLY_TEXT.split(' ').length + 2);
    expect(requestsTo('/v1/chat/completions', from)[0]?.body.stream_options).toEqual({
      include_usage: true,
    });
    expect(await used(engine, { userId: 'stream-1' })).toEqual({
      llm_requests: 1,
      llm_tokens: CHAT_TOKENS,
    });
  });

  it('leaves the usage chunk to a caller who asked for it', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'stream-2' } });
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: unknown;
    for await (const chunk of stream) if (chunk.choices.length === 0) usage = chunk.usage;
    expect(usage).toMatchObject({ prompt_tokens: OPENAI_USAGE.promptTokens });
    expect((await used(engine, { userId: 'stream-2' })).llm_tokens).toBe(CHAT_TOKENS);
  });

  it('commits an estimate of what was streamed after an early break, and the request stops', async () => {
    const { engine, index, stream } = await startLongStream('stream-3');
    await stopAfterTextChunks(stream, 3, 'break');
    const request = await standIn.settled(index);
    expect(request.aborted).toBe(true);
    expect(request.deltasWritten).toBeLessThan(1000);
    const [, tokens] = await usageEvents(engine, { userId: 'stream-3' });
    expect(tokens?.amount).toBe(HI_ESTIMATE + Math.ceil((3 * CHUNK_TEXT.length) / 4));
    expect(tokens?.metadata.estimated).toBe(true);
    expect(await used(engine, { userId: 'stream-3' })).toEqual({
      llm_requests: 1,
      llm_tokens: tokens?.amount,
    });
  });

  it('commits an estimate when the caller aborts through the controller', async () => {
    const { engine, index, stream } = await startLongStream('stream-4');
    await stopAfterTextChunks(stream, 2, 'abort');
    expect((await standIn.settled(index)).aborted).toBe(true);
    const [, tokens] = await usageEvents(engine, { userId: 'stream-4' });
    expect(tokens?.amount).toBe(HI_ESTIMATE + Math.ceil((2 * CHUNK_TEXT.length) / 4));
    expect(tokens?.metadata.estimated).toBe(true);
  });

  it('enforceDuringStream stops the stream with QuotaExceededError when the budget runs out', async () => {
    const engine = testEngine(smallDailyBudget(1_000));
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'stream-5' },
      estimator: 'fast',
      enforceDuringStream: true,
      defaultMaxOutputTokens: 100,
    });
    const index = standIn.requests.length;
    const stream = await openai.chat.completions.create(
      { model: 'gpt-4o', messages: HI, stream: true },
      { headers: { 'x-stand-in-chunks': '2000' } },
    );
    let characters = 0;
    const error = await rejectionOf(
      (async () => {
        for await (const chunk of stream)
          characters += chunk.choices[0]?.delta.content?.length ?? 0;
      })(),
    );
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect((error as QuotaExceededError).result).toMatchObject({
      resource: 'llm_tokens',
      status: 'exceeded',
    });
    expect(stream.controller.signal.aborted).toBe(true);
    const request = await standIn.settled(index);
    expect(request.aborted).toBe(true);
    expect(request.deltasWritten).toBeLessThan(2000);
    // Output allowed: 100 reserved + 892 of headroom; the chunk that crossed it is not shown.
    expect(characters).toBe(Math.floor((992 * 4) / CHUNK_TEXT.length) * CHUNK_TEXT.length);
    const tokens = (await used(engine, { userId: 'stream-5' })).llm_tokens!;
    expect(tokens).toBe(HI_ESTIMATE + Math.ceil((characters + CHUNK_TEXT.length) / 4));
    expect(tokens).toBeLessThanOrEqual(1_000 + 2);
  });

  it('meters tee() and toReadableStream() reads too', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'stream-6' } });
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      stream: true,
    });
    const [left, right] = stream.tee();
    let leftChunks = 0;
    let rightChunks = 0;
    for await (const _ of left) leftChunks += 1;
    for await (const _ of right) rightChunks += 1;
    expect(leftChunks).toBe(rightChunks);
    expect(leftChunks).toBe(REPLY_TEXT.split(' ').length + 2);

    const second = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      stream: true,
    });
    const lines = (await new Response(second.toReadableStream()).text()).trim().split('\n');
    expect(
      lines.every((line) => (JSON.parse(line) as { choices: unknown[] }).choices.length > 0),
    ).toBe(true);
    expect(await used(engine, { userId: 'stream-6' })).toEqual({
      llm_requests: 2,
      llm_tokens: 2 * CHAT_TOKENS,
    });
  });

  it('fails the stream() helper with a QuotaExceededError when refused, sending nothing', async () => {
    const engine = testEngine(smallDailyBudget(100));
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'stream-8' } });
    const from = standIn.requests.length;
    const runner = openai.chat.completions.stream({
      model: 'gpt-4o',
      messages: HI,
      max_completion_tokens: 4_000,
    });
    const error = await rejectionOf<QuotaExceededError>(runner.finalChatCompletion());
    // The helper passes the SDK's own errors on as they are; the refusal is one of them.
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error).toBeInstanceOf(OpenAIError);
    expect(error?.result).toMatchObject({ resource: 'llm_tokens', status: 'exceeded' });
    expect(standIn.requests.length).toBe(from);
  });

  it('meters the SDK helpers built on create: stream() and parse() count once', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'stream-7' } });
    const runner = openai.chat.completions.stream({ model: 'gpt-4o', messages: HI });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]?.message.content).toBe(REPLY_TEXT);
    const parsed = await openai.chat.completions.parse({ model: 'gpt-4o', messages: HI });
    expect(parsed.choices[0]?.message.content).toBe(REPLY_TEXT);
    expect(await recorded(engine, { userId: 'stream-7' })).toEqual({
      llm_requests: 2,
      llm_tokens: 2 * CHAT_TOKENS,
    });
  });
});
