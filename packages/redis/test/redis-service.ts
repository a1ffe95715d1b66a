import { Redis, type RedisOptions } from 'ioredis';
import { describe } from 'vitest';

/** The Redis every test file talks to. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Set by CI (.ci/run): a missing Redis fails the tests instead of skipping them. */
const REQUIRED = process.env.QUOTAKIT_REQUIRE_SERVICES === '1';

/** Connects once without retrying; true when Redis answers PING within a second. */
async function reachable(): Promise<boolean> {
  const probe = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** Whether this file's Redis tests run; probed once per test file, at import. */
export const redisAvailable = await reachable();

const skipReason = `Redis not reachable at ${REDIS_URL}: skipping`;
if (!redisAvailable) {
  if (REQUIRED) {
    throw new Error(
      `Redis not reachable at ${REDIS_URL}, and QUOTAKIT_REQUIRE_SERVICES=1 requires it`,
    );
  }
  console.warn(skipReason);
}

/**
 * `describe` for tests that need Redis: skipped, with the reason in its name, when Redis is not
 * reachable (and QUOTAKIT_REQUIRE_SERVICES is not set).
 */
export function describeWithRedis(name: string, body: () => void): void {
  describe.skipIf(!redisAvailable)(redisAvailable ? name : `${name} (${skipReason})`, body);
}

/** A prefix of its own for a test file, so that files running side by side never meet. */
export function uniquePrefix(name: string): string {
  return `qk-test-${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A client of the test Redis; the caller quits it. */
export function connect(options: RedisOptions = {}, url = REDIS_URL): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, ...options });
  // Connection errors surface through the store's results; an 'error' event without a
  // listener would crash the test process.
  client.on('error', () => {});
  return client;
}

/** Deletes every key of a store prefix (all its hash tags: `{prefix}` and `{prefix|...}`). */
export async function deleteKeys(client: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  for (let pass = 0; pass < 100_000; pass++) {
    const [next, keys] = await client.scan(cursor, 'MATCH', `{${prefix}[}|]*`, 'COUNT', 1000);
    if (keys.length > 0) deleted += await client.unlink(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  return deleted;
}
