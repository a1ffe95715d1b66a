// A local stand-in for the OpenAI and Anthropic HTTP APIs: node:http on 127.0.0.1 (port 0),
// answering realistic JSON and server-sent events, with usage (cached and reasoning tokens),
// errors and slow streams, and recording every request it receives. The real SDKs talk to it.
//
// Per-request behaviour is chosen with request headers (the SDKs pass `headers` in their
// request options):
//   x-stand-in-status: <code>      answer with this HTTP error status
//   x-stand-in-chunks: <n>         stream n text deltas (default: the words of REPLY_TEXT)
//   x-stand-in-delay-ms: <ms>      wait before each streamed delta (a slow stream)
//   x-stand-in-final: incomplete   Responses API: end with response.incomplete
//   x-stand-in-no-usage: 1         omit usage from the answer (a compatible server)
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Text of every reply; streamed word by word. */
export const REPLY_TEXT = 'Hello from the stand-in provider, streaming word by word.';
/** Each delta of a stream asked for with x-stand-in-chunks. */
export const CHUNK_TEXT = 'word ';

/** Usage the OpenAI routes report (Chat Completions field names). */
export const OPENAI_USAGE = Object.freeze({
  promptTokens: 57,
  cachedTokens: 16,
  completionTokens: 23,
  reasoningTokens: 7,
});
/** Usage the Responses route reports. */
export const RESPONSES_USAGE = Object.freeze({
  inputTokens: 61,
  cachedTokens: 8,
  outputTokens: 29,
  reasoningTokens: 11,
});
/** Usage the Embeddings route reports, per input string. */
export const EMBEDDING_TOKENS_PER_INPUT = 5;
/** Usage the Anthropic route reports; output_tokens arrive as running totals. */
export const ANTHROPIC_USAGE = Object.freeze({
  inputTokens: 40,
  cacheCreationInputTokens: 12,
  cacheReadInputTokens: 100,
  outputTokens: 25,
});

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Record<string, unknown>;
  /** True once the client closed the connection before the answer ended. */
  aborted: boolean;
  /** Stream deltas written before the answer ended or the client went away. */
  deltasWritten: number;
}

export interface StandInProvider {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** baseURL for `new OpenAI({ baseURL })`. */
  readonly openaiBaseURL: string;
  /** baseURL for `new Anthropic({ baseURL })`. */
  readonly anthropicBaseURL: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Resolves when the request at `index` has ended (answered in full or abandoned). */
  settled(index: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

/** How a stand-in provider is started. */
export interface StandInOptions {
  /**
   * Whether every request is kept in `requests` (and for `settled`). A benchmark turns it
   * off, so that a long run's heap does not grow with what it sent and slow the collector.
   * Default: true.
   */
  recordRequests?: boolean;
}

/** Starts a stand-in provider on 127.0.0.1 and an ephemeral port. */
export async function startStandIn(options: StandInOptions = {}): Promise<StandInProvider> {
  const recordRequests = options.recordRequests ?? true;
  const requests: RecordedRequest[] = [];
  const endings: Promise<RecordedRequest>[] = [];
  const server = createServer((req, res) => {
    if (!recordRequests) {
      // A list of its own, dropped with the request.
      void handle(req, res, []).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(error));
      });
      return;
    }
    let finish!: (request: RecordedRequest) => void;
    endings.push(new Promise((resolve) => (finish = resolve)));
    void handle(req, res, requests).then(finish, (error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
      finish(requests[requests.length - 1]!);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    openaiBaseURL: `${url}/v1`,
    anthropicBaseURL: url,
    requests,
    settled: (index) => endings[index] ?? Promise.reject(new Error(`no request ${index}`)),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  requests: RecordedRequest[],
): Promise<RecordedRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const request: RecordedRequest = {
    method: req.method ?? 'GET',
    path: (req.url ?? '/').split('?')[0]!,
    headers: req.headers,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    aborted: false,
    deltasWritten: 0,
  };
  requests.push(request);
  res.on('close', () => {
    if (!res.writableFinished) request.aborted = true;
  });
  const status = Number(req.headers['x-stand-in-status'] ?? 0);
  const anthropic = request.path === '/v1/messages';
  if (status >= 400) {
    const body = anthropic
      ? { type: 'error', error: { type: 'api_error', message: `stand-in ${status}` } }
      : { error: { message: `stand-in ${status}`, type: 'server_error', code: null } };
    // retry-after-ms keeps the SDKs' retries fast in tests that let them retry.
    res.writeHead(status, { 'content-type': 'application/json', 'retry-after-ms': '1' });
    res.end(JSON.stringify(body));
    return request;
  }
  const options = streamOptions(req);
  switch (request.path) {
    case '/v1/chat/completions':
      await chatCompletion(request, res, options);
      break;
    case '/v1/responses':
      await response(request, res, options);
      break;
    case '/v1/embeddings':
      embedding(request, res);
      break;
    case '/v1/messages':
      await message(request, res, options);
      break;
    default:
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `no route ${request.path}` } }));
  }
  return request;
}

