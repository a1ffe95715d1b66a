import type { QuotaStore } from '@quotakit/core';
import { describeStoreContract } from '@quotakit/core/testing';
import { RedisStore } from '@quotakit/redis';
import { afterAll } from 'vitest';
import {
  connect,
  deleteKeys,
  describeWithRedis,
  redisAvailable,
  uniquePrefix,
} from './redis-service.js';

const prefix = uniquePrefix('contract');
const client = redisAvailable ? connect() : undefined;

afterAll(async () => {
  if (client === undefined) return;
  await deleteKeys(client, prefix);
  await client.quit();
});

/**
 * The store with every request made for one tenant. The contract writes a counter for one
 * subject and reads it back for another (its awkward-ids test), which only holds within one
 * shard: this puts the whole suite in one tenant's shard, through the sharded key layout.
 */
function inTenant(store: RedisStore, tenantId: string): QuotaStore {
  const own = <T extends { subject: object }>(request: T): T => ({
    ...request,
    subject: { ...request.subject, tenantId },
  });
  return {
    read: (request) => store.read(own(request)),
    consume: (request) => store.consume(own(request)),
    record: (request) => store.record(own(request)),
    settle: (request) => store.settle(own(request)),
    getOverrides: (request) => store.getOverrides(request),
    setOverride: (override) => store.setOverride(override),
    removeOverride: (key) => store.removeOverride(key),
    listOverrides: (filter) => store.listOverrides(filter),
    claim: (request) => store.claim(request),
  };
}

describeWithRedis('RedisStore', () => {
  // The race tests fire thousands of scripts at once while other test files load the same
  // server: a generous timeout keeps a slow moment from reading as an outage.
  describeStoreContract(
    'RedisStore',
    () => new RedisStore({ client: client!, prefix, timeoutMs: 10_000 }),
  );
  // Sharded, the overrides' version is in another slot than the operations: engines see
  // another's change within their overrideCacheTtlMs (see RedisStore.listVersionedOverrides).
  describeStoreContract(
    "RedisStore, shardBy 'tenant', in the shard of tenant {t}:1 🚀",
    () =>
      inTenant(
        new RedisStore({ client: client!, prefix, timeoutMs: 10_000, shardBy: 'tenant' }),
        '{t}:1 🚀',
      ),
    { freshOverrides: false },
  );
});
