import Anthropic from '@anthropic-ai/sdk';
import { createQuotaEngine } from '@quotakit/core';
import { withQuota } from '@quotakit/llm-wrapper';
import OpenAI from 'openai';
import { describe, expect, expectTypeOf, it } from 'vitest';

describe('withQuota types', () => {
  const engine = createQuotaEngine();
  const openai = new OpenAI({ apiKey: 'test-key', baseURL: 'http://127.0.0.1:9/v1' });
  const anthropic = new Anthropic({ apiKey: 'test-key', baseURL: 'http://127.0.0.1:9' });

  it('returns the exact client type, methods and overloads included', () => {
    const wrappedOpenai = withQuota(openai, { engine, subject: { userId: 'u' } });
    expectTypeOf(wrappedOpenai).toEqualTypeOf<OpenAI>();
    expectTypeOf(wrappedOpenai.chat.completions.create).toEqualTypeOf(
      openai.chat.completions.create,
    );
    expectTypeOf(wrappedOpenai.responses.create).toEqualTypeOf(openai.responses.create);
    const wrappedAnthropic = withQuota(anthropic, { engine, subject: { userId: 'u' } });
    expectTypeOf(wrappedAnthropic).toEqualTypeOf<Anthropic>();
    expectTypeOf(wrappedAnthropic.messages.stream).toEqualTypeOf(anthropic.messages.stream);
    // And it is still the SDK's client at run time, unchanged underneath.
    expect(wrappedOpenai).toBeInstanceOf(OpenAI);
    expect(wrappedAnthropic).toBeInstanceOf(Anthropic);
    expect(openai.chat.completions.create).not.toBe(wrappedOpenai.chat.completions.create);
    expect(Object.hasOwn(openai.chat.completions, 'create')).toBe(false);
  });

  it('refuses at construction what is not a supported client or engine', () => {
    expect(() => withQuota({ models: {} }, { engine, subject: {} })).toThrow(/client/);
    expect(() => withQuota(openai, { engine: {} as never, subject: {} })).toThrow(/engine/);
    expect(() => withQuota(openai, { engine, subject: {}, defaultMaxOutputTokens: -1 })).toThrow(
      /defaultMaxOutputTokens/,
    );
  });

  it('keeps a metered client through withOptions()', () => {
    const wrapped = withQuota(openai, { engine, subject: { userId: 'u' } });
    const copy = wrapped.withOptions({ timeout: 1_000 });
    expect(copy).toBeInstanceOf(OpenAI);
    expect(copy.chat.completions.create).not.toBe(openai.chat.completions.create);
    expect(copy.timeout).toBe(1_000);
  });
});
