import { z } from 'zod';
import { throwConfigError } from './config.js';
import { consumeAtOnce, type QuotaEngine } from './engine.js';
import { isQuotaError, QuotaConfigError } from './errors.js';
import { QuotaHandle, type QuotaMode } from './quota-handle.js';
import { invalidQuotaRequest, type QuotaRefusal, quotaRefusal } from './quota-refusal.js';
import {
  type HeaderTarget,
  type RateLimitHeaderStyle,
  writeQuotaHeaders,
  writeRetryAfter,
} from './rate-limit-headers.js';
import { parseRequestAmounts, type RequestAmounts } from './request-amounts.js';
import type { Amounts, Reservation } from './reservation.js';
import type { QuotaCheckResult, QuotaDecision } from './results.js';
import type { Subject } from './subject.js';

/**
 * Options of the `quota()` middleware of `@quotakit/express` and `@quotakit/hono`: the same
 * in both, `Req` being the Express request or the Hono context. Resolved and validated once,
 * when the middleware is created; a bad option throws a `QuotaConfigError` naming it.
 */
export interface QuotaMiddlewareOptions<Req, OnExceeded = unknown> {
  /** The engine that decides and counts. */
  engine: QuotaEngine;
  /**
   * What one request costs: fixed amounts (`{ llm_requests: 1 }`), or a function of the
   * request, whose values may be strings read from a header or the query (parsed as decimal
   * numbers). An amount that is not a finite number of 0 or more refuses the request with a
   * 400 and counts nothing.
   */
  amounts: Amounts | ((request: Req) => RequestAmounts | Promise<RequestAmounts>);
  /**
   * Who the request is charged to. Defaults to the client's IP address as
   * `{ userId: 'ip:<address>' }`, IPv6 masked to its /56 network (see `addressSubject`).
   * Behind a proxy, tell the framework which proxies to trust, or the proxy's address is
   * everyone's; never trust an id the client sends without authenticating it. A subject
   * without any id is bound by global rules only.
   */
  identify?: (request: Req) => Subject | Promise<Subject>;
  /**
   * `'consume'` (default) takes the amounts when the request arrives. `'reserve'` holds them
   * as an estimate, then commits what the handler recorded when the response succeeds, or
   * releases everything when it fails (thrown, 5xx, client gone).
   */
  mode?: QuotaMode;
  /**
   * Which rate-limit headers go out, on allowed and refused responses alike: `'draft-8'`
   * (default; `RateLimit-Policy` and `RateLimit`, appended, plus `Quota-Status`),
   * `'legacy'` (`X-RateLimit-*` plus `Quota-Status`) or `false` (none). `Retry-After` goes
   * out on refusals whatever this says.
   */
  headers?: RateLimitHeaderStyle;
  /** Requests for which this returns true pass without being charged. Defaults to none. */
  skip?: (request: Req) => boolean | Promise<boolean>;
  /**
   * Answers a refused request (429, or 503 when the store did not answer and the failure
   * mode is closed) instead of the default JSON body. The rate-limit and `Retry-After`
   * headers are already set.
   */
  onExceeded?: OnExceeded;
  /**
   * What happens when the quota store cannot answer (status `unknown`): `'open'` lets the
   * request through, `'closed'` refuses it with a 503. Defaults to the engine's `failureMode`.
   */
  failureMode?: 'open' | 'closed';
  /** How long a reservation holds in reserve mode. Defaults to the engine's `reservationTtlMs`. */
  ttlMs?: number;
  /**
   * Current time in epoch ms, for the seconds-to-reset in the headers. Defaults to
   * the engine's clock (`engine.now()`).
   */
  clock?: () => number;
  /**
   * Receives errors that have no request to fail: a commit the store refused, a record after
   * the response. Defaults to a `console.warn` at most once a minute.
   */
  onError?: (error: unknown) => void;
}

const isFunction = (value: unknown) => typeof value === 'function';
const fn = <T>() => z.custom<T>(isFunction, 'must be a function');

const optionsSchema = z.strictObject({
  engine: z.custom<QuotaEngine>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      isFunction((value as QuotaEngine).consume) &&
      isFunction((value as QuotaEngine).reserve),
    'must be a QuotaEngine (createQuotaEngine)',
  ),
  amounts: z.custom<object>(
    (value) => isFunction(value) || (typeof value === 'object' && value !== null),
    'must be an object of resource -> amount, or a function of the request',
  ),
  identify: fn().optional(),
  mode: z.enum(['consume', 'reserve']).optional(),
  headers: z.union([z.enum(['draft-8', 'legacy']), z.literal(false)]).optional(),
  skip: fn().optional(),
  onExceeded: fn().optional(),
  failureMode: z.enum(['open', 'closed']).optional(),
  ttlMs: z.number().int('must be whole milliseconds').positive('must be above 0').optional(),
  clock: fn().optional(),
  onError: fn().optional(),
});

