import type {
  OverrideFilter,
  OverrideKey,
  OverrideScope,
  QuotaConfigError,
  QuotaRules,
  QuotaStore,
  ResolvedRule,
  StoreClaimRequest,
  StoreConsumeRequest,
  StoreConsumeResult,
  StoreCounter,
  StoredOverride,
  StoreLimit,
  StoreReadRequest,
  StoreReadResult,
  StoreRecordRequest,
  StoreRecordResult,
  StoreSettleRequest,
  StoreSettleResult,
  Subject,
  VersionedOverrides,
} from '@quotakit/core';
import { decodeId, encodeId, KeyLayout, type ShardBy } from './key-layout.js';
import {
  CLAIM_SCRIPT,
  CONSUME_ONE_SCRIPT,
  CONSUME_SCRIPT,
  GET_OVERRIDES_SCRIPT,
  LIST_OVERRIDES_SCRIPT,
  type LuaScript,
  READ_SCRIPT,
  RECORD_SCRIPT,
  REMOVE_OVERRIDE_SCRIPT,
  SET_OVERRIDE_SCRIPT,
  SETTLE_SCRIPT,
} from './lua-scripts.js';
import { RecentText } from './recent-text.js';
import { type RedisStoreOptions, resolveRedisStoreOptions } from './redis-store-options.js';
import { RedisUnavailableError, type ReplyDecoder, ScriptRunner } from './script-runner.js';
import { crossingCounterError, type ShardCheckedRule, validateShardRules } from './shard-scopes.js';

const SCOPE_FIELDS: ReadonlyArray<readonly [OverrideScope, keyof Subject]> = [
  ['user', 'userId'],
  ['agent', 'agentId'],
  ['tenant', 'tenantId'],
  ['run', 'runId'],
];
const SCOPES: readonly OverrideScope[] = SCOPE_FIELDS.map(([scope]) => scope);
const NO_OVERRIDES: readonly StoredOverride[] = Object.freeze([]);
/** Reservations held by the insurance store that are remembered before pruning expired ones. */
const INSURED_PRUNE_AT = 10_000;

/**
 * A counter script's reply: flag, override count (-1: not read), then the values, whole ones as
 * integers and fractional ones as strings.
 */
type CounterReply = [number, number, ...Array<number | string>];

/**
 * A quota store on Redis, shared by every engine that uses the same Redis and prefix: quotas
 * hold across processes and machines.
 *
 * Every store call is one round trip: one Lua script, sent with EVALSHA (EVAL when the server
 * has lost the script), that reads and writes all the counters of the operation atomically.
 * Time is the engine's clock, passed with each call; Redis TTLs, set as durations from it, only
 * collect garbage. Reservations not settled in time are returned by the next call for the same
 * shard (at most 100 per call). Run-time overrides and notification claims live in Redis too.
 *
 * When Redis is down, stalled or slower than `timeoutMs`, calls fail fast (or after the
 * timeout) with a QuotaStoreError: the engine answers `unknown` and follows its `failureMode`;
 * with an `insurance` store, that store answers instead. Nothing needs restarting when Redis
 * comes back.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import { createQuotaEngine } from '@quotakit/core';
 * import { RedisStore } from '@quotakit/redis';
 *
 * const engine = createQuotaEngine({
 *   store: new RedisStore({ client: new Redis(process.env.REDIS_URL!) }),
 *   defaults: { llm_requests: { limit: 1000, period: 'per_day' } },
 * });
 */
