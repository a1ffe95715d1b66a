import type { CallBudget } from './call-budget.js';

/**
 * The parts of the SDKs' `APIPromise` the wrapper forwards. Both SDKs' promises parse the
 * body lazily, once per promise object, when `then`, `withResponse` or a derived promise's
 * parse asks for it.
 */
export interface SdkPromise<T> extends PromiseLike<T> {
  withResponse?(): Promise<{ data: T; response: Response }>;
  asResponse?(): Promise<Response>;
  _thenUnwrap?<U>(transform: (data: T, props: unknown) => U): SdkPromise<U>;
  _responseProps?(): Promise<unknown>;
}

/**
 * The SDK's own promise of a call once its reservation is made, in a box: a promise resolved
 * with a thenable adopts it (parsing the body), so the SDK promise must never be a resolution.
 * It never leaves the wrapper: whatever it parses goes through {@link CallSettlement.observe}
 * before anyone else sees it.
 */
export interface SentCall<T> {
  readonly sdk: SdkPromise<T>;
}

/** How one wrapped call settles around the SDK promise. */
export interface CallSettlement {
  /** The budget, once the reservation was made (undefined while pending or when refused). */
  readonly budget: CallBudget | undefined;
  /** Resolves when the call's usage is committed, for results that carry it (not streams). */
  settlement: Promise<void> | undefined;
  /**
   * Sees the parsed result before the caller does, in place: meters a stream (the same
   * object, its reads observed) or starts committing a complete result's usage. Only the
   * first result of a call counts (a helper's transformed result is the same call).
   */
  observe(data: unknown): void;
  /** The raw response is handed out unparsed (`asResponse()`): settle from it first. */
  settleFromResponse(response: Response): Promise<void>;
}

/**
 * What a wrapped `create` returns: a Promise subclass like the SDK's `APIPromise`, which
 * waits for the reservation before the SDK call leaves and keeps the SDK's extras
 * (`withResponse()`, `asResponse()`, `_thenUnwrap()` for the SDKs' own helpers). Awaiting it
 * gives the parsed result once its usage is committed (a stream: at once, metered).
 */
export class QuotaAPIPromise<T> extends Promise<T> {
  // Derived promises (`then`, `catch`) are plain Promises, as the SDK's are.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  readonly #sent: Promise<SentCall<T>>;
  readonly #call: CallSettlement;
  #parsed: Promise<T> | undefined;

  constructor(sent: Promise<SentCall<T>>, call: CallSettlement) {
    // Resolved with nothing, like the SDK's: every read goes through the overrides below.
    super(resolveWithNothing);
    this.#sent = sent;
    this.#call = call;
  }

  #parse(): Promise<T> {
    // `sdk.then` directly: `Promise.resolve(sdk)` of the SDK's Promise subclass would only
    // wrap it in one more promise, which then calls the same `then` a hop later.
    this.#parsed ??= this.#sent.then(
      ({ sdk }) =>
        sdk.then(
          (value) => this.#observed(value, value),
          (error) => this.#failed(error),
        ),
      (error) => this.#failed(error),
    );
    return this.#parsed;
  }

  /**
   * `value` (the parsed `data`, or what carries it) once `data` is observed and the usage it
   * carries committed.
   */
  #observed<V>(data: unknown, value: V): V | Promise<V> {
    try {
      this.#call.observe(data);
    } catch (error) {
      return this.#failed(error);
    }
    const settlement = this.#call.settlement;
    return settlement === undefined ? value : settlement.then(() => value);
  }

  /** The provider failed: return the tokens (counting the request per options), rethrow. */
  #failed(error: unknown): never | Promise<never> {
    const budget = this.#call.budget;
    if (budget === undefined || budget.settled) throw error;
    return budget.fail(error).then(() => {
      throw error;
    });
  }

  // biome-ignore lint/suspicious/noThenProperty: an APIPromise-like is a Promise by design.
  override then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#parse().then(onfulfilled, onrejected);
  }

  override catch<R = never>(
    onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null,
  ): Promise<T | R> {
    return this.#parse().catch(onrejected);
  }

  override finally(onfinally?: (() => void) | null): Promise<T> {
    return this.#parse().finally(onfinally);
  }

  /** The SDK's `withResponse()`: the parsed data with the raw `Response` and request id. */
  withResponse(): Promise<{ data: T; response: Response }> {
    return this.#sent.then(
      ({ sdk }) =>
        required(sdk, 'withResponse').then(
          (result) => this.#observed(result.data, result),
          (error) => this.#failed(error),
        ),
      (error) => this.#failed(error),
    );
  }

  /**
   * The SDK's `asResponse()`: the raw `Response`, body unread. The usage is then read from a
   * copy of a JSON body; a streamed body, which only the caller reads, is charged its
   * reservation as an estimate.
   */
  asResponse(): Promise<Response> {
    return this.#sent.then(
      ({ sdk }) =>
        required(sdk, 'asResponse').then(
          (response) => this.#call.settleFromResponse(response).then(() => response),
          (error) => this.#failed(error),
        ),
      (error) => this.#failed(error),
    );
  }

  /**
   * For the SDKs' own helpers (`parse()`, the stream helpers): a derived promise, still
   * metered. The result is observed before the helper's transform sees it, as the SDKs
   * require of `_thenUnwrap` transforms, synchronously.
   */
  _thenUnwrap<U>(transform: (data: T, props: unknown) => U): QuotaAPIPromise<U> {
    const call = this.#call;
    const observed = (data: T, props: unknown): U => {
      call.observe(data);
      return transform(data, props);
    };
    const derived = this.#sent.then(({ sdk }) => {
      if (typeof sdk._thenUnwrap !== 'function') {
        return { sdk: Promise.resolve(sdk).then((data) => observed(data, undefined)) };
      }
      return { sdk: sdk._thenUnwrap(observed) };
    });
    return new QuotaAPIPromise<U>(derived, call);
  }

  /** Anthropic's helpers that chain one request on another read the response props. */
  _responseProps(): Promise<unknown> {
    return this.#sent.then(({ sdk }) => required(sdk, '_responseProps'));
  }
}

function resolveWithNothing(resolve: (value: never) => void): void {
  resolve(undefined as never);
}

function required<T, K extends 'withResponse' | 'asResponse' | '_responseProps'>(
  sdk: SdkPromise<T>,
  method: K,
): ReturnType<NonNullable<SdkPromise<T>[K]>> {
  const fn = sdk[method];
  if (typeof fn !== 'function') {
    throw new TypeError(`This SDK's promise has no ${method}()`);
  }
  return (fn as () => ReturnType<NonNullable<SdkPromise<T>[K]>>).call(sdk);
}
