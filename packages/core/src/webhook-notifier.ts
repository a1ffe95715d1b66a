/**
 * Delivers threshold events to an HTTP endpoint as signed JSON, and checks such signatures on
 * the receiving side. Web standards only (`fetch`, Web Crypto, `TextEncoder`), so it runs on
 * Node, Bun, Deno and Workers alike.
 *
 * @packageDocumentation
 */

import { QuotaConfigError } from './errors.js';
import type { ThresholdEvent, ThresholdListener } from './events.js';
import { optionKeys, rejectUnknownOptions } from './known-options.js';

/** Options of {@link webhookNotifier}. Validated once, at construction. */
export interface WebhookNotifierOptions {
  /** Endpoint that receives a `POST` per event. Must be an `http:` or `https:` URL. */
  url: string;
  /**
   * Shared secret of the HMAC-SHA256 signature in `X-QuotaKit-Signature`. Receivers check it
   * with {@link verifyWebhookSignature}.
   */
  secret: string;
  /**
   * Longest wait for one attempt, until the response headers arrive; a slower attempt counts
   * as failed and is retried. Defaults to `5_000` ms.
   */
  timeoutMs?: number;
  /**
   * Retries after the first attempt fails with a network error, a timeout, `408`, `429` or a
   * `5xx`; other statuses are not retried. An integer from 0 to 10. Defaults to `3`.
   */
  retries?: number;
  /**
   * Delay before the first retry, doubled for each further one; each delay is drawn between
   * half and all of that value (jitter, so that many senders do not retry in step) and is at
   * most 30 s. A `Retry-After` header, when sent with a retried status, replaces it (also capped
   * at 30 s). Defaults to `500` ms.
   */
  backoffMs?: number;
  /**
   * Most deliveries waiting for one of the 4 delivery slots. When a new event would exceed it,
   * the oldest waiting delivery is dropped and reported to `onError` (reason `'queue_full'`):
   * the newest events describe the current state. Defaults to `1_000`.
   */
  maxQueue?: number;
  /**
   * Extra request headers, for example an `Authorization` the receiver demands. They cannot
   * replace `Content-Type`, `User-Agent`, `X-QuotaKit-Signature` or `X-QuotaKit-Delivery`.
   * Defaults to none.
   */
  headers?: Record<string, string>;
  /** The `fetch` to send with (a proxying or instrumented one). Defaults to `globalThis.fetch`. */
  fetch?: typeof fetch;
  /**
   * Called once for every event that was not delivered: after the last retry, on a status
   * that is not retried, when dropped from a full queue, or refused after `close()`. The
   * error is a {@link WebhookDeliveryError}. Never awaited; what it throws is ignored. Defaults
   * to a `console.warn` on the first failure of a run of failures, quiet again until a
   * delivery succeeds.
   */
  onError?: (error: unknown, event: ThresholdEvent) => void;
}

/**
 * The listener {@link webhookNotifier} returns: register it with `engine.on('threshold', …)`.
 * Calling it queues a delivery and returns at once; it never throws.
 */
