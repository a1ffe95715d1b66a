import {
  createQuotaEngine,
  QuotaConfigError,
  QuotaStoreError,
  type UsageEvent,
} from '@quotakit/core';
import { PostgresLedger, PostgresStore } from '@quotakit/postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeText, encodeText } from '../src/text-encoding.js';
import {
  createPool,
  describeWithPostgres,
  dropSchema,
  postgresAvailable,
  uniqueSchema,
} from './postgres-service.js';

const schema = uniqueSchema('store');
const pool = postgresAvailable ? createPool() : undefined;
const NOW = Date.UTC(2030, 5, 1, 12);
const DAY = 86_400_000;

let store: PostgresStore;

beforeAll(async () => {
  if (pool === undefined) return;
  store = new PostgresStore({ pool, schema, cleanup: false });
  await store.migrate();
});
afterAll(async () => {
  if (pool === undefined) return;
  await dropSchema(pool, schema);
  await pool.end();
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

const lone = (code: number) => String.fromCharCode(code);
/** Ids PostgreSQL text cannot hold as they are, next to look-alikes it can. */
const AWKWARD_IDS = [
  'a\u0000b',
  'a',
  'ab',
  'a\u0001b',
  'a\u00010b',
  '\u0000',
  '\u0000\u0000',
  `x${lone(0xd800)}`,
  `x${lone(0xdc00)}`,
  'x\ufffd',
  'x\ue000',
  '__proto__',
  'constructor',
  'emoji 🚀 and 👩‍👩‍👧',
  'a:b|{c}',
];

describe('stored text encoding', () => {
  it('keeps ordinary ids verbatim and gives every string a distinct stored form', () => {
    expect(encodeText('user 🚀:{x}')).toBe('user 🚀:{x}');
    const stored = AWKWARD_IDS.map(encodeText);
    expect(new Set(stored).size).toBe(AWKWARD_IDS.length);
    for (const form of stored) {
      expect(form).not.toContain('\u0000');
      // Well-formed UTF-16: every surrogate is half of a pair.
      expect(form).not.toMatch(
        /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/,
      );
    }
    expect(stored.map(decodeText)).toEqual(AWKWARD_IDS);
  });
});

describeWithPostgres('PostgresStore', () => {
  it('counts ids with NUL, U+0001 and lone surrogates apart from their look-alikes, end to end', async () => {
    const engine = createQuotaEngine({
      store,
      clock: () => NOW,
      overrideCacheTtlMs: 0,
      defaults: { llm_requests: { limit: 100, period: 'per_day' } },
    });
    for (const [index, userId] of AWKWARD_IDS.entries()) {
      const decision = await engine.consume({ userId, amounts: { llm_requests: index + 1 } });
      expect(decision.results.llm_requests!.status).not.toBe('unknown');
    }
    for (const [index, userId] of AWKWARD_IDS.entries()) {
      expect((await engine.getQuotaStatus('llm_requests', { userId })).used).toBe(index + 1);
    }
    // The ledger gives the ids back as they were.
    const events = await collect(
      engine.usageEvents({ from: new Date(NOW), to: new Date(NOW + 1) }),
    );
    expect(events.map((event) => event.userId)).toEqual(AWKWARD_IDS);
    // And so do overrides.
    await engine.setQuota({
      scope: 'user',
      id: 'a\u0000b',
      resource: 'llm_requests',
      limit: 1,
      period: 'per_day',
    });
    expect(
      (await engine.consume({ userId: 'a\u0000b', amounts: { llm_requests: 1 } })).allowed,
    ).toBe(false);
    expect((await engine.consume({ userId: 'a', amounts: { llm_requests: 1 } })).allowed).toBe(
      true,
    );
    expect(await store.listOverrides({ id: 'a\u0000b' })).toEqual([
      {
        scope: 'user',
        id: 'a\u0000b',
        resource: 'llm_requests',
        rules: [{ limit: 1, period: 'per_day', scope: 'user' }],
      },
    ]);
    expect(await store.listOverrides({ id: 'a' })).toEqual([]);
  });

  it('takes 512-character ids of any kind', async () => {
    const engine = createQuotaEngine({
      store,
      clock: () => NOW,
      defaults: { llm_requests: { limit: 10, period: 'per_day' } },
    });
    const ids = [
      'x'.repeat(512),
      '🚀'.repeat(256), // 512 UTF-16 units, 1,024 bytes
      '語'.repeat(512), // 1,536 bytes
      '\u0000'.repeat(512), // stored escaped: 1,024 bytes
      lone(0xd800).repeat(512), // stored escaped: 2,560 bytes
    ];
    for (const userId of ids) {
      expect(userId).toHaveLength(512);
      const first = await engine.recordUsage({
        userId,
        agentId: userId,
        resource: 'llm_requests',
        amount: 3,
        idempotencyKey: userId,
      });
      expect(first).toMatchObject({ status: 'within_limit', used: 3 });
      const again = await engine.recordUsage({
        userId,
        agentId: userId,
        resource: 'llm_requests',
        amount: 3,
        idempotencyKey: userId,
      });
      expect(again.used).toBe(3);
    }
    const events = await collect(
      engine.usageEvents({ from: new Date(NOW), to: new Date(NOW + 1), agentId: ids[4] }),
    );
    expect(events.map((event) => [event.userId, event.idempotencyKey])).toEqual([[ids[4], ids[4]]]);
  });

  it('keeps fractional amounts as the same doubles, in counters and the ledger', async () => {
    const engine = createQuotaEngine({
      store,
      clock: () => NOW,
      defaults: { cost_usd: { limit: 0.01, period: 'per_day' } },
    });
    const userId = `cost-${schema}`;
    let expected = 0;
    for (const amount of [0.00475, 0.001, 0.0001234, 1e-9]) {
      const result = await engine.recordUsage({ userId, resource: 'cost_usd', amount });
      expected += amount;
      // The engine reports usage rounded to 1e-6; the store keeps the exact double.
      expect(result.used).toBeCloseTo(expected, 6);
    }
    const { rows } = await pool!.query(
      `SELECT value FROM "${schema}".counters WHERE key LIKE 'cost_usd|%|user|' || $1`,
      [userId],
    );
    expect(rows).toEqual([{ value: expected }]);
    expect(expected).toBe(0.005873401);
    // 0.005873401 used: 0.0042 more does not fit, 0.004 does.
    expect((await engine.consume({ userId, amounts: { cost_usd: 0.0042 } })).allowed).toBe(false);
    expect((await engine.consume({ userId, amounts: { cost_usd: 0.004 } })).allowed).toBe(true);
    const events = await collect(
      engine.usageEvents({ from: new Date(NOW), to: new Date(NOW + 1), userId }),
    );
    expect(events.map((event) => event.amount)).toEqual([0.00475, 0.001, 0.0001234, 1e-9, 0.004]);
  });

  it('writes a settle and its usage events together, and a settle for a lost reservation still records', async () => {
    const userId = `settle-${schema}`;
    const engine = createQuotaEngine({
      store,
      clock: () => NOW,
      defaults: { llm_tokens: { limit: 1_000, period: 'per_day' } },
    });
    const reservation = await engine.reserve({
      userId,
      amounts: { llm_tokens: 600 },
      ttlMs: 1_000,
    });
    const later = createQuotaEngine({
      store,
      clock: () => NOW + 5_000,
      defaults: { llm_tokens: { limit: 1_000, period: 'per_day' } },
    });
    // Expired by the later clock: returned by itself, and the commit still counts.
    expect((await later.getQuotaStatus('llm_tokens', { userId })).used).toBe(0);
    const { expired } = await reservation.commit({ llm_tokens: 700 });
    expect(expired).toBe(false); // committed by the first engine's clock, before the ttl
    expect((await later.getQuotaStatus('llm_tokens', { userId })).used).toBe(700);
    const events: UsageEvent[] = await collect(
      engine.usageEvents({ from: new Date(NOW), to: new Date(NOW + 1), userId }),
    );
    expect(events.map((event) => event.amount)).toEqual([700]);
  });

  it('deletes expired rows by itself every few operations, and returns what was held', async () => {
    const own = uniqueSchema('cleanup');
    const cleaning = new PostgresStore({
      pool: pool!,
      schema: own,
      cleanup: { everyOperations: 5, batchSize: 100, graceMs: 60_000 },
    });
    await cleaning.migrate();
    try {
      const rows = async (table: string) =>
        (await pool!.query(`SELECT count(*)::int AS n FROM "${own}".${table}`)).rows[0].n as number;
      const engineAt = (now: number) =>
        createQuotaEngine({
          store: cleaning,
          clock: () => now,
          defaults: { llm_requests: { limit: 100, period: 'per_minute' } },
        });
      const early = createQuotaEngine({
        store: cleaning,
        clock: () => NOW,
        idempotencyTtlMs: 60_000,
        defaults: { llm_requests: { limit: 100, period: 'per_minute' } },
      });
      for (let i = 0; i < 4; i++) {
        await early.recordUsage({
          userId: `u${i}`,
          resource: 'llm_requests',
          amount: 1,
          idempotencyKey: `k${i}-${own}`,
        });
      }
      const held = await early.reserve({
        userId: 'holder',
        amounts: { llm_requests: 7 },
        ttlMs: 10_000,
      });
      expect(held.allowed).toBe(true);
      expect(await rows('counters')).toBe(5);
      expect(await rows('holds')).toBe(1);
      // A day later by the engine clock: five more operations trigger a cleanup in the
      // background, which deletes the ended windows, the expired keys and the reservation.
      const late = engineAt(NOW + DAY);
      for (let i = 0; i < 5; i++)
        await late.consume({ userId: 'late', amounts: { llm_requests: 1 } });
      await cleaning.close(); // waits for the background cleanup
      expect(await rows('counters')).toBe(1);
      expect(await rows('holds')).toBe(0);
      expect(await rows('reservations')).toBe(0);
      expect(await rows('idempotency_keys')).toBe(0);
      // An expired hold in a live counter is returned, not just dropped.
      const gauge = createQuotaEngine({
        store: cleaning,
        clock: () => NOW,
        defaults: { concurrent_tasks: { limit: 10, period: 'total' } },
      });
      const lease = await gauge.acquire({ userId: 'worker', ttlMs: 1_000 });
      expect(lease.allowed).toBe(true);
      const byHand = await cleaning.cleanup({ now: NOW + 1_000 + 60_000 });
      expect(byHand).toMatchObject({ holds: 1, reservations: 1 });
      const { rows: counters } = await pool!.query(
        `SELECT value FROM "${own}".counters WHERE expires_at IS NULL`,
      );
      expect(counters).toEqual([{ value: 0 }]);
      expect((await gauge.getQuotaStatus('concurrent_tasks', { userId: 'worker' })).used).toBe(0);
    } finally {
      await dropSchema(pool!, own);
    }
  });

  it('skips override lookups while none exist, and sees its own writes at once', async () => {
    const own = uniqueSchema('hint');
    const hinted = new PostgresStore({ pool: pool!, schema: own, overrideHintMs: 60_000 });
    const other = new PostgresStore({ pool: pool!, schema: own });
    const fresh = new PostgresStore({ pool: pool!, schema: own, overrideHintMs: 0 });
    await hinted.migrate();
    try {
      const subject = { userId: 'hinted' };
      const override = {
        scope: 'user' as const,
        id: 'hinted',
        resource: 'llm_tokens',
        rules: [{ limit: 5, period: 'per_day' as const, scope: 'user' as const }],
      };
      expect(await hinted.getOverrides({ subject })).toEqual([]);
      await other.setOverride(override);
      // Another instance's write shows after overrideHintMs; with 0, at once.
      expect(await hinted.getOverrides({ subject })).toEqual([]);
      expect(await fresh.getOverrides({ subject })).toEqual([override]);
      // A write of its own ends the hint.
      await hinted.removeOverride({ scope: 'agent', id: 'nobody', resource: 'llm_tokens' });
      expect(await hinted.getOverrides({ subject })).toEqual([override]);
    } finally {
      await dropSchema(pool!, own);
    }
  });

  it('works on a schema of the longest name PostgreSQL takes, every statement its own', async () => {
    // Prepared statements are named after the schema: cut at 63 bytes, they would share names.
    const base = uniqueSchema('long');
    const own = `${base}_${'x'.repeat(63 - base.length - 1)}`;
    expect(own).toHaveLength(63);
    const longStore = new PostgresStore({ pool: pool!, schema: own });
    await longStore.migrate();
    try {
      const engine = createQuotaEngine({
        store: longStore,
        clock: () => NOW,
        defaults: { llm_requests: { limit: 2, period: 'per_day' } },
      });
      const subject = { userId: 'long' };
      expect((await engine.consume({ ...subject, amounts: { llm_requests: 1 } })).allowed).toBe(
        true,
      );
      await engine.recordUsage({ ...subject, resource: 'llm_requests', amount: 1 });
      expect(await engine.getQuotaStatus('llm_requests', subject)).toMatchObject({
        used: 2,
        status: 'at_limit',
      });
      await engine.setQuota({
        scope: 'user',
        id: 'long',
        resource: 'llm_requests',
        limit: 3,
        period: 'per_day',
      });
      expect(
        (await engine.consume({ ...subject, amounts: { llm_requests: 1 } })).results.llm_requests,
      ).toMatchObject({ allowed: true, limit: 3, used: 3 });
    } finally {
      await dropSchema(pool!, own);
    }
  });

  it('says to migrate when the tables are missing', async () => {
    const missing = new PostgresStore({ pool: pool!, schema: uniqueSchema('missing') });
    const failure = missing.read({
      now: NOW,
      subject: {},
      counters: [{ key: 'k', amount: 0, ttlMs: null }],
    });
    await expect(failure).rejects.toBeInstanceOf(QuotaStoreError);
    await expect(failure).rejects.toThrow(/store\.migrate\(\)/);
    const engine = createQuotaEngine({
      store: missing,
      failureMode: 'closed',
      defaults: { llm_requests: { limit: 5, period: 'per_day' } },
    });
    const decision = await engine.consume({ userId: 'u', amounts: { llm_requests: 1 } });
    expect(decision).toMatchObject({
      allowed: false,
      results: { llm_requests: { status: 'unknown' } },
    });
  });
});

describe('PostgresStore options', () => {
  const fakePool = { connect: async () => ({}), on() {} } as never;

  it('refuses bad options at construction, naming them', () => {
    const bad: Array<[object, string]> = [
      [{}, 'pool'],
      [{ pool: fakePool, schema: 'bad-name' }, 'schema'],
      [{ pool: fakePool, schema: '1abc' }, 'schema'],
      [{ pool: fakePool, schema: 'x'.repeat(64) }, 'schema'],
      [{ pool: fakePool, timeoutMs: 0 }, 'timeoutMs'],
      [{ pool: fakePool, timeoutMs: 1.5 }, 'timeoutMs'],
      [{ pool: fakePool, cleanup: { everyOperations: 0 } }, 'cleanup.everyOperations'],
      [{ pool: fakePool, cleanup: { graceMs: -1 } }, 'cleanup.graceMs'],
      [{ pool: fakePool, overrideHintMs: -5 }, 'overrideHintMs'],
      // A misspelt option would otherwise leave its default silently in place.
      [{ pool: fakePool, timeout: 50 }, 'timeout'],
      [{ pool: fakePool, cleanup: { every: 10 } }, 'cleanup.every'],
      [{ pool: fakePool, preparedStatements: 'no' }, 'preparedStatements'],
    ];
    for (const [options, path] of bad) {
      let thrown: unknown;
      try {
        new PostgresStore(options as never);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(QuotaConfigError);
      expect((thrown as QuotaConfigError).path).toBe(path);
    }
  });

  it('refuses a PostgresLedger option it does not take', () => {
    expect(() => new PostgresLedger({ pool: fakePool, pagesize: 10 } as never)).toThrow(
      'Invalid QuotaKit configuration at pagesize: not an option of PostgresLedger',
    );
    expect(() => new PostgresLedger({ pool: fakePool, pageSize: 10 })).not.toThrow();
  });

  it('uses the documented defaults', () => {
    const defaults = new PostgresStore({ pool: fakePool });
    expect(defaults).toMatchObject({ schema: 'quotakit', timeoutMs: 5_000 });
    expect(defaults.ledger.schema).toBe('quotakit');
  });
});
