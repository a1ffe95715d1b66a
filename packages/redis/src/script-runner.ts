import { QuotaStoreError, StaleOverridesError } from '@quotakit/core';
import { AvailabilityGate, type Passage } from './availability-gate.js';
import { type LuaScript, STALE_OVERRIDES_REPLY } from './lua-scripts.js';
import type { RedisScriptClient } from './redis-client.js';
import { type Expiring, TimeoutQueue } from './timeout-queue.js';
import { WriteBatcher } from './write-batcher.js';

/**
 * Redis could not be asked or did not answer: the cases in which RedisStore turns to its
 * insurance store, if it has one.
 */
export class RedisUnavailableError extends QuotaStoreError {}

// Error replies that mean "not now" rather than "wrong script": a server loading its data set,
// a replica after a failover, a cluster without a quorum, a script still running.
const TRANSIENT_REPLIES = /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY)\b/;

/** What every call of one runner shares. */
interface RunnerParts {
  readonly client: RedisScriptClient;
  readonly gate: AvailabilityGate;
  readonly timeouts: TimeoutQueue;
  readonly timeoutMs: number;
  readonly batcher: WriteBatcher;
}

/** Turns a reply into the call's result; `context` is whatever the caller passed with it. */
export type ReplyDecoder<T, C> = (reply: unknown, context: C) => T;

const asIs: ReplyDecoder<unknown, undefined> = (reply) => reply;

/**
 * Runs the store's Lua scripts: EVALSHA, falling back to EVAL when the server does not know
 * the script (after a restart, a failover or SCRIPT FLUSH), each call bounded by `timeoutMs`.
 */
export class ScriptRunner {
  readonly #parts: RunnerParts;

  /** @param writeBatchSize See {@link WriteBatcher}: calls of one tick written together. */
  constructor(client: RedisScriptClient, timeoutMs: number, writeBatchSize: number) {
    this.#parts = {
      client,
      gate: new AvailabilityGate(client),
      timeouts: new TimeoutQueue(timeoutMs),
      timeoutMs,
      batcher: new WriteBatcher(writeBatchSize),
    };
  }

  /**
   * The script's reply to `keysAndArgs` (its first `numKeys` are KEYS, the rest ARGV), passed
   * through `decode` with `context` when given (a decoder made once, rather than a closure per
   * call). Rejects with a {@link RedisUnavailableError} when Redis cannot be asked or does not
   * answer within the timeout (the command may still run later: Redis never learns that the
   * caller gave up), and with a QuotaStoreError for an error reply or a reply that `decode`
   * throws on.
   */
  run(script: LuaScript, numKeys: number, keysAndArgs: readonly string[]): Promise<unknown>;
  run<T, C>(
    script: LuaScript,
    numKeys: number,
    keysAndArgs: readonly string[],
    decode: ReplyDecoder<T, C>,
    context: C,
  ): Promise<T>;
  run<T, C>(
    script: LuaScript,
    numKeys: number,
    keysAndArgs: readonly string[],
    decode: ReplyDecoder<T, C> = asIs as ReplyDecoder<T, C>,
    context?: C,
  ): Promise<T> {
    const parts = this.#parts;
    const passage = parts.gate.enter(script.probes);
    if (passage === 'refused') {
      const status = parts.client.status;
      const why = status === 'ready' ? 'not answering' : `client ${status}`;
      return Promise.reject(
        new RedisUnavailableError(`Redis is not available (${why}): ${script.name} not sent`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const call = new ScriptCall(parts, script, passage, resolve, reject, decode, context as C);
      parts.timeouts.add(call);
      call.send(numKeys, keysAndArgs);
    });
  }
}

/** One script call in flight: settles its promise once, with the reply, a failure or a timeout. */
class ScriptCall<T, C> implements Expiring {
  readonly deadline: number;
  settled = false;
  readonly #parts: RunnerParts;
  readonly #script: LuaScript;
  readonly #passage: Passage;
  readonly #resolve: (value: T) => void;
  readonly #reject: (error: unknown) => void;
  readonly #decode: ReplyDecoder<T, C>;
  readonly #context: C;

  constructor(
    parts: RunnerParts,
    script: LuaScript,
    passage: Passage,
    resolve: (value: T) => void,
    reject: (error: unknown) => void,
    decode: ReplyDecoder<T, C>,
    context: C,
  ) {
    this.deadline = parts.timeouts.deadline();
    this.#parts = parts;
    this.#script = script;
    this.#passage = passage;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#decode = decode;
    this.#context = context;
  }

  send(numKeys: number, keysAndArgs: readonly string[]): void {
    const { client } = this.#parts;
    const script = this.#script;
    // Both outcomes are always handled here, also after the timeout: a late failure is never
    // an unhandled rejection.
    client.evalsha(script.sha, numKeys, ...keysAndArgs).then(
      (reply) => this.#answered(reply),
      (error: unknown) => {
        if (isErrorReply(error) && messageOf(error).startsWith('NOSCRIPT')) {
          // EVAL runs the script and caches it again: later calls are one EVALSHA again.
          client.eval(script.source, numKeys, ...keysAndArgs).then(
            (reply) => this.#answered(reply),
            (evalError: unknown) => this.#failed(evalError),
          );
        } else {
          this.#failed(error);
        }
      },
    );
    // This call is in the queue already: more than one means others are in flight, and more
    // calls are likely to follow in this tick.
    this.#parts.batcher.written(client, this.#parts.timeouts.size > 1);
  }

  expire(): void {
    this.settled = true;
    this.#parts.gate.failed();
    this.#reject(
      new RedisUnavailableError(
        `Redis did not answer ${this.#script.name} within ${this.#parts.timeoutMs} ms`,
      ),
    );
  }

  /** Reports the outcome to the gate's bookkeeping; false when the call had already expired. */
  #settle(): boolean {
    const { gate, timeouts } = this.#parts;
    if (this.#passage === 'probe') gate.probeSettled();
    else if (this.#passage === 'queued') gate.queuedSettled();
    if (this.settled) return false;
    this.settled = true;
    timeouts.trim();
    return true;
  }

  #answered(reply: unknown): void {
    const first = this.#settle();
    this.#parts.gate.answered();
    if (!first) return;
    let value: T;
    try {
      value = this.#decode(reply, this.#context);
    } catch (error) {
      this.#reject(
        new QuotaStoreError(`Redis gave ${this.#script.name} an unexpected reply`, {
          cause: error,
        }),
      );
      return;
    }
    this.#resolve(value);
  }

  #failed(error: unknown): void {
    const first = this.#settle();
    const unavailable = !isErrorReply(error) || TRANSIENT_REPLIES.test(messageOf(error));
    if (unavailable) this.#parts.gate.failed();
    else this.#parts.gate.answered();
    if (!first) return;
    if (!unavailable && messageOf(error).includes(STALE_OVERRIDES_REPLY)) {
      // The script did nothing: the engine lists the overrides again and plans again.
      this.#reject(new StaleOverridesError());
      return;
    }
    const message = `Redis failed on ${this.#script.name}: ${messageOf(error)}`;
    this.#reject(
      unavailable
        ? new RedisUnavailableError(message, { cause: error })
        : new QuotaStoreError(message, { cause: error }),
    );
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
