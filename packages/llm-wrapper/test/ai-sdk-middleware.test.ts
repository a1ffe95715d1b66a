import { APICallError } from '@ai-sdk/provider';
import { QuotaConfigError, QuotaExceededError, QuotaValidationError } from '@quotakit/core';
import {
  MEDIA_PART_TOKENS,
  type QuotaModelMiddlewareOptions,
  quotaMiddleware,
} from '@quotakit/llm-wrapper';
import {
  defaultSettingsMiddleware,
  generateText,
  jsonSchema,
  type LanguageModelMiddleware,
  type ModelMessage,
  tool,
  wrapLanguageModel,
} from 'ai';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  fastTokens,
  openaiChatModel,
  SUBJECT,
  setup,
  spendTokens,
  tokensPerDay,
  userPromptTokens,
} from './ai-sdk-stand-in/fixtures.js';
import { standInForFile } from './ai-sdk-stand-in/stand-in-for-file.js';
import { rejectionOf } from './rejection-of.js';

const standIn = await standInForFile();

const PROMPT = 'Summarise the quarterly report in one line.';

describe('quotaMiddleware with generateText', () => {
  it('commits the tokens the provider reported, with model and provider in the usage record', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply({
      chunks: ['Revenue grew ', '12 %.'],
      usage: { promptTokens: 120, completionTokens: 30 },
      model: 'gpt-4o-2024-08-06',
    });

    const { text } = await generateText({ model, prompt: PROMPT, maxOutputTokens: 500 });

    expect(text).toBe('Revenue grew 12 %.');
    expect(await used('llm_tokens')).toBe(150);
    expect(await used('llm_requests')).toBe(1);
    const [event] = await events('llm_tokens');
    expect(event).toMatchObject({ userId: 'u1', amount: 150 });
    expect(event!.metadata).toMatchObject({
      provider: 'openai',
      model: 'gpt-4o-2024-08-06',
      inputTokens: 120,
      outputTokens: 30,
      cachedInputTokens: 0,
      reasoningTokens: 0,
      estimated: false,
    });
  });

  it('counts cached input and reasoning output, and records cost_usd from the price table', async () => {
    const { model, used, events } = setup(
      standIn,
      {
        prices: {
          'gpt-4o': { inputPerMillion: 2.5, cachedInputPerMillion: 1.25, outputPerMillion: 10 },
        },
      },
      {
        llm_requests: { limit: 100, period: 'per_day' },
        llm_tokens: { limit: 100_000, period: 'per_day' },
        cost_usd: { limit: 5, period: 'per_month' },
      },
    );
    standIn.reply({
      chunks: ['42'],
      usage: {
        promptTokens: 1200,
        cachedTokens: 1000,
        completionTokens: 300,
        reasoningTokens: 250,
      },
      model: 'gpt-4o-2024-08-06',
    });

    const result = await generateText({ model, prompt: PROMPT });

    // Input includes the cached tokens, output the reasoning ones, as the provider bills them.
    expect(result.usage.inputTokens).toBe(1200);
    expect(await used('llm_tokens')).toBe(1500);
    // (200 × 2.5 + 1000 × 1.25 + 300 × 10) / 1e6
    expect(await used('cost_usd')).toBeCloseTo(0.00475, 12);
    const [event] = await events('llm_tokens');
    expect(event!.metadata).toMatchObject({
      inputTokens: 1200,
      cachedInputTokens: 1000,
      outputTokens: 300,
      reasoningTokens: 250,
      costUsd: 0.00475,
    });
  });

  it('charges whoever the subject function names at each call', async () => {
    let current = 'alice';
    const { model, used } = setup(standIn, { subject: () => ({ userId: current }) });
    standIn.reply({ chunks: ['ok'], usage: { promptTokens: 10, completionTokens: 2 } });

    await generateText({ model, prompt: PROMPT });
    current = 'bob';
    await generateText({ model, prompt: PROMPT });
    await generateText({ model, prompt: PROMPT });

    expect(await used('llm_tokens', { userId: 'alice' })).toBe(12);
    expect(await used('llm_tokens', { userId: 'bob' })).toBe(24);
    expect(await used('llm_requests', { userId: 'bob' })).toBe(2);
  });

  it('refuses with QuotaExceededError and sends nothing when the budget cannot cover the call', async () => {
    const { engine, model, used } = setup(standIn, {}, tokensPerDay(1000));
    await spendTokens(engine, 600);
    standIn.reply({ chunks: ['never'], usage: { promptTokens: 1, completionTokens: 1 } });

    const error = await rejectionOf<QuotaExceededError>(
      generateText({ model, prompt: PROMPT, maxOutputTokens: 500, maxRetries: 3 }),
    );

    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error!.result).toMatchObject({
      resource: 'llm_tokens',
      requested: userPromptTokens(PROMPT) + 500,
      used: 600,
      remaining: 400,
    });
    expect(error!.message).toBe('Quota exceeded for llm_tokens. Limit: 1000, cannot proceed.');
    expect(error!.retryAfterMs).toBeGreaterThan(0);
    // Not retried by the AI SDK, and nothing reached the provider.
    expect(standIn.requests).toHaveLength(0);
    expect(await used('llm_tokens')).toBe(600);
    expect(await used('llm_requests')).toBe(0);
  });

  it('counts an image as a fixed estimate, never by its bytes', async () => {
    const { model } = setup(standIn, {}, tokensPerDay(10));
    const image = new Uint8Array(3_000_000);

    const error = await rejectionOf<QuotaExceededError>(
      generateText({
        model,
        maxOutputTokens: 100,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is in this picture?' },
              { type: 'image', image, mediaType: 'image/png' },
            ],
          },
        ],
      }),
    );

    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error!.result.requested).toBe(
      4 + fastTokens('What is in this picture?') + MEDIA_PART_TOKENS + 100,
    );
    expect(standIn.requests).toHaveLength(0);
  });

  it('counts tool definitions and earlier tool calls and results in the input estimate', async () => {
    const { model } = setup(standIn, {}, tokensPerDay(10));
    const description = 'Looks up the current weather for a city, in degrees Celsius.';
    const toolTurns: ModelMessage[] = [
      {
        role: 'assistant',
        content: [
          { type: 'tool-call', toolCallId: 'c1', toolName: 'weather', input: { city: 'Oslo' } },
        ],
      },
      {
        role: 'tool',
        content: [
          {
            type: 'tool-result',
            toolCallId: 'c1',
            toolName: 'weather',
            output: { type: 'json', value: { celsius: -3, sky: 'overcast' } },
          },
        ],
      },
    ];
    const requested = async (withTools: boolean) => {
      const error = await rejectionOf<QuotaExceededError>(
        generateText({
          model,
          maxOutputTokens: 10,
          messages: [
            { role: 'user', content: 'Weather in Oslo?' },
            ...(withTools ? toolTurns : []),
          ],
          tools: withTools
            ? {
                weather: tool({
                  description,
                  inputSchema: jsonSchema<{ city: string }>({
                    type: 'object',
                    properties: { city: { type: 'string' } },
                  }),
                }),
              }
            : undefined,
        }),
      );
      return error!.result.requested;
    };

    const bare = await requested(false);
    expect(bare).toBe(4 + fastTokens('Weather in Oslo?') + 10);
    // Two more messages (4 each), the call, the result, the tool's name, description, schema.
    expect(await requested(true)).toBeGreaterThanOrEqual(
      bare +
        2 * 4 +
        fastTokens(description) +
        fastTokens('{"city":"Oslo"}') +
        fastTokens('{"celsius":-3,"sky":"overcast"}'),
    );
    expect(standIn.requests).toHaveLength(0);
  });

  it('clamps maxOutputTokens to what the budget allows instead of refusing', async () => {
    const { engine, model, used } = setup(standIn, { onExceeded: 'clamp' }, tokensPerDay(1000));
    await spendTokens(engine, 700);
    standIn.reply({ chunks: ['short'], usage: { promptTokens: 15, completionTokens: 200 } });

    const { text } = await generateText({ model, prompt: PROMPT, maxOutputTokens: 4000 });

    expect(text).toBe('short');
    // The provider was asked for what is left after the prompt's estimate, not for 4000.
    expect(standIn.requests.map((request) => request.maxTokens)).toEqual([
      300 - userPromptTokens(PROMPT),
    ]);
    expect(await used('llm_tokens')).toBe(915);
  });

  it('still refuses under clamp when even the minimum output does not fit', async () => {
    const { engine, model } = setup(
      standIn,
      { onExceeded: 'clamp', minOutputTokens: 64 },
      tokensPerDay(1000),
    );
    await spendTokens(engine, 960);

    await expect(generateText({ model, prompt: PROMPT, maxOutputTokens: 500 })).rejects.toThrow(
      QuotaExceededError,
    );
    expect(standIn.requests).toHaveLength(0);
  });

  it('returns the tokens of a call the provider failed and counts the attempt as a request', async () => {
    const { model, used, events } = setup(standIn);
    standIn.reply({ chunks: [], usage: { promptTokens: 0, completionTokens: 0 }, status: 500 });

    const error = await generateText({ model, prompt: PROMPT, maxRetries: 0 }).catch(
      (caught: unknown) => caught,
    );

    expect(APICallError.isInstance(error)).toBe(true);
    expect(standIn.requests).toHaveLength(1);
    expect(await used('llm_tokens')).toBe(0);
    expect(await used('llm_requests')).toBe(1);
    expect(await events('llm_tokens')).toEqual([]);
  });

  it('settles every retry of the AI SDK on its own: each attempt one request, no tokens held', async () => {
    const { model, used } = setup(standIn, { countFailedRequests: false });
    standIn.reply(
      { chunks: [], usage: { promptTokens: 0, completionTokens: 0 }, status: 500 },
      { chunks: [], usage: { promptTokens: 0, completionTokens: 0 }, status: 503 },
      { chunks: ['third time'], usage: { promptTokens: 20, completionTokens: 5 } },
    );

    const { text } = await generateText({ model, prompt: PROMPT, maxRetries: 2 });

    expect(text).toBe('third time');
    expect(standIn.requests).toHaveLength(3);
    expect(await used('llm_tokens')).toBe(25);
    expect(await used('llm_requests')).toBe(1);
  });

  it('admits no more concurrent calls than the nearly spent budget holds', async () => {
    const { engine, model, used } = setup(standIn, {}, tokensPerDay(10_000));
    const perCall = userPromptTokens(PROMPT) + 100;
    // Room for exactly three calls' reservations.
    await spendTokens(engine, 10_000 - 3 * perCall - 5);
    // Answers wait until every call was either refused or sent, so that no commit can free
    // room for a late call: the admissions are decided by the reservations alone.
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    let decided = 0;
    const decide = () => {
      decided += 1;
      if (decided === 20) openGate();
    };
    standIn.onRequest = decide;
    standIn.reply({ chunks: ['ok'], usage: { promptTokens: 12, completionTokens: 40 }, gate });

    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        generateText({ model, prompt: PROMPT, maxOutputTokens: 100, maxRetries: 0 }).catch(
          (error: unknown) => {
            decide();
            throw error;
          },
        ),
      ),
    );

    const admitted = settled.filter((outcome) => outcome.status === 'fulfilled');
    const refused = settled.filter(
      (outcome) => outcome.status === 'rejected' && outcome.reason instanceof QuotaExceededError,
    );
    expect(admitted).toHaveLength(3);
    expect(refused).toHaveLength(17);
    expect(standIn.requests).toHaveLength(3);
    expect(await used('llm_tokens')).toBe(10_000 - 3 * perCall - 5 + 3 * 52);
  });
});

