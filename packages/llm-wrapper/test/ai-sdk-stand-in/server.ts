import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Token counts the stand-in reports, in OpenAI's `usage` shape. */
export interface StandInUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens?: number;
  reasoningTokens?: number;
}

/** How the stand-in answers the next chat completion. */
export interface StandInReply {
  /** The text, as the chunks a stream sends (joined for a non-streamed answer). */
  chunks: readonly string[];
  usage: StandInUsage;
  /** The model the answer claims; defaults to the requested one. */
  model?: string;
  /** Answer with this HTTP status and an OpenAI error body instead. */
  status?: number;
  /**
   * Streams only: after this many chunks, hold the response open (no usage, no `[DONE]`)
   * until the client goes away or {@link StandIn.close} runs.
   */
  holdAfterChunks?: number;
  /**
   * Streams only: after this many chunks, send an OpenAI error event and end the response
   * (no finish, no usage), as OpenAI does when a stream fails on its side.
   */
  errorAfterChunks?: number;
  /** Streams only: send no usage chunk, as when the caller did not ask for one. */
  omitUsage?: boolean;
  /** Answer only once this settles (the request is counted on arrival). */
  gate?: Promise<void>;
}

/** What the stand-in saw of one request. */
export interface SeenRequest {
  model: string;
  stream: boolean;
  /** `max_completion_tokens`, else `max_tokens`, as sent. */
  maxTokens: number | undefined;
  messages: unknown[];
}

export interface StandIn {
  /** Base URL of the OpenAI-compatible API, `http://127.0.0.1:<port>/v1`. */
  readonly baseURL: string;
  /** Every chat completion request received, in order. */
  readonly requests: SeenRequest[];
  /** Streamed responses whose client went away before the stream ended. */
  readonly disconnects: number;
  /** Forgets the requests and disconnects seen so far (between tests). */
  reset(): void;
  /** Called as each request arrives, before it is answered. */
  onRequest: (() => void) | undefined;
  /** Answers used in order; the last one repeats. */
  reply(...replies: StandInReply[]): void;
  /** Resolves once `count` requests have arrived (bounded by the test's timeout). */
  requestsReached(count: number): Promise<void>;
  /** Resolves once `count` streamed responses lost their client before their end. */
  disconnectsReached(count: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A local OpenAI Chat Completions stand-in on 127.0.0.1: realistic JSON and server-sent
 * events with usage (cached and reasoning tokens included), error statuses and held streams.
 */
export async function startStandIn(): Promise<StandIn> {
  let replies: StandInReply[] = [
    { chunks: ['Hello'], usage: { promptTokens: 1, completionTokens: 1 } },
  ];
  let next = 0;
  let disconnects = 0;
  const requests: SeenRequest[] = [];
  const waiters: { count: () => number; at: number; resolve: () => void }[] = [];
  const wake = () => {
    for (const waiter of waiters.filter((w) => w.count() >= w.at)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  const reached = (count: () => number, at: number) =>
    count() >= at
      ? Promise.resolve()
      : new Promise<void>((resolve) => waiters.push({ count, at, resolve }));
  const open = new Set<http.ServerResponse>();

  const server = http.createServer(async (req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404).end();
      return;
    }
    const raw: Buffer[] = [];
    for await (const chunk of req) raw.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(raw).toString('utf8'));
    const seen: SeenRequest = {
      model: body.model,
      stream: body.stream === true,
      maxTokens: body.max_completion_tokens ?? body.max_tokens,
      messages: body.messages,
    };
    requests.push(seen);
    wake();
    standIn.onRequest?.();
    const reply = replies[Math.min(next, replies.length - 1)]!;
    next += 1;
    if (reply.gate) await reply.gate;
    const model = reply.model ?? seen.model;

    if (reply.status !== undefined) {
      // As OpenAI does on 429 and 5xx; the AI SDK then retries at once instead of backing off.
      res.writeHead(reply.status, { 'content-type': 'application/json', 'retry-after-ms': '0' });
      res.end(
        JSON.stringify({
          error: { message: 'The stand-in failed on purpose.', type: 'server_error', code: null },
        }),
      );
      return;
    }
    const id = `chatcmpl-${requests.length}`;
    const created = 1_773_000_000;
    if (!seen.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: reply.chunks.join(''), refusal: null },
              finish_reason: 'stop',
              logprobs: null,
            },
          ],
          usage: openAiUsage(reply.usage),
        }),
      );
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    open.add(res);
    let finished = false;
    res.on('close', () => {
      open.delete(res);
      if (finished) return;
      disconnects += 1;
      wake();
    });
    const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    const chunk = (delta: Record<string, unknown>, finishReason: string | null) => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
    });
    send(chunk({ role: 'assistant', content: '' }, null));
    const held = reply.holdAfterChunks;
    const upTo = held ?? reply.errorAfterChunks;
    for (const text of upTo === undefined ? reply.chunks : reply.chunks.slice(0, upTo)) {
      send(chunk({ content: text }, null));
    }
    if (held !== undefined) return;
    if (reply.errorAfterChunks !== undefined) {
      finished = true;
      send({ error: { message: 'The server had an error.', type: 'server_error', code: null } });
      res.end();
      return;
    }
    send(chunk({}, 'stop'));
    // The usage-only chunk of `stream_options.include_usage`: empty choices.
    if (!reply.omitUsage) {
      send({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [],
        usage: openAiUsage(reply.usage),
      });
    }
    finished = true;
    res.end('data: [DONE]\n\n');
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;

  const standIn: StandIn = {
    onRequest: undefined,
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    get disconnects() {
      return disconnects;
    },
    reset() {
      requests.length = 0;
      disconnects = 0;
      standIn.onRequest = undefined;
    },
    reply(...next_: StandInReply[]) {
      replies = next_;
      next = 0;
    },
    requestsReached: (count) => reached(() => requests.length, count),
    disconnectsReached: (count) => reached(() => disconnects, count),
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return standIn;
}

function openAiUsage(usage: StandInUsage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens ?? 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: usage.reasoningTokens ?? 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}
