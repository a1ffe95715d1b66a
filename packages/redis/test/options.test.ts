import { QuotaConfigError } from '@quotakit/core';
import { RedisStore, type RedisStoreOptions } from '@quotakit/redis';
import { describe, expect, it } from 'vitest';

const client = { evalsha: async () => null, eval: async () => null };

describe('RedisStore options', () => {
  it.each([
    [{}, /client: must be an ioredis/],
    [{ client: {} }, /client: must be an ioredis/],
    [{ client, prefix: '' }, /prefix: must be 1 to 64/],
    [{ client, prefix: 'a{b' }, /prefix/],
    [{ client, prefix: 'a}b' }, /prefix/],
    [{ client, prefix: 'a|b' }, /prefix/],
    [{ client, prefix: 'x'.repeat(65) }, /prefix/],
    [{ client, timeoutMs: 0 }, /timeoutMs: must be a positive whole number/],
    [{ client, timeoutMs: 1.5 }, /timeoutMs/],
    [{ client, insurance: {} }, /insurance: must be a quota store/],
    [{ client, shardBy: 'agent' }, /shardBy: must be 'tenant' or 'user'/],
    [{ client, overrideHintMs: -1 }, /overrideHintMs/],
    [{ client, writeBatchSize: 0 }, /writeBatchSize: must be a whole number from 1 to 1000/],
    [{ client, writeBatchSize: 2.5 }, /writeBatchSize/],
    [{ client, writeBatchSize: 1_001 }, /writeBatchSize/],
    // A misspelt option would otherwise leave its default silently in place.
    [{ client, timeout: 50 }, /timeout: not an option of RedisStore/],
  ])('refuses %j at construction', (options, message) => {
    expect(() => new RedisStore(options as unknown as RedisStoreOptions)).toThrow(QuotaConfigError);
    expect(() => new RedisStore(options as unknown as RedisStoreOptions)).toThrow(message);
  });

  it('leaves the options object as it was', () => {
    const options = Object.freeze({ client, prefix: 'p', timeoutMs: 50 });
    expect(() => new RedisStore(options)).not.toThrow();
  });
});