export class RedisStore implements QuotaStore {
  readonly #runner: ScriptRunner;
  readonly #layout: KeyLayout;
  readonly #insurance: QuotaStore | undefined;
  readonly #shardBy: ShardBy | undefined;
  /** 0 when counter scripts cannot or must not read the override count. */
  readonly #overrideHintMs: number;
  /** When (performance.now) the next counter script should read the override count. */
  #askCountAfter = 0;
  /** When (performance.now) a reply last showed that no override exists; -Infinity if not. */
  #noOverridesSeenAt = Number.NEGATIVE_INFINITY;
  /** Bumped by every override write: replies to calls sent before it say nothing current. */
  #overrideEpoch = 0;
  /** Reservations the insurance store holds (taken while Redis was down): id -> expiresAt. */
  readonly #insured = new Map<string, number>();
  #warnedCrossing = false;
  readonly #nowText = new RecentText();
  readonly #expiryText = new RecentText();
  readonly #limitText = new RecentText();
  // Reply decoders, made once: a call passes its override epoch instead of a closure.
  readonly #readReply = this.#counted((reply) => ({ values: valuesOf(reply as CounterReply) }));
  readonly #consumeReply = this.#counted((reply) => consumeOutcome(reply as CounterReply));
  readonly #consumeOneReply = this.#counted(consumeOneOutcome);
  readonly #recordReply = this.#counted((reply) => ({
    duplicate: (reply as CounterReply)[0] === 1,
    values: valuesOf(reply as CounterReply),
  }));
  readonly #settleReply = this.#counted((reply) => ({
    found: (reply as CounterReply)[0] === 1,
    values: valuesOf(reply as CounterReply),
  }));
  readonly #consumeInsured = async (
    insurance: QuotaStore,
    request: StoreConsumeRequest,
  ): Promise<StoreConsumeResult> => {
    // The insurance store keeps no overrides of Redis's: there is no version of them to check.
    const outcome = await insurance.consume(
      request.overridesVersion === undefined
        ? request
        : { ...request, overridesVersion: undefined },
    );
    const { hold, now } = request;
    if (hold !== undefined && outcome.allowed) this.#insure(hold.id, now + hold.ttlMs, now);
    return outcome;
  };

  /** The per-operation timeout in ms: the engine relies on it instead of a timer of its own. */
  readonly timeoutMs: number;

  /**
   * Every run-time override and their version, in one script (QuotaStore's optional
   * `listVersionedOverrides`): reads and consumes that name another version do nothing and
   * fail with a StaleOverridesError, so that every engine on this Redis decides with the
   * overrides as they stand. Undefined with `shardBy`: the version lives in one slot, which
   * a sharded operation cannot read atomically; engines then see another's change within
   * their `overrideCacheTtlMs`.
   */
  readonly listVersionedOverrides: (() => Promise<VersionedOverrides>) | undefined;

  /**
   * @throws QuotaConfigError naming the bad option (a missing client, a prefix with a brace, a
   * timeout that is not a positive whole number of ms...).
   */
  constructor(options: RedisStoreOptions) {
    const resolved = resolveRedisStoreOptions(options);
    this.timeoutMs = resolved.timeoutMs;
    this.#runner = new ScriptRunner(resolved.client, resolved.timeoutMs, resolved.writeBatchSize);
    this.#layout = new KeyLayout(resolved.prefix, resolved.shardBy);
    this.#insurance = resolved.insurance;
    this.#shardBy = resolved.shardBy;
    this.#overrideHintMs = resolved.shardBy === undefined ? resolved.overrideHintMs : 0;
    this.listVersionedOverrides =
      resolved.shardBy === undefined ? () => this.#listVersioned() : undefined;
  }

  /**
   * With `shardBy`, throws a QuotaConfigError for the first rule whose scope spans shards
   * (global; tenant and agent when sharding by user); without it, does nothing. Call it with
   * the engine's `defaults` (and any rules set at run time) before serving traffic: the store
   * itself only meets the rules' counters, one operation at a time.
   *
   * @param rules an engine's `defaults` map, or a list of rules.
   * @param path where the rules come from, for the error. Defaults to `'defaults'`.
   * @throws QuotaConfigError naming the rule's path and scope.
   * @example
   * const store = new RedisStore({ client: cluster, shardBy: 'tenant' });
   * store.validateRules(defaults); // throws for a global rule
   * const engine = createQuotaEngine({ store, defaults });
   */
  validateRules(rules: QuotaRules | Iterable<ShardCheckedRule>, path = 'defaults'): void {
    if (this.#shardBy !== undefined) validateShardRules(this.#shardBy, rules, path);
  }

  /**
   * The engine's hook (QuotaStore.checkRules): called with each configured resource's rules
   * when an engine is created on this store, and with a run-time quota before it is stored,
   * so a rule that would cross shards is refused up front.
   *
   * @throws QuotaConfigError naming the rule and its scope.
   */
  checkRules(rules: readonly ResolvedRule[]): void {
    this.validateRules(rules, 'rules');
  }

  /** Reads counters (returning expired reservations first): one script, nothing else written. */
  read(request: StoreReadRequest): Promise<StoreReadResult> {
    const tag = this.#tagFor(request);
    if (typeof tag !== 'string') return tag;
    const argv = this.#argv(tag, request, undefined, '');
    return this.#counting(
      READ_SCRIPT,
      request.counters.length + 1,
      argv,
      this.#readReply,
      request,
      readInsured,
    );
  }

  /**
   * Checks every limit and adds every amount, or nothing; with `hold`, keeps a reservation.
   * The common case (one counter, no hold, no sliding window) runs a smaller script.
   */
  consume(request: StoreConsumeRequest): Promise<StoreConsumeResult> {
    const tag = this.#tagFor(request);
    if (typeof tag !== 'string') return tag;
    const { counters, limits, hold } = request;
    if (
      hold === undefined &&
      counters.length === 1 &&
      limits.every(isFixed) &&
      // The script takes a counter that expires when this operation would have it expire to
      // be live, which holds only for a ttl above 0 (see CONSUME_ONE_SCRIPT).
      (counters[0]!.ttlMs === null || counters[0]!.ttlMs > 0)
    ) {
      return this.#counting(
        CONSUME_ONE_SCRIPT,
        2,
        this.#consumeOneArgv(tag, request),
        this.#consumeOneReply,
        request,
        this.#consumeInsured,
      );
    }
    const argv =
      hold === undefined
        ? this.#argv(tag, request, undefined, '')
        : this.#argv(tag, request, this.#layout.reservation(tag, hold.id), String(hold.ttlMs));
    argv.push(String(limits.length));
    for (const limit of limits) {
      if (limit.previous === undefined) {
        argv.push(String(limit.counter), String(limit.limit), '');
      } else {
        argv.push(
          String(limit.counter),
          String(limit.limit),
          String(limit.previous),
          String(limit.previousWeight ?? 0),
        );
      }
    }
    return this.#counting(
      CONSUME_SCRIPT,
      counters.length + (hold === undefined ? 1 : 2),
      argv,
      this.#consumeReply,
      request,
      this.#consumeInsured,
    );
  }

  /** Adds every amount unconditionally, once per idempotency key while it is remembered. */
  record(request: StoreRecordRequest): Promise<StoreRecordResult> {
    const tag = this.#tagFor(request);
    if (typeof tag !== 'string') return tag;
    const { idempotencyKey } = request;
    const argv =
      idempotencyKey === undefined
        ? this.#argv(tag, request, undefined, '')
        : this.#argv(
            tag,
            request,
            this.#layout.idempotency(tag, idempotencyKey),
            String(request.idempotencyTtlMs),
          );
    return this.#counting(
      RECORD_SCRIPT,
      request.counters.length + (idempotencyKey === undefined ? 1 : 2),
      argv,
      this.#recordReply,
      request,
      recordInsured,
    );
  }

  /** Returns a reservation's held amounts and adds the actual ones, in one script. */
  settle(request: StoreSettleRequest): Promise<StoreSettleResult> {
    const { reservationId } = request;
    // A reservation taken from the insurance store is settled there, Redis back or not.
    if (this.#insurance !== undefined && this.#insured.delete(reservationId)) {
      return this.#insurance.settle(request);
    }
    const tag = this.#tagFor(request);
    if (typeof tag !== 'string') return tag;
    const argv = this.#argv(tag, request, this.#layout.reservation(tag, reservationId), 'r');
    return this.#counting(
      SETTLE_SCRIPT,
      request.counters.length + 2,
      argv,
      this.#settleReply,
      request,
      settleInsured,
    );
  }

  /**
   * True while a reply at most `overrideHintMs` old showed that no run-time override exists
   * at all: the engine then skips override lookups without asking.
   */
  hasNoOverrides(): boolean {
    return performance.now() - this.#noOverridesSeenAt <= this.#overrideHintMs;
  }

  /**
   * The run-time overrides of the subject's ids; answered without a round trip while a recent
   * reply showed that none exist (`overrideHintMs`).
   */
  async getOverrides(request: { readonly subject: Subject }): Promise<readonly StoredOverride[]> {
    if (performance.now() - this.#noOverridesSeenAt <= this.#overrideHintMs) return NO_OVERRIDES;
    const { subject } = request;
    const keys = [this.#layout.overrideCount()];
    const asked: Array<readonly [OverrideScope, string]> = [];
    for (const [scope, field] of SCOPE_FIELDS) {
      const id = subject[field];
      if (id === undefined) continue;
      keys.push(this.#layout.overrides(scope, id));
      asked.push([scope, id]);
    }
    if (asked.length === 0) return NO_OVERRIDES;
    const epoch = this.#overrideEpoch;
    let reply: unknown[];
    try {
      reply = (await this.#runner.run(GET_OVERRIDES_SCRIPT, keys.length, keys)) as unknown[];
    } catch (error) {
      if (this.#insurance && error instanceof RedisUnavailableError) {
        return this.#insurance.getOverrides(request);
      }
      throw error;
    }
    this.#noteOverrideCount(reply[0] as number, epoch);
    const found: StoredOverride[] = [];
    for (const [i, [scope, id]] of asked.entries()) {
      pushOverrides(found, scope, id, reply[i + 1] as string[]);
    }
    return found;
  }

  /** Creates or replaces the override of (scope, id, resource); never in the insurance store. */
  async setOverride(override: StoredOverride): Promise<void> {
    const { scope, id, resource } = override;
    const epoch = this.#beginOverrideWrite();
    const count = await this.#runner.run(SET_OVERRIDE_SCRIPT, 4, [
      this.#layout.overrideCount(),
      this.#layout.overrides(scope, id),
      this.#layout.overrideIndex(scope),
      this.#layout.overridesVersion(),
      encodeId(id),
      resource,
      JSON.stringify(override.rules),
    ]);
    this.#noteOverrideCount(count as number, epoch);
  }

  /** Deletes one override; resolves false when there was none. */
  async removeOverride(key: OverrideKey): Promise<boolean> {
    const { scope, id, resource } = key;
    const epoch = this.#beginOverrideWrite();
    const [removed, count] = (await this.#runner.run(REMOVE_OVERRIDE_SCRIPT, 4, [
      this.#layout.overrideCount(),
      this.#layout.overrides(scope, id),
      this.#layout.overrideIndex(scope),
      this.#layout.overridesVersion(),
      encodeId(id),
      resource,
    ])) as [number, number];
    this.#noteOverrideCount(count, epoch);
    return removed === 1;
  }

  /** Overrides matching the filter, in one script (an admin call: it reads every match). */
  async listOverrides(filter: OverrideFilter): Promise<readonly StoredOverride[]> {
    const scopes = filter.scope === undefined ? SCOPES : [filter.scope];
    const layout = this.#layout;
    const found: StoredOverride[] = [];
    const { id } = filter;
    if (id !== undefined) {
      const keys = [layout.overrideCount(), ...scopes.map((scope) => layout.overrides(scope, id))];
      const reply = (await this.#runner.run(GET_OVERRIDES_SCRIPT, keys.length, keys)) as unknown[];
      for (const [i, scope] of scopes.entries()) {
        pushOverrides(found, scope, id, reply[i + 1] as string[]);
      }
      return found;
    }
    return (await this.#listAll(scopes)).overrides;
  }

  /** {@link listVersionedOverrides}, when not sharded. */
  #listVersioned(): Promise<VersionedOverrides> {
    return this.#listAll(SCOPES);
  }

  /** Every override of `scopes`, and the version of what was read, in one script. */
  async #listAll(scopes: readonly OverrideScope[]): Promise<VersionedOverrides> {
    const layout = this.#layout;
    const keys = [layout.overrideCount(), layout.overridesVersion()];
    for (const scope of scopes) keys.push(layout.overrideIndex(scope), layout.overridesHead(scope));
    const reply = (await this.#runner.run(LIST_OVERRIDES_SCRIPT, keys.length, keys)) as unknown[];
    const overrides: StoredOverride[] = [];
    for (const [i, scope] of scopes.entries()) {
      const byId = reply[i + 2] as Array<string | string[]>;
      for (let j = 0; j < byId.length; j += 2) {
        pushOverrides(overrides, scope, decodeId(byId[j] as string), byId[j + 1] as string[]);
      }
    }
    return { version: String(reply[1]), overrides };
  }

  /** Claims a one-time key (threshold notifications) until `ttlMs` passes by the request's now. */
  async claim(request: StoreClaimRequest): Promise<boolean> {
    try {
      const claimed = await this.#runner.run(CLAIM_SCRIPT, 1, [
        this.#layout.claim(request.key),
        String(request.now),
        String(request.ttlMs),
      ]);
      return claimed === 1;
    } catch (error) {
      if (this.#insurance && error instanceof RedisUnavailableError) {
        return this.#insurance.claim(request);
      }
      throw error;
    }
  }

  /**
   * The subject's hash tag, or, when a counter's rule spans shards, a rejected promise to
   * return instead of running anything.
   */
  #tagFor(request: {
    readonly subject: Subject;
    readonly counters: readonly StoreCounter[];
  }): string | Promise<never> {
    if (this.#shardBy !== undefined) {
      const error = crossingCounterError(this.#shardBy, request.counters);
      if (error !== undefined) return this.#refuseCrossing(error);
    }
    return this.#layout.tagOf(request.subject);
  }

  #refuseCrossing(error: QuotaConfigError): Promise<never> {
    // The engine turns a failed store call into status `unknown` without a word: say why, once.
    if (!this.#warnedCrossing) {
      this.#warnedCrossing = true;
      console.warn(`[quotakit/redis] ${error.message}`);
    }
    return Promise.reject(error);
  }

  /**
   * KEYS and the common ARGV of a counter script (see lua-scripts.ts): the shard's reservation
   * index, the counters and the record, if any; now, whether to read the override count,
   * `recordArg`, and an (amount, ttl) pair per counter.
   */
  #argv(
    tag: string,
    request: {
      readonly now: number;
      readonly counters: readonly StoreCounter[];
      readonly overridesVersion?: string;
    },
    record: string | undefined,
    recordArg: string,
  ): string[] {
    const layout = this.#layout;
    const { counters } = request;
    const argv = [layout.reservationIndex(tag)];
    for (const counter of counters) argv.push(layout.counter(tag, counter.key));
    if (record !== undefined) argv.push(record);
    argv.push(String(request.now), this.#overrideArg(request), recordArg);
    for (const counter of counters) {
      argv.push(String(counter.amount), counter.ttlMs === null ? '' : String(counter.ttlMs));
    }
    return argv;
  }

  /**
   * KEYS and ARGV of CONSUME_ONE_SCRIPT: the shard's reservation index and the counter; now,
   * whether to read the override count, the amount, when the counter expires (now + ttl: the
   * same text all through a window) and the tightest limit (the smallest: a total within it
   * is within every other limit on the counter).
   */
  #consumeOneArgv(tag: string, request: StoreConsumeRequest): string[] {
    const layout = this.#layout;
    const counter = request.counters[0]!;
    let tightest = Number.POSITIVE_INFINITY;
    for (const limit of request.limits) if (limit.limit < tightest) tightest = limit.limit;
    return [
      layout.reservationIndex(tag),
      layout.counter(tag, counter.key),
      this.#nowText.of(request.now),
      this.#overrideArg(request),
      String(counter.amount),
      counter.ttlMs === null ? '' : this.#expiryText.of(request.now + counter.ttlMs),
      tightest === Number.POSITIVE_INFINITY ? '' : this.#limitText.of(tightest),
    ];
  }

  /**
   * Runs a counter script; when Redis is unavailable and an insurance store is set, `insured`
   * asks that store instead.
   */
  #counting<T, R>(
    script: LuaScript,
    numKeys: number,
    keysAndArgs: readonly string[],
    decode: ReplyDecoder<T, number>,
    request: R,
    insured: (insurance: QuotaStore, request: R) => Promise<T>,
  ): Promise<T> {
    const answer = this.#runner.run(script, numKeys, keysAndArgs, decode, this.#overrideEpoch);
    const insurance = this.#insurance;
    if (insurance === undefined) return answer;
    return answer.catch((error: unknown) => {
      if (error instanceof RedisUnavailableError) return insured(insurance, request);
      throw error;
    });
  }

  /**
   * A decoder of a counter script's reply that also notes the override count it carries, unless
   * an override was written after the call was sent (its epoch, the decoder's context).
   */
  #counted<T>(fromReply: (reply: unknown) => T): ReplyDecoder<T, number> {
    return (reply, epoch) => {
      if (Array.isArray(reply)) this.#noteOverrideCount((reply as CounterReply)[1], epoch);
      return fromReply(reply);
    };
  }

  /**
   * ARGV[2] of a counter script: `=` and the overrides version the engine planned with, for
   * the script to check (see lua-scripts.ts), else the override count flag.
   */
  #overrideArg(request: { readonly overridesVersion?: string }): string {
    const version = request.overridesVersion;
    return version === undefined || this.#shardBy !== undefined
      ? this.#askOverrideCount()
      : `=${version}`;
  }

  /**
   * '1' to have this call's script read the override count: at most every quarter of
   * `overrideHintMs`, enough to keep the hint fresh without a read on every call.
   */
  #askOverrideCount(): '0' | '1' {
    if (this.#overrideHintMs === 0) return '0';
    const now = performance.now();
    if (now < this.#askCountAfter) return '0';
    this.#askCountAfter = now + this.#overrideHintMs / 4;
    return '1';
  }

  #beginOverrideWrite(): number {
    this.#noOverridesSeenAt = Number.NEGATIVE_INFINITY;
    this.#overrideEpoch += 1;
    return this.#overrideEpoch;
  }

  #noteOverrideCount(count: number, epoch: number): void {
    if (count < 0 || epoch !== this.#overrideEpoch) return;
    this.#noOverridesSeenAt = count === 0 ? performance.now() : Number.NEGATIVE_INFINITY;
  }

  #insure(id: string, expiresAt: number, now: number): void {
    const insured = this.#insured;
    if (insured.size >= INSURED_PRUNE_AT) {
      for (const [held, until] of insured) if (until <= now) insured.delete(held);
    }
    insured.set(id, expiresAt);
  }
}

