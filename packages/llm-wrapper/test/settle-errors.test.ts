import { createQuotaEngine, MemoryStore, type QuotaStore } from '@quotakit/core';
import { withQuota } from '@quotakit/llm-wrapper';
import { describe, expect, it } from 'vitest';
import { HI, openaiClient } from './helpers.js';
import { standInForFile } from './stand-in/index.js';

const standIn = await standInForFile();

/** A MemoryStore seen only through its asynchronous methods, whose settle fails. */
function storeFailingOnSettle(memory = new MemoryStore()): QuotaStore {
  return {
    read: (r) => memory.read(r),
    consume: (r) => memory.consume(r),
    record: (r) => memory.record(r),
    settle: () => Promise.reject(new Error('the store went away')),
    getOverrides: (r) => memory.getOverrides(r),
    setOverride: (o) => memory.setOverride(o),
    removeOverride: (k) => memory.removeOverride(k),
    listOverrides: (f) => memory.listOverrides(f),
    claim: (c) => memory.claim(c),
  };
}

describe('a commit the store cannot take', () => {
  it('still returns the answer, reports the failure to onError and keeps the estimate held', async () => {
    const engine = createQuotaEngine({
      store: storeFailingOnSettle(),
      defaults: { llm_tokens: { limit: 10_000, period: 'per_day' } },
    });
    const errors: unknown[] = [];
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId: 'settle-1' },
      onError: (error) => errors.push(error),
    });
    const reply = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: HI,
      max_completion_tokens: 100,
    });
    expect(reply.choices[0]?.message.content).toBeTruthy();
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/settle|store/i);
    // The hold stays counted until it expires: the input estimate plus the 100-token cap.
    const status = await engine.getQuotaStatus('llm_tokens', { userId: 'settle-1' });
    expect(status.used).toBeGreaterThanOrEqual(100);
  });

  it('rejects an onError that is not a function at construction', () => {
    const engine = createQuotaEngine();
    expect(() =>
      withQuota(openaiClient(standIn), { engine, subject: {}, onError: 'log' as never }),
    ).toThrow(/onError/);
  });
});
