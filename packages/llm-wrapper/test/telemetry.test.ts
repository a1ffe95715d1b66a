import { trace } from '@opentelemetry/api';
import { withQuota } from '@quotakit/llm-wrapper';
import { describe, expect, it } from 'vitest';
import { HI, openaiClient, testEngine } from './helpers.js';
import { recordSpansForFile } from './recording-tracer.js';
import { failingWith, OPENAI_USAGE, standInForFile } from './stand-in/index.js';

const standIn = await standInForFile();
const spans = recordSpansForFile();

describe('telemetry', () => {
  it('records one quota.llm_call span per call with GenAI and quota attributes, no text', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'otel-1' } });
    spans.length = 0;
    const app = trace.getTracer('app');
    await app.startActiveSpan('app.request', async (span) => {
      await openai.chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'a secret prompt' }],
        max_completion_tokens: 100,
      });
      span.end();
    });
    const appSpan = spans.find((span) => span.name === 'app.request');
    const calls = spans.filter((span) => span.name === 'quota.llm_call');
    expect(calls).toHaveLength(1);
    const [call] = calls;
    expect(call?.ended).toBe(true);
    expect(call?.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.response.model': 'gpt-4o-2024-08-06',
      'gen_ai.usage.input_tokens': OPENAI_USAGE.promptTokens,
      'gen_ai.usage.output_tokens': OPENAI_USAGE.completionTokens,
      'quota.resource': 'llm_tokens',
      'quota.status': 'within_limit',
      'quota.allowed': true,
      'quota.limit': 1_000_000,
      'quota.scope': 'user',
    });
    expect(JSON.stringify(spans)).not.toContain('secret');
    // The engine's own spans are children of the caller's span, as is the call's, and carry
    // the GenAI attributes too.
    const reserve = spans.find((span) => span.name === 'quota.reserve');
    const commitSpan = spans.find((span) => span.name === 'quota.commit');
    expect(appSpan).toBeDefined();
    for (const child of [call, reserve, commitSpan]) {
      expect(child?.parentSpanId).toBe(appSpan!.spanId);
    }
    expect(reserve?.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o',
      'quota.allowed': true,
    });
    const commit = spans.find((span) => span.name === 'quota.commit');
    expect(commit?.attributes).toMatchObject({
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.response.model': 'gpt-4o-2024-08-06',
      'gen_ai.usage.input_tokens': OPENAI_USAGE.promptTokens,
      'gen_ai.usage.output_tokens': OPENAI_USAGE.completionTokens,
    });
  });

  it('marks a refused call and a failed call as errors', async () => {
    const engine = testEngine({ llm_tokens: { limit: 10, period: 'per_day' } });
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId: 'otel-2' } });
    spans.length = 0;
    await openai.chat.completions.create({ model: 'gpt-4o', messages: HI }).catch(() => undefined);
    const [refused] = spans.filter((span) => span.name === 'quota.llm_call');
    expect(refused?.attributes).toMatchObject({
      'quota.allowed': false,
      'quota.status': 'exceeded',
    });
    expect(refused?.status?.code).toBe(2);

    const roomy = withQuota(openaiClient(standIn), {
      engine: testEngine(),
      subject: { userId: 'otel-3' },
    });
    spans.length = 0;
    await roomy.chat.completions
      .create({ model: 'gpt-4o', messages: HI }, failingWith(500))
      .catch(() => undefined);
    const [failed] = spans.filter((span) => span.name === 'quota.llm_call');
    expect(failed?.attributes['error.type']).toBe('500');
    expect(failed?.ended).toBe(true);
  });
});