describe('quotaMiddleware options and types', () => {
  it('rejects bad options when it is created, not at call time', () => {
    const { engine } = setup(standIn);
    expect(() => quotaMiddleware({ engine, onExceeded: 'ignore' as unknown as 'throw' })).toThrow(
      QuotaConfigError,
    );
    expect(() => quotaMiddleware({ engine: {} as never })).toThrow(QuotaConfigError);
    // A misspelt option fails too, rather than leaving its default in place.
    expect(() => quotaMiddleware({ engine, subjct: {} } as never)).toThrow(
      /subjct: not an option of withQuota \/ quotaMiddleware/,
    );
  });

  it('placed last among middlewares, reserves for the settings the others applied', async () => {
    const { engine } = setup(standIn, {}, tokensPerDay(10));
    const model = wrapLanguageModel({
      model: openaiChatModel(standIn),
      middleware: [
        defaultSettingsMiddleware({ settings: { maxOutputTokens: 321 } }),
        quotaMiddleware({ engine, subject: SUBJECT, estimator: 'fast' }),
      ],
    });

    const error = await rejectionOf<QuotaExceededError>(generateText({ model, prompt: PROMPT }));

    expect(error!.result.requested).toBe(userPromptTokens(PROMPT) + 321);
  });

  it('refuses a model of an unknown specification at its first call, before reserving or sending', async () => {
    const { engine, used } = setup(standIn);
    const sent: unknown[] = [];
    // The shape of an ai 4 provider's model (specification v1), whose calls read otherwise.
    const legacy = {
      specificationVersion: 'v1',
      provider: 'legacy.chat',
      modelId: 'old-model',
      supportedUrls: {},
      doGenerate: async (options: unknown) => {
        sent.push(options);
        return { content: [], finishReason: 'stop', usage: { inputTokens: 5, outputTokens: 5 } };
      },
      doStream: async (options: unknown) => {
        sent.push(options);
        return { stream: new ReadableStream() };
      },
    } as unknown as Parameters<typeof wrapLanguageModel>[0]['model'];
    const model = wrapLanguageModel({
      model: legacy,
      middleware: quotaMiddleware({ engine, subject: SUBJECT }),
    });

    const error = await rejectionOf<QuotaConfigError>(generateText({ model, prompt: PROMPT }));

    expect(error).toBeInstanceOf(QuotaConfigError);
    expect(error!.path).toBe('model');
    expect(sent).toEqual([]);
    expect(await used('llm_requests')).toBe(0);
  });

  it('refuses a call with no subject anywhere before anything is sent', async () => {
    const { engine } = setup(standIn);
    const model = wrapLanguageModel({
      model: openaiChatModel(standIn),
      middleware: quotaMiddleware({ engine, subject: () => undefined }),
    });

    await expect(generateText({ model, prompt: PROMPT })).rejects.toThrow(QuotaValidationError);
    expect(standIn.requests).toHaveLength(0);
  });

  it('is an AI SDK language model middleware that wrapLanguageModel accepts', () => {
    const { engine } = setup(standIn);
    const middleware = quotaMiddleware({ engine, subject: SUBJECT });
    expectTypeOf(middleware).toEqualTypeOf<LanguageModelMiddleware>();
    expectTypeOf(quotaMiddleware).parameter(0).toEqualTypeOf<QuotaModelMiddlewareOptions>();
    const inner = openaiChatModel(standIn);
    const wrapped = wrapLanguageModel({ model: inner, middleware: [middleware] });
    expectTypeOf(wrapped).toEqualTypeOf<typeof inner>();
    expect(middleware.specificationVersion).toBe('v3');
    expect(wrapped.provider).toBe('openai.chat');
    expect(wrapped.modelId).toBe('gpt-4o');
    // @ts-expect-error an engine is required
    expect(() => quotaMiddleware({ subject: SUBJECT })).toThrow(QuotaConfigError);
  });
});