export interface WebhookNotifier extends ThresholdListener {
  (event: ThresholdEvent): void;
  /**
   * Resolves when every event received so far has been delivered or given up on. Never
   * rejects. `engine.close()` awaits it.
   */
  flush(): Promise<void>;
  /**
   * Refuses events from now on (each is reported to `onError` with reason `'closed'`), then
   * resolves like {@link WebhookNotifier.flush}. No timer is left behind. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * The JSON body of a delivery: the {@link ThresholdEvent} with its dates as ISO 8601 strings.
 */
export type WebhookThresholdPayload = Omit<ThresholdEvent, 'resetAt' | 'at'> & {
  resetAt: string | null;
  at: string;
};

/** Why a {@link WebhookDeliveryError} was reported. */
export type WebhookFailureReason =
  /** The endpoint answered with a status that is not 2xx (the last one, after retries). */
  | 'http_status'
  /** `fetch` failed: refused connection, DNS, TLS, reset (the last attempt, after retries). */
  | 'network'
  /** No response within `timeoutMs` (the last attempt, after retries). */
  | 'timeout'
  /** Dropped from a full queue (`maxQueue`) before any attempt. */
  | 'queue_full'
  /** Received after `close()`. */
  | 'closed'
  /** The event could not be serialized or signed; not retried. */
  | 'invalid_event';

/** An event that {@link webhookNotifier} did not deliver; passed to its `onError`. */
export class WebhookDeliveryError extends Error {
  /** Why the delivery failed. */
  readonly reason: WebhookFailureReason;
  /** The `X-QuotaKit-Delivery` id the event was (or would have been) sent with. */
  readonly deliveryId: string;
  /** HTTP attempts made, retries included; 0 when none was. */
  readonly attempts: number;
  /** Status of the last response, when the endpoint answered. */
  readonly status: number | undefined;

