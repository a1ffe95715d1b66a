import type { CountTokens } from './ai-sdk-prompt.js';
import type { AiSdkGenerateResult, AiSdkUsage } from './ai-sdk-types.js';
import { MEDIA_PART_TOKENS, type ReportedUsage } from './call-budget.js';

/** Output tokens counted from generated content, for when the provider reports none. */
export interface OutputEstimate {
  outputTokens: number;
  reasoningTokens: number;
}

/**
 * The usage of a specification v2 model (ai 5): flat counts, whose `outputTokens` already
 * include `reasoningTokens` and whose `inputTokens` are what the provider calls input.
 */
interface FlatUsage {
  readonly inputTokens?: number;
  readonly outputTokens?: number;
  readonly reasoningTokens?: number;
  readonly cachedInputTokens?: number;
}

/** What a result or finish part carries beside its usage, by provider. */
export type ProviderMetadata = Record<string, Record<string, unknown> | undefined> | undefined;

/**
 * The usage in the structured form of specifications v3 and v4, whichever form it came in.
 *
 * Anthropic's v2 provider (`@ai-sdk/anthropic` 2) counts as input only what Anthropic calls
 * `input_tokens`: the cache reads (its `cachedInputTokens`) and the cache writes (in its
 * metadata) are added, as Anthropic bills all three as input. ai 7 hands such usage on in the
 * structured form, converted field by field (no `noCache`, no `cacheWrite`, which Anthropic's
 * own v3 and v4 providers always give): it gets the same correction.
 */
function structured(
  usage: AiSdkUsage | FlatUsage | undefined,
  providerMetadata: ProviderMetadata,
): AiSdkUsage | undefined {
  if (usage === undefined) return undefined;
  const anthropic = providerMetadata?.anthropic;
  if (typeof usage.inputTokens === 'object' || typeof usage.outputTokens === 'object') {
    const { inputTokens: input, outputTokens: output } = usage as AiSdkUsage;
    const convertedFromV2 =
      input !== undefined && input.noCache === undefined && input.cacheWrite === undefined;
    if (anthropic === undefined || !convertedFromV2) return usage as AiSdkUsage;
    return withAnthropicCache(
      {
        inputTokens: input.total,
        outputTokens: output?.total,
        reasoningTokens: output?.reasoning,
        cachedInputTokens: input.cacheRead,
      },
      anthropic,
    );
  }
  const flat = usage as FlatUsage;
  if (anthropic !== undefined) return withAnthropicCache(flat, anthropic);
  return {
    inputTokens: {
      total: flat.inputTokens,
      noCache: undefined,
      cacheRead: flat.cachedInputTokens,
      cacheWrite: undefined,
    },
    outputTokens: { total: flat.outputTokens, text: undefined, reasoning: flat.reasoningTokens },
  };
}

/** Anthropic's v2 usage with the cache reads and writes counted as input, as billed. */
function withAnthropicCache(flat: FlatUsage, anthropic: Record<string, unknown>): AiSdkUsage {
  const cacheRead = count(flat.cachedInputTokens);
  const cacheWrite = count(anthropic.cacheCreationInputTokens as number | undefined);
  const total =
    flat.inputTokens === undefined
      ? undefined
      : flat.inputTokens + (cacheRead ?? 0) + (cacheWrite ?? 0);
  return {
    inputTokens: { total, noCache: flat.inputTokens, cacheRead, cacheWrite },
    outputTokens: { total: flat.outputTokens, text: undefined, reasoning: flat.reasoningTokens },
  };
}

/**
 * The usage to commit, from the usage a model reported (structured, or flat from a v2 model):
 * input includes cached reads and cache writes (`inputTokens.total`, else the sum of its
 * parts), output includes reasoning (`outputTokens.total`, else text + reasoning). A count the
 * provider left out is taken from the estimates, and the usage is then marked `estimated`.
 */
export function normaliseUsage(
  reportedUsage: AiSdkUsage | FlatUsage | undefined,
  model: string,
  estimatedInputTokens: number,
  estimatedOutput: OutputEstimate,
  providerMetadata?: ProviderMetadata,
): ReportedUsage {
  const usage = structured(reportedUsage, providerMetadata);
  const input = usage?.inputTokens;
  const output = usage?.outputTokens;
  const inputTokens =
    count(input?.total) ??
    sum(count(input?.noCache), count(input?.cacheRead), count(input?.cacheWrite));
  const reasoningTokens = count(output?.reasoning);
  const outputTokens = count(output?.total) ?? sum(count(output?.text), reasoningTokens);
  const reported: ReportedUsage = {
    model,
    inputTokens: inputTokens ?? estimatedInputTokens,
    outputTokens: outputTokens ?? estimatedOutput.outputTokens,
  };
  const cachedInputTokens = count(input?.cacheRead);
  if (cachedInputTokens !== undefined) reported.cachedInputTokens = cachedInputTokens;
  if (outputTokens === undefined) {
    if (estimatedOutput.reasoningTokens > 0)
      reported.reasoningTokens = estimatedOutput.reasoningTokens;
  } else if (reasoningTokens !== undefined) {
    reported.reasoningTokens = reasoningTokens;
  }
  if (inputTokens === undefined || outputTokens === undefined) reported.estimated = true;
  return reported;
}

/** Output tokens estimated from the content of a generate result. */
export function estimateContentOutput(
  content: AiSdkGenerateResult['content'],
  countTokens: CountTokens,
): OutputEstimate {
  let outputTokens = 0;
  let reasoningTokens = 0;
  for (const part of content) {
    switch (part.type) {
      case 'text':
        outputTokens += countTokens(part.text);
        break;
      case 'reasoning': {
        const tokens = countTokens(part.text);
        outputTokens += tokens;
        reasoningTokens += tokens;
        break;
      }
      case 'tool-call':
        outputTokens += countTokens(part.input);
        break;
      case 'file':
        outputTokens += MEDIA_PART_TOKENS;
        break;
    }
  }
  return { outputTokens, reasoningTokens };
}

/** A token count as a provider may report it: a finite non-negative number, or nothing. */
function count(value: number | undefined): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function sum(...values: (number | undefined)[]): number | undefined {
  let total: number | undefined;
  for (const value of values) if (value !== undefined) total = (total ?? 0) + value;
  return total;
}
