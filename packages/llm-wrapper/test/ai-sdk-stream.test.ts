import {
  APICallError,
  type LanguageModelV3,
  type LanguageModelV3Prompt,
  type LanguageModelV3StreamPart,
} from '@ai-sdk/provider';
import { QuotaExceededError } from '@quotakit/core';
import { quotaMiddleware } from '@quotakit/llm-wrapper';
import { streamText, wrapLanguageModel } from 'ai';
import { describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_RULES,
  fastTokens,
  openaiChatModel,
  type Setup,
  SUBJECT,
  setup,
  slowWriteStore,
  spendTokens,
  tokensPerDay,
  userPromptTokens,
} from './ai-sdk-stand-in/fixtures.js';
import type { StandInReply } from './ai-sdk-stand-in/server.js';
import { standInForFile } from './ai-sdk-stand-in/stand-in-for-file.js';

const standIn = await standInForFile();

const PROMPT = 'Write a haiku about budgets.';
const INPUT_ESTIMATE = userPromptTokens(PROMPT);
/** PROMPT as one user message, in the language model's own prompt format. */
const MODEL_PROMPT: LanguageModelV3Prompt = [
  { role: 'user', content: [{ type: 'text', text: PROMPT }] },
];

/** Usage for a reply that never reports it: far from any estimate, so its use would show. */
const UNREPORTED_USAGE = { promptTokens: 999, completionTokens: 999 };
/** 'abcd' and 'efgh' (one estimated token each), then the response held open without usage. */
const TWO_CHUNKS_THEN_HELD: StandInReply = {
  chunks: ['abcd', 'efgh', 'never sent'],
  usage: UNREPORTED_USAGE,
  holdAfterChunks: 2,
};

/** Reads a whole stream and returns its text. */
async function drain(result: ReturnType<typeof streamText>) {
  let text = '';
  for await (const delta of result.textStream) text += delta;
  return text;
}

/** Streams PROMPT with streamText to its end, collecting the errors passed to onError. */
async function streamCollectingErrors(options: {
  model: Setup['model'];
  maxOutputTokens?: number;
  maxRetries?: number;
}) {
  const errors: unknown[] = [];
  const result = streamText({
    prompt: PROMPT,
    ...options,
    onError: ({ error }) => {
      errors.push(error);
    },
  });
  const text = await drain(result);
  return { result, text, errors };
}

/** Reads a model stream until its text deltas reach `length` characters (20 reads at most). */
async function readText(
  reader: ReadableStreamDefaultReader<LanguageModelV3StreamPart>,
  length: number,
) {
  let text = '';
  for (let read = 0; read < 20 && text.length < length; read += 1) {
    const { value } = await reader.read();
    if (value?.type === 'text-delta') text += value.delta;
  }
  return text;
}

