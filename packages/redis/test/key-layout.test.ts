import { createQuotaEngine, QuotaConfigError } from '@quotakit/core';
import { RedisStore } from '@quotakit/redis';
import calculateSlot from 'cluster-key-slot';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeId, encodeId, KeyLayout } from '../src/key-layout.js';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  redisAvailable,
  uniquePrefix,
} from './redis-service.js';

const AWKWARD_IDS = [
  'a:b',
  'a',
  '{x}',
  '}{',
  '{',
  '%7D',
  'x}y',
  '__proto__',
  'emoji 🚀',
  ' ',
  'x'.repeat(512),
  '🚀'.repeat(256),
  '\uD800',
  '\uDBFF',
  '\u0000"a"',
];

/** The slot Redis Cluster gives a key (it hashes only the first non-empty {...}). */
const slotOf = (key: string) => calculateSlot(key);

describe('KeyLayout', () => {
  it('puts every key under the prefix tag by default', () => {
    const layout = new KeyLayout('quotakit', undefined);
    const tag = layout.tagOf({ userId: 'u', tenantId: 't' });
    expect(tag).toBe('{quotakit}');
    const keys = [
      layout.counter(tag, 'llm_tokens|per_day|x|user|{u}'),
      layout.reservationIndex(tag),
      layout.reservation(tag, 'id'),
      layout.idempotency(tag, '{k}'),
      layout.claim('c'),
      layout.overrides('user', '}'),
      layout.overrideIndex('agent'),
      layout.overrideCount(),
    ];
    expect(new Set(keys.map(slotOf))).toEqual(new Set([slotOf('quotakit')]));
  });

  it.each(['tenant', 'user'] as const)(
    'tags keys with the %s id when sharding by it',
    (shardBy) => {
      const layout = new KeyLayout('qk', shardBy);
      const field = shardBy === 'tenant' ? 'tenantId' : 'userId';
      const tags = AWKWARD_IDS.map((id) => layout.tagOf({ [field]: id }));
      // One tag per id, and no id can end its tag early or open another one.
      expect(new Set(tags).size).toBe(AWKWARD_IDS.length);
      for (const tag of tags) {
        expect(tag.startsWith(`{qk|${shardBy[0]}|`)).toBe(true);
        expect(tag.indexOf('}')).toBe(tag.length - 1);
        const counter = layout.counter(tag, 'r|per_day|x|user|}{');
        expect(slotOf(counter)).toBe(slotOf(tag));
        expect(slotOf(layout.reservation(tag, 'r'))).toBe(slotOf(tag));
      }
      // A subject without that id, and what is never sharded, use the prefix's slot.
      expect(layout.tagOf({ agentId: 'a' })).toBe('{qk}');
      expect(layout.claim('x').startsWith('{qk}:')).toBe(true);
    },
  );

  it('maps ids to key text one to one, lone surrogates included', () => {
    const encoded = AWKWARD_IDS.map(encodeId);
    expect(new Set(encoded.map((id) => Buffer.from(id).toString('hex'))).size).toBe(
      AWKWARD_IDS.length,
    );
    expect(encoded.map(decodeId)).toEqual(AWKWARD_IDS);
    expect(encodeId('plain id')).toBe('plain id');
  });
});

describe('RedisStore.validateRules', () => {
  const client = { evalsha: async () => null, eval: async () => null };

  it('refuses rules whose scope spans shards, naming the rule', () => {
    const byTenant = new RedisStore({ client, shardBy: 'tenant' });
    expect(() =>
      byTenant.validateRules({
        llm_tokens: [
          { limit: 1, period: 'per_day' },
          { limit: 9, period: 'per_day', scope: 'global' },
        ],
      }),
    ).toThrow(/defaults\.llm_tokens\.1.*'global'/);
    expect(() =>
      byTenant.validateRules({ llm_tokens: { limit: 1, period: 'per_day', scope: 'agent' } }),
    ).not.toThrow();
    const byUser = new RedisStore({ client, shardBy: 'user' });
    for (const scope of ['tenant', 'agent', 'global'] as const) {
      expect(() =>
        byUser.validateRules([{ resource: 'llm_requests', scope }], 'overrides'),
      ).toThrow(QuotaConfigError);
    }
    expect(() => byUser.validateRules([{ scope: 'run' }, {}])).not.toThrow();
  });

  it('makes the engine refuse crossing rules at construction and on setQuota', async () => {
    const store = new RedisStore({ client, shardBy: 'user' });
    expect(() =>
      createQuotaEngine({
        store,
        defaults: { llm_tokens: { limit: 9, period: 'per_day', scope: 'global' } },
      }),
    ).toThrow(/at defaults\.llm_tokens: a 'global' rule/);
    expect(() =>
      createQuotaEngine({
        store,
        overrides: { tenants: { t1: { llm_tokens: { limit: 9, period: 'per_day' } } } },
      }),
    ).toThrow(expect.objectContaining({ path: 'overrides.tenants.t1.llm_tokens' }));
    const engine = createQuotaEngine({
      store,
      defaults: { llm_tokens: { limit: 9, period: 'per_day' } },
    });
    await expect(
      engine.setQuota({
        scope: 'tenant',
        id: 't',
        resource: 'llm_tokens',
        limit: 1,
        period: 'per_day',
      }),
    ).rejects.toThrow(/'tenant'/);
    await expect(
      engine.setQuota({
        scope: 'agent',
        id: 'a',
        resource: 'llm_tokens',
        limit: 1,
        period: 'per_day',
      }),
    ).rejects.toBeInstanceOf(QuotaConfigError);
  });

  it('accepts every rule without shardBy', () => {
    const store = new RedisStore({ client });
    expect(() =>
      store.validateRules({ llm_tokens: { limit: 1, period: 'per_day', scope: 'global' } }),
    ).not.toThrow();
  });
});

