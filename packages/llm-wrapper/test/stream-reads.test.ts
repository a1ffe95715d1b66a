import { withQuota } from '@quotakit/llm-wrapper';
import { describe, expect, it } from 'vitest';
import { HI, HI_ESTIMATE, openaiClient, testEngine, tokenEvents, used } from './helpers.js';
import { LONG_SLOW_STREAM, OPENAI_USAGE, REPLY_TEXT, standInForFile } from './stand-in/index.js';

const CHAT_TOKENS = OPENAI_USAGE.promptTokens + OPENAI_USAGE.completionTokens;
/** The chunks a caller sees of a stand-in chat stream: role, one per word, finish. */
const VISIBLE_CHUNKS = REPLY_TEXT.split(' ').length + 2;

const standIn = await standInForFile();

describe('reading a metered stream', () => {
  it('answers reads asked for ahead of time in order, the usage chunk still hidden', async () => {
    const engine = testEngine();
    const userId = 'read-ahead';
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId } });
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      stream: true,
    });
    const iterator = stream[Symbol.asyncIterator]();
    // Every read asked for at once: the hidden usage chunk must not shift any answer.
    const reads = await Promise.all(
      Array.from({ length: VISIBLE_CHUNKS + 3 }, () => iterator.next()),
    );
    const chunks = reads.filter((read) => !read.done).map((read) => read.value);
    expect(chunks).toHaveLength(VISIBLE_CHUNKS);
    expect(reads.slice(VISIBLE_CHUNKS).every((read) => read.done)).toBe(true);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')).toBe(REPLY_TEXT);
    expect(chunks.every((chunk) => chunk.choices.length === 1)).toBe(true);
    expect(await used(engine, { userId })).toEqual({ llm_requests: 1, llm_tokens: CHAT_TOKENS });
  });

  it('settles at once, with the input estimate, when the caller stops before the first read', async () => {
    const engine = testEngine();
    const userId = 'return-first';
    const openai = withQuota(openaiClient(standIn), { engine, subject: { userId } });
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o',
      messages: HI,
      max_completion_tokens: 50,
      stream: true,
    });
    const iterator = stream[Symbol.asyncIterator]();
    expect(await iterator.return?.()).toEqual({ done: true, value: undefined });
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    const tokens = await tokenEvents(engine, { userId });
    expect(tokens.map((event) => event.amount)).toEqual([HI_ESTIMATE]);
    expect(tokens[0]?.metadata).toMatchObject({ estimated: true });
    expect(tokens[0]?.metadata.abandoned).toBeUndefined();
  });

  for (const when of ['in the task that received it', 'in a later task'] as const) {
    it(`settles with the input estimate a stream aborted ${when}, before anyone read it`, async () => {
      const engine = testEngine();
      const userId = `abort-unread-${when}`;
      const openai = withQuota(openaiClient(standIn), { engine, subject: { userId } });
      const stream = await openai.chat.completions.create(
        { model: 'gpt-4o', messages: HI, max_completion_tokens: 50, stream: true },
        LONG_SLOW_STREAM,
      );
      if (when === 'in a later task') await new Promise((resolve) => setTimeout(resolve, 20));
      stream.controller.abort();
      let tokens: Awaited<ReturnType<typeof tokenEvents>> = [];
      for (let attempt = 0; attempt < 50 && tokens.length === 0; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        tokens = await tokenEvents(engine, { userId });
      }
      expect(tokens.map((event) => event.amount)).toEqual([HI_ESTIMATE]);
      expect(tokens[0]?.metadata).toMatchObject({ estimated: true });
      expect(tokens[0]?.metadata.abandoned).toBeUndefined();
    });
  }
});
