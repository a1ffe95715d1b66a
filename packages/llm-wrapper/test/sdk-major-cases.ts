/**
 * The calls every major of an SDK within the peer ranges must meter exactly as the one the
 * main suite runs (openai 6, @anthropic-ai/sdk 1): the test files for the other majors run
 * these against their own copy of the SDK.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { createQuotaEngine, QuotaExceededError } from '@quotakit/core';
import { withQuota } from '@quotakit/llm-wrapper';
import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { HI, HI_ESTIMATE, recorded, smallDailyBudget, testEngine, used } from './helpers.js';
import { rejectionOf } from './rejection-of.js';
import {
  ANTHROPIC_USAGE,
  EMBEDDING_TOKENS_PER_INPUT,
  OPENAI_USAGE,
  REPLY_TEXT,
  RESPONSES_USAGE,
  type StandInProvider,
} from './stand-in/index.js';

/** The constructor of some major of an SDK, with its base error class under `errorName`. */
type ClientClass<ErrorName extends string> = (new (options: {
  baseURL: string;
  apiKey: string;
  maxRetries: number;
}) => unknown) & { readonly [name in ErrorName]: abstract new (...args: never[]) => Error };

const CHAT_TOKENS = OPENAI_USAGE.promptTokens + OPENAI_USAGE.completionTokens;
const ANTHROPIC_MODEL = 'claude-stand-in-1';
const MESSAGE_TOKENS =
  ANTHROPIC_USAGE.inputTokens +
  ANTHROPIC_USAGE.cacheCreationInputTokens +
  ANTHROPIC_USAGE.cacheReadInputTokens +
  ANTHROPIC_USAGE.outputTokens;

/** Chat (plain, streamed, helpers), Responses, Embeddings and a refusal, on `OpenAIClass`. */
export function describeOpenAIMajor(
  name: string,
  OpenAIClass: ClientClass<'OpenAIError'>,
  standIn: StandInProvider,
): void {
  // Typed as the openai the main suite runs: the calls below read the same in every major.
  const client = () =>
    new OpenAIClass({
      baseURL: standIn.openaiBaseURL,
      apiKey: 'test-key',
      maxRetries: 0,
    }) as OpenAI;

  describe(`withQuota on ${name}`, () => {
    it('charges a chat completion the usage it reports, and keeps withResponse()', async () => {
      const engine = testEngine();
      const subject = { userId: `${name}-chat` };
      const openai = withQuota(client(), { engine, subject });

      const { data, response } = await openai.chat.completions
        .create({ model: 'gpt-4o', messages: HI })
        .withResponse();

      expect(data.choices[0]!.message.content).toBe(REPLY_TEXT);
      expect(response.status).toBe(200);
      expect(await used(engine, subject)).toEqual({ llm_requests: 1, llm_tokens: CHAT_TOKENS });
    });

    it('hides the usage chunk it asked for in a stream and charges the usage', async () => {
      const engine = testEngine();
      const subject = { userId: `${name}-stream` };
      const openai = withQuota(client(), { engine, subject });

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
      const subject = { userId: `${name}-helpers` };
      const openai = withQuota(client(), { engine, subject });

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

    it("refuses a call the budget cannot hold without sending it, as this copy's error", async () => {
      const engine = createQuotaEngine({ defaults: smallDailyBudget(HI_ESTIMATE + 10) });
      const subject = { userId: `${name}-refused` };
      const openai = withQuota(client(), { engine, subject, estimator: 'fast' });
      const sent = standIn.requests.length;

      const error = await rejectionOf<QuotaExceededError>(
        openai.chat.completions.create({ model: 'gpt-4o', messages: HI, max_tokens: 100 }),
      );

      expect(error).toBeInstanceOf(QuotaExceededError);
      expect(error).toBeInstanceOf(OpenAIClass.OpenAIError);
      expect(standIn.requests.length).toBe(sent);
      expect(await recorded(engine, subject)).toEqual({});
    });
  });
}

/** messages.create (plain and streamed), messages.stream() and a refusal, on `AnthropicClass`. */
export function describeAnthropicMajor(
  name: string,
  AnthropicClass: ClientClass<'AnthropicError'>,
  standIn: StandInProvider,
): void {
  // Typed as the @anthropic-ai/sdk the main suite runs, likewise.
  const client = () =>
    new AnthropicClass({
      baseURL: standIn.anthropicBaseURL,
      apiKey: 'test-key',
      maxRetries: 0,
    }) as Anthropic;
  const request = { model: ANTHROPIC_MODEL, max_tokens: 300, messages: HI };

  describe(`withQuota on ${name}`, () => {
    it('charges messages.create input with cache writes and reads, plain and streamed', async () => {
      const engine = testEngine();
      const subject = { userId: `${name}-create` };
      const anthropic = withQuota(client(), { engine, subject });

      const message = await anthropic.messages.create(request);
      const stream = await anthropic.messages.create({ ...request, stream: true });
      for await (const _event of stream) {
        // read every event
      }

      expect(message.content[0]).toMatchObject({ type: 'text', text: REPLY_TEXT });
      expect(await used(engine, subject)).toEqual({
        llm_requests: 2,
        llm_tokens: 2 * MESSAGE_TOKENS,
      });
    });

    it('meters messages.stream() once, with its events and finalMessage()', async () => {
      const engine = testEngine();
      const subject = { userId: `${name}-stream` };
      const anthropic = withQuota(client(), { engine, subject });
      const from = standIn.requests.length;

      const stream = anthropic.messages.stream(request);
      let text = '';
      stream.on('text', (delta) => {
        text += delta;
      });
      const message = await stream.finalMessage();

      expect(text).toBe(REPLY_TEXT);
      expect(message.usage.output_tokens).toBe(ANTHROPIC_USAGE.outputTokens);
      expect(standIn.requests.length - from).toBe(1);
      expect(await recorded(engine, subject)).toEqual({
        llm_requests: 1,
        llm_tokens: MESSAGE_TOKENS,
      });
    });

    it("refuses a call the budget cannot hold without sending it, as this copy's error", async () => {
      const engine = createQuotaEngine({ defaults: smallDailyBudget(100) });
      const subject = { userId: `${name}-refused` };
      const anthropic = withQuota(client(), { engine, subject, estimator: 'fast' });
      const sent = standIn.requests.length;

      const error = await rejectionOf<QuotaExceededError>(
        anthropic.messages.create({ ...request, max_tokens: 4_000 }),
      );

      expect(error).toBeInstanceOf(QuotaExceededError);
      expect(error).toBeInstanceOf(AnthropicClass.AnthropicError);
      expect(standIn.requests.length).toBe(sent);
      expect(await recorded(engine, subject)).toEqual({});
    });
  });
}
