import { QuotaExceededError, QuotaValidationError } from '@quotakit/core';
import { withQuota } from '@quotakit/llm-wrapper';
import { runWithQuotaSubject } from '@quotakit/llm-wrapper/node';
import { describe, expect, it } from 'vitest';
import { HI, openaiClient, testEngine, used } from './helpers.js';
import { standInForFile } from './stand-in/index.js';

const standIn = await standInForFile();

describe('subjects', () => {
  it('runWithQuotaSubject charges each concurrent scope to its own subject', async () => {
    const engine = testEngine();
    const openai = withQuota(openaiClient(standIn), { engine });
    const call = () => openai.chat.completions.create({ model: 'gpt-4o', messages: HI });
    await Promise.all([
      runWithQuotaSubject({ userId: 'als-a' }, async () => {
        await call();
        await call();
      }),
      runWithQuotaSubject({ userId: 'als-b', tenantId: 't1' }, () => call()),
    ]);
    expect((await used(engine, { userId: 'als-a' })).llm_requests).toBe(2);
    expect((await used(engine, { userId: 'als-b' })).llm_requests).toBe(1);
  });

  it('reads a subject function per call, falling back to runWithQuotaSubject', async () => {
    const engine = testEngine();
    let current: string | undefined = 'fn-a';
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: () => (current === undefined ? undefined : { userId: current }),
    });
    await openai.chat.completions.create({ model: 'gpt-4o', messages: HI });
    current = 'fn-b';
    await openai.chat.completions.create({ model: 'gpt-4o', messages: HI });
    current = undefined;
    await runWithQuotaSubject({ userId: 'fn-c' }, () =>
      openai.chat.completions.create({ model: 'gpt-4o', messages: HI }),
    );
    for (const userId of ['fn-a', 'fn-b', 'fn-c']) {
      expect((await used(engine, { userId })).llm_requests).toBe(1);
    }
  });

  it('awaits a subject function that returns a promise, and its limits hold', async () => {
    const engine = testEngine({ llm_requests: { limit: 1, period: 'per_day' } });
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: async () => ({ userId: 'async-user' }),
    });
    await openai.chat.completions.create({ model: 'gpt-4o', messages: HI });
    expect((await used(engine, { userId: 'async-user' })).llm_requests).toBe(1);
    const before = standIn.requests.length;
    await expect(
      openai.chat.completions.create({ model: 'gpt-4o', messages: HI }),
    ).rejects.toBeInstanceOf(QuotaExceededError);
    expect(standIn.requests.length).toBe(before);
    // A promise of undefined falls back to runWithQuotaSubject, as undefined does.
    const ambient = withQuota(openaiClient(standIn), {
      engine,
      subject: () => Promise.resolve(undefined),
    });
    await runWithQuotaSubject({ userId: 'async-ambient' }, () =>
      ambient.chat.completions.create({ model: 'gpt-4o', messages: HI }),
    );
    expect((await used(engine, { userId: 'async-ambient' })).llm_requests).toBe(1);
  });

  it.each([
    ['a string', () => 'u1'],
    ['an array', () => [{ userId: 'u1' }]],
    ['null', () => null],
    ['a promise of null', async () => null],
  ])('refuses a subject function that gives %s, sending nothing', async (_, subject) => {
    const openai = withQuota(openaiClient(standIn), {
      engine: testEngine(),
      subject: subject as never,
    });
    const before = standIn.requests.length;
    // Inside runWithQuotaSubject too: only undefined falls back to the ambient subject.
    await expect(
      runWithQuotaSubject({ userId: 'ambient' }, () =>
        openai.chat.completions.create({ model: 'gpt-4o', messages: HI }),
      ),
    ).rejects.toThrow(QuotaValidationError);
    expect(standIn.requests.length).toBe(before);
  });

  it('refuses a call with no subject anywhere, sending nothing', async () => {
    const openai = withQuota(openaiClient(standIn), { engine: testEngine() });
    const before = standIn.requests.length;
    await expect(
      openai.chat.completions.create({ model: 'gpt-4o', messages: HI }),
    ).rejects.toBeInstanceOf(QuotaValidationError);
    expect(standIn.requests.length).toBe(before);
  });
});
