import type { QuotaHandle } from '@quotakit/core';
import type { Context } from 'hono';

/** A stream body the handler answered with, noted by {@link watchStreamedBody}. */
export interface StreamedBody {
  stream: ReadableStream | undefined;
}

/** The watch of a context: its stream, if any, and the response makers it stands in front of. */
interface Watch extends StreamedBody {
  readonly newResponse: (...args: unknown[]) => Response;
  readonly body: (...args: unknown[]) => Response;
}

const WATCH = Symbol('quotakit.streamedBody');
type Watched = Context & { [WATCH]?: Watch };

/**
 * Notes a `ReadableStream` body that the handler answers with through the context's
 * `c.newResponse` or `c.body`, which Hono's streaming helpers (`stream`, `streamText`,
 * `streamSSE`) use. Their handler returns while the body is still being written, and may record
 * usage until it ends: such a response is settled when its body ends ({@link settleAtEnd}),
 * not when the handler returns. Only the context of this one request is touched, and its
 * `body` and `newResponse` stay arrow functions (`({ body }) => body(stream)` works).
 *
 * A handler that builds `new Response(stream)` itself is not seen: its handle settles when it
 * returns, so it should record before returning.
 */
export function watchStreamedBody(c: Context): StreamedBody {
  const watched = c as Watched;
  // A second quota() on the route shares the first one's watch: the response makers it would
  // stand in front of are already the watching ones.
  const existing = watched[WATCH];
  if (existing !== undefined) return existing;
  const watch: Watch = {
    stream: undefined,
    newResponse: c.newResponse as Watch['newResponse'],
    body: c.body as Watch['body'],
  };
  watched[WATCH] = watch;
  c.newResponse = ((data: unknown, ...rest: unknown[]) => {
    if (data instanceof ReadableStream) watch.stream = data;
    return watch.newResponse(data, ...rest);
  }) as Context['newResponse'];
  c.body = ((data: unknown, ...rest: unknown[]) => {
    if (data instanceof ReadableStream) watch.stream = data;
    return watch.body(data, ...rest);
  }) as Context['body'];
  return watch;
}

/**
 * Replaces the context's response with one whose body is `stream` passed through, settling
 * `handle` once the body is over: succeeded when it ended, failed (a reservation released
 * whole) when it broke or the client cancelled it. On Cloudflare Workers the settlement is
 * handed to `waitUntil`, so that the runtime lets it finish after the response.
 */
export function settleAtEnd(c: Context, stream: ReadableStream, handle: QuotaHandle): void {
  const reader = stream.getReader();
  let settle!: (succeeded: boolean) => void;
  const settled = new Promise<void>((resolve) => {
    settle = (succeeded) => resolve(handle.settle(succeeded));
  });
  const passed = new ReadableStream({
    async pull(controller) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        settle(false);
        controller.error(error);
        return;
      }
      if (chunk.done) {
        settle(true);
        controller.close();
      } else {
        controller.enqueue(chunk.value);
      }
    },
    cancel(reason) {
      settle(false);
      return reader.cancel(reason);
    },
  });
  const answered = c.res;
  c.res = undefined; // so that Hono does not copy the old headers over the new ones
  c.res = new Response(passed, answered);
  try {
    c.executionCtx.waitUntil(settled);
  } catch {
    // Not on Workers: the context has no execution context, and nothing needs one.
  }
}
