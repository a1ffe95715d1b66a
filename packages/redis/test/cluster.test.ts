import { createQuotaEngine } from '@quotakit/core';
import { RedisStore } from '@quotakit/redis';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canStartRedis, SpareCluster } from './spare-redis.js';

const REQUIRED = process.env.QUOTAKIT_REQUIRE_SERVICES === '1';
if (!canStartRedis && REQUIRED) {
  throw new Error('redis-server not found, and QUOTAKIT_REQUIRE_SERVICES=1 requires it');
}

// With QUOTAKIT_REQUIRE_SERVICES=1 (CI) a missing redis-server fails these tests instead.
describe.skipIf(!canStartRedis && process.env.QUOTAKIT_REQUIRE_SERVICES !== '1')(
  canStartRedis
    ? 'RedisStore on a Redis Cluster (three masters of its own)'
    : 'RedisStore on a Redis Cluster (redis-server not found: skipping)',
  () => {
    let spare: SpareCluster;
    let cluster: Cluster;

    beforeAll(async () => {
      spare = await SpareCluster.start();
      cluster = new Cluster(spare.ports.map((port) => ({ host: '127.0.0.1', port })));
      cluster.on('error', () => {});
      const end = Date.now() + 20_000;
      while (cluster.status !== 'ready' && Date.now() < end) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }, 60_000);
    afterAll(async () => {
      await cluster?.quit();
      spare?.stop();
    });

    /** Keys held by each master. */
    const keysPerMaster = () => Promise.all(cluster.nodes('master').map((node) => node.dbsize()));

    it('keeps every key in the prefix slot by default, global rules included', async () => {
      const engine = createQuotaEngine({
        store: new RedisStore({ client: cluster, prefix: 'one-slot', timeoutMs: 10_000 }),
        defaults: {
          llm_requests: [
            { limit: 1_000, period: 'per_day' },
            { limit: 500, period: 'per_day', scope: 'global' },
          ],
        },
      });
      const decisions = await Promise.all(
        Array.from({ length: 2_000 }, (_, i) =>
          engine.consume({
            userId: `u${i % 40}`,
            tenantId: `t${i % 7}`,
            amounts: { llm_requests: 1 },
          }),
        ),
      );
      expect(decisions.filter((d) => d.results.llm_requests!.status === 'unknown')).toEqual([]);
      expect(decisions.filter((d) => d.allowed)).toHaveLength(500);
      expect((await keysPerMaster()).filter((count) => count > 0)).toHaveLength(1);
    });

    it("spreads tenants over the masters with shardBy 'tenant' and admits exactly per tenant", async () => {
      const store = new RedisStore({
        client: cluster,
        prefix: 'by-tenant',
        timeoutMs: 10_000,
        shardBy: 'tenant',
      });
      const defaults = {
        llm_requests: [
          { limit: 100, period: 'per_day' as const, scope: 'tenant' as const },
          { limit: 1_000, period: 'per_day' as const },
        ],
        llm_tokens: { limit: 1_000, period: 'per_day' as const },
      };
      store.validateRules(defaults);
      const engine = createQuotaEngine({ store, defaults });
      const tenants = Array.from({ length: 30 }, (_, i) => `tenant {${i}}`);
      const decisions = await Promise.all(
        tenants.flatMap((tenantId) =>
          Array.from({ length: 300 }, (_, j) =>
            engine
              .consume({ tenantId, userId: `${tenantId}/u${j % 10}`, amounts: { llm_requests: 1 } })
              .then((decision) => ({ tenantId, decision })),
          ),
        ),
      );
      expect(
        decisions.filter(({ decision }) => decision.results.llm_requests!.status === 'unknown'),
      ).toEqual([]);
      for (const tenantId of tenants) {
        const admitted = decisions.filter((d) => d.tenantId === tenantId && d.decision.allowed);
        expect(admitted).toHaveLength(100);
      }
      expect((await keysPerMaster()).filter((count) => count > 0).length).toBeGreaterThan(1);

      // Reservations, overrides (in the prefix's slot) and claims work across the cluster too.
      const subject = { tenantId: tenants[0]!, userId: 'committer' };
      const reservation = await engine.reserve({ ...subject, amounts: { llm_tokens: 300 } });
      expect(reservation.allowed).toBe(true);
      expect((await reservation.commit({ llm_tokens: 120 })).expired).toBe(false);
      expect((await engine.getQuotaStatus('llm_tokens', subject)).used).toBe(120);
      await engine.setQuota({
        scope: 'user',
        id: 'committer',
        resource: 'llm_tokens',
        limit: 100,
        period: 'per_day',
      });
      const refused = await engine.consume({ ...subject, amounts: { llm_tokens: 1 } });
      expect(refused.results.llm_tokens).toMatchObject({
        allowed: false,
        limit: 100,
        status: 'exceeded',
      });
      expect(await store.claim({ now: 0, key: 'once', ttlMs: 1_000 })).toBe(true);
      expect(await store.claim({ now: 1, key: 'once', ttlMs: 1_000 })).toBe(false);
    });
  },
);