/**
 * What the middleware decided for one request. Adapters write its headers, then either send
 * the refusal or hand the handle to the request handler.
 */
export class Admission {
  /** The handler's handle ({@link QuotaHandle.SKIPPED} when skipped or refused). */
  readonly handle: QuotaHandle;
  /** Set when the request must not reach the handler: a 400, 429 or 503 to send. */
  readonly refusal: QuotaRefusal | undefined;
  readonly #results: Readonly<Record<string, QuotaCheckResult>> | undefined;
  readonly #style: RateLimitHeaderStyle;
  readonly #clock: () => number;

  constructor(
    handle: QuotaHandle,
    refusal: QuotaRefusal | undefined,
    results: Readonly<Record<string, QuotaCheckResult>> | undefined,
    style: RateLimitHeaderStyle,
    clock: () => number,
  ) {
    this.handle = handle;
    this.refusal = refusal;
    this.#results = results;
    this.#style = style;
    this.#clock = clock;
  }

  /** Writes the rate-limit, `Quota-Status` and (on a refusal) `Retry-After` headers. */
  writeHeaders(target: HeaderTarget): void {
    if (this.#results !== undefined && this.#style !== false) {
      writeQuotaHeaders(target, this.#results, this.#style, this.#clock());
    }
    const retryAfterMs = this.refusal?.retryAfterMs;
    if (retryAfterMs !== undefined) writeRetryAfter(target, retryAfterMs);
  }
}

const SKIPPED = new Admission(QuotaHandle.SKIPPED, undefined, undefined, false, Date.now);

/**
 * The framework-neutral half of `quota()`: options resolved once, then {@link admit} per
 * request. `@quotakit/express` and `@quotakit/hono` are thin bridges over it.
 */
export class QuotaGate<Req, OnExceeded = unknown> {
  /** The `onExceeded` option, for the adapter to call. */
  readonly onExceeded: OnExceeded | undefined;
  readonly #engine: QuotaEngine;
  readonly #fixedAmounts: Amounts | undefined;
  readonly #amountsOf: ((request: Req) => RequestAmounts | Promise<RequestAmounts>) | undefined;
  readonly #identify: (request: Req) => Subject | Promise<Subject>;
  readonly #reserve: boolean;
  readonly #style: RateLimitHeaderStyle;
  readonly #skip: ((request: Req) => boolean | Promise<boolean>) | undefined;
  readonly #failureMode: 'open' | 'closed' | undefined;
  readonly #ttlMs: number | undefined;
  readonly #clock: () => number;
  readonly #onError: (error: unknown) => void;

  /**
   * @param defaultIdentify - the adapter's way to key a caller by address, used when the
   * options have no `identify`.
   * @throws QuotaConfigError naming the bad option.
   */
  constructor(
    options: QuotaMiddlewareOptions<Req, OnExceeded>,
    defaultIdentify: (request: Req) => Subject,
  ) {
    const parsed = optionsSchema.safeParse(options);
    if (!parsed.success) throwConfigError(parsed.error);
    this.#engine = options.engine;
    if (typeof options.amounts === 'function') {
      this.#amountsOf = options.amounts;
    } else {
      this.#fixedAmounts = Object.freeze(fixedAmounts(options.amounts));
    }
    this.#identify = options.identify ?? defaultIdentify;
    this.#reserve = options.mode === 'reserve';
    this.#style = options.headers ?? 'draft-8';
    this.#skip = options.skip;
    this.onExceeded = options.onExceeded;
    this.#failureMode = options.failureMode;
    this.#ttlMs = options.ttlMs;
    this.#clock = options.clock ?? (() => options.engine.now());
    this.#onError = options.onError ?? warnAtMostOnceAMinute;
  }

