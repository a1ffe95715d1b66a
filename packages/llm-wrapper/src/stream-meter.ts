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
}

/**
 * Meters an SDK stream in place: the caller keeps the SDK's own object (controller, `tee()`,
 * `toReadableStream()`, the Anthropic helpers), whose reads all go through `iterator`, which
 * is replaced by one that observes each event. When the stream ends, however it ends, the
 * budget is settled in a `finally`: with the reported usage, or, after an early break, an
 * abort or an error mid-stream, with an estimate of what was streamed (`estimated: true`).
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
    return meteredEvents(source(), sdkStream.controller, options);
  };
  if (typeof sdkStream.iterator === 'function') sdkStream.iterator = metered;
  else Object.defineProperty(stream, Symbol.asyncIterator, { value: metered, configurable: true });
  // Aborted before anyone read it: nothing was streamed, so only the input counts.
  sdkStream.controller?.signal.addEventListener(
    'abort',
    () => {
      if (!started) void settleStream(options, undefined);
    },
    { once: true },
  );
  return stream;
}

async function* meteredEvents<Event>(
  events: AsyncIterator<Event>,
  controller: AbortController | undefined,
  options: StreamMeterOptions<Event>,
): AsyncGenerator<Event, void, undefined> {
  const { reader, budget, enforceDuringStream } = options;
  let failure: unknown;
  try {
    for (;;) {
      const next = await events.next();
      if (next.done) break;
      if (reader.read(next.value)) continue;
      if (enforceDuringStream && !budget.allowsOutput(streamedOutputTokens(reader))) {
        controller?.abort();
        await events.return?.();
        throw budget.exceededError(streamedOutputTokens(reader));
      }
      yield next.value;
    }
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    // The caller broke out early: the SDK's own finally aborts the request.
    await events.return?.();
    await settleStream(options, failure);
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
