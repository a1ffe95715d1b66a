import {
  Admission,
  addressSubject,
  QuotaConfigError,
  QuotaGate,
  type QuotaHandle,
  type QuotaMiddlewareOptions,
  type QuotaRefusal,
  type Subject,
} from '@quotakit/core';
import type { Context, MiddlewareHandler } from 'hono';
import { NodeResponseHeaders, type NodeServerResponse } from './header-writers.js';
import { settleAtEnd, watchStreamedBody } from './streamed-body.js';

/** What `quota()` adds to the context: `c.get('quota')` in the handlers behind it. */
export type QuotaVariables = { quota: QuotaHandle };

/**
 * Answers a refused request (429, or 503 when the store did not answer and the failure mode
 * is closed) instead of the default JSON body. The rate-limit headers are already set.
 */
export type HonoOnExceeded = (c: Context, refusal: QuotaRefusal) => Response | Promise<Response>;

/** Options of {@link quota}; `identify`, `amounts` and `skip` receive the context. */
export type QuotaOptions = QuotaMiddlewareOptions<Context, HonoOnExceeded>;

/**
 * Hono middleware (any runtime: web-standard Request and Response only) that charges every
 * request to a subject before the handler runs, with the same behaviour, options, headers and
 * 429 body as `@quotakit/express`. The handler finds the handle at `c.get('quota')`.
 *
 * In reserve mode the reservation is settled once the handler has answered: committed with
 * what it recorded, or released whole when it threw (`c.error`), answered 5xx, or the client
 * went away (the request's `signal` aborted). A body streamed with Hono's helpers (`stream`,
 * `streamText`, `streamSSE`) or `c.body(stream)` settles when it ends instead, so that what the
 * handler records while streaming counts; a client that cancels the stream releases the
 * reservation. In consume mode what the handler records after it returned (while its body
 * streams) is recorded at once, unless it answered 5xx or threw.
 *
 * @throws QuotaConfigError for a bad option, at once.
 * @example
 * app.post('/chat', quota({ engine, mode: 'reserve', identify: (c) => ({ userId: c.get('userId') }),
 *   amounts: { llm_requests: 1, llm_tokens: 2000 } }), async (c) => {
 *     const reply = await callModel(await c.req.json());
 *     c.get('quota').record('llm_tokens', reply.usage.total_tokens);
 *     return c.json(reply);
 *   });
 */
export function quota(options: QuotaOptions): MiddlewareHandler<{ Variables: QuotaVariables }> {
  const gate = new QuotaGate<Context, HonoOnExceeded>(options, identifyByAddress);
  const { onExceeded } = gate;
  return async (c, next) => {
    // An in-memory engine decides before admit returns: no promise to wait for.
    const admitted = gate.admit(c);
    const admission = admitted instanceof Admission ? admitted : await admitted;
    const { handle, refusal } = admission;
    c.set('quota', handle);
    if (refusal !== undefined) {
      const response =
        onExceeded !== undefined && refusal.status !== 400
          ? await onExceeded(c, refusal)
          : c.json(refusal.body, refusal.status);
      return withHeaders(response, admission);
    }
    // Reserve mode only: the watch costs two closures per request, which over HTTP measured
    // far more than their size (garbage that outlives young collections). In consume mode
    // what the handler records after it returned is recorded at once instead.
    const streamed = handle.mode === 'reserve' ? watchStreamedBody(c) : undefined;
    await next();
    // Written once the handler has answered, onto whatever it answered with: headers set on the
    // context beforehand are lost when a handler returns a Response of its own.
    const outgoing = (c.env as RuntimeBindings | undefined)?.outgoing;
    if (outgoing?.appendHeader !== undefined && !outgoing.headersSent) {
      admission.writeHeaders(new NodeResponseHeaders(outgoing as Required<NodeServerResponse>));
    } else {
      const response = withHeaders(c.res, admission);
      if (response !== c.res) {
        c.res = undefined; // so that Hono does not copy the old headers over the new ones
        c.res = response;
      }
    }
    const stream = streamed?.stream;
    if (stream === undefined && !handle.pending) {
      // A consume-mode handler may still record while its body streams: at once, from now on.
      if (handle.mode === 'consume' && c.error === undefined && c.res.status < 500) {
        handle.recordAtOnce();
      }
      return;
    }
    // Read only now: under @hono/node-server the request's `signal` is made on first use, which
    // costs more than the rest of the middleware.
    const succeeded = c.error === undefined && c.res.status < 500 && !c.req.raw.signal.aborted;
    // A body still being streamed (Hono's streaming helpers) may record until it ends: the
    // handle settles then, whether or not it holds anything yet.
    if (succeeded && stream !== undefined && c.res.body === stream) {
      settleAtEnd(c, stream, handle);
      return;
    }
    // Awaited, so that the caller's next request already sees the commit, and so that
    // runtimes that stop work once the response is out (Workers) do not cut it short.
    if (handle.pending) await handle.settle(succeeded);
    if (succeeded) handle.recordAtOnce();
  };
}

/** `response` with the admission's headers; a copy when its headers are immutable (fetch). */
function withHeaders(response: Response, admission: Admission): Response {
  try {
    admission.writeHeaders(response.headers);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    admission.writeHeaders(copy.headers);
    return copy;
  }
}

/**
 * The client's address from the runtime's connection info: @hono/node-server, Bun and Deno
 * expose it; elsewhere (Cloudflare Workers) pass `identify`.
 */
function identifyByAddress(c: Context): Subject {
  const env = c.env as RuntimeBindings | undefined;
  const socket = env?.incoming?.socket;
  if (socket !== undefined) {
    // One subject per connection: a kept-alive socket's peer never changes, and the engine
    // then meets the same id strings again (their hashes already computed).
    let subject = subjectOfSocket.get(socket);
    if (subject === undefined && socket.remoteAddress !== undefined) {
      subject = Object.freeze(addressSubject(socket.remoteAddress));
      subjectOfSocket.set(socket, subject);
    }
    if (subject !== undefined) return subject;
  }
  const address = env?.requestIP?.(c.req.raw)?.address ?? env?.remoteAddr?.hostname;
  if (address === undefined) {
    throw new QuotaConfigError('identify', 'this runtime gives no client address: pass identify');
  }
  return addressSubject(address);
}

/** The subject of each @hono/node-server connection, forgotten with the connection. */
const subjectOfSocket = new WeakMap<object, Subject>();

interface RuntimeBindings {
  /** @hono/node-server */
  incoming?: { socket?: { readonly remoteAddress?: string } };
  /** @hono/node-server */
  outgoing?: NodeServerResponse;
  /** Bun's server */
  requestIP?: (request: Request) => { address: string } | null;
  /** Deno.serve's handler info */
  remoteAddr?: { hostname?: string };
}
