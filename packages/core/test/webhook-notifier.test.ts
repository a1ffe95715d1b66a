import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { QuotaConfigError } from '../src/errors.js';
import type { ThresholdEvent } from '../src/events.js';
import {
  webhookNotifier as createNotifier,
  verifyWebhookSignature,
  type WebhookDeliveryError,
  type WebhookNotifier,
  type WebhookNotifierOptions,
} from '../src/webhook-notifier.js';

const SECRET = 'whsec_test_secret';

interface ReceivedRequest {
  method: string | undefined;
  headers: IncomingHttpHeaders;
  /** The raw bytes, exactly as they came off the wire. */
  body: Buffer;
  receivedAt: number;
}

/** Answers the request numbered `index` (0-based) by writing to `res`, now or later. */
type Reply = (res: ServerResponse, index: number) => void;

interface TestServer {
  url: string;
  requests: ReceivedRequest[];
  /** Responses the reply left open; answer them with `answerHeld`. */
  held: ServerResponse[];
}

const servers: Server[] = [];
const notifiers: WebhookNotifier[] = [];
const timers = new Set<ReturnType<typeof setTimeout>>();

afterEach(async () => {
  for (const timer of timers) clearTimeout(timer);
  timers.clear();
  // Servers first: closing them fails whatever is still held, so the notifiers' close() ends.
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
  await Promise.all(notifiers.splice(0).map((notifier) => notifier.close()));
  vi.restoreAllMocks();
});