  constructor(
    reason: WebhookFailureReason,
    message: string,
    details: { deliveryId: string; attempts: number; status?: number; cause?: unknown },
  ) {
    super(message, { cause: details.cause });
    this.name = 'WebhookDeliveryError';
    this.reason = reason;
    this.deliveryId = details.deliveryId;
    this.attempts = details.attempts;
    this.status = details.status;
  }
}

// Enough parallelism to keep up with bursts, few enough not to flood a small receiver.
const MAX_IN_FLIGHT = 4;
// Bounds every wait between attempts, so that flush() and close() finish in bounded time
// whatever a receiver's Retry-After asks for.
const MAX_RETRY_DELAY_MS = 30_000;
// More retries than this outlast any blip; the queue and onError handle real outages.
const MAX_RETRIES = 10;
// Largest delay setTimeout accepts before it fires at once (a signed 32-bit int).
const MAX_TIMER_MS = 2_147_483_647;
const SIGNATURE_PREFIX = 'sha256=';
const RESERVED_HEADERS = [
  'content-type',
  'user-agent',
  'x-quotakit-signature',
  'x-quotakit-delivery',
] as const;

const encoder = new TextEncoder();

type Timer = ReturnType<typeof setTimeout>;
// Spelled through the global rather than the DOM lib's `CryptoKey`, which not every setup has.
type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

interface WebhookConfig {
  url: string;
  secret: string;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  maxQueue: number;
  headers: [string, string][];
  fetch: typeof fetch;
  onError: ((error: unknown, event: ThresholdEvent) => void) | undefined;
}

interface Delivery {
  readonly id: string;
  readonly event: ThresholdEvent;
  readonly body: Uint8Array;
  readonly settled: Promise<void>;
  readonly settle: () => void;
}

type AttemptOutcome =
  | { ok: true }
  | { ok: false; retryable: boolean; retryAfterMs: number | undefined; error: WebhookFailure };

interface WebhookFailure {
  reason: WebhookFailureReason;
  message: string;
  status?: number;
  cause?: unknown;
}

/**
 * Creates a threshold listener that `POST`s each event to `url` as JSON (dates as ISO
 * strings), signed with `X-QuotaKit-Signature: sha256=<hex HMAC-SHA256 of the raw body>` and
 * identified by `X-QuotaKit-Delivery: <uuid>`, the same id on every retry so that a receiver
 * can de-duplicate. A 2xx answer is success. Network errors, timeouts, `408`, `429` and `5xx`
 * are retried up to `retries` times with exponential backoff (honouring `Retry-After`); other
 * answers, redirects included, are not.
 *
 * Calling the listener only queues the delivery: a quota decision never waits for the network
 * and never fails because of it. Up to 4 deliveries run at once; up to `maxQueue` more wait.
 * Timers do not keep a process alive on their own, except while `flush()` or `close()` is
 * awaited, so that awaiting them really delivers.
 *
 * @throws {QuotaConfigError} When an option is invalid (path `webhookNotifier.<option>`).
 *
 * @example
 * ```ts
 * const notifier = webhookNotifier({
 *   url: 'https://ops.example.com/hooks/quota',
 *   secret: process.env.QUOTA_WEBHOOK_SECRET!,
 *   onError: (error, event) => logger.warn({ error, resource: event.resource }),
 * });
 * engine.on('threshold', notifier);
 * // ...
 * await engine.close(); // awaits notifier.flush()
 * ```
 */
export function webhookNotifier(options: WebhookNotifierOptions): WebhookNotifier {
  const config = resolveOptions(options);
  // Held in a local and called bare: Workers reject a native fetch invoked as a method of
  // another object ("Illegal invocation").
  const send = config.fetch;
  const onError = config.onError;
  // Only the origin is logged: the path or query of a webhook URL often carries a token.
  const origin = new URL(config.url).origin;

  let signingKey: Promise<HmacKey> | undefined;
  const waiting: Delivery[] = [];
  const unsettled = new Set<Delivery>();
  const timers = new Set<Timer>();
  let inFlight = 0;
  let flushers = 0;
  let closing: Promise<void> | undefined;
  // The default reporter speaks once per streak of failures: an endpoint that is down logs one
  // line, not one per event. A successful delivery ends the streak.
  let streakReported = false;

  function fail(delivery: Delivery, attempts: number, failure: WebhookFailure): void {
    const error = new WebhookDeliveryError(failure.reason, failure.message, {
      deliveryId: delivery.id,
      attempts,
      status: failure.status,
      cause: failure.cause,
    });
    if (!onError) {
      if (streakReported) return;
      streakReported = true;
      console.warn(
        `[quotakit] Webhook delivery to ${origin} failed: ${describe(error)}. Further failures ` +
          'are not logged until a delivery succeeds; pass `onError` to handle each one.',
      );
      return;
    }
    try {
      onError(error, delivery.event);
    } catch {
      // A throwing reporter must not break the queue, nor reach the engine's caller.
    }
  }

  function notify(event: ThresholdEvent): void {
    const delivery = createDelivery(event);
    if (!delivery) return;
    if (closing) {
      fail(delivery, 0, {
        reason: 'closed',
        message: 'The webhook notifier is closed; the event was not sent',
      });
      return;
    }
    unsettled.add(delivery);
    if (inFlight < MAX_IN_FLIGHT) {
      void run(delivery);
      return;
    }
    waiting.push(delivery);
    if (waiting.length > config.maxQueue) {
      const dropped = waiting.shift()!;
      settle(dropped);
      fail(dropped, 0, {
        reason: 'queue_full',
        message: `More than ${config.maxQueue} webhook deliveries were waiting; dropped the oldest`,
      });
    }
  }

  function createDelivery(event: ThresholdEvent): Delivery | undefined {
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    let id = '';
    try {
      id = crypto.randomUUID();
      // Serialized now, not at send time: the body is a snapshot, and it is what gets signed.
      const body = encoder.encode(JSON.stringify(event));
      return { id, event, body, settled, settle };
    } catch (cause) {
      fail({ id, event, body: new Uint8Array(), settled, settle }, 0, {
        reason: 'invalid_event',
        message: 'The threshold event could not be serialized',
        cause,
      });
      return undefined;
    }
  }

  function settle(delivery: Delivery): void {
    unsettled.delete(delivery);
    delivery.settle();
  }

  async function run(delivery: Delivery): Promise<void> {
    inFlight += 1;
    try {
      await deliver(delivery);
    } catch (cause) {
      // deliver() reports its own failures; this only guards against a bug escaping it.
      fail(delivery, 0, { reason: 'network', message: 'The webhook delivery failed', cause });
    } finally {
      inFlight -= 1;
      settle(delivery);
      const next = waiting.shift();
      if (next) void run(next);
    }
  }

  async function deliver(delivery: Delivery): Promise<void> {
    let headers: Headers;
    try {
      signingKey ??= importHmacKey(config.secret);
      const signature = await crypto.subtle.sign('HMAC', await signingKey, delivery.body);
      headers = new Headers(config.headers);
      headers.set('content-type', 'application/json');
      headers.set('user-agent', 'quotakit-webhook');
      headers.set('x-quotakit-signature', SIGNATURE_PREFIX + toHex(new Uint8Array(signature)));
      headers.set('x-quotakit-delivery', delivery.id);
    } catch (cause) {
      fail(delivery, 0, {
        reason: 'invalid_event',
        message: 'The webhook body could not be signed',
        cause,
      });
      return;
    }
    const attempts = config.retries + 1;
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      const outcome = await attemptOnce(headers, delivery.body);
      if (outcome.ok) {
        streakReported = false;
        return;
      }
      if (!outcome.retryable || attempt === attempts) {
        fail(delivery, attempt, outcome.error);
        return;
      }
      await sleep(outcome.retryAfterMs ?? backoffDelay(config.backoffMs, attempt));
    }
  }