describe('quotaMiddleware with streamText', () => {
  it('commits the usage of the finish part before the stream ends for the consumer', async () => {
    const { model, used, events } = setup(standIn, {}, DEFAULT_RULES, slowWriteStore());
    standIn.reply({
      chunks: ['Spend ', 'with care, ', 'count each token.'],
      usage: { promptTokens: 41, completionTokens: 17 },
      model: 'gpt-4o-2024-08-06',
    });

    const result = streamText({ model, prompt: PROMPT, maxOutputTokens: 200 });
    const text = await drain(result);

    expect(text).toBe('Spend with care, count each token.');
    // Already recorded when the consumer saw the end, without waiting for anything else.
    expect(await used('llm_tokens')).toBe(58);
    expect(await used('llm_requests')).toBe(1);
    expect(standIn.requests[0]).toMatchObject({ stream: true, maxTokens: 200 });
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({
      provider: 'openai',
      model: 'gpt-4o-2024-08-06',
      inputTokens: 41,
      outputTokens: 17,
      estimated: false,
    });
    expect((await result.usage).totalTokens).toBe(58);
  });

  it('counts cached input and reasoning output of a stream', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply({
      chunks: ['Thought ', 'through.'],
      usage: { promptTokens: 900, cachedTokens: 768, completionTokens: 420, reasoningTokens: 400 },
    });

    await drain(streamText({ model, prompt: PROMPT }));

    expect(await used('llm_tokens')).toBe(1320);
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({
      inputTokens: 900,
      cachedInputTokens: 768,
      outputTokens: 420,
      reasoningTokens: 400,
      estimated: false,
    });
  });

  it('commits an estimate, marked as such, when the provider reports no usage', async () => {
    const { model, used, events } = setup(standIn, {}, DEFAULT_RULES, slowWriteStore());
    standIn.reply({ chunks: ['abcd', 'efgh', 'ijkl'], usage: UNREPORTED_USAGE, omitUsage: true });

    expect(await drain(streamText({ model, prompt: PROMPT }))).toBe('abcdefghijkl');

    expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 3);
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({ outputTokens: 3, estimated: true });
  });

  it('on an abort mid-stream, commits the estimate of what was streamed and returns the rest', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply(TWO_CHUNKS_THEN_HELD);
    const controller = new AbortController();
    const aborted: unknown[] = [];

    const result = streamText({
      model,
      prompt: PROMPT,
      maxOutputTokens: 1000,
      abortSignal: controller.signal,
      onAbort: () => {
        aborted.push(true);
      },
    });
    let text = '';
    for await (const delta of result.textStream) {
      text += delta;
      if (text.length === 8) controller.abort();
    }

    expect(text).toBe('abcdefgh');
    expect(aborted).toHaveLength(1);
    await standIn.disconnectsReached(1);
    // Input estimate + two 4-character chunks; the 1000 reserved output tokens are returned.
    expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 2);
    expect(await used('llm_requests')).toBe(1);
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({
      inputTokens: INPUT_ESTIMATE,
      outputTokens: 2,
      estimated: true,
    });
  });

  it('settles on abort even when nobody reads the stream again', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply(TWO_CHUNKS_THEN_HELD);
    const controller = new AbortController();

    const result = streamText({ model, prompt: PROMPT, abortSignal: controller.signal });
    let text = '';
    for await (const delta of result.textStream) {
      text += delta;
      if (text.length === 8) {
        // A route handler whose client went away: abort, and stop reading.
        controller.abort();
        break;
      }
    }

    await standIn.disconnectsReached(1);
    // Settled by the abort itself; nothing else will ever read this stream.
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 2));
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({ outputTokens: 2, estimated: true });
  });

  it('commits a stream left behind without an abort as reserved, before its reservation expires', async () => {
    const { model, used, events } = setup(standIn, { reservationTtlMs: 300 });
    standIn.reply(TWO_CHUNKS_THEN_HELD);

    const result = streamText({ model, prompt: PROMPT, maxOutputTokens: 100 });
    for await (const delta of result.textStream) {
      // The consumer stops reading without aborting: streamText keeps the model's stream.
      if (delta.length > 0) break;
    }

    // Held, not yet committed: the reservation already counts in `used`.
    expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 100);
    expect(await events('llm_tokens')).toEqual([]);
    await vi.waitFor(async () => expect(await events('llm_tokens')).toHaveLength(1), {
      timeout: 2_000,
    });
    const [event] = await events('llm_tokens');
    expect(event!.amount).toBe(INPUT_ESTIMATE + 100);
    expect(event!.metadata).toMatchObject({ estimated: true, abandoned: true });
    expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 100);
  });

  it('returns the tokens when the provider fails the stream request', async () => {
    const { model, used } = setup(standIn);
    standIn.reply({ chunks: [], usage: { promptTokens: 0, completionTokens: 0 }, status: 500 });

    const { text, errors } = await streamCollectingErrors({ model, maxRetries: 0 });
    expect(text).toBe('');

    expect(errors).toHaveLength(1);
    expect(APICallError.isInstance(errors[0])).toBe(true);
    expect(await used('llm_tokens')).toBe(0);
    expect(await used('llm_requests')).toBe(1);
  });

  it('returns the tokens when the stream fails on the provider side before any output', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply({ chunks: ['never sent'], usage: UNREPORTED_USAGE, errorAfterChunks: 0 });

    const { text, errors } = await streamCollectingErrors({ model, maxRetries: 0 });
    expect(text).toBe('');

    expect(errors).toHaveLength(1);
    expect(await used('llm_tokens')).toBe(0);
    expect(await used('llm_requests')).toBe(1);
    expect(await events('llm_tokens')).toEqual([]);
  });

  it('commits an estimate when the stream fails on the provider side after some output', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply({
      chunks: ['abcd', 'efgh', 'never sent'],
      usage: UNREPORTED_USAGE,
      errorAfterChunks: 2,
    });

    const { result, text, errors } = await streamCollectingErrors({ model });

    expect(text).toBe('abcdefgh');
    expect(errors).toHaveLength(1);
    expect(await result.finishReason).toBe('error');
    // The provider produced those tokens and reported no usage: an estimate is recorded.
    expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 2);
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({ outputTokens: 2, estimated: true });
  });

  it('refuses a stream over budget before any request leaves', async () => {
    const { engine, model, used } = setup(standIn, {}, tokensPerDay(500));
    await spendTokens(engine, 450);

    const { text, errors } = await streamCollectingErrors({ model, maxOutputTokens: 100 });
    expect(text).toBe('');

    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(QuotaExceededError);
    expect(standIn.requests).toHaveLength(0);
    expect(await used('llm_tokens')).toBe(450);
  });

  it('clamps the output cap of a stream to the budget left', async () => {
    const { engine, model, used } = setup(standIn, { onExceeded: 'clamp' }, tokensPerDay(2000));
    await spendTokens(engine, 1500);
    standIn.reply({ chunks: ['brief'], usage: { promptTokens: 16, completionTokens: 1 } });

    expect(await drain(streamText({ model, prompt: PROMPT, maxOutputTokens: 8000 }))).toBe('brief');

    expect(standIn.requests.map((request) => request.maxTokens)).toEqual([500 - INPUT_ESTIMATE]);
    expect(await used('llm_tokens')).toBe(1517);
  });

  it('with enforceDuringStream, cuts the stream once the budget runs out', async () => {
    const { model, used, events } = setup(
      standIn,
      { enforceDuringStream: true },
      tokensPerDay(400),
    );
    // 300 chunks of 2 tokens each, far more than the budget; then the response stays open.
    standIn.reply({
      chunks: Array.from({ length: 300 }, () => 'abcdefgh'),
      usage: UNREPORTED_USAGE,
      holdAfterChunks: 300,
    });

    const { result, text, errors } = await streamCollectingErrors({
      model,
      maxOutputTokens: 100,
    });

    // The call held input + 100; the stream may use that and the rest of the budget
    // (400 - INPUT_ESTIMATE - 100), and is cut at the first chunk past it.
    const allowance = 100 + (400 - INPUT_ESTIMATE - 100);
    const chunksSent = Math.floor(allowance / 2) + 1;
    expect(text).toBe('abcdefgh'.repeat(chunksSent));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(QuotaExceededError);
    expect((errors[0] as QuotaExceededError).result.resource).toBe('llm_tokens');
    expect(await result.finishReason).toBe('error');
    // The provider's response was closed rather than read to its end.
    await standIn.disconnectsReached(1);
    expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 2 * chunksSent);
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({ outputTokens: 2 * chunksSent, estimated: true });
  });
});