async function startServer(reply: Reply): Promise<TestServer> {
  const requests: ReceivedRequest[] = [];
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    // Counted on arrival, not when the body is in: an attempt the client abandons still counts.
    const request: ReceivedRequest = {
      method: req.method,
      headers: req.headers,
      body: Buffer.alloc(0),
      receivedAt: performance.now(),
    };
    const index = requests.push(request) - 1;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      request.body = Buffer.concat(chunks);
      reply(res, index);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/quota?token=abc`, requests, held };
}

function answer(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  // The client may have given up on a slow answer already.
  if (res.destroyed) return;
  res.writeHead(status, headers).end(status === 204 ? undefined : `status ${status}`);
}

function later(ms: number, action: () => void): void {
  const timer = setTimeout(() => {
    timers.delete(timer);
    action();
  }, ms);
  timers.add(timer);
}

/** Polls `predicate` every 5 ms, failing after `timeoutMs`. */
async function until(predicate: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A port that was just listening and is now closed: connecting to it is refused at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const SOURCE = fileURLToPath(new URL('../src/webhook-notifier.ts', import.meta.url));

/** Runs `body` as an ES module in a fresh Node process, with `webhookNotifier` in scope. */
async function runInChildProcess(body: string): Promise<{ stdout: string; code: number }> {
  const script = `const { webhookNotifier } = await import(${JSON.stringify(SOURCE)});\n${body}`;
  try {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: REPO_ROOT, timeout: 15_000 },
    );
    return { stdout, code: 0 };
  } catch (error) {
    const failed = error as { stdout?: string; code?: number };
    return { stdout: failed.stdout ?? '', code: failed.code ?? -1 };
  }
}

function webhookNotifier(options: WebhookNotifierOptions): WebhookNotifier {
  const notifier = createNotifier({ backoffMs: 10, timeoutMs: 1_000, ...options });
  notifiers.push(notifier);
  return notifier;
}

function thresholdEvent(overrides: Partial<ThresholdEvent> = {}): ThresholdEvent {
  return {
    type: 'threshold',
    resource: 'llm_tokens',
    status: 'approaching_limit',
    subject: { userId: 'user-1', tenantId: 'acme' },
    scope: 'user',
    used: 8_000,
    limit: 10_000,
    remaining: 2_000,
    period: 'per_day',
    resetAt: new Date('2025-03-02T00:00:00.000Z'),
    at: new Date('2025-03-01T17:45:12.345Z'),
    ...overrides,
  };
}

function deliveryIds(server: TestServer): (string | string[] | undefined)[] {
  return server.requests.map((request) => request.headers['x-quotakit-delivery']);
}

function failures(onError: ReturnType<typeof vi.fn>): WebhookDeliveryError[] {
  return onError.mock.calls.map(([error]) => error as WebhookDeliveryError);
}

describe('webhookNotifier', () => {
  it('posts the event as JSON signed over the raw bytes, with a delivery id', async () => {
    const server = await startServer((res) => answer(res, 204));
    const onError = vi.fn();
    const notifier = webhookNotifier({
      url: server.url,
      secret: SECRET,
      headers: { Authorization: 'Bearer receiver-token' },
      onError,
    });

    notifier(thresholdEvent());
    await notifier.flush();

    expect(server.requests).toHaveLength(1);
    const [request] = server.requests;
    expect(request!.method).toBe('POST');
    expect(request!.headers['content-type']).toBe('application/json');
    expect(request!.headers['user-agent']).toBe('quotakit-webhook');
    expect(request!.headers.authorization).toBe('Bearer receiver-token');
    expect(request!.headers['x-quotakit-delivery']).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    const expected = createHmac('sha256', SECRET).update(request!.body).digest('hex');
    expect(request!.headers['x-quotakit-signature']).toBe(`sha256=${expected}`);
    expect(JSON.parse(request!.body.toString('utf8'))).toEqual({
      type: 'threshold',
      resource: 'llm_tokens',
      status: 'approaching_limit',
      subject: { userId: 'user-1', tenantId: 'acme' },
      scope: 'user',
      used: 8_000,
      limit: 10_000,
      remaining: 2_000,
      period: 'per_day',
      resetAt: '2025-03-02T00:00:00.000Z',
      at: '2025-03-01T17:45:12.345Z',
    });
    expect(onError).not.toHaveBeenCalled();
  });

  it('gives each event its own delivery id and sends a null resetAt as null', async () => {
    const server = await startServer((res) => answer(res, 200));
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, onError: vi.fn() });

    notifier(thresholdEvent({ period: 'total', resetAt: null }));
    notifier(thresholdEvent({ status: 'exceeded' }));
    await notifier.flush();

    const ids = deliveryIds(server);
    expect(ids).toHaveLength(2);
    expect(ids[0]).not.toBe(ids[1]);
    const bodies = server.requests.map((request) => JSON.parse(request.body.toString('utf8')));
    expect(bodies.find((body) => body.period === 'total').resetAt).toBeNull();
  });

  it('returns at once, before the network answers, and flush waits for the delivery', async () => {
    const server = await startServer((res) => server.held.push(res));
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, onError: vi.fn() });

    const returned = notifier(thresholdEvent());
    expect(returned).toBeUndefined();
    expect(server.requests).toHaveLength(0);

    let flushed = false;
    const flushing = notifier.flush().then(() => {
      flushed = true;
    });
    await until(() => server.held.length === 1);
    // The server holds the answer: the delivery is not over, so neither is the flush.
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(flushed).toBe(false);

    answer(server.held[0]!, 204);
    await flushing;
    expect(flushed).toBe(true);
  });

  it('runs at most 4 deliveries at once and flush waits for every queued one', async () => {
    let open = 0;
    let mostOpen = 0;
    const server = await startServer((res) => {
      open += 1;
      mostOpen = Math.max(mostOpen, open);
      later(20, () => {
        open -= 1;
        answer(res, 204);
      });
    });
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, onError: vi.fn() });

    for (let used = 1; used <= 10; used += 1) notifier(thresholdEvent({ used }));
    await notifier.flush();

    expect(server.requests).toHaveLength(10);
    expect(mostOpen).toBe(4);
  });

  it('retries after a 500 with the same delivery id, then succeeds', async () => {
    const server = await startServer((res, index) => answer(res, index === 0 ? 500 : 204));
    const onError = vi.fn();
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, onError });

    notifier(thresholdEvent());
    await notifier.flush();

    expect(server.requests).toHaveLength(2);
    const [first, second] = deliveryIds(server);
    expect(second).toBe(first);
    expect(server.requests[1]!.body.equals(server.requests[0]!.body)).toBe(true);
    expect(onError).not.toHaveBeenCalled();
  });

  it('abandons an attempt that outlasts timeoutMs and retries it', async () => {
    const server = await startServer((res, index) => {
      if (index === 0) later(1_000, () => answer(res, 204));
      else answer(res, 204);
    });
    const onError = vi.fn();
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, timeoutMs: 100, onError });

    const started = performance.now();
    notifier(thresholdEvent());
    await notifier.flush();

    expect(performance.now() - started).toBeLessThan(800);
    expect(server.requests).toHaveLength(2);
    expect(deliveryIds(server)[1]).toBe(deliveryIds(server)[0]);
    expect(onError).not.toHaveBeenCalled();
  });

  it('reports a timeout once every attempt has timed out', async () => {
    const server = await startServer((res) => later(1_000, () => answer(res, 204)));
    const onError = vi.fn();
    const notifier = webhookNotifier({
      url: server.url,
      secret: SECRET,
      timeoutMs: 100,
      retries: 1,
      onError,
    });

    notifier(thresholdEvent());
    await notifier.flush();

    expect(server.requests).toHaveLength(2);
    expect(failures(onError)).toMatchObject([{ reason: 'timeout', attempts: 2 }]);
  });

  it('does not retry a 400 and reports it', async () => {
    const server = await startServer((res) => answer(res, 400));
    const onError = vi.fn();
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, onError });
    const event = thresholdEvent();

    notifier(event);
    await notifier.flush();

    expect(server.requests).toHaveLength(1);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]![1]).toBe(event);
    expect(failures(onError)[0]).toMatchObject({
      name: 'WebhookDeliveryError',
      reason: 'http_status',
      status: 400,
      attempts: 1,
      deliveryId: deliveryIds(server)[0],
    });
  });

  it('does not follow a redirect', async () => {
    const elsewhere = await startServer((res) => answer(res, 204));
    const server = await startServer((res) => answer(res, 307, { Location: elsewhere.url }));
    const onError = vi.fn();
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, onError });

    notifier(thresholdEvent());
    await notifier.flush();

    expect(server.requests).toHaveLength(1);
    expect(elsewhere.requests).toHaveLength(0);
    expect(failures(onError)).toMatchObject([{ reason: 'http_status', status: 307 }]);
  });

  it('waits as long as Retry-After says on a 429', async () => {
    const server = await startServer((res, index) =>
      index === 0 ? answer(res, 429, { 'Retry-After': '1' }) : answer(res, 204),
    );
    const onError = vi.fn();
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, backoffMs: 10, onError });

    notifier(thresholdEvent());
    await notifier.flush();

    expect(server.requests).toHaveLength(2);
    const gapMs = server.requests[1]!.receivedAt - server.requests[0]!.receivedAt;
    expect(gapMs).toBeGreaterThanOrEqual(950);
    expect(onError).not.toHaveBeenCalled();
  });

  it('lets Retry-After replace a longer backoff on a 503', async () => {
    const server = await startServer((res, index) =>
      index === 0 ? answer(res, 503, { 'Retry-After': '0' }) : answer(res, 204),
    );
    const notifier = webhookNotifier({
      url: server.url,
      secret: SECRET,
      backoffMs: 20_000,
      onError: vi.fn(),
    });

    notifier(thresholdEvent());
    await until(() => server.requests.length === 2, 1_000);
    await notifier.flush();
  });

  it('gives up after `retries` retries and reports the last status once', async () => {
    const server = await startServer((res) => answer(res, 503));
    const onError = vi.fn();
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, retries: 2, onError });

    notifier(thresholdEvent());
    await notifier.flush();

    expect(server.requests).toHaveLength(3);
    expect(new Set(deliveryIds(server)).size).toBe(1);
    expect(failures(onError)).toMatchObject([
      { reason: 'http_status', status: 503, attempts: 3, deliveryId: deliveryIds(server)[0] },
    ]);
  });

  it('retries network errors and reports them when the endpoint stays unreachable', async () => {
    const port = await closedPort();
    const onError = vi.fn();
    const attempts: string[] = [];
    const notifier = webhookNotifier({
      url: `http://127.0.0.1:${port}/hooks`,
      secret: SECRET,
      retries: 2,
      // The fetch option is the one used: count the attempts through it.
      fetch: (input, init) => {
        attempts.push(String(input));
        return fetch(input, init);
      },
      onError,
    });

    notifier(thresholdEvent());
    await notifier.flush();

    expect(attempts).toHaveLength(3);
    expect(failures(onError)).toMatchObject([{ reason: 'network', attempts: 3 }]);
  });

  it('drops the oldest waiting delivery beyond maxQueue and reports it', async () => {
    const server = await startServer((res, index) => {
      if (index < 4) server.held.push(res);
      else answer(res, 204);
    });
    const onError = vi.fn();
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, maxQueue: 2, onError });

    for (let used = 1; used <= 8; used += 1) notifier(thresholdEvent({ used }));
    // 4 in flight, 2 waiting: events 5 and 6 made way for 7 and 8, and were reported at once.
    expect(onError.mock.calls.map(([, event]) => (event as ThresholdEvent).used)).toEqual([5, 6]);
    expect(failures(onError)).toMatchObject([
      { reason: 'queue_full', attempts: 0 },
      { reason: 'queue_full', attempts: 0 },
    ]);

    await until(() => server.held.length === 4);
    for (const res of server.held) answer(res, 204);
    await notifier.flush();

    const delivered = server.requests.map((request) => JSON.parse(request.body.toString()).used);
    expect(delivered.sort((a: number, b: number) => a - b)).toEqual([1, 2, 3, 4, 7, 8]);
    expect(onError).toHaveBeenCalledTimes(2);
  });

  it('close delivers what is queued, then refuses and reports later events', async () => {
    const server = await startServer((res) => later(20, () => answer(res, 204)));
    const onError = vi.fn();
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, onError });

    notifier(thresholdEvent({ used: 1 }));
    notifier(thresholdEvent({ used: 2 }));
    await notifier.close();
    expect(server.requests).toHaveLength(2);

    const late = thresholdEvent({ used: 3 });
    expect(notifier(late)).toBeUndefined();
    await notifier.flush();
    await notifier.close();

    expect(server.requests).toHaveLength(2);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]![1]).toBe(late);
    expect(failures(onError)[0]).toMatchObject({ reason: 'closed', attempts: 0 });
  });

  it('warns once per streak of failures when no onError is given', async () => {
    let failing = true;
    const server = await startServer((res) => answer(res, failing ? 400 : 204));
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const notifier = webhookNotifier({ url: server.url, secret: SECRET });

    for (let used = 1; used <= 3; used += 1) notifier(thresholdEvent({ used }));
    await notifier.flush();
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toContain(new URL(server.url).origin);
    // The URL's query can hold a token: it stays out of the logs.
    expect(String(warn.mock.calls[0]![0])).not.toContain('token=abc');

    failing = false;
    notifier(thresholdEvent());
    await notifier.flush();
    failing = true;
    notifier(thresholdEvent());
    await notifier.flush();
    expect(warn).toHaveBeenCalledTimes(2);
  });

  it('keeps delivering when onError throws', async () => {
    const server = await startServer((res, index) => answer(res, index === 0 ? 400 : 204));
    const notifier = webhookNotifier({
      url: server.url,
      secret: SECRET,
      onError: () => {
        throw new Error('reporter broke');
      },
    });

    notifier(thresholdEvent({ used: 1 }));
    await notifier.flush();
    notifier(thresholdEvent({ used: 2 }));
    await notifier.flush();

    expect(server.requests).toHaveLength(2);
  });

  it('does not keep a process alive while waiting to retry', async () => {
    const port = await closedPort();
    // Were the backoff timer to hold the process, it would retry and report after 2 s.
    const { stdout, code } = await runInChildProcess(`
      const notifier = webhookNotifier({
        url: 'http://127.0.0.1:${port}/hooks', secret: 's', retries: 1, backoffMs: 2_000,
        onError: (error) => console.log('gave up', error.reason),
      });
      notifier({ type: 'threshold', at: new Date(), resetAt: null });
    `);
    expect(code).toBe(0);
    expect(stdout).not.toContain('gave up');
  });

  it('keeps the process alive while close() is awaited, until delivery ends', async () => {
    const port = await closedPort();
    // close() comes during the first backoff (150 to 300 ms): were the backoff timer left
    // unref'd, Node would exit there, the top-level await unsettled and nothing reported.
    const { stdout, code } = await runInChildProcess(`
      const notifier = webhookNotifier({
        url: 'http://127.0.0.1:${port}/hooks', secret: 's', retries: 1, backoffMs: 300,
        onError: (error) => console.log('gave up', error.reason, error.attempts),
      });
      notifier({ type: 'threshold', at: new Date(), resetAt: null });
      await new Promise((resolve) => setTimeout(resolve, 100));
      await notifier.close();
      console.log('closed');
    `);
    expect(code).toBe(0);
    expect(stdout).toBe('gave up network 2\nclosed\n');
  });

  it.each([
    ['url', { url: 'not a url' }],
    ['url', { url: 'ftp://example.com/hook' }],
    ['url', { url: 'https://user:pass@example.com/hook' }],
    ['url', { url: undefined }],
    ['secret', { secret: '' }],
    ['secret', { secret: 42 }],
    ['timeoutMs', { timeoutMs: 0 }],
    ['timeoutMs', { timeoutMs: Number.POSITIVE_INFINITY }],
    ['retries', { retries: -1 }],
    ['retries', { retries: 1.5 }],
    ['retries', { retries: 1_000 }],
    ['backoffMs', { backoffMs: Number.NaN }],
    ['maxQueue', { maxQueue: 0 }],
    ['headers', { headers: 'x-api-key: 1' }],
    ['headers.X-QuotaKit-Signature', { headers: { 'X-QuotaKit-Signature': 'sha256=00' } }],
    ['headers.bad name', { headers: { 'bad name': 'x' } }],
    ['fetch', { fetch: 'fetch' }],
    ['onError', { onError: 'log' }],
    ['retry', { retry: 3 }],
  ])('rejects a bad %s at construction', (path, override) => {
    const options = { url: 'https://example.com/hook', secret: SECRET, ...override };
    const build = () => createNotifier(options as unknown as WebhookNotifierOptions);
    expect(build).toThrow(QuotaConfigError);
    expect(build).toThrow(expect.objectContaining({ path: `webhookNotifier.${path}` }));
  });
});