interface StreamOptions {
  deltas: string[];
  delayMs: number;
  withUsage: boolean;
  final: string;
}

function streamOptions(req: IncomingMessage): StreamOptions {
  const chunks = Number(req.headers['x-stand-in-chunks'] ?? 0);
  const deltas =
    chunks > 0
      ? Array.from({ length: Math.min(chunks, 100_000) }, () => CHUNK_TEXT)
      : REPLY_TEXT.split(/(?<= )/);
  return {
    deltas,
    delayMs: Math.min(Number(req.headers['x-stand-in-delay-ms'] ?? 0), 1_000),
    withUsage: req.headers['x-stand-in-no-usage'] === undefined,
    final: String(req.headers['x-stand-in-final'] ?? 'completed'),
  };
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, {
    'content-type': 'application/json',
    'x-request-id': 'req_stand_in',
    'request-id': 'req_stand_in',
  });
  res.end(JSON.stringify(body));
}

/** Writes server-sent events, one delta at a time; stops when the client goes away. */
class EventWriter {
  readonly #res: ServerResponse;
  readonly #request: RecordedRequest;

  constructor(res: ServerResponse, request: RecordedRequest) {
    this.#res = res;
    this.#request = request;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-request-id': 'req_stand_in',
      'request-id': 'req_stand_in',
    });
  }

  get open(): boolean {
    return !this.#request.aborted && !this.#res.destroyed;
  }

  send(data: unknown, event?: string): void {
    if (!this.open) return;
    const head = event === undefined ? '' : `event: ${event}\n`;
    this.#res.write(`${head}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  }

  async deltas(options: StreamOptions, write: (delta: string, index: number) => void) {
    for (const [index, delta] of options.deltas.entries()) {
      if (!this.open) return;
      if (options.delayMs > 0) await new Promise((r) => setTimeout(r, options.delayMs));
      else if (index % 64 === 63) await new Promise((r) => setImmediate(r));
      if (!this.open) return;
      write(delta, index);
      this.#request.deltasWritten += 1;
    }
  }

  end(): void {
    if (this.open) this.#res.end();
  }
}

function chatUsage() {
  return {
    prompt_tokens: OPENAI_USAGE.promptTokens,
    completion_tokens: OPENAI_USAGE.completionTokens,
    total_tokens: OPENAI_USAGE.promptTokens + OPENAI_USAGE.completionTokens,
    prompt_tokens_details: { cached_tokens: OPENAI_USAGE.cachedTokens, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: OPENAI_USAGE.reasoningTokens,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

async function chatCompletion(
  request: RecordedRequest,
  res: ServerResponse,
  options: StreamOptions,
) {
  const body = request.body;
  const model = String(body.model);
  const created = 1_760_000_000;
  const choices = typeof body.n === 'number' ? body.n : 1;
  if (body.stream !== true) {
    json(res, {
      id: 'chatcmpl-stand-in',
      object: 'chat.completion',
      created,
      model: `${model}-2024-08-06`,
      choices: Array.from({ length: choices }, (_, index) => ({
        index,
        message: { role: 'assistant', content: REPLY_TEXT, refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: 'stop',
      })),
      usage: options.withUsage ? chatUsage() : undefined,
      system_fingerprint: 'fp_stand_in',
    });
    return;
  }
  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)
    ?.include_usage;
  const writer = new EventWriter(res, request);
  const chunk = (choicesPart: unknown[], usage: unknown = undefined) => ({
    id: 'chatcmpl-stand-in',
    object: 'chat.completion.chunk',
    created,
    model: `${model}-2024-08-06`,
    system_fingerprint: 'fp_stand_in',
    choices: choicesPart,
    ...(includeUsage ? { usage: usage ?? null } : {}),
  });
  writer.send(
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
  );
  await writer.deltas(options, (delta) =>
    writer.send(chunk([{ index: 0, delta: { content: delta }, finish_reason: null }])),
  );
  writer.send(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]));
  if (includeUsage && options.withUsage) writer.send(chunk([], chatUsage()));
  writer.send('[DONE]');
  writer.end();
}

function responseObject(model: string, status: string, text: string, withUsage: boolean) {
  return {
    id: 'resp_stand_in',
    object: 'response',
    created_at: 1_760_000_000,
    status,
    model: `${model}-2025-04-16`,
    output: [
      {
        id: 'msg_stand_in',
        type: 'message',
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text, annotations: [] }],
      },
    ],
    usage: withUsage
      ? {
          input_tokens: RESPONSES_USAGE.inputTokens,
          input_tokens_details: { cached_tokens: RESPONSES_USAGE.cachedTokens },
          output_tokens: RESPONSES_USAGE.outputTokens,
          output_tokens_details: { reasoning_tokens: RESPONSES_USAGE.reasoningTokens },
          total_tokens: RESPONSES_USAGE.inputTokens + RESPONSES_USAGE.outputTokens,
        }
      : null,
  };
}

