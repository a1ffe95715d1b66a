export type { ShardBy } from './key-layout.js';
export type { RedisScriptClient } from './redis-client.js';
export { RedisStore } from './redis-store.js';
export type { RedisStoreOptions } from './redis-store-options.js';
export type { ShardCheckedRule } from './shard-scopes.js';