describe('quotaMiddleware on the wrapped model stream', () => {
  it('commits an estimate when the consumer cancels the stream early', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply(TWO_CHUNKS_THEN_HELD);

    const { stream } = await model.doStream({ prompt: MODEL_PROMPT, maxOutputTokens: 1000 });
    const reader = stream.getReader();
    const text = await readText(reader, 8);
    // Held while streaming: input estimate + the 1000-token cap.
    expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 1000);
    await reader.cancel('user went away');

    expect(text).toBe('abcdefgh');
    await standIn.disconnectsReached(1);
    expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + fastTokens('abcd') + fastTokens('efgh'));
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({ outputTokens: 2, estimated: true });
  });

  it('settles when the call is aborted even if the stream is never read again', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply(TWO_CHUNKS_THEN_HELD);
    const controller = new AbortController();

    const { stream } = await model.doStream({
      prompt: MODEL_PROMPT,
      abortSignal: controller.signal,
    });
    await readText(stream.getReader(), 8);
    controller.abort();

    await standIn.disconnectsReached(1);
    await vi.waitFor(async () => expect(await used('llm_tokens')).toBe(INPUT_ESTIMATE + 2));
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({ outputTokens: 2, estimated: true });
  });

  it('settles a provider stream that ends without a finish part', async () => {
    const { engine } = setup(standIn);
    standIn.reply({ chunks: ['abcd', 'efgh'], usage: UNREPORTED_USAGE });
    const inner = openaiChatModel(standIn);
    // A provider that forgets its finish part (or a stream that simply ends early).
    const withoutFinish: LanguageModelV3 = {
      specificationVersion: 'v3',
      provider: inner.provider,
      modelId: inner.modelId,
      supportedUrls: inner.supportedUrls,
      doGenerate: (options) => inner.doGenerate(options),
      async doStream(options) {
        const result = await inner.doStream(options);
        return {
          ...result,
          stream: result.stream.pipeThrough(
            new TransformStream<LanguageModelV3StreamPart, LanguageModelV3StreamPart>({
              transform(part, controller) {
                if (part.type !== 'finish') controller.enqueue(part);
              },
            }),
          ),
        };
      },
    };
    const model = wrapLanguageModel({
      model: withoutFinish,
      middleware: quotaMiddleware({ engine, subject: SUBJECT, estimator: 'fast' }),
    });

    const { stream } = await model.doStream({ prompt: MODEL_PROMPT });
    const parts: string[] = [];
    for await (const part of stream) parts.push(part.type);

    expect(parts).not.toContain('finish');
    expect((await engine.getQuotaStatus('llm_tokens', SUBJECT)).used).toBe(INPUT_ESTIMATE + 2);
  });
});
