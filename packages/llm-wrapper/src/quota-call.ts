import { type ErrorClass, QuotaExceededError, quotaExceededErrorAs } from '@quotakit/core';
import {
  type CallBudget,
  type LlmCall,
  openCallBudget,
  type ReportedUsage,
} from './call-budget.js';
import {
  type CallSettlement,
  QuotaAPIPromise,
  type SdkPromise,
  type SentCall,
} from './quota-api-promise.js';
import { isSdkStream, meterStream, type StreamReader } from './stream-meter.js';
import type { TokenCounter } from './token-estimate.js';
import type { ResolvedWrapperOptions } from './wrapper-options.js';

/** The parameters of any create call: an object the adapters read and copy, never change. */
export type CallParams = Record<string, unknown>;

/** How one SDK method's calls are read: what they ask for, what they report. */
export interface CallAdapter {
  readonly provider: string;
  readonly operation: string;
  /** What the call is about to do: model, input estimate, output cap, choices. */
  describe(params: CallParams, countTokens: TokenCounter): LlmCall;
  /**
   * The parameters to send: the caller's own object when nothing changes, else a copy with
   * clamp's output cap and, for streams, the request for usage. `hidesUsage` is set when
   * the copy asks for usage the caller did not.
   */
  prepare(params: CallParams, budget: CallBudget): { params: CallParams; hidesUsage: boolean };
  /** The usage of a complete (non-streamed) result; undefined when it carries none. */
  usage(result: unknown): ReportedUsage | undefined;
  /** Output characters of a complete result, for an estimate when it reports no usage. */
  outputCharacters(result: unknown): number;
  /** A reader for one streamed call's events. */
  streamReader(hidesUsage: boolean): StreamReader<unknown>;
}

type CreateMethod = (params: CallParams, requestOptions?: unknown) => SdkPromise<unknown>;

/** One SDK method as the wrapper sees it: where it lives and how its calls read. */
export interface WrappedMethod {
  readonly adapter: CallAdapter;
  /** The SDK's resource object (`client.chat.completions`), `this` of every call. */
  readonly resource: object;
  readonly create: CreateMethod;
  /**
   * The SDK's base error class (`OpenAIError`, `AnthropicError`), when the client has one: a
   * refusal is then also an instance of it, so that the SDK's stream helpers, which wrap any
   * other error, pass it on as it is.
   */
  readonly errorClass: ErrorClass | undefined;
}

/**
 * Wraps one SDK `create` method: the returned function reserves before it calls `create`
 * (bound to the SDK's own resource object), and settles after.
 */
export function quotaCreate(options: ResolvedWrapperOptions, method: WrappedMethod): CreateMethod {
  return function quotaLimitedCreate(params, requestOptions) {
    return startCall(options, method, params, requestOptions);
  };
}

function startCall(
  options: ResolvedWrapperOptions,
  method: WrappedMethod,
  params: CallParams,
  requestOptions: unknown,
): QuotaAPIPromise<unknown> {
  const { adapter, resource, create, errorClass } = method;
  const call = new WrappedCall(options, adapter, errorClass);
  const described = adapter.describe(params, options.countTokens);
  // The subject is read now, in the caller's async context (openCallBudget reads it first).
  const budgeted =
    errorClass === undefined
      ? openCallBudget(options, described)
      : openCallBudget(options, described).catch((error: unknown) => {
          throw error instanceof QuotaExceededError
            ? quotaExceededErrorAs(errorClass, error)
            : error;
        });
  const sent = budgeted.then((budget): SentCall<unknown> => {
    call.budget = budget;
    const prepared = adapter.prepare(params, budget);
    call.hidesUsage = prepared.hidesUsage;
    call.inputTokens = described.inputTokens;
    call.streamed = prepared.params.stream === true;
    let sdk: SdkPromise<unknown>;
    try {
      sdk = create.call(resource, prepared.params, requestOptions);
    } catch (error) {
      // Thrown before anything left (bad parameters): nothing was spent.
      void budget.release();
      throw error;
    }
    // The SDK's own promise, not a `_thenUnwrap` of it: a derived APIPromise per call is
    // real work, and QuotaAPIPromise observes whatever it parses before handing it out.
    return { sdk };
  });
  return new QuotaAPIPromise(sent, call);
}

/** The state of one wrapped call between its reservation and its settlement. */
class WrappedCall implements CallSettlement {
  budget: CallBudget | undefined;
  settlement: Promise<void> | undefined;
  hidesUsage = false;
  streamed = false;
  inputTokens = 0;
  #observed = false;
  readonly #options: ResolvedWrapperOptions;
  readonly #adapter: CallAdapter;
  readonly #errorClass: ErrorClass | undefined;

  constructor(
    options: ResolvedWrapperOptions,
    adapter: CallAdapter,
    errorClass: ErrorClass | undefined,
  ) {
    this.#options = options;
    this.#adapter = adapter;
    this.#errorClass = errorClass;
  }

  observe(data: unknown): void {
    if (this.#observed) return;
    this.#observed = true;
    const budget = this.budget!;
    if (budget.settled) return;
    if (isSdkStream(data)) {
      meterStream(data, {
        budget,
        reader: this.#adapter.streamReader(this.hidesUsage),
        inputTokens: this.inputTokens,
        enforceDuringStream: this.#options.enforceDuringStream,
        errorClass: this.#errorClass,
      });
      return;
    }
    this.settlement = budget.commit(this.#completeUsage(data));
  }

  #completeUsage(data: unknown): ReportedUsage {
    const reported = this.#adapter.usage(data);
    if (reported !== undefined) return reported;
    // A compatible server that reports no usage: charge an estimate.
    return {
      inputTokens: this.inputTokens,
      outputTokens: Math.ceil(this.#adapter.outputCharacters(data) / 4),
      estimated: true,
    };
  }

  settleFromResponse(response: Response): Promise<void> {
    const budget = this.budget;
    if (budget === undefined || budget.settled) return this.settlement ?? Promise.resolve();
    const reserved: ReportedUsage = {
      inputTokens: this.inputTokens,
      outputTokens: budget.reservedOutputTokens,
      estimated: true,
    };
    let copy: Response | undefined;
    if (!this.streamed && !response.bodyUsed) {
      try {
        copy = response.clone();
      } catch {
        copy = undefined;
      }
    }
    // A streamed body only the caller reads is charged what was reserved, as an estimate.
    this.settlement =
      copy === undefined
        ? budget.commit(reserved)
        : copy.json().then(
            (body) => budget.commit(this.#completeUsage(body)),
            () => budget.commit(reserved),
          );
    return this.settlement;
  }
}
