import { QuotaConfigError } from '@quotakit/core';
import type { LanguageModelMiddleware } from 'ai';
import { type CountTokens, estimateCallInputTokens } from './ai-sdk-prompt.js';
import { meterStream } from './ai-sdk-stream.js';
import type { AiSdkCallOptions, AiSdkModel } from './ai-sdk-types.js';
import { estimateContentOutput, normaliseUsage } from './ai-sdk-usage.js';
import {
  type CallBudget,
  type LlmCall,
  openCallBudget,
  type QuotaWrapperOptions,
  resolveWrapperOptions,
} from './call-budget.js';

/**
 * Options of {@link quotaMiddleware}: the same as `withQuota`'s. The AI SDK needs nothing
 * more: provider and model are read from the wrapped model at each call.
 */
export type QuotaModelMiddlewareOptions = QuotaWrapperOptions;

/**
 * A Vercel AI SDK middleware (ai 5.x, 6.x and 7.x: language model specifications v2, v3 and
 * v4) that gives a wrapped model the guarantees of `withQuota`, whatever its provider:
 * - before each call it reserves `llm_requests: 1` and `llm_tokens` = the prompt's estimated
 *   input tokens + the call's `maxOutputTokens` (or `defaultMaxOutputTokens`) for the
 *   subject; refused, it throws a `QuotaExceededError` and no request leaves
 *   (`onExceeded: 'clamp'` lowers `maxOutputTokens` to what the budget allows instead);
 * - after `generateText`-style calls it commits the usage the provider reported, normalised:
 *   input includes cached tokens, output includes reasoning tokens, model and provider go
 *   into the usage record (and `cost_usd` with a price table);
 * - streams are committed from their `finish` part before it reaches the consumer; a stream
 *   cancelled by its consumer or aborted through the call's `abortSignal` commits an estimate
 *   of what was streamed (marked `estimated`) and returns the rest;
 * - with `enforceDuringStream`, a stream that exhausts the budget is cut: the provider's
 *   response is cancelled and the stream ends with an `error` part carrying a
 *   `QuotaExceededError`, then a `finish` part with reason `'error'`;
 * - a failed provider call returns its tokens (`countFailedRequests` decides the request).
 *
 * The provider (`gen_ai.provider.name`) is the model's `provider` up to its first dot
 * (`'openai.chat'` -> `'openai'`), the model its `modelId` or the one the response names.
 * Bad options throw a QuotaConfigError here, not at call time; a model of another
 * specification (v1, ai 4) throws one at its first call, before anything is reserved or sent.
 * The middleware object says `specificationVersion: 'v3'`; the `wrapLanguageModel` of ai 5 and
 * ai 7 take it as it is.
 *
 * @example
 * import { openai } from '@ai-sdk/openai';
 * import { generateText, wrapLanguageModel } from 'ai';
 *
 * const model = wrapLanguageModel({
 *   model: openai('gpt-4o'),
 *   middleware: quotaMiddleware({ engine, subject: () => ({ userId: currentUser() }) }),
 * });
 * const { text } = await generateText({ model, prompt: 'Hello' });
 */
export function quotaMiddleware(options: QuotaModelMiddlewareOptions): LanguageModelMiddleware {
  const resolved = resolveWrapperOptions(options);
  const { countTokens, enforceDuringStream } = resolved;

  return {
    specificationVersion: 'v3',

    async wrapGenerate({ doGenerate, params, model }) {
      const call = describeCall(model, params, countTokens);
      const budget = await openCallBudget(resolved, call);
      const sent = withOutputCap(params, budget);
      let result: Awaited<ReturnType<typeof doGenerate>>;
      try {
        result = await (sent === params ? doGenerate() : model.doGenerate(sent));
      } catch (error) {
        await budget.fail(error);
        throw error;
      }
      await budget.commit(
        normaliseUsage(
          result.usage,
          result.response?.modelId ?? call.model,
          call.inputTokens,
          estimateContentOutput(result.content, countTokens),
          result.providerMetadata,
        ),
      );
      return result;
    },

    async wrapStream({ doStream, params, model }) {
      const call = describeCall(model, params, countTokens);
      const budget = await openCallBudget(resolved, call);
      const sent = withOutputCap(params, budget);
      let result: Awaited<ReturnType<typeof doStream>>;
      try {
        result = await (sent === params ? doStream() : model.doStream(sent));
      } catch (error) {
        await budget.fail(error);
        throw error;
      }
      return {
        ...result,
        stream: meterStream(result.stream, {
          budget,
          // Typed as ai 6's (v3) model, which it need not be.
          flatUsage: (model.specificationVersion as string) === 'v2',
          model: call.model,
          estimatedInputTokens: call.inputTokens,
          countTokens,
          abortSignal: params.abortSignal,
          enforceDuringStream,
        }),
      };
    },
  };
}

/**
 * Specifications whose calls read the same in every part the middleware reads: v2 (ai 5)
 * reports usage as flat numbers, which `normaliseUsage` reads as well; v4 (ai 7) changed only
 * how file data and tool-result files are shaped, which the estimate counts by the part, not
 * by its data.
 */
const SUPPORTED_SPECIFICATIONS: ReadonlySet<unknown> = new Set(['v2', 'v3', 'v4']);

function describeCall(
  model: AiSdkModel,
  params: AiSdkCallOptions,
  countTokens: CountTokens,
): LlmCall {
  if (!SUPPORTED_SPECIFICATIONS.has(model.specificationVersion)) {
    throw new QuotaConfigError(
      'model',
      `quotaMiddleware needs a language model of specification v2, v3 or v4 (ai 5.x to 7.x), got ${String(
        model.specificationVersion,
      )} from ${String(model.provider)}`,
    );
  }
  return {
    // AI SDK providers name themselves `<provider>.<api>` ('openai.responses',
    // 'anthropic.messages'); GenAI's gen_ai.provider.name wants the provider alone.
    provider: model.provider.split('.', 1)[0] || model.provider,
    operation: 'chat',
    model: model.modelId,
    inputTokens: estimateCallInputTokens(params, countTokens),
    maxOutputTokens: params.maxOutputTokens,
  };
}

/** The call's options with clamp's lower output cap, or the caller's own options untouched. */
function withOutputCap(params: AiSdkCallOptions, budget: CallBudget): AiSdkCallOptions {
  const cap = budget.outputCap;
  if (cap === undefined || cap === params.maxOutputTokens) return params;
  return { ...params, maxOutputTokens: cap };
}
