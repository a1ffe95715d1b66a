import { type ErrorClass, quotaExceededErrorAs } from '@quotakit/core';
import type { CallBudget, ReportedUsage } from './call-budget.js';
import { characterTokens } from './token-estimate.js';

/**
 * Reads one provider's stream events as they pass: the usage the provider reports, and the
 * characters of output, for an estimate when the stream ends before its usage arrives.
 */
export interface StreamReader<Event> {
  /**
   * Takes one event. Returns true when the event must be hidden from the caller (the
   * usage-only chunk the wrapper asked for on the caller's behalf).
   */
  read(event: Event): boolean;
  /** The usage the provider reported in full, once it has (the stream's last events). */
  finalUsage(): ReportedUsage | undefined;
  /** Input tokens reported so far (Anthropic's `message_start`), if any. */
  reportedInputTokens(): number | undefined;
  /** Output tokens reported so far (running totals), if any. */
  reportedOutputTokens(): number | undefined;
  /** Characters of output streamed so far (text, reasoning, tool arguments). */
  readonly outputCharacters: number;
  /** The model the provider names in the stream, if it did. */
  readonly model: string | undefined;
}

/** The parts of an SDK `Stream` the meter uses: both SDKs' streams read through `iterator`. */
interface SdkStream<Event> {
  controller?: AbortController;
  iterator?: () => AsyncIterator<Event>;
  [Symbol.asyncIterator](): AsyncIterator<Event>;
}

/** Whether `value` is one of the SDKs' `Stream` objects (by shape: the caller may have its own copy). */
export function isSdkStream(value: unknown): value is SdkStream<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as SdkStream<unknown>)[Symbol.asyncIterator] === 'function' &&
    (value as SdkStream<unknown>).controller instanceof Object
  );
}

export interface StreamMeterOptions<Event> {
  budget: CallBudget;
  reader: StreamReader<Event>;
  /** The call's input estimate, used until the provider reports its own count. */
  inputTokens: number;
  enforceDuringStream: boolean;
  /** The SDK's base error class: a stream stopped by enforceDuringStream ends with one. */
  errorClass?: ErrorClass | undefined;
}

/**
 * Meters an SDK stream in place: the caller keeps the SDK's own object (controller, `tee()`,
 * `toReadableStream()`, the Anthropic helpers), whose reads all go through `iterator`, which
 * is replaced by one that observes each event. When the stream ends, however it ends, the
 * budget is settled before the caller hears of it: with the reported usage, or, after an
 * early break, an abort or an error mid-stream, with an estimate of what was streamed
 * (`estimated: true`).
 */
export function meterStream<Event, S extends object>(
  stream: S,
  options: StreamMeterOptions<Event>,
): S {
  const sdkStream = stream as unknown as SdkStream<Event>;
  const source =
    typeof sdkStream.iterator === 'function'
      ? sdkStream.iterator.bind(stream)
      : sdkStream[Symbol.asyncIterator].bind(stream);
  let started = false;
  const metered = (): AsyncIterator<Event> => {
    started = true;
    return new MeteredEvents(source(), sdkStream.controller, options);
  };
  if (typeof sdkStream.iterator === 'function') sdkStream.iterator = metered;
  else Object.defineProperty(stream, Symbol.asyncIterator, { value: metered, configurable: true });
  // Aborted before anyone read it: nothing was streamed, so only the input counts. A caller
  // nearly always starts reading in the task that received the stream, and an abort
  // listener costs more than the rest of the metering, so only a stream still unread when
  // that task ends gets one.
  const controller = sdkStream.controller;
  if (controller !== undefined) {
    afterThisTask(() => {
      if (started) return;
      const abortedUnread = (): void => {
        if (!started) void settleStream(options, undefined);
      };
      if (controller.signal.aborted) abortedUnread();
      else controller.signal.addEventListener('abort', abortedUnread, { once: true });
    });
  }
  return stream;
}

/** Runs `fn` once the current task (and its microtasks) is over. */
const afterThisTask: (fn: () => void) => void =
  typeof setImmediate === 'function'
    ? (fn) => {
        setImmediate(fn);
      }
    : (fn) => {
        setTimeout(fn, 0);
      };

