import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQuotaEngine } from '../engine.js';
import { isStaleOverridesError } from '../errors.js';
import type { QuotaStore, StoreCounter, StoreLimit } from '../store.js';
import type { Subject } from '../subject.js';
import type { UsageEvent } from '../usage-ledger.js';

/** Options of {@link describeStoreContract}. */
export interface StoreContractOptions {
  /** Disposes the store after the suite (close connections). Defaults to `store.close()`. */
  dispose?: (store: QuotaStore) => Promise<void> | void;
  /**
   * Operations fired at once in the race tests. Defaults to `2_000`; the engine-level race
   * fires five times as many against a limit of a tenth.
   */
  concurrency?: number;
  /**
   * The store keeps its own usage ledger (`store.ledger`, written atomically with the
   * counters): the suite then also checks that every recorded amount reaches it exactly once,
   * and nothing refused or duplicated does. Defaults to `false`.
   */
  ledger?: boolean;
  /**
   * Engines on the store see one another's run-time quotas at their next decision, not after
   * `overrideCacheTtlMs`: the store is in-process, or versions its overrides
   * (`listVersionedOverrides`, checked here too when present). Defaults to `true`; false for
   * a store that cannot (a RedisStore sharded over a cluster).
   */
  freshOverrides?: boolean;
}

const SUBJECT: Subject = { userId: 'contract' };

/**
 * Registers the store contract as vitest tests: every {@link QuotaStore} must pass it
 * (MemoryStore here, RedisStore and PostgresStore against real servers). Each test uses keys
 * of its own, so a shared server needs no flushing.
 *
 * @example
 * import { describeStoreContract } from '@quotakit/core/testing';
 * describeStoreContract('RedisStore', () => new RedisStore({ client: new Redis() }));
 */