  /**
   * Decides one request: skip, identify, price it, ask the engine. Client errors (an amount
   * that is not a number, an id the engine refuses) become a 400 refusal; a store failure
   * follows the failure mode. Anything else (an `identify` that throws) rejects.
   *
   * @returns the admission itself when nothing had to be waited for (an in-memory engine in
   * consume mode, with synchronous `skip`, `identify` and `amounts`), else a promise of it.
   */
  admit(request: Req): Admission | Promise<Admission> {
    // Promise chains rather than an async function: on the hot path (no skip, a synchronous
    // identify, fixed amounts, an in-memory engine in consume mode) nothing is waited for.
    try {
      if (this.#skip === undefined) return this.#identified(request);
      const skipped = this.#skip(request);
      if (skipped === false) return this.#identified(request);
      return Promise.resolve(skipped).then((skip) => (skip ? SKIPPED : this.#identified(request)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #identified(request: Req): Admission | Promise<Admission> {
    const subject = this.#identify(request);
    if (isPromise(subject)) {
      // Promise.resolve: a thenable that is not a Promise still yields a Promise.
      return Promise.resolve(subject).then((resolved) => this.#priced(request, resolved));
    }
    return this.#priced(request, subject);
  }

  #priced(request: Req, subject: Subject): Admission | Promise<Admission> {
    if (this.#fixedAmounts !== undefined) return this.#ask(subject, this.#fixedAmounts);
    try {
      const raw = this.#amountsOf!(request);
      if (!isPromise(raw)) return this.#ask(subject, parseRequestAmounts(raw));
      return Promise.resolve(raw).then(
        (resolved) => this.#ask(subject, parseRequestAmounts(resolved)),
        (error: unknown) => this.#invalid(error),
      );
    } catch (error) {
      return this.#invalid(error);
    }
  }

  #ask(subject: Subject, amounts: Amounts): Admission | Promise<Admission> {
    // Named fields rather than a spread: a fixed shape keeps the engine's hot path fast, and
    // nothing else `identify` returned travels on.
    const { userId, agentId, tenantId, runId } = subject;
    if (!this.#reserve) {
      let decision: QuotaDecision | undefined;
      try {
        decision = consumeAtOnce(this.#engine, { userId, agentId, tenantId, runId, amounts });
      } catch (error) {
        return this.#invalid(error);
      }
      if (decision !== undefined) return this.#decided(subject, decision);
    }
    const pending = this.#reserve
      ? this.#engine.reserve({ userId, agentId, tenantId, runId, amounts, ttlMs: this.#ttlMs })
      : this.#engine.consume({ userId, agentId, tenantId, runId, amounts });
    return Promise.resolve(pending).then(
      (decision) => this.#decided(subject, decision),
      (error: unknown) => this.#invalid(error),
    );
  }

  #decided(subject: Subject, decision: QuotaDecision): Admission {
    let allowed = decision.allowed;
    if (this.#failureMode !== undefined && hasUnknown(decision.results)) {
      allowed = this.#failureMode === 'open';
    }
    const results = this.#style === false && allowed ? undefined : decision.results;
    // A refusal holds nothing: the engine refused (and took nothing), or the store did not
    // answer (and so could not take anything either).
    if (!allowed) {
      const refusal = quotaRefusal(decision.results);
      return new Admission(QuotaHandle.SKIPPED, refusal, results, this.#style, this.#clock);
    }
    const handle = new QuotaHandle({
      engine: this.#engine,
      mode: this.#reserve ? 'reserve' : 'consume',
      subject,
      decision: this.#reserve ? undefined : decision,
      reservation: this.#reserve ? (decision as Reservation) : undefined,
      onError: this.#onError,
    });
    return new Admission(handle, undefined, results, this.#style, this.#clock);
  }

  /** A 400 for a validation error (bad amount, bad id); anything else rejects. */
  #invalid(error: unknown): Promise<Admission> {
    if (isQuotaError(error) && error.code === 'quota_validation') {
      const refusal = invalidQuotaRequest(error.message);
      return Promise.resolve(
        new Admission(QuotaHandle.SKIPPED, refusal, undefined, false, this.#clock),
      );
    }
    return Promise.reject(error);
  }
}

/** Fixed amounts, checked once. */
function fixedAmounts(amounts: object): Amounts {
  const copy: Record<string, number> = Object.create(null);
  let count = 0;
  for (const [resource, value] of Object.entries(amounts)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new QuotaConfigError(`amounts.${resource}`, 'must be a finite number of 0 or more');
    }
    copy[resource] = value;
    count++;
  }
  if (count === 0) throw new QuotaConfigError('amounts', 'must name at least one resource');
  return copy as Amounts;
}

function hasUnknown(results: Readonly<Record<string, QuotaCheckResult>>): boolean {
  for (const resource in results) if (results[resource]!.status === 'unknown') return true;
  return false;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}

let lastWarningAt = Number.NEGATIVE_INFINITY;
function warnAtMostOnceAMinute(error: unknown): void {
  const now = Date.now();
  if (now - lastWarningAt < 60_000) return;
  lastWarningAt = now;
  console.warn('[quotakit]', error instanceof Error ? error.message : error);
}
