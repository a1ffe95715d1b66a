// How the @anthropic-ai/sdk's `messages.create` calls are read (and so `messages.stream()`,
// which calls `create`). https://docs.anthropic.com/en/api/messages
import type { CallBudget, ReportedUsage } from './call-budget.js';
import type { CallAdapter, CallParams } from './quota-call.js';
import type { StreamReader } from './stream-meter.js';
import { estimatePromptTokens, type TokenCounter } from './token-estimate.js';

type Json = Record<string, unknown>;

function record(value: unknown): Json | undefined {
  return typeof value === 'object' && value !== null ? (value as Json) : undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * Anthropic's `input_tokens` exclude the tokens written to and read from the prompt cache,
 * which are billed as input too: input = input_tokens + cache_creation_input_tokens +
 * cache_read_input_tokens. `output_tokens` include thinking tokens.
 */
function inputTokens(usage: Json): number {
  return (
    count(usage.input_tokens) +
    count(usage.cache_creation_input_tokens) +
    count(usage.cache_read_input_tokens)
  );
}

function messageUsage(usage: Json, model: unknown): ReportedUsage {
  return {
    model: typeof model === 'string' ? model : undefined,
    inputTokens: inputTokens(usage),
    cachedInputTokens: count(usage.cache_read_input_tokens),
    outputTokens: count(usage.output_tokens),
  };
}

function blockCharacters(block: Json | undefined): number {
  if (block === undefined) return 0;
  let characters = 0;
  for (const key of ['text', 'thinking', 'partial_json'] as const) {
    const value = block[key];
    if (typeof value === 'string') characters += value.length;
  }
  if (block.type === 'tool_use' && block.input !== undefined) {
    characters += JSON.stringify(block.input).length;
  }
  return characters;
}

/** `messages.create`, with and without `stream`. */
export const messages: CallAdapter = {
  provider: 'anthropic',
  operation: 'chat',
  describe(params: CallParams, countTokens: TokenCounter) {
    return {
      provider: 'anthropic',
      operation: 'chat',
      model: String(params.model),
      inputTokens:
        estimatePromptTokens(params.system, countTokens) +
        estimatePromptTokens(params.messages, countTokens) +
        estimatePromptTokens(params.tools, countTokens),
      maxOutputTokens:
        typeof params.max_tokens === 'number' && params.max_tokens >= 0
          ? params.max_tokens
          : undefined,
    };
  },
  prepare(params: CallParams, budget: CallBudget) {
    // Every streamed message carries its usage (message_start, message_delta).
    const sent =
      budget.outputCap === undefined ? params : { ...params, max_tokens: budget.outputCap };
    return { params: sent, hidesUsage: false };
  },
  usage(result: unknown) {
    const message = record(result);
    const usage = record(message?.usage);
    return usage === undefined ? undefined : messageUsage(usage, message?.model);
  },
  outputCharacters(result: unknown) {
    let characters = 0;
    const content = record(result)?.content;
    if (Array.isArray(content))
      for (const block of content) characters += blockCharacters(record(block));
    return characters;
  },
  streamReader(): StreamReader<unknown> {
    return new MessageStreamReader();
  },
};

class MessageStreamReader implements StreamReader<unknown> {
  outputCharacters = 0;
  model: string | undefined;
  #usage: Json | undefined;
  #stopped = false;

  read(event: unknown): boolean {
    const data = record(event);
    switch (data?.type) {
      case 'message_start': {
        const message = record(data.message);
        if (typeof message?.model === 'string') this.model = message.model;
        const usage = record(message?.usage);
        if (usage !== undefined) this.#usage = { ...usage };
        break;
      }
      case 'content_block_delta':
        this.outputCharacters += blockCharacters(record(data.delta));
        break;
      case 'message_delta': {
        // Running totals: each field present replaces the last value (never added).
        const usage = record(data.usage);
        if (usage !== undefined) {
          const merged: Json = { ...this.#usage };
          for (const key in usage) if (usage[key] != null) merged[key] = usage[key];
          this.#usage = merged;
        }
        break;
      }
      case 'message_stop':
        this.#stopped = true;
        break;
    }
    return false;
  }

  finalUsage(): ReportedUsage | undefined {
    if (!this.#stopped || this.#usage === undefined) return undefined;
    return messageUsage(this.#usage, this.model);
  }

  reportedInputTokens(): number | undefined {
    return this.#usage === undefined ? undefined : inputTokens(this.#usage);
  }

  reportedOutputTokens(): number | undefined {
    return this.#usage === undefined ? undefined : count(this.#usage.output_tokens);
  }
}