/**
 * The iterator a metered stream is read through. Written by hand rather than as an async
 * generator, which costs several promise hops per event (its await of the SDK's iterator,
 * then the await every `yield` does): one `then` per event is all this one adds. Reads asked
 * for ahead of time (a `tee()` branch reading ahead) are answered in order: the SDK's
 * iterator queues them, and the only event ever hidden, OpenAI's usage-only chunk, is the
 * last one before the end.
 */
class MeteredEvents<Event> implements AsyncIterator<Event, void> {
  readonly #events: AsyncIterator<Event>;
  readonly #controller: AbortController | undefined;
  readonly #options: StreamMeterOptions<Event>;
  /** Set once the stream ended, however: every later read is done. */
  #ended = false;

  constructor(
    events: AsyncIterator<Event>,
    controller: AbortController | undefined,
    options: StreamMeterOptions<Event>,
  ) {
    this.#events = events;
    this.#controller = controller;
    this.#options = options;
  }

  next(): Promise<IteratorResult<Event, void>> {
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    return this.#events.next().then(this.#take, this.#failed);
  }

  /** The caller stopped reading (a `break`): the SDK's own `return` aborts the request. */
  return(): Promise<IteratorResult<Event, void>> {
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    this.#ended = true;
    return Promise.resolve(this.#events.return?.()).then(() => this.#finish(undefined));
  }

  /** As an async generator is, the iterator is its own iterable. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** One event from the SDK: passed on, hidden (then the next one is read) or the end. */
  readonly #take = (
    next: IteratorResult<Event>,
  ): IteratorResult<Event, void> | Promise<IteratorResult<Event, void>> => {
    if (next.done) {
      this.#ended = true;
      return this.#finish(undefined);
    }
    try {
      const { reader, budget, enforceDuringStream, errorClass } = this.#options;
      if (reader.read(next.value)) return this.next();
      if (enforceDuringStream && !budget.allowsOutput(streamedOutputTokens(reader))) {
        this.#controller?.abort();
        const exceeded = budget.exceededError(streamedOutputTokens(reader));
        return this.#close(
          errorClass === undefined ? exceeded : quotaExceededErrorAs(errorClass, exceeded),
        );
      }
    } catch (error) {
      return this.#close(error);
    }
    return next;
  };

  /** The SDK's iterator failed (a provider error mid-stream, a network error). */
  readonly #failed = (error: unknown): Promise<never> => {
    this.#ended = true;
    return settleStream(this.#options, error).then(() => {
      throw error;
    });
  };

  /** Ends the stream with `error` (a quota stop, a failure reading an event): source first. */
  #close(error: unknown): Promise<never> {
    this.#ended = true;
    return Promise.resolve(this.#events.return?.()).then(
      () => this.#failed(error),
      (returnError: unknown) => this.#failed(returnError),
    );
  }

  /** Settles the budget, then tells the caller the stream is done. */
  #finish(failure: unknown): Promise<IteratorResult<Event, void>> {
    return settleStream(this.#options, failure).then(() => ({ done: true, value: undefined }));
  }
}

function streamedOutputTokens(reader: StreamReader<unknown>): number {
  const estimated = characterTokens(reader.outputCharacters);
  const reported = reader.reportedOutputTokens();
  return reported === undefined ? estimated : Math.max(reported, estimated);
}

function settleStream<Event>(options: StreamMeterOptions<Event>, failure: unknown): Promise<void> {
  const { budget, reader } = options;
  if (budget.settled) return Promise.resolve();
  const final = reader.finalUsage();
  if (final !== undefined) return budget.commit(final);
  const output = streamedOutputTokens(reader);
  const input = reader.reportedInputTokens();
  // A provider error before anything was generated costs no tokens.
  if (failure !== undefined && output === 0 && input === undefined && !isQuotaStop(failure)) {
    return budget.fail(failure);
  }
  return budget.commit({
    model: reader.model,
    inputTokens: input ?? options.inputTokens,
    outputTokens: output,
    estimated: true,
  });
}

function isQuotaStop(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'quota_exceeded';
}