async function response(request: RecordedRequest, res: ServerResponse, options: StreamOptions) {
  const model = String(request.body.model);
  if (request.body.stream !== true) {
    json(res, responseObject(model, 'completed', REPLY_TEXT, options.withUsage));
    return;
  }
  const writer = new EventWriter(res, request);
  let sequence = 0;
  const send = (type: string, data: Record<string, unknown>) =>
    writer.send({ type, sequence_number: sequence++, ...data }, type);
  send('response.created', { response: responseObject(model, 'in_progress', '', false) });
  let text = '';
  await writer.deltas(options, (delta) => {
    text += delta;
    send('response.output_text.delta', {
      item_id: 'msg_stand_in',
      output_index: 0,
      content_index: 0,
      delta,
    });
  });
  const final = options.final === 'incomplete' ? 'incomplete' : 'completed';
  send(`response.${final}`, { response: responseObject(model, final, text, options.withUsage) });
  writer.end();
}

function embedding(request: RecordedRequest, res: ServerResponse): void {
  const input = request.body.input;
  const inputs = Array.isArray(input) ? input : [input];
  const base64 = request.body.encoding_format === 'base64';
  const vector = new Float32Array([0.25, -0.5, 0.75]);
  json(res, {
    object: 'list',
    model: String(request.body.model),
    data: inputs.map((_, index) => ({
      object: 'embedding',
      index,
      embedding: base64 ? Buffer.from(vector.buffer).toString('base64') : Array.from(vector),
    })),
    usage: {
      prompt_tokens: inputs.length * EMBEDDING_TOKENS_PER_INPUT,
      total_tokens: inputs.length * EMBEDDING_TOKENS_PER_INPUT,
    },
  });
}

function anthropicUsage(outputTokens: number) {
  return {
    input_tokens: ANTHROPIC_USAGE.inputTokens,
    cache_creation_input_tokens: ANTHROPIC_USAGE.cacheCreationInputTokens,
    cache_read_input_tokens: ANTHROPIC_USAGE.cacheReadInputTokens,
    output_tokens: outputTokens,
    service_tier: 'standard',
  };
}

async function message(request: RecordedRequest, res: ServerResponse, options: StreamOptions) {
  const model = String(request.body.model);
  const base = {
    id: 'msg_stand_in',
    type: 'message',
    role: 'assistant',
    model,
    stop_sequence: null,
  };
  if (request.body.stream !== true) {
    json(res, {
      ...base,
      content: [{ type: 'text', text: REPLY_TEXT }],
      stop_reason: 'end_turn',
      usage: anthropicUsage(ANTHROPIC_USAGE.outputTokens),
    });
    return;
  }
  const writer = new EventWriter(res, request);
  const send = (type: string, data: Record<string, unknown>) =>
    writer.send({ type, ...data }, type);
  send('message_start', {
    message: { ...base, content: [], stop_reason: null, usage: anthropicUsage(1) },
  });
  send('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
  send('ping', {});
  await writer.deltas(options, (delta) =>
    send('content_block_delta', { index: 0, delta: { type: 'text_delta', text: delta } }),
  );
  send('content_block_stop', { index: 0 });
  // Two running totals: the second replaces the first (adding them would count 10 too many).
  send('message_delta', {
    delta: { stop_reason: null, stop_sequence: null },
    usage: { output_tokens: 10 },
  });
  send('message_delta', {
    delta: { stop_reason: 'end_turn', stop_sequence: null },
    usage: { output_tokens: ANTHROPIC_USAGE.outputTokens },
  });
  send('message_stop', {});
  writer.end();
}
