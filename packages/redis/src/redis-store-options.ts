import {
  isQuotaStore,
  optionKeys,
  QuotaConfigError,
  type QuotaStore,
  rejectUnknownOptions,
} from '@quotakit/core';
import type { ShardBy } from './key-layout.js';
import type { RedisScriptClient } from './redis-client.js';

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /**
   * An ioredis `Redis` or `Cluster` client (or any {@link RedisScriptClient}). The store
   * never connects, configures or quits it: the application owns it.
   */
  client: RedisScriptClient;
  /**
   * Starts every key, inside its hash tag: `{quotakit}:c:...`. Stores with different prefixes
   * on one Redis never see each other's data. 1 to 64 characters, none of `{`, `}` or `|`.
   * Defaults to `'quotakit'`.
   */
  prefix?: string;
  /**
   * Longest wait for Redis per operation, in ms. Past it the operation rejects with a
   * QuotaStoreError (the engine's decision becomes `unknown` and follows its `failureMode`),
   * or the insurance store answers. The command may still run later in Redis: a consume that
   * timed out can have been counted although its caller was told `unknown`. Defaults to `100`.
   */
  timeoutMs?: number;
  /**
   * A store (a `MemoryStore`) that answers counting operations while Redis is down or does not
   * answer in time, so that limits still hold per process instead of every decision being
   * `unknown`. Nothing it counted is copied to Redis afterwards; overrides are never written
   * to it. Defaults to none.
   */
  insurance?: QuotaStore;
  /**
   * Spreads keys over a Redis Cluster by the subject's tenant or user id (`'tenant'`,
   * `'user'`); by default every key carries the prefix's hash tag and sits in one slot
   * (correct everywhere, not spread). A rule whose scope spans shards (global; tenant and
   * agent when sharding by user) cannot work then: check rules with
   * {@link RedisStore.validateRules}; operations that meet one are refused with a
   * QuotaConfigError. A subject without the id uses the prefix's slot. Defaults to none.
   */
  shardBy?: ShardBy;
  /**
   * Every reply from Redis says how many run-time overrides exist; while the last reply, at
   * most this many ms old, said none, `getOverrides` answers at once, which saves a round trip
   * per new subject. Another instance's first `setQuota` thus shows here within this time
   * (on top of the engine's `overrideCacheTtlMs`). `0` always asks Redis. Not available with
   * `shardBy` (the count sits in another slot). Defaults to `1_000`.
   */
  overrideHintMs?: number;
  /**
   * With an ioredis `Redis` client, the script calls made in the same tick after the first
   * (many, on a busy server: each reply resumes many requests at once) are written to the
   * socket this many at a time rather than one system call each, while other calls are in
   * flight; the first, and any call made while none is in flight, is written at once.
   * Commands of your own sent on the same client in that tick wait with the batch, at most
   * until the tick ends. `1` writes every call at once. No effect on a `Cluster`. Defaults to
   * `8`.
   *
   * @example
   * new RedisStore({ client: new Redis(), writeBatchSize: 16 });
   */
  writeBatchSize?: number;
}

/** The options after validation, every default filled in. */
export interface ResolvedRedisStoreOptions {
  readonly client: RedisScriptClient;
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly insurance: QuotaStore | undefined;
  readonly shardBy: ShardBy | undefined;
  readonly overrideHintMs: number;
  readonly writeBatchSize: number;
}

const REDIS_STORE_OPTIONS = optionKeys<RedisStoreOptions>({
  client: true,
  prefix: true,
  timeoutMs: true,
  insurance: true,
  shardBy: true,
  overrideHintMs: true,
  writeBatchSize: true,
});

const PREFIX_PATTERN = /^[^{}|]{1,64}$/;

/**
 * Validates RedisStore options once, at construction.
 *
 * @throws QuotaConfigError naming the bad option and the reason.
 */
export function resolveRedisStoreOptions(options: RedisStoreOptions): ResolvedRedisStoreOptions {
  if (typeof options !== 'object' || options === null) {
    throw new QuotaConfigError('', 'RedisStore expects an options object with a client');
  }
  rejectUnknownOptions(options, REDIS_STORE_OPTIONS, 'RedisStore');
  const { client, insurance, shardBy } = options;
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof client.evalsha !== 'function' ||
    typeof client.eval !== 'function'
  ) {
    throw new QuotaConfigError('client', 'must be an ioredis Redis or Cluster client');
  }
  const prefix = options.prefix ?? 'quotakit';
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
    throw new QuotaConfigError('prefix', 'must be 1 to 64 characters, none of {, } or |');
  }
  const timeoutMs = options.timeoutMs ?? 100;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new QuotaConfigError(
      'timeoutMs',
      `must be a positive whole number of ms, got ${timeoutMs}`,
    );
  }
  if (insurance !== undefined && !isQuotaStore(insurance)) {
    throw new QuotaConfigError('insurance', 'must be a quota store (a MemoryStore)');
  }
  if (shardBy !== undefined && shardBy !== 'tenant' && shardBy !== 'user') {
    throw new QuotaConfigError('shardBy', `must be 'tenant' or 'user', got ${String(shardBy)}`);
  }
  const overrideHintMs = options.overrideHintMs ?? 1_000;
  if (!Number.isSafeInteger(overrideHintMs) || overrideHintMs < 0) {
    throw new QuotaConfigError(
      'overrideHintMs',
      `must be 0 or more whole ms, got ${overrideHintMs}`,
    );
  }
  const writeBatchSize = options.writeBatchSize ?? 8;
  if (!Number.isSafeInteger(writeBatchSize) || writeBatchSize < 1 || writeBatchSize > 1_000) {
    throw new QuotaConfigError(
      'writeBatchSize',
      `must be a whole number from 1 to 1000, got ${writeBatchSize}`,
    );
  }
  return { client, prefix, timeoutMs, insurance, shardBy, overrideHintMs, writeBatchSize };
}