export function describeStoreContract(
  name: string,
  createStore: () => QuotaStore | Promise<QuotaStore>,
  options: StoreContractOptions = {},
): void {
  const concurrency = options.concurrency ?? 2_000;

  describe(`store contract: ${name}`, () => {
    let store: QuotaStore;
    let run = 0;
    // Keys unique to this suite run and test, so that earlier runs on a shared server or
    // other tests cannot interfere.
    const suiteId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    const keys = (...names: string[]) => {
      run += 1;
      return names.map((n) => `contract|${suiteId}|${run}|${n}`);
    };
    const counter = (key: string, amount: number, ttlMs: number | null = 60_000): StoreCounter => ({
      key,
      amount,
      ttlMs,
    });
    const now = 1_800_000_000_000;

    beforeAll(async () => {
      store = await createStore();
    });
    afterAll(async () => {
      if (options.dispose) await options.dispose(store);
      else await store.close?.();
    });

    const read = async (keyList: string[], at = now) =>
      (await store.read({ now: at, subject: SUBJECT, counters: keyList.map((k) => counter(k, 0)) }))
        .values;

    it('reads counters that were never written as 0', async () => {
      const [a, b] = keys('a', 'b');
      expect(await read([a!, b!])).toEqual([0, 0]);
    });

    it('adds every amount when every limit admits, and returns the values before', async () => {
      const [a, b] = keys('a', 'b');
      const limits: StoreLimit[] = [
        { counter: 0, limit: 10 },
        { counter: 1, limit: 10 },
      ];
      const first = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 4), counter(b!, 7)],
        limits,
      });
      expect(first).toMatchObject({ allowed: true, values: [0, 0] });
      const second = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 6), counter(b!, 3)],
        limits,
      });
      expect(second).toMatchObject({ allowed: true, values: [4, 7] });
      expect(await read([a!, b!])).toEqual([10, 10]);
    });

    it('adds nothing when any one limit refuses (all or nothing)', async () => {
      const [a, b] = keys('a', 'b');
      await store.record({
        now,
        subject: SUBJECT,
        counters: [counter(b!, 9)],
        idempotencyTtlMs: 1000,
      });
      const outcome = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 1), counter(b!, 2)],
        limits: [
          { counter: 0, limit: 100 },
          { counter: 1, limit: 10 },
        ],
      });
      expect(outcome).toMatchObject({ allowed: false, values: [0, 9] });
      expect(await read([a!, b!])).toEqual([0, 9]);
    });

    it('refuses when usage is already past a limit, even for a zero amount', async () => {
      const [a] = keys('a');
      await store.record({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 12)],
        idempotencyTtlMs: 1000,
      });
      const outcome = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 0)],
        limits: [{ counter: 0, limit: 10 }],
      });
      expect(outcome.allowed).toBe(false);
    });

    it('counts a counter without a limit but still checks the others', async () => {
      const [shadow, enforced] = keys('shadow', 'enforced');
      const outcome = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(shadow!, 50), counter(enforced!, 5)],
        limits: [{ counter: 1, limit: 5 }],
      });
      expect(outcome.allowed).toBe(true);
      expect(await read([shadow!, enforced!])).toEqual([50, 5]);
    });

    it('keeps fractional amounts exactly', async () => {
      const [a] = keys('cost');
      for (const amount of [0.1, 0.2, 0.25]) {
        await store.consume({
          now,
          subject: SUBJECT,
          counters: [counter(a!, amount)],
          limits: [{ counter: 0, limit: 0.55 }],
        });
      }
      const [value] = await read([a!]);
      expect(value).toBeCloseTo(0.55, 9);
      const refused = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 0.01)],
        limits: [{ counter: 0, limit: 0.55 }],
      });
      expect(refused.allowed).toBe(false);
    });

    it('forgets a counter once its ttlMs has passed by the request clock', async () => {
      const [a] = keys('a');
      await store.record({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 3, 1000)],
        idempotencyTtlMs: 1000,
      });
      expect(await read([a!], now + 999)).toEqual([3]);
      expect(await read([a!], now + 1000)).toEqual([0]);
      const fresh = await store.consume({
        now: now + 1000,
        subject: SUBJECT,
        counters: [counter(a!, 2, 1000)],
        limits: [{ counter: 0, limit: 2 }],
      });
      expect(fresh).toMatchObject({ allowed: true, values: [0] });
    });

    it('keeps counters with a null ttlMs', async () => {
      const [a] = keys('gauge');
      await store.record({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 2, null)],
        idempotencyTtlMs: 1000,
      });
      expect(await read([a!], now + 400 * 86_400_000)).toEqual([2]);
    });

    it('weighs the previous window of a sliding limit', async () => {
      const [current, previous] = keys('current', 'previous');
      await store.record({
        now,
        subject: SUBJECT,
        counters: [counter(previous!, 10)],
        idempotencyTtlMs: 1000,
      });
      const limits: StoreLimit[] = [{ counter: 0, limit: 10, previous: 1, previousWeight: 0.5 }];
      const tooMuch = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(current!, 6), counter(previous!, 0, null)],
        limits,
      });
      expect(tooMuch.allowed).toBe(false);
      const fits = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(current!, 5), counter(previous!, 0, null)],
        limits,
      });
      expect(fits).toMatchObject({ allowed: true, values: [0, 10] });
      expect(await read([current!, previous!])).toEqual([5, 10]);
    });

    it('records unconditionally, once per idempotency key while the key is remembered', async () => {
      const [a] = keys('a');
      const key = `idem-${suiteId}-${run}`;
      const request = {
        now,
        subject: SUBJECT,
        counters: [counter(a!, 5)],
        idempotencyKey: key,
        idempotencyTtlMs: 10_000,
      };
      expect(await store.record(request)).toMatchObject({ duplicate: false, values: [0] });
      expect(await store.record(request)).toMatchObject({ duplicate: true, values: [5] });
      expect(await read([a!])).toEqual([5]);
      const later = await store.record({ ...request, now: now + 10_000 });
      expect(later.duplicate).toBe(false);
      expect(await read([a!], now + 10_000)).toEqual([10]);
    });

    it('never lets a value go below 0', async () => {
      const [a] = keys('gauge');
      await store.record({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 2, null)],
        idempotencyTtlMs: 1000,
      });
      await store.record({
        now,
        subject: SUBJECT,
        counters: [counter(a!, -5, null)],
        idempotencyTtlMs: 1000,
      });
      expect(await read([a!])).toEqual([0]);
    });

    it('holds a reservation until it is settled, then returns it and adds the actual amounts', async () => {
      const [a, b] = keys('a', 'b');
      const id = `res-${suiteId}-${run}`;
      const held = await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 1), counter(b!, 500)],
        limits: [{ counter: 1, limit: 1000 }],
        hold: { id, ttlMs: 30_000 },
      });
      expect(held.allowed).toBe(true);
      expect(await read([a!, b!])).toEqual([1, 500]);
      const settled = await store.settle({
        now: now + 10,
        subject: SUBJECT,
        reservationId: id,
        counters: [counter(a!, 1), counter(b!, 720)],
      });
      expect(settled).toMatchObject({ found: true, values: [0, 0] });
      expect(await read([a!, b!])).toEqual([1, 720]);
      const again = await store.settle({
        now: now + 20,
        subject: SUBJECT,
        reservationId: id,
        counters: [],
      });
      expect(again.found).toBe(false);
      expect(await read([a!, b!])).toEqual([1, 720]);
    });

    it('returns a reservation by itself once its ttlMs has passed', async () => {
      const [a] = keys('a');
      const id = `res-${suiteId}-${run}`;
      await store.consume({
        now,
        subject: SUBJECT,
        counters: [counter(a!, 3, null)],
        limits: [{ counter: 0, limit: 3 }],
        hold: { id, ttlMs: 5_000 },
      });
      expect(await read([a!], now + 4_999)).toEqual([3]);
      expect(await read([a!], now + 5_000)).toEqual([0]);
      const settled = await store.settle({
        now: now + 6_000,
        subject: SUBJECT,
        reservationId: id,
        counters: [counter(a!, 2, null)],
      });
      expect(settled.found).toBe(false);
      expect(await read([a!], now + 6_000)).toEqual([2]);
    });

    it('keeps keys that differ only in awkward characters apart', async () => {
      const ids = [
        'a:b',
        'a',
        '{x}',
        '__proto__',
        'constructor',
        'emoji 🚀',
        ' ',
        'x'.repeat(512),
        '😀'.repeat(512),
      ];
      const base = keys('id')[0]!;
      for (const [index, id] of ids.entries()) {
        await store.record({
          now,
          subject: { userId: id },
          counters: [counter(`${base}|${id}`, index + 1)],
          idempotencyTtlMs: 1000,
        });
      }
      const values = await read(ids.map((id) => `${base}|${id}`));
      expect(values).toEqual(ids.map((_, index) => index + 1));
    });

    it(`admits exactly the limit when ${concurrency} consumes race`, async () => {
      const [a] = keys('race');
      const limit = Math.floor(concurrency / 4);
      const outcomes = await Promise.all(
        Array.from({ length: concurrency }, () =>
          store.consume({
            now,
            subject: SUBJECT,
            counters: [counter(a!, 1)],
            limits: [{ counter: 0, limit }],
          }),
        ),
      );
      expect(outcomes.filter((o) => o.allowed)).toHaveLength(limit);
      expect(await read([a!])).toEqual([limit]);
    });

    it(`admits exactly the limit when ${concurrency} reservations race, and settles them all`, async () => {
      const [a] = keys('race');
      const limit = Math.floor(concurrency / 4);
      const ids = Array.from({ length: concurrency }, (_, i) => `race-${suiteId}-${run}-${i}`);
      const outcomes = await Promise.all(
        ids.map((id) =>
          store.consume({
            now,
            subject: SUBJECT,
            counters: [counter(a!, 1)],
            limits: [{ counter: 0, limit }],
            hold: { id, ttlMs: 60_000 },
          }),
        ),
      );
      expect(outcomes.filter((o) => o.allowed)).toHaveLength(limit);
      await Promise.all(
        ids.map((id) => store.settle({ now, subject: SUBJECT, reservationId: id, counters: [] })),
      );
      expect(await read([a!])).toEqual([0]);
    });

    it('stores, finds, lists and removes run-time overrides by scope and id', async () => {
      const id = `ovr-${suiteId}:{x} 🚀`;
      const other = `ovr-${suiteId}-other`;
      const rule = { limit: 5, period: 'per_day' as const, scope: 'user' as const };
      await store.setOverride({ scope: 'user', id, resource: 'llm_tokens', rules: [rule] });
      await store.setOverride({
        scope: 'agent',
        id,
        resource: 'llm_tokens',
        rules: [{ ...rule, scope: 'agent' }],
      });
      await store.setOverride({
        scope: 'user',
        id: other,
        resource: 'llm_requests',
        rules: [rule],
      });
      const found = await store.getOverrides({ subject: { userId: id } });
      expect(found).toEqual([{ scope: 'user', id, resource: 'llm_tokens', rules: [rule] }]);
      const both = await store.getOverrides({ subject: { userId: id, agentId: id } });
      expect(both.map((o) => o.scope).sort()).toEqual(['agent', 'user']);
      // Replacing keeps one override per (scope, id, resource).
      const replaced = { ...rule, limit: 7, algorithm: 'sliding' as const };
      await store.setOverride({ scope: 'user', id, resource: 'llm_tokens', rules: [replaced] });
      expect(await store.getOverrides({ subject: { userId: id } })).toEqual([
        { scope: 'user', id, resource: 'llm_tokens', rules: [replaced] },
      ]);
      const listed = await store.listOverrides({ scope: 'user', id });
      expect(listed).toHaveLength(1);
      expect((await store.listOverrides({ id })).length).toBe(2);
      expect(await store.removeOverride({ scope: 'user', id, resource: 'llm_tokens' })).toBe(true);
      expect(await store.removeOverride({ scope: 'user', id, resource: 'llm_tokens' })).toBe(false);
      expect(await store.getOverrides({ subject: { userId: id } })).toEqual([]);
      await store.removeOverride({ scope: 'agent', id, resource: 'llm_tokens' });
      await store.removeOverride({ scope: 'user', id: other, resource: 'llm_requests' });
    });

    it('grants a claim once until its ttlMs passes, even when claims race', async () => {
      const key = `claim-${suiteId}-${run}`;
      const claims = await Promise.all(
        Array.from({ length: 50 }, () => store.claim({ now, key, ttlMs: 1_000 })),
      );
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.claim({ now: now + 999, key, ttlMs: 1_000 })).toBe(false);
      expect(await store.claim({ now: now + 1_000, key, ttlMs: 1_000 })).toBe(true);
    });

    describe('through the engine', () => {
      it(`admits exactly 1 in 10 of ${concurrency * 5} concurrent consumes`, async () => {
        let clock = now;
        const engine = createQuotaEngine({
          store,
          clock: () => clock,
          defaults: { llm_requests: { limit: concurrency / 2, period: 'per_day' } },
          // The race is about atomicity: on one row, a durable store takes its consumes one at
          // a time, and on a loaded machine the last of them can wait past the default 10 s,
          // which would answer unknown and, failing open, admit.
          storeTimeoutMs: 300_000,
        });
        const userId = `engine-race-${suiteId}`;
        const decisions = await Promise.all(
          Array.from({ length: concurrency * 5 }, () =>
            engine.consume({ userId, amounts: { llm_requests: 1 } }),
          ),
        );
        const unknown = decisions.filter((d) => d.results.llm_requests!.status === 'unknown');
        expect(unknown, 'no store call timed out or failed').toHaveLength(0);
        expect(decisions.filter((d) => d.allowed)).toHaveLength(concurrency / 2);
        const status = await engine.getQuotaStatus('llm_requests', { userId });
        expect(status).toMatchObject({ used: concurrency / 2, remaining: 0, status: 'at_limit' });
        clock += 86_400_000;
        const nextDay = await engine.getQuotaStatus('llm_requests', { userId });
        expect(nextDay.used).toBe(0);
      }, 120_000);

      it('commits a reservation above and below its estimate, across two engines', async () => {
        const clock = () => now;
        const defaults = { llm_tokens: { limit: 1000, period: 'per_day' as const } };
        const first = createQuotaEngine({ store, clock, defaults });
        const second = createQuotaEngine({ store, clock, defaults });
        const userId = `engine-commit-${suiteId}`;
        const below = await first.reserve({ userId, amounts: { llm_tokens: 400 } });
        const above = await second.reserve({ userId, amounts: { llm_tokens: 400 } });
        expect((await second.getQuotaStatus('llm_tokens', { userId })).used).toBe(800);
        await below.commit({ llm_tokens: 100 });
        await above.commit({ llm_tokens: 650 });
        expect((await first.getQuotaStatus('llm_tokens', { userId })).used).toBe(750);
      });

      it('shows a quota set through one engine to another engine on the store', async () => {
        const clock = () => now;
        const defaults = { llm_tokens: { limit: 1000, period: 'per_day' as const } };
        const first = createQuotaEngine({ store, clock, defaults, overrideCacheTtlMs: 0 });
        const second = createQuotaEngine({ store, clock, defaults, overrideCacheTtlMs: 0 });
        const userId = `engine-override-${suiteId}`;
        await first.setQuota({
          scope: 'user',
          id: userId,
          resource: 'llm_tokens',
          limit: 50,
          period: 'per_day',
        });
        const refused = await second.consume({ userId, amounts: { llm_tokens: 60 } });
        expect(refused.results.llm_tokens).toMatchObject({ allowed: false, limit: 50 });
        await second.removeQuota({ scope: 'user', id: userId, resource: 'llm_tokens' });
        expect((await first.consume({ userId, amounts: { llm_tokens: 60 } })).allowed).toBe(true);
      });

      if (options.freshOverrides !== false) {
        it("shows a quota set through one engine at another engine's next decision", async () => {
          const clock = () => now;
          const defaults = { llm_tokens: { limit: 1000, period: 'per_day' as const } };
          // Default cache times: the second engine lists the quotas, then keeps its listing.
          const first = createQuotaEngine({ store, clock, defaults });
          const second = createQuotaEngine({ store, clock, defaults });
          const userId = `engine-fresh-${suiteId}`;
          const key = { scope: 'user' as const, id: userId, resource: 'llm_tokens' };
          expect((await second.consume({ userId, amounts: { llm_tokens: 10 } })).allowed).toBe(
            true,
          );
          await first.setQuota({ ...key, limit: 50, period: 'per_day' });
          const refused = await second.consume({ userId, amounts: { llm_tokens: 60 } });
          expect(refused.results.llm_tokens).toMatchObject({ allowed: false, limit: 50, used: 10 });
          expect(await second.checkQuota({ userId, resource: 'llm_tokens' })).toMatchObject({
            limit: 50,
          });
          const held = await second.reserve({ userId, amounts: { llm_tokens: 45 } });
          expect(held.allowed).toBe(false);
          await first.removeQuota(key);
          const admitted = await second.reserve({ userId, amounts: { llm_tokens: 45 } });
          expect(admitted.results.llm_tokens).toMatchObject({ allowed: true, limit: 1000 });
          await admitted.release();
          expect((await second.getAllQuotasStatus({ userId })).quotas.llm_tokens).toMatchObject({
            limit: 1000,
            used: 10,
          });
        });

        it('is in-process, or applies nothing for a stale overrides version', async () => {
          if (store.listVersionedOverrides === undefined) {
            // An in-process store is read on every decision (the engine's sync twins).
            expect(
              typeof (store as { getOverridesSync?: unknown }).getOverridesSync,
              'a networked store needs listVersionedOverrides (or freshOverrides: false)',
            ).toBe('function');
            return;
          }
          const [a] = keys('a');
          const limits: StoreLimit[] = [{ counter: 0, limit: 10 }];
          const before = await store.listVersionedOverrides();
          await store.setOverride({
            scope: 'user',
            id: `stale-${suiteId}`,
            resource: 'llm_tokens',
            rules: [{ limit: 5, period: 'per_day' }],
          });
          const after = await store.listVersionedOverrides();
          expect(after.version).not.toBe(before.version);
          expect(after.overrides.some((o) => o.id === `stale-${suiteId}`)).toBe(true);
          const counters = [counter(a!, 3)];
          const stale = {
            now,
            subject: SUBJECT,
            counters,
            limits,
            overridesVersion: before.version,
          };
          for (const attempt of [() => store.consume(stale), () => store.read(stale)]) {
            const error = await attempt().then(
              () => undefined,
              (failure: unknown) => failure,
            );
            expect(isStaleOverridesError(error), String(error)).toBe(true);
          }
          expect(await read([a!])).toEqual([0]);
          const current = { ...stale, overridesVersion: after.version };
          expect(await store.consume(current)).toEqual({ allowed: true, values: [0] });
          expect((await store.read(current)).values).toEqual([3]);
          await store.removeOverride({
            scope: 'user',
            id: `stale-${suiteId}`,
            resource: 'llm_tokens',
          });
          expect((await store.listVersionedOverrides()).version).not.toBe(after.version);
        });
      }

      it('notifies each threshold crossing once across two engines', async () => {
        const clock = () => now;
        const defaults = { llm_requests: { limit: 10, period: 'per_day' as const } };
        const first = createQuotaEngine({ store, clock, defaults });
        const second = createQuotaEngine({ store, clock, defaults });
        const seen: string[] = [];
        first.on('threshold', (event) => void seen.push(`first:${event.status}:${event.used}`));
        second.on('threshold', (event) => void seen.push(`second:${event.status}:${event.used}`));
        const userId = `engine-threshold-${suiteId}`;
        for (let i = 0; i < 12; i++) {
          const engine = i % 2 ? second : first;
          await engine.consume({ userId, amounts: { llm_requests: 1 } });
        }
        await first.close();
        await second.close();
        const statuses = seen.map((entry) => entry.split(':').slice(1).join(':'));
        expect(statuses).toEqual(['approaching_limit:8', 'at_limit:10', 'exceeded:10']);
      });
    });

    // Registered only for stores that keep a ledger: nothing shows up as skipped for others.
    if (options.ledger === true) {
      describe("with the store's own ledger", () => {
        const event = (
          id: string,
          resource: string,
          amount: number,
          userId: string,
        ): UsageEvent => ({
          id: `${suiteId}-${id}`,
          at: new Date(now),
          resource,
          amount,
          userId,
          metadata: { source: 'contract' },
        });
        const eventsOf = async (userId: string) => {
          const found: UsageEvent[] = [];
          const ledger = store.ledger;
          if (ledger === undefined) throw new Error('the store has no ledger');
          for await (const item of ledger.query({
            from: new Date(now - 1),
            to: new Date(now + 86_400_000),
            userId,
          })) {
            found.push(item);
          }
          return found;
        };

        it('writes the usage of an admitted consume, and none of a refused one', async () => {
          const [a] = keys('a');
          const userId = `ledger-consume-${suiteId}`;
          const limits: StoreLimit[] = [{ counter: 0, limit: 10 }];
          const admitted = await store.consume({
            now,
            subject: { userId },
            counters: [counter(a!, 6)],
            limits,
            usage: [event('c1', 'llm_tokens', 6, userId)],
          });
          expect(admitted.allowed).toBe(true);
          const refused = await store.consume({
            now,
            subject: { userId },
            counters: [counter(a!, 6)],
            limits,
            usage: [event('c2', 'llm_tokens', 6, userId)],
          });
          expect(refused.allowed).toBe(false);
          const events = await eventsOf(userId);
          expect(events.map((e) => [e.id, e.amount, e.metadata])).toEqual([
            [`${suiteId}-c1`, 6, { source: 'contract' }],
          ]);
          expect(events[0]?.at.getTime()).toBe(now);
        });

        it("writes a record's usage once per idempotency key", async () => {
          const [a] = keys('a');
          const userId = `ledger-record-${suiteId}`;
          for (const id of ['r1', 'r2']) {
            await store.record({
              now,
              subject: { userId },
              counters: [counter(a!, 2.5)],
              idempotencyKey: `key-${suiteId}`,
              idempotencyTtlMs: 60_000,
              usage: [{ ...event(id, 'cost_usd', 2.5, userId), idempotencyKey: `key-${suiteId}` }],
            });
          }
          expect(await read([a!])).toEqual([2.5]);
          const events = await eventsOf(userId);
          expect(events.map((e) => [e.id, e.amount, e.idempotencyKey])).toEqual([
            [`${suiteId}-r1`, 2.5, `key-${suiteId}`],
          ]);
        });

        it('writes the usage a settle commits', async () => {
          const [a] = keys('a');
          const userId = `ledger-settle-${suiteId}`;
          await store.consume({
            now,
            subject: { userId },
            counters: [counter(a!, 40)],
            limits: [{ counter: 0, limit: 100 }],
            hold: { id: `hold-${suiteId}`, ttlMs: 60_000 },
          });
          expect(await eventsOf(userId)).toEqual([]);
          await store.settle({
            now,
            subject: { userId },
            counters: [counter(a!, 25)],
            reservationId: `hold-${suiteId}`,
            usage: [event('s1', 'llm_tokens', 25, userId)],
          });
          expect(await read([a!])).toEqual([25]);
          expect((await eventsOf(userId)).map((e) => e.amount)).toEqual([25]);
        });

        it('is the ledger of an engine given none, and agrees with its counters', async () => {
          const clock = () => now;
          const defaults = {
            llm_requests: { limit: 100, period: 'per_day' as const },
            llm_tokens: { limit: 10_000, period: 'per_day' as const },
          };
          const engine = createQuotaEngine({ store, clock, defaults });
          const userId = `ledger-engine-${suiteId}`;
          await engine.consume({ userId, amounts: { llm_requests: 1, llm_tokens: 300 } });
          const reservation = await engine.reserve({ userId, amounts: { llm_tokens: 900 } });
          await reservation.commit({ llm_tokens: 700 }, { metadata: { model: 'gpt-4o' } });
          await engine.recordUsage({
            userId,
            resource: 'llm_tokens',
            amount: 50,
            idempotencyKey: `once-${suiteId}`,
          });
          await engine.recordUsage({
            userId,
            resource: 'llm_tokens',
            amount: 50,
            idempotencyKey: `once-${suiteId}`,
          });
          await engine.close();
          const reader = createQuotaEngine({ store, clock, defaults });
          const events: UsageEvent[] = [];
          for await (const item of reader.usageEvents({
            from: new Date(now - 1),
            to: new Date(now + 1),
            userId,
          })) {
            events.push(item);
          }
          const tokens = events.filter((e) => e.resource === 'llm_tokens');
          expect(tokens.map((e) => e.amount)).toEqual([300, 700, 50]);
          expect(tokens[1]?.metadata).toEqual({ model: 'gpt-4o' });
          const status = await reader.getQuotaStatus('llm_tokens', { userId });
          expect(status.used).toBe(tokens.reduce((sum, e) => sum + e.amount, 0));
          await reader.close();
        });
      });
    }
  });
}
