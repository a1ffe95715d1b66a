import { withQuota } from '@quotakit/llm-wrapper';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HI, HI_ESTIMATE, openaiClient, testEngine, usageEvents } from './helpers.js';
import { OPENAI_USAGE, type StandInProvider, startStandIn } from './stand-in/index.js';

let standIn: StandInProvider;
beforeAll(async () => {
  standIn = await startStandIn();
});
afterAll(async () => {
  await standIn.close();
});

/** Polls (bounded) until the subject has a usage event for llm_tokens. */
async function tokensCommitted(engine: ReturnType<typeof testEngine>, userId: string) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const events = (await usageEvents(engine, { userId })).filter(
      (e) => e.resource === 'llm_tokens',
    );
    if (events.length > 0) return events;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('nothing was committed');
}

describe('a call its caller never settles', () => {
  it('commits a stream left unread as reserved, once, before the reservation expires', async () => {
    const engine = testEngine();
    const userId = 'abandoned-stream';
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId },
      reservationTtlMs: 300,
    });
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: HI,
      max_completion_tokens: 50,
      stream: true,
    });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next(); // one chunk read, then the caller goes away without cancelling
    const [event, ...more] = await tokensCommitted(engine, userId);
    expect(more).toEqual([]);
    expect(event?.amount).toBe(HI_ESTIMATE + 50);
    expect(event?.metadata).toMatchObject({ estimated: true, abandoned: true });
    // Reading on to the end later settles nothing twice.
    while (!(await iterator.next()).done) {}
    const tokens = (await usageEvents(engine, { userId })).filter(
      (e) => e.resource === 'llm_tokens',
    );
    expect(tokens).toHaveLength(1);
    expect((await engine.getQuotaStatus('llm_tokens', { userId })).used).toBe(HI_ESTIMATE + 50);
  });

  it('commits a call whose promise is never awaited', async () => {
    const engine = testEngine();
    const userId = 'abandoned-promise';
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId },
      reservationTtlMs: 300,
    });
    const before = standIn.requests.length;
    void openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: HI,
      max_completion_tokens: 40,
    });
    const [event] = await tokensCommitted(engine, userId);
    expect(standIn.requests.length).toBe(before + 1);
    expect(event?.amount).toBe(HI_ESTIMATE + 40);
    expect(event?.metadata).toMatchObject({ estimated: true, abandoned: true });
  });

  it('leaves a call settled in time alone', async () => {
    const engine = testEngine();
    const userId = 'settled-in-time';
    const openai = withQuota(openaiClient(standIn), {
      engine,
      subject: { userId },
      reservationTtlMs: 300,
    });
    await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: HI,
      max_completion_tokens: 40,
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const tokens = (await usageEvents(engine, { userId })).filter(
      (e) => e.resource === 'llm_tokens',
    );
    expect(tokens.map((e) => e.amount)).toEqual([
      OPENAI_USAGE.promptTokens + OPENAI_USAGE.completionTokens,
    ]);
    expect(tokens[0]?.metadata.abandoned).toBeUndefined();
  });
});