describeWithRedis('RedisStore key layout in Redis', () => {
  const prefix = uniquePrefix('layout');
  let client: Redis;

  beforeAll(() => {
    client = connect();
  });
  afterAll(async () => {
    if (!redisAvailable) return;
    await deleteKeys(client, prefix);
    await client.quit();
  });

  const keysOf = async (pattern: string) => {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
    return found;
  };

  it("keeps each user's keys in its own slot with shardBy 'user', and users apart", async () => {
    const engine = createQuotaEngine({
      store: new RedisStore({
        client,
        prefix: `${prefix}-user`,
        shardBy: 'user',
        timeoutMs: 5_000,
      }),
      defaults: { llm_tokens: { limit: 1_000, period: 'per_day' } },
    });
    for (const [index, userId] of AWKWARD_IDS.entries()) {
      await engine.consume({ userId, amounts: { llm_tokens: index + 1 } });
      await engine.reserve({ userId, amounts: { llm_tokens: 1 }, ttlMs: 60_000 });
    }
    for (const [index, userId] of AWKWARD_IDS.entries()) {
      expect((await engine.getQuotaStatus('llm_tokens', { userId })).used).toBe(index + 2);
    }
    const keys = await keysOf(`{${prefix}-user|u|*`);
    // Per user: a counter, a reservation record and the reservation index, in one slot.
    const slots = new Map<number, number>();
    for (const key of keys) slots.set(slotOf(key), (slots.get(slotOf(key)) ?? 0) + 1);
    expect(keys.length).toBe(AWKWARD_IDS.length * 3);
    expect([...slots.values()].every((count) => count % 3 === 0)).toBe(true);
    expect(slots.size).toBeGreaterThan(AWKWARD_IDS.length / 2);
  });

  it('keeps every key in the prefix slot by default', async () => {
    const engine = createQuotaEngine({
      store: new RedisStore({ client, prefix: `${prefix}-one`, timeoutMs: 5_000 }),
      defaults: {
        llm_tokens: [
          { limit: 1_000, period: 'per_day' },
          { limit: 9_000, period: 'per_day', scope: 'global' },
        ],
      },
    });
    for (const userId of AWKWARD_IDS) {
      await engine.reserve({ userId, tenantId: userId, amounts: { llm_tokens: 1 } });
      await engine.recordUsage({
        userId,
        resource: 'llm_tokens',
        amount: 1,
        idempotencyKey: userId,
      });
    }
    await engine.setQuota({
      scope: 'tenant',
      id: '{x}',
      resource: 'llm_tokens',
      limit: 5,
      period: 'per_day',
    });
    const keys = await keysOf(`{${prefix}-one}*`);
    expect(keys.length).toBeGreaterThan(AWKWARD_IDS.length * 3);
    expect(new Set(keys.map(slotOf))).toEqual(new Set([slotOf(`${prefix}-one`)]));
    expect(await engine.listQuotas({ id: '{x}' })).toHaveLength(1);
  });

  it("refuses a global counter at request time with shardBy 'tenant': unknown, and a warning once", async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const store = new RedisStore({ client, prefix: `${prefix}-refused`, shardBy: 'tenant' });
      // An engine normally refuses such a rule at construction (checkRules). One that does
      // not know the hook (an older core, say) still cannot write across shards.
      Object.defineProperty(store, 'checkRules', { value: undefined });
      const engine = createQuotaEngine({
        store,
        failureMode: 'closed',
        defaults: { llm_requests: { limit: 10, period: 'per_day', scope: 'global' } },
      });
      for (let i = 0; i < 3; i++) {
        const decision = await engine.consume({ tenantId: 't', amounts: { llm_requests: 1 } });
        expect(decision).toMatchObject({
          allowed: false,
          results: { llm_requests: { status: 'unknown' } },
        });
      }
      await expect(
        store.consume({
          now: Date.now(),
          subject: { tenantId: 't' },
          counters: [{ key: 'llm_requests|per_day|x|global|', amount: 1, ttlMs: 1000 }],
          limits: [],
        }),
      ).rejects.toThrow(QuotaConfigError);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/'global' rule .* shardBy 'tenant'/);
      expect(await keysOf(`{${prefix}-refused*`)).toEqual([]);
    } finally {
      warn.mockRestore();
    }
  });
});
