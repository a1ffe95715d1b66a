import { generateText, streamText } from 'ai';
import { beforeEach, describe, expect, it } from 'vitest';
import { setup } from './ai-sdk-stand-in/fixtures.js';
import { standInForFile } from './ai-sdk-stand-in/stand-in-for-file.js';
import { recordSpansForFile } from './recording-tracer.js';

const standIn = await standInForFile();
const spans = recordSpansForFile();
beforeEach(() => {
  spans.length = 0;
});

const SECRET_PROMPT = 'The launch code is swordfish.';
const llmCallSpans = () => spans.filter((span) => span.name === 'quota.llm_call');

describe('quotaMiddleware telemetry', () => {
  it('gives each generate call a span with the GenAI attributes of its provider and usage', async () => {
    const { model } = setup(standIn);
    standIn.reply({
      chunks: ['Noted, ', 'not repeated.'],
      usage: { promptTokens: 33, completionTokens: 7 },
      model: 'gpt-4o-2024-08-06',
    });

    await generateText({ model, prompt: SECRET_PROMPT });

    expect(llmCallSpans()).toHaveLength(1);
    const [span] = llmCallSpans();
    expect(span!.ended).toBe(true);
    expect(span!.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.response.model': 'gpt-4o-2024-08-06',
      'gen_ai.usage.input_tokens': 33,
      'gen_ai.usage.output_tokens': 7,
      'quota.resource': 'llm_tokens',
      'quota.allowed': true,
    });
    // The engine's quota.commit span, a child of it, carries the usage too.
    expect(spans.find((recorded) => recorded.name === 'quota.commit')?.attributes).toMatchObject({
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.usage.input_tokens': 33,
      'gen_ai.usage.output_tokens': 7,
    });
    // Neither the prompt nor the completion reaches telemetry, on any span.
    const everything = JSON.stringify(spans.map((recorded) => recorded.attributes));
    expect(everything).not.toContain('swordfish');
    expect(everything).not.toContain('not repeated');
  });

  it('ends the span of a stream with its usage once the stream has finished', async () => {
    const { model } = setup(standIn);
    standIn.reply({ chunks: ['a', 'b', 'c'], usage: { promptTokens: 21, completionTokens: 3 } });

    const result = streamText({ model, prompt: SECRET_PROMPT });
    for await (const _ of result.textStream) {
      // consumed to the end
    }

    const [span] = llmCallSpans();
    expect(span).toMatchObject({ ended: true });
    expect(span!.attributes).toMatchObject({
      'gen_ai.provider.name': 'openai',
      'gen_ai.usage.input_tokens': 21,
      'gen_ai.usage.output_tokens': 3,
      'quota.estimated': false,
    });
  });
});
