/**
 * What RedisStore needs of a Redis client: running Lua scripts. An ioredis `Redis` or
 * `Cluster` is one as it is; another client (node-redis, say) fits in a few lines.
 *
 * @example
 * // node-redis (`createClient`, connected):
 * const client: RedisScriptClient = {
 *   get status() { return redis.isReady ? 'ready' : 'connecting'; },
 *   evalsha: (sha, numKeys, ...rest) =>
 *     redis.evalSha(sha, { keys: rest.slice(0, numKeys), arguments: rest.slice(numKeys) }),
 *   eval: (script, numKeys, ...rest) =>
 *     redis.eval(script, { keys: rest.slice(0, numKeys), arguments: rest.slice(numKeys) }),
 * };
 */
export interface RedisScriptClient {
  /**
   * The connection state, as ioredis reports it: commands are sent only when it is `'ready'`
   * (or `'wait'`, a lazy client not yet connected); in any other state a call fails at once
   * rather than waiting in the client's offline queue. Leave it out to always send.
   */
  readonly status?: string;
  /** EVALSHA: resolves with the script's reply; rejects with a `NOSCRIPT ...` error if unknown. */
  evalsha(sha: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** EVAL: runs (and caches) the script's source. */
  eval(script: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
}
