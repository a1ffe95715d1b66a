import { MemoryStore, QuotaStoreError } from '@quotakit/core';
import { type RedisScriptClient, RedisStore } from '@quotakit/redis';
import { describe, expect, it } from 'vitest';

// node-redis's error reply classes, which set no `name` of their own.
class ErrorReply extends Error {}
class SimpleError extends ErrorReply {}

const request = {
  now: 1_800_000_000_000,
  subject: { userId: 'u' },
  counters: [{ key: 'llm_requests|per_day|x|user|u', amount: 1, ttlMs: 60_000 }],
  limits: [{ counter: 0, limit: 10 }],
};

/** A client whose every EVALSHA / EVAL answers with `answer` (and records what was sent). */
function scriptedClient(answer: (command: 'evalsha' | 'eval') => Promise<unknown>) {
  const sent: string[] = [];
  const client: RedisScriptClient & { status: string } = {
    status: 'ready',
    evalsha: () => {
      sent.push('evalsha');
      return answer('evalsha');
    },
    eval: () => {
      sent.push('eval');
      return answer('eval');
    },
  };
  return { client, sent };
}

describe('RedisStore with other clients and failures', () => {
  it('falls back to EVAL when a node-redis client answers NOSCRIPT', async () => {
    const { client, sent } = scriptedClient(async (command) => {
      if (command === 'evalsha') throw new SimpleError('NOSCRIPT No matching script.');
      return [1, -1, 0];
    });
    const outcome = await new RedisStore({ client }).consume(request);
    expect(outcome).toEqual({ allowed: true, values: [0] });
    expect(sent).toEqual(['evalsha', 'eval']);
  });

  it('reports an error reply as a store error, without turning to the insurance store', async () => {
    const { client } = scriptedClient(async () => {
      throw new ErrorReply("CROSSSLOT Keys in request don't hash to the same slot");
    });
    const store = new RedisStore({ client, insurance: new MemoryStore() });
    const failure = await store.consume(request).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(QuotaStoreError);
    expect(String(failure)).toMatch(/CROSSSLOT/);
  });

  it('turns to the insurance store when the connection fails under a call', async () => {
    const { client } = scriptedClient(async () => {
      throw new Error('Connection is closed.');
    });
    const store = new RedisStore({ client, insurance: new MemoryStore() });
    expect(await store.consume(request)).toEqual({ allowed: true, values: [0] });
    expect(await store.consume(request)).toEqual({ allowed: true, values: [1] });
  });

  it('rejects within timeoutMs when no answer comes, then sends one probe at a time', async () => {
    const { client, sent } = scriptedClient(() => new Promise(() => {}));
    const store = new RedisStore({ client, timeoutMs: 50 });
    const started = performance.now();
    await expect(store.consume(request)).rejects.toThrow(/did not answer consume within 50 ms/);
    expect(performance.now() - started).toBeLessThan(500);
    // Stalled: one probe goes out, every other call fails at once instead of queueing.
    const calls = Array.from({ length: 20 }, () => store.consume(request).catch((e: unknown) => e));
    const failures = await Promise.all(calls);
    expect(sent).toEqual(['evalsha', 'evalsha']);
    expect(failures.filter((f) => /not available/.test(String(f)))).toHaveLength(19);
  });

  it('times out each unanswered call on its own deadline, never before it', async () => {
    // Every other call is never answered; the others are, 10 ms later.
    const { client, sent } = scriptedClient(() =>
      sent.length % 2 === 1
        ? new Promise(() => {})
        : new Promise((resolve) => setTimeout(() => resolve([1, -1, 0]), 10)),
    );
    const store = new RedisStore({ client, timeoutMs: 60 });
    const started = performance.now();
    const settledAfter = (call: Promise<unknown>) =>
      call.then(
        () => ['answered', performance.now() - started] as const,
        () => ['timed out', performance.now() - started] as const,
      );
    const first = settledAfter(store.consume(request));
    const second = settledAfter(store.consume(request));
    await new Promise((resolve) => setTimeout(resolve, 30));
    // Measured, not assumed: a 30 ms timer may fire a fraction of a millisecond early by
    // performance.now(), which the store's deadlines are kept by.
    const thirdMadeAt = performance.now() - started;
    const third = settledAfter(store.consume(request));
    const [one, two, three] = await Promise.all([first, second, third]);
    expect(one[0]).toBe('timed out');
    expect(one[1]).toBeGreaterThanOrEqual(60);
    expect(two[0]).toBe('answered');
    expect(three[0]).toBe('timed out');
    // On its own deadline, 60 ms after it was made, not the first call's.
    expect(three[1] - thirdMadeAt).toBeGreaterThanOrEqual(60);
    expect(three[1]).toBeLessThan(500);
  });

  it('sends again at once on a new connection after a stall', async () => {
    // The first two calls are never answered; later ones are.
    const { client, sent } = scriptedClient(() =>
      sent.length <= 2 ? new Promise(() => {}) : Promise.resolve([1, -1, 0]),
    );
    const store = new RedisStore({ client, timeoutMs: 50 });
    await expect(store.consume(request)).rejects.toThrow(/within 50 ms/);
    await expect(store.consume(request)).rejects.toThrow(/within 50 ms/); // the probe
    await expect(store.consume(request)).rejects.toThrow(/not available/); // probe still out
    client.status = 'reconnecting';
    await expect(store.consume(request)).rejects.toThrow(/client reconnecting/);
    client.status = 'ready';
    const outcomes = await Promise.all([store.consume(request), store.consume(request)]);
    expect(outcomes.map((outcome) => outcome.allowed)).toEqual([true, true]);
    expect(sent).toHaveLength(4);
  });

  it('sends nothing while the client is reconnecting', async () => {
    const { client, sent } = scriptedClient(async () => [1, -1, 0]);
    client.status = 'reconnecting';
    const store = new RedisStore({ client });
    await expect(store.consume(request)).rejects.toThrow(/client reconnecting/);
    client.status = 'ready';
    expect((await store.consume(request)).allowed).toBe(true);
    expect(sent).toEqual(['evalsha']);
  });
});