/** A limit on its counter's value alone: no sliding window's previous counter to weigh in. */
function isFixed(limit: StoreLimit): boolean {
  return limit.previous === undefined;
}

function consumeOutcome(reply: CounterReply): StoreConsumeResult {
  return { allowed: reply[0] === 1, values: valuesOf(reply) };
}

/** CONSUME_ONE_SCRIPT's reply: an integer (the value, or -value - 1 when refused) or a list. */
function consumeOneOutcome(reply: unknown): StoreConsumeResult {
  if (typeof reply !== 'number') return consumeOutcome(reply as CounterReply);
  return reply >= 0 ? { allowed: true, values: [reply] } : { allowed: false, values: [-reply - 1] };
}

function readInsured(insurance: QuotaStore, request: StoreReadRequest): Promise<StoreReadResult> {
  // As for a consume: no version of Redis's overrides to check there.
  return insurance.read(
    request.overridesVersion === undefined ? request : { ...request, overridesVersion: undefined },
  );
}

function recordInsured(
  insurance: QuotaStore,
  request: StoreRecordRequest,
): Promise<StoreRecordResult> {
  return insurance.record(request);
}

function settleInsured(
  insurance: QuotaStore,
  request: StoreSettleRequest,
): Promise<StoreSettleResult> {
  return insurance.settle(request);
}

function valuesOf(reply: CounterReply): number[] {
  const values = new Array<number>(reply.length - 2);
  for (let i = 2; i < reply.length; i++) {
    const value = reply[i]!;
    values[i - 2] = typeof value === 'number' ? value : Number(value);
  }
  return values;
}

function pushOverrides(
  found: StoredOverride[],
  scope: OverrideScope,
  id: string,
  fields: readonly string[],
): void {
  for (let i = 0; i < fields.length; i += 2) {
    found.push({ scope, id, resource: fields[i]!, rules: JSON.parse(fields[i + 1]!) });
  }
}
