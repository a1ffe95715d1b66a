import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openCallBudget, withQuota } from '@quotakit/llm-wrapper';
import { describe, expect, it } from 'vitest';
import { HI, HI_ESTIMATE, openaiClient, testEngine, tokenEvents } from './helpers.js';
import { OPENAI_USAGE, standInForFile } from './stand-in/index.js';

const standIn = await standInForFile();

/** Polls (bounded) until the subject has a usage event for llm_tokens. */
async function tokensCommitted(engine: ReturnType<typeof testEngine>, userId: string) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const events = await tokenEvents(engine, { userId });
    if (events.length > 0) return events;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('nothing was committed');
}

/** An OpenAI client metered for `userId` whose reservations expire after 300 ms. */
function openaiWithShortReservations(engine: ReturnType<typeof testEngine>, userId: string) {
  return withQuota(openaiClient(standIn), { engine, subject: { userId }, reservationTtlMs: 300 });
}

describe('a call its caller never settles', () => {
  it('commits a stream left unread as reserved, once, before the reservation expires', async () => {
    const engine = testEngine();
    const userId = 'abandoned-stream';
    const openai = openaiWithShortReservations(engine, userId);
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
    const tokens = await tokenEvents(engine, { userId });
    expect(tokens).toHaveLength(1);
    expect((await engine.getQuotaStatus('llm_tokens', { userId })).used).toBe(HI_ESTIMATE + 50);
  });

  it('commits a call whose promise is never awaited', async () => {
    const engine = testEngine();
    const userId = 'abandoned-promise';
    const openai = openaiWithShortReservations(engine, userId);
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
    const openai = openaiWithShortReservations(engine, userId);
    await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: HI,
      max_completion_tokens: 40,
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const tokens = await tokenEvents(engine, { userId });
    expect(tokens.map((e) => e.amount)).toEqual([
      OPENAI_USAGE.promptTokens + OPENAI_USAGE.completionTokens,
    ]);
    expect(tokens[0]?.metadata.abandoned).toBeUndefined();
  });
});

describe('the shared abandonment timer', () => {
  const call = {
    provider: 'openai',
    operation: 'chat',
    model: 'gpt-4o-mini',
    inputTokens: 10,
    maxOutputTokens: 20,
  };

  it('commits every unsettled call before its own reservation expires, whatever its TTL', async () => {
    const engine = testEngine();
    const started = Date.now();
    // Two TTLs (two timers), and a second call on the first timer made later than the first,
    // so that the timer must re-arm after its first sweep.
    const short = await openCallBudget(
      { engine, subject: { userId: 'ttl-300' }, reservationTtlMs: 300 },
      call,
    );
    const long = await openCallBudget(
      { engine, subject: { userId: 'ttl-600' }, reservationTtlMs: 600 },
      call,
    );
    const settled = await openCallBudget(
      { engine, subject: { userId: 'ttl-settled' }, reservationTtlMs: 300 },
      call,
    );
    await settled.commit({ inputTokens: 10, outputTokens: 5 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const later = await openCallBudget(
      { engine, subject: { userId: 'ttl-300-later' }, reservationTtlMs: 300 },
      call,
    );
    const laterStarted = Date.now();

    for (const [userId, deadline] of [
      ['ttl-300', started + 300],
      ['ttl-600', started + 600],
      ['ttl-300-later', laterStarted + 300],
    ] as const) {
      const [event, ...more] = await tokensCommitted(engine, userId);
      expect(more).toEqual([]);
      expect(event?.amount).toBe(30);
      expect(event?.metadata).toMatchObject({ estimated: true, abandoned: true });
      expect(event!.at.getTime()).toBeLessThan(deadline);
    }
    expect([short.settled, long.settled, later.settled]).toEqual([true, true, true]);
    const settledTokens = await tokenEvents(engine, { userId: 'ttl-settled' });
    expect(settledTokens.map((e) => e.amount)).toEqual([15]);
  });

  it('does not keep the process alive', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/unsettled-call.ts', import.meta.url));
    const root = fileURLToPath(new URL('../../..', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], { cwd: root });
    let output = '';
    child.stdout.on('data', (data: Buffer) => {
      output += data.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // The reservation would be committed as abandoned only after nine and a half minutes.
    const timeout = new Promise<'still running'>((resolve) =>
      setTimeout(() => resolve('still running'), 10_000).unref(),
    );
    const outcome = await Promise.race([exited, timeout]);
    if (outcome === 'still running') child.kill();
    expect(outcome).toBe(0);
    expect(output.trim()).toBe('unsettled');
  });
});
