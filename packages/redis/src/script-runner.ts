import { QuotaStoreError } from '@quotakit/core';
import { AvailabilityGate } from './availability-gate.js';
import type { LuaScript } from './lua-scripts.js';
import type { RedisScriptClient } from './redis-client.js';

/**
 * Redis could not be asked or did not answer: the cases in which RedisStore turns to its
 * insurance store, if it has one.
 */
export class RedisUnavailableError extends QuotaStoreError {}

// Error replies that mean "not now" rather than "wrong script": a server loading its data set,
// a replica after a failover, a cluster without a quorum, a script still running.
const TRANSIENT_REPLIES = /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY)\b/;

/**
 * Runs the store's Lua scripts: EVALSHA, falling back to EVAL when the server does not know
 * the script (after a restart, a failover or SCRIPT FLUSH), each call bounded by `timeoutMs`.
 */
export class ScriptRunner {
  readonly #client: RedisScriptClient;
  readonly #timeoutMs: number;
  readonly #gate: AvailabilityGate;

  constructor(client: RedisScriptClient, timeoutMs: number) {
    this.#client = client;
    this.#timeoutMs = timeoutMs;
    this.#gate = new AvailabilityGate(client);
  }

  /**
   * The script's reply to `keysAndArgs` (its first `numKeys` are KEYS, the rest ARGV). Rejects
   * with a {@link RedisUnavailableError} when Redis cannot be asked or does not answer within
   * the timeout (the command may still run later: Redis never learns that the caller gave
   * up), and with a QuotaStoreError for an error reply.
   */
  run(script: LuaScript, numKeys: number, keysAndArgs: readonly string[]): Promise<unknown> {
    const gate = this.#gate;
    const passage = gate.enter();
    if (passage === 'refused') {
      const status = this.#client.status;
      const why = status === 'ready' ? 'not answering' : `client ${status}`;
      return Promise.reject(
        new RedisUnavailableError(`Redis is not available (${why}): ${script.name} not sent`),
      );
    }
    const client = this.#client;
    const timeoutMs = this.#timeoutMs;
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        gate.failed();
        reject(
          new RedisUnavailableError(`Redis did not answer ${script.name} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      timer.unref?.();
      // Both outcomes are always handled here, also after the timeout: a late failure is never
      // an unhandled rejection.
      const answered = (reply: unknown) => {
        if (passage === 'probe') gate.probeSettled();
        else if (passage === 'queued') gate.queuedSettled();
        gate.answered();
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(reply);
      };
      const failed = (error: unknown) => {
        if (passage === 'probe') gate.probeSettled();
        else if (passage === 'queued') gate.queuedSettled();
        const unavailable = !isErrorReply(error) || TRANSIENT_REPLIES.test(messageOf(error));
        if (unavailable) gate.failed();
        else gate.answered();
        if (done) return;
        done = true;
        clearTimeout(timer);
        const message = `Redis failed on ${script.name}: ${messageOf(error)}`;
        reject(
          unavailable
            ? new RedisUnavailableError(message, { cause: error })
            : new QuotaStoreError(message, { cause: error }),
        );
      };
      client.evalsha(script.sha, numKeys, ...keysAndArgs).then(answered, (error: unknown) => {
        if (isErrorReply(error) && messageOf(error).startsWith('NOSCRIPT')) {
          // EVAL runs the script and caches it again: later calls are one EVALSHA again.
          client.eval(script.source, numKeys, ...keysAndArgs).then(answered, failed);
        } else {
          failed(error);
        }
      });
    });
  }
}

/** Classes of error replies: ioredis's ReplyError, node-redis's ErrorReply (and subclasses). */
const REPLY_ERROR_CLASSES: ReadonlySet<string> = new Set(['ReplyError', 'ErrorReply']);

/** An error reply from the server, as opposed to a failure to reach it. */
function isErrorReply(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if (REPLY_ERROR_CLASSES.has((error as { name?: string }).name ?? '')) return true;
  for (
    let proto = Object.getPrototypeOf(error);
    proto !== null;
    proto = Object.getPrototypeOf(proto)
  ) {
    if (
      REPLY_ERROR_CLASSES.has(
        (proto as { constructor?: { name?: string } }).constructor?.name ?? '',
      )
    ) {
      return true;
    }
  }
  return false;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