describe('verifyWebhookSignature', () => {
  const body = JSON.stringify(thresholdEvent());
  const signature = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;

  it('accepts the signature of the exact body, as text or bytes', async () => {
    expect(await verifyWebhookSignature(body, signature, SECRET)).toBe(true);
    expect(await verifyWebhookSignature(new TextEncoder().encode(body), signature, SECRET)).toBe(
      true,
    );
    expect(await verifyWebhookSignature(body, signature.toUpperCase(), SECRET)).toBe(true);
  });

  it('rejects another body, another secret or a malformed header', async () => {
    expect(await verifyWebhookSignature(`${body} `, signature, SECRET)).toBe(false);
    expect(await verifyWebhookSignature(body, signature, 'another secret')).toBe(false);
    for (const header of ['', signature.slice(7), `sha1=${signature.slice(7)}`, `${signature}0`]) {
      expect(await verifyWebhookSignature(body, header, SECRET)).toBe(false);
    }
  });

  it('checks what the notifier sent', async () => {
    const server = await startServer((res) => answer(res, 204));
    const notifier = webhookNotifier({ url: server.url, secret: SECRET, onError: vi.fn() });
    notifier(thresholdEvent());
    await notifier.flush();

    const [request] = server.requests;
    const header = String(request!.headers['x-quotakit-signature']);
    expect(await verifyWebhookSignature(request!.body, header, SECRET)).toBe(true);
    expect(await verifyWebhookSignature(request!.body, header, `${SECRET}x`)).toBe(false);
  });

  it('throws on an empty secret rather than rejecting every request', async () => {
    await expect(verifyWebhookSignature(body, signature, '')).rejects.toThrow(QuotaConfigError);
  });
});
