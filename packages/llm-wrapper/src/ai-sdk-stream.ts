import type { CountTokens } from './ai-sdk-prompt.js';
import type { AiSdkStreamPart, AiSdkUsage } from './ai-sdk-types.js';
import { normaliseUsage, type OutputEstimate, type ProviderMetadata } from './ai-sdk-usage.js';
import type { CallBudget, ReportedUsage } from './call-budget.js';

/** One streamed call: its reservation and what the request said. */
export interface MeteredCall {
  readonly budget: CallBudget;
  /** The model is of specification v2 (ai 5): a finish part of its own has flat usage. */
  readonly flatUsage: boolean;
  /** The requested model, until the stream's response metadata names the one that answered. */
  readonly model: string;
  readonly estimatedInputTokens: number;
  /** Counts the streamed text, for estimates. */
  readonly countTokens: CountTokens;
  /** The call's abort signal: aborting settles the reservation even if nobody reads on. */
  readonly abortSignal: AbortSignal | undefined;
  /** Stop the stream once the output streamed so far exceeds what the budget allows. */
  readonly enforceDuringStream: boolean;
}

/**
 * Passes a model's stream of parts through unchanged and settles the call's reservation
 * exactly once, before the consumer can observe the end:
 * - the `finish` part commits the provider's usage (estimated where it reports none) before
 *   it is passed on;
 * - a stream that ends without one, is cancelled by its consumer, or whose call is aborted
 *   commits an estimate from what was streamed, marked `estimated`, returning the rest;
 * - a provider error before any output returns the tokens (`budget.fail`); after some output
 *   it commits the estimate, since those tokens were produced.
 *
 * A pull source rather than a TransformStream: it sees a consumer's cancel on every runtime
 * (transformer `cancel` is recent), and with no read-ahead the estimate after a cancel is
 * what the consumer actually received.
 */
export function meterStream(
  source: ReadableStream<AiSdkStreamPart>,
  call: MeteredCall,
): ReadableStream<AiSdkStreamPart> {
  const reader = source.getReader();
  const { budget, abortSignal } = call;
  let model = call.model;
  let outputTokens = 0;
  let reasoningTokens = 0;
  let producedOutput = false;
  // Tool calls whose input arrived as deltas, so that the final `tool-call` part is not
  // counted a second time.
  const streamedToolInputs = new Set<string>();
  let settlement: Promise<void> | undefined;

  const estimate = (): OutputEstimate => ({ outputTokens, reasoningTokens });
  const settle = (run: () => Promise<void>): Promise<void> => {
    if (settlement === undefined) {
      abortSignal?.removeEventListener('abort', onAbort);
      settlement = run();
    }
    return settlement;
  };
  const commitEstimate = () =>
    settle(() => {
      const usage: ReportedUsage = {
        model,
        inputTokens: call.estimatedInputTokens,
        outputTokens,
        estimated: true,
      };
      if (reasoningTokens > 0) usage.reasoningTokens = reasoningTokens;
      return budget.commit(usage);
    });
  const commitReported = (usage: AiSdkUsage, providerMetadata: ProviderMetadata) =>
    settle(() =>
      budget.commit(
        normaliseUsage(usage, model, call.estimatedInputTokens, estimate(), providerMetadata),
      ),
    );
  function onAbort() {
    // Whoever reads on gets the same settlement (and its error, if the commit failed).
    commitEstimate().catch(() => {});
  }
  abortSignal?.addEventListener('abort', onAbort, { once: true });

  /** Counts one part's output; true when it carried output. */
  function count(part: AiSdkStreamPart): boolean {
    switch (part.type) {
      case 'text-delta':
        outputTokens += call.countTokens(part.delta);
        return true;
      case 'reasoning-delta': {
        const tokens = call.countTokens(part.delta);
        outputTokens += tokens;
        reasoningTokens += tokens;
        return true;
      }
      case 'tool-input-delta':
        streamedToolInputs.add(part.id);
        outputTokens += call.countTokens(part.delta);
        return true;
      case 'tool-call':
        if (!streamedToolInputs.has(part.toolCallId)) {
          outputTokens += call.countTokens(part.input);
        }
        return true;
      case 'response-metadata':
        if (part.modelId) model = part.modelId;
        return false;
      default:
        return false;
    }
  }

  async function stop(controller: ReadableStreamDefaultController<AiSdkStreamPart>) {
    const error = budget.exceededError(outputTokens);
    // Cancelling the provider's stream closes its HTTP response: nothing more is generated.
    await reader.cancel(error).catch(() => {});
    await commitEstimate();
    // As providers report an error met mid-stream: an error part, then a finish part (here
    // with the estimated usage), so that streamText keeps the text so far and calls onError.
    controller.enqueue({ type: 'error', error });
    controller.enqueue(
      call.flatUsage
        ? // Specification v2: a finish reason of its own, usage as flat counts.
          ({
            type: 'finish',
            finishReason: 'error',
            usage: v2Usage(call.estimatedInputTokens, estimate()),
          } as unknown as AiSdkStreamPart)
        : {
            type: 'finish',
            finishReason: { unified: 'error', raw: 'quota_exceeded' },
            usage: v3Usage(call.estimatedInputTokens, estimate()),
          },
    );
    controller.close();
  }

  return new ReadableStream<AiSdkStreamPart>(
    {
      async pull(controller) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (error) {
          if (producedOutput || abortSignal?.aborted) await commitEstimate();
          else await settle(() => budget.fail(error));
          throw error;
        }
        if (next.done) {
          await commitEstimate();
          controller.close();
          return;
        }
        const part = next.value;
        const carriedOutput = count(part);
        if (part.type === 'finish') await commitReported(part.usage, part.providerMetadata);
        controller.enqueue(part);
        if (!carriedOutput) return;
        producedOutput = true;
        if (
          call.enforceDuringStream &&
          settlement === undefined &&
          !budget.allowsOutput(outputTokens)
        ) {
          await stop(controller);
        }
      },
      async cancel(reason) {
        try {
          await reader.cancel(reason);
        } finally {
          await commitEstimate();
        }
      },
    },
    // No read-ahead: a part is read from the provider only when the consumer asks for one.
    { highWaterMark: 0 },
  );
}

/** The estimate as the usage of a v3 or v4 finish part (a cut stream's). */
function v3Usage(inputTokens: number, output: OutputEstimate): AiSdkUsage {
  return {
    inputTokens: {
      total: inputTokens,
      noCache: inputTokens,
      cacheRead: undefined,
      cacheWrite: undefined,
    },
    outputTokens: {
      total: output.outputTokens,
      text: output.outputTokens - output.reasoningTokens,
      reasoning: output.reasoningTokens,
    },
  };
}

/** The estimate as the usage of a v2 finish part: flat counts, output with reasoning. */
function v2Usage(inputTokens: number, output: OutputEstimate) {
  return {
    inputTokens,
    outputTokens: output.outputTokens,
    totalTokens: inputTokens + output.outputTokens,
    reasoningTokens: output.reasoningTokens,
  };
}