  async function attemptOnce(headers: Headers, body: Uint8Array): Promise<AttemptOutcome> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = startTimer(() => {
      timedOut = true;
      controller.abort();
    }, config.timeoutMs);
    try {
      const response = await send(config.url, {
        method: 'POST',
        headers,
        body,
        signal: controller.signal,
        // A redirected POST turns into a GET in fetch, and a signed event should not follow a
        // redirect to wherever it leads: a 3xx is a failure the operator must fix.
        redirect: 'manual',
      });
      // The answer's body is never read; cancelling it frees the connection for the next one.
      response.body?.cancel().catch(() => {});
      const { status } = response;
      if (status >= 200 && status < 300) return { ok: true };
      const retryable = status === 408 || status === 429 || status >= 500;
      return {
        ok: false,
        retryable,
        retryAfterMs: retryable
          ? parseRetryAfterMs(response.headers.get('retry-after'), Date.now())
          : undefined,
        error: {
          reason: 'http_status',
          message: `The webhook endpoint answered ${status}`,
          status,
        },
      };
    } catch (cause) {
      return {
        ok: false,
        retryable: true,
        retryAfterMs: undefined,
        error: timedOut
          ? {
              reason: 'timeout',
              message: `The webhook endpoint did not answer within ${config.timeoutMs} ms`,
              cause,
            }
          : { reason: 'network', message: 'The webhook request failed', cause },
      };
    } finally {
      stopTimer(timer);
    }
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      startTimer(resolve, ms);
    });
  }

  function startTimer(callback: () => void, ms: number): Timer {
    const timer = setTimeout(() => {
      timers.delete(timer);
      callback();
    }, ms);
    timers.add(timer);
    if (flushers === 0) setKeepsAlive(timer, false);
    return timer;
  }

  function stopTimer(timer: Timer): void {
    clearTimeout(timer);
    timers.delete(timer);
  }

  async function flush(): Promise<void> {
    if (unsettled.size === 0) return;
    const pending = Array.from(unsettled, (delivery) => delivery.settled);
    // While someone awaits the flush, the timers must hold the process open: otherwise Node
    // would exit in the middle of a backoff, with `await engine.close()` never returning.
    flushers += 1;
    if (flushers === 1) for (const timer of timers) setKeepsAlive(timer, true);
    try {
      await Promise.all(pending);
    } finally {
      flushers -= 1;
      if (flushers === 0) for (const timer of timers) setKeepsAlive(timer, false);
    }
  }

  function close(): Promise<void> {
    // Every timer belongs to a delivery, so once the flush is done none is left.
    closing ??= flush();
    return closing;
  }

  return Object.assign(notify, { flush, close });
}

