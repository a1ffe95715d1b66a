import type { HeaderTarget } from '@quotakit/core';

/** The minimal part of Node's `http.ServerResponse` written to. */
export interface NodeServerResponse {
  readonly headersSent: boolean;
  setHeader(name: string, value: string): unknown;
  hasHeader(name: string): boolean;
  /** Node 18.3 and later; missing on HTTP/2's compatibility response of older versions. */
  appendHeader?: (name: string, value: string) => unknown;
}

/**
 * Headers set straight on Node's response under @hono/node-server, once the handler has
 * answered and before the server writes the answer out. The server hands every answer,
 * whoever built it, to `writeHead`, which keeps headers already set, so they reach the client
 * whatever the handler returned, and no `Headers` object is made for them: the server would
 * otherwise turn its light response into undici's `Headers` and back on every request, about
 * a tenth of the throughput over HTTP.
 *
 * What this path gives up: the headers are not visible in `c.res.headers`, and a header of
 * the same name in the handler's response replaces them (`writeHead` sets, not appends).
 */
export class NodeResponseHeaders implements HeaderTarget {
  readonly #response: Required<NodeServerResponse>;

  constructor(response: Required<NodeServerResponse>) {
    this.#response = response;
  }

  set(name: string, value: string): void {
    this.#response.setHeader(name, value);
  }

  append(name: string, value: string): void {
    // appendHeader checks the value twice (once itself, once in the setHeader it calls), about
    // a quarter of a microsecond for two headers; the first writer can just set.
    if (this.#response.hasHeader(name)) this.#response.appendHeader(name, value);
    else this.#response.setHeader(name, value);
  }
}