/**
 * Checks an `X-QuotaKit-Signature` header against the raw request body, comparing in
 * constant time. Pass the body exactly as received, before any JSON parsing: re-serializing
 * it changes the bytes. Resolves `false` for a missing, malformed or wrong signature.
 *
 * @param body The raw request body, as text or bytes.
 * @param signatureHeader The `X-QuotaKit-Signature` header, `sha256=<64 hex digits>`.
 * @param secret The secret the sender's {@link webhookNotifier} was given.
 * @throws {QuotaConfigError} When `secret` is not a non-empty string: a missing secret is a
 *   deployment error, better loud than a receiver that silently rejects everything.
 *
 * @example
 * ```ts
 * // Hono
 * app.post('/hooks/quota', async (c) => {
 *   const body = await c.req.text();
 *   const signature = c.req.header('x-quotakit-signature') ?? '';
 *   if (!(await verifyWebhookSignature(body, signature, env.QUOTA_WEBHOOK_SECRET))) {
 *     return c.text('bad signature', 401);
 *   }
 *   const event: WebhookThresholdPayload = JSON.parse(body);
 *   // De-duplicate retries on c.req.header('x-quotakit-delivery').
 *   return c.body(null, 204);
 * });
 *
 * // Express: keep the raw bytes with express.raw({ type: 'application/json' })
 * const ok = await verifyWebhookSignature(req.body, req.get('x-quotakit-signature') ?? '', secret);
 * ```
 */
export async function verifyWebhookSignature(
  body: string | Uint8Array,
  signatureHeader: string,
  secret: string,
): Promise<boolean> {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new QuotaConfigError('verifyWebhookSignature.secret', 'must be a non-empty string');
  }
  const received = parseSignature(signatureHeader);
  if (!received) return false;
  const bytes = typeof body === 'string' ? encoder.encode(body) : body;
  const key = await importHmacKey(secret);
  const expected = new Uint8Array(await crypto.subtle.sign('HMAC', key, bytes));
  // Both are 32 bytes (parseSignature checks the length, which is no secret); OR-ing every
  // difference visits every byte whatever matches, so the time taken reveals nothing.
  let difference = 0;
  for (let index = 0; index < expected.length; index += 1) {
    difference |= expected[index]! ^ received[index]!;
  }
  return difference === 0;
}

function importHmacKey(secret: string): Promise<HmacKey> {
  return crypto.subtle.importKey(
    'raw',
    encoder.encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
}

function parseSignature(header: unknown): Uint8Array | undefined {
  if (typeof header !== 'string') return undefined;
  const value = header.trim();
  if (value.slice(0, SIGNATURE_PREFIX.length).toLowerCase() !== SIGNATURE_PREFIX) return undefined;
  const hex = value.slice(SIGNATURE_PREFIX.length);
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return undefined;
  const bytes = new Uint8Array(32);
  for (let index = 0; index < 32; index += 1) {
    bytes[index] = Number.parseInt(hex.slice(index * 2, index * 2 + 2), 16);
  }
  return bytes;
}

function toHex(bytes: Uint8Array): string {
  let hex = '';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

/** Exponential backoff with "equal jitter": between half and all of the doubled delay. */
function backoffDelay(backoffMs: number, attempt: number): number {
  const ceiling = Math.min(backoffMs * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/**
 * Reads `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), capped; undefined
 * when absent or unreadable, so that the backoff applies.
 */
function parseRetryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  let delayMs: number;
  if (/^\d+$/.test(text)) delayMs = Number(text) * 1_000;
  // An HTTP-date always ends in GMT; V8's lenient Date.parse would read '1.5' as a date.
  else if (/ GMT$/.test(text)) delayMs = Date.parse(text) - now;
  else return undefined;
  if (!Number.isFinite(delayMs)) return undefined;
  return Math.min(Math.max(delayMs, 0), MAX_RETRY_DELAY_MS);
}

// Node and Bun timers have ref/unref; elsewhere a timer never holds a process open anyway.
function setKeepsAlive(timer: Timer, keepsAlive: boolean): void {
  const handle = timer as { ref?: () => void; unref?: () => void };
  if (keepsAlive) handle.ref?.();
  else handle.unref?.();
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return error.message + cause;
}

const WEBHOOK_OPTIONS = optionKeys<WebhookNotifierOptions>({
  url: true,
  secret: true,
  timeoutMs: true,
  retries: true,
  backoffMs: true,
  maxQueue: true,
  headers: true,
  fetch: true,
  onError: true,
});

function resolveOptions(options: WebhookNotifierOptions): WebhookConfig {
  if (typeof options !== 'object' || options === null) {
    throw new QuotaConfigError('webhookNotifier', 'expects an options object');
  }
  rejectUnknownOptions(options, WEBHOOK_OPTIONS, 'webhookNotifier', 'webhookNotifier.');
  const { url, secret, onError } = options;
  if (typeof url !== 'string') {
    throw new QuotaConfigError('webhookNotifier.url', 'must be a string');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new QuotaConfigError('webhookNotifier.url', `is not a valid URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new QuotaConfigError('webhookNotifier.url', 'must use http: or https:');
  }
  if (parsed.username || parsed.password) {
    // fetch refuses such URLs at request time; say so now instead.
    throw new QuotaConfigError(
      'webhookNotifier.url',
      'must not contain credentials; pass them in `headers`',
    );
  }
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new QuotaConfigError('webhookNotifier.secret', 'must be a non-empty string');
  }
  const fetchFunction = options.fetch ?? globalThis.fetch;
  if (typeof fetchFunction !== 'function') {
    throw new QuotaConfigError(
      'webhookNotifier.fetch',
      'must be a function; this runtime has no global fetch',
    );
  }
  if (typeof globalThis.crypto?.subtle?.sign !== 'function') {
    throw new QuotaConfigError('webhookNotifier', 'needs Web Crypto (crypto.subtle)');
  }
  if (onError !== undefined && typeof onError !== 'function') {
    throw new QuotaConfigError('webhookNotifier.onError', 'must be a function');
  }
  return {
    url: parsed.href,
    secret,
    timeoutMs: number(options.timeoutMs, 'timeoutMs', 5_000, 1, MAX_TIMER_MS, false),
    retries: number(options.retries, 'retries', 3, 0, MAX_RETRIES, true),
    backoffMs: number(options.backoffMs, 'backoffMs', 500, 0, MAX_RETRY_DELAY_MS, false),
    maxQueue: number(options.maxQueue, 'maxQueue', 1_000, 1, Number.MAX_SAFE_INTEGER, true),
    headers: resolveHeaders(options.headers),
    fetch: fetchFunction,
    onError,
  };
}

function number(
  value: unknown,
  name: string,
  fallback: number,
  min: number,
  max: number,
  integer: boolean,
): number {
  if (value === undefined) return fallback;
  const kind = integer ? 'an integer' : 'a number';
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    (integer && !Number.isInteger(value)) ||
    value < min ||
    value > max
  ) {
    throw new QuotaConfigError(
      `webhookNotifier.${name}`,
      `must be ${kind} from ${min} to ${max}, got ${String(value)}`,
    );
  }
  return value;
}

function resolveHeaders(headers: unknown): [string, string][] {
  if (headers === undefined) return [];
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new QuotaConfigError('webhookNotifier.headers', 'must be an object of strings');
  }
  const resolved: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    const path = `webhookNotifier.headers.${name}`;
    if (typeof value !== 'string') throw new QuotaConfigError(path, 'must be a string');
    if ((RESERVED_HEADERS as readonly string[]).includes(name.toLowerCase())) {
      throw new QuotaConfigError(path, 'is set by the notifier and cannot be replaced');
    }
    try {
      // Headers checks names and values the way fetch will, so a bad one fails here.
      new Headers([[name, value]]);
    } catch {
      throw new QuotaConfigError(path, 'is not a valid HTTP header name or value');
    }
    resolved.push([name, value]);
  }
  return resolved;
}
