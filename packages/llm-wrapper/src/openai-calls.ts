// How the openai SDK's calls are read: Chat Completions, Responses and Embeddings.
// https://platform.openai.com/docs/api-reference
import type { CallBudget, ReportedUsage } from './call-budget.js';
import type { CallAdapter, CallParams } from './quota-call.js';
import type { StreamReader } from './stream-meter.js';
import { estimatePromptTokens, type TokenCounter } from './token-estimate.js';

type Json = Record<string, unknown>;

/** Tokens every chat reply is primed with (`<|start|>assistant<|message|>`). */
const REPLY_PRIMING_TOKENS = 3;

function record(value: unknown): Json | undefined {
  return typeof value === 'object' && value !== null ? (value as Json) : undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

function optionalCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function textLength(value: unknown): number {
  return typeof value === 'string' ? value.length : 0;
}

/**
 * Chat Completions usage: `prompt_tokens` already include the cached ones and
 * `completion_tokens` the reasoning ones, as OpenAI bills them.
 */
function chatUsage(usage: Json, model: unknown): ReportedUsage {
  return {
    model: typeof model === 'string' ? model : undefined,
    inputTokens: count(usage.prompt_tokens),
    cachedInputTokens: count(record(usage.prompt_tokens_details)?.cached_tokens),
    outputTokens: count(usage.completion_tokens),
    reasoningTokens: count(record(usage.completion_tokens_details)?.reasoning_tokens),
  };
}

/** Responses usage: `input_tokens` include cached ones, `output_tokens` reasoning ones. */
function responseUsage(usage: Json, model: unknown): ReportedUsage {
  return {
    model: typeof model === 'string' ? model : undefined,
    inputTokens: count(usage.input_tokens),
    cachedInputTokens: count(record(usage.input_tokens_details)?.cached_tokens),
    outputTokens: count(usage.output_tokens),
    reasoningTokens: count(record(usage.output_tokens_details)?.reasoning_tokens),
  };
}

function withCap(params: CallParams, budget: CallBudget, field: string): CallParams {
  return budget.outputCap === undefined ? params : { ...params, [field]: budget.outputCap };
}

/** Characters of a chat message or delta: text, refusal, reasoning, tool arguments. */
function messageCharacters(message: Json | undefined): number {
  if (message === undefined) return 0;
  let characters =
    textLength(message.content) +
    textLength(message.refusal) +
    textLength(message.reasoning_content);
  const toolCalls = message.tool_calls;
  if (Array.isArray(toolCalls)) {
    for (const toolCall of toolCalls) {
      characters += textLength(record(record(toolCall)?.function)?.arguments);
    }
  }
  return characters;
}

/** `chat.completions.create`, with and without `stream`. */
export const chatCompletions: CallAdapter = {
  provider: 'openai',
  operation: 'chat',
  describe(params: CallParams, countTokens: TokenCounter) {
    const choices = typeof params.n === 'number' && params.n > 1 ? params.n : 1;
    const cap = optionalCount(params.max_completion_tokens) ?? optionalCount(params.max_tokens);
    return {
      provider: 'openai',
      operation: 'chat',
      model: String(params.model),
      inputTokens:
        estimatePromptTokens(params.messages, countTokens) +
        estimatePromptTokens(params.tools, countTokens) +
        estimatePromptTokens(params.functions, countTokens) +
        estimatePromptTokens(record(params.response_format)?.json_schema, countTokens) +
        REPLY_PRIMING_TOKENS,
      maxOutputTokens: cap === undefined ? undefined : cap * choices,
      choices,
    };
  },
  prepare(params: CallParams, budget: CallBudget) {
    // The legacy `max_tokens` is lowered when it is the one the caller set.
    const capField =
      params.max_completion_tokens == null && params.max_tokens != null
        ? 'max_tokens'
        : 'max_completion_tokens';
    let sent = withCap(params, budget, capField);
    const streamOptions = record(params.stream_options);
    const asked = streamOptions?.include_usage === true;
    if (params.stream === true && !asked) {
      // Without it a stream reports no usage at all; the extra chunk is hidden again.
      sent = { ...sent, stream_options: { ...streamOptions, include_usage: true } };
      return { params: sent, hidesUsage: true };
    }
    return { params: sent, hidesUsage: false };
  },
  usage(result: unknown) {
    const completion = record(result);
    const usage = record(completion?.usage);
    return usage === undefined ? undefined : chatUsage(usage, completion?.model);
  },
  outputCharacters(result: unknown) {
    let characters = 0;
    const choices = record(result)?.choices;
    if (Array.isArray(choices)) {
      for (const choice of choices)
        characters += messageCharacters(record(record(choice)?.message));
    }
    return characters;
  },
  streamReader(hidesUsage: boolean): StreamReader<unknown> {
    return new ChatStreamReader(hidesUsage);
  },
};

/**
 * What OpenAI's stream readers share: the usage arrives whole, in one event at the end (the
 * usage chunk of chat, the final event of a response), so everything reported is final.
 */
abstract class FinalUsageReader implements StreamReader<unknown> {
  outputCharacters = 0;
  model: string | undefined;
  protected usage: ReportedUsage | undefined;

  abstract read(event: unknown): boolean;

  finalUsage(): ReportedUsage | undefined {
    return this.usage;
  }

  reportedInputTokens(): number | undefined {
    return this.usage?.inputTokens;
  }

  reportedOutputTokens(): number | undefined {
    return this.usage?.outputTokens;
  }
}

class ChatStreamReader extends FinalUsageReader {
  readonly #hidesUsage: boolean;

  constructor(hidesUsage: boolean) {
    super();
    this.#hidesUsage = hidesUsage;
  }

  read(event: unknown): boolean {
    const chunk = record(event);
    if (chunk === undefined) return false;
    if (typeof chunk.model === 'string') this.model = chunk.model;
    const choices = chunk.choices;
    if (Array.isArray(choices)) {
      for (const choice of choices) {
        this.outputCharacters += messageCharacters(record(record(choice)?.delta));
      }
    }
    const usage = record(chunk.usage);
    if (usage === undefined) return false;
    this.usage = chatUsage(usage, chunk.model);
    // The usage-only chunk (empty `choices`) the caller did not ask for.
    return this.#hidesUsage && Array.isArray(choices) && choices.length === 0;
  }
}

/** `responses.create`, with and without `stream`. */
export const responses: CallAdapter = {
  provider: 'openai',
  operation: 'chat',
  describe(params: CallParams, countTokens: TokenCounter) {
    return {
      provider: 'openai',
      operation: 'chat',
      model: String(params.model),
      inputTokens:
        estimatePromptTokens(params.input, countTokens) +
        estimatePromptTokens(params.instructions, countTokens) +
        estimatePromptTokens(params.tools, countTokens) +
        REPLY_PRIMING_TOKENS,
      maxOutputTokens: optionalCount(params.max_output_tokens),
    };
  },
  prepare(params: CallParams, budget: CallBudget) {
    // Streamed responses always end with their usage (`response.completed`).
    return { params: withCap(params, budget, 'max_output_tokens'), hidesUsage: false };
  },
  usage(result: unknown) {
    const response = record(result);
    const usage = record(response?.usage);
    return usage === undefined ? undefined : responseUsage(usage, response?.model);
  },
  outputCharacters(result: unknown) {
    const response = record(result);
    if (typeof response?.output_text === 'string') return response.output_text.length;
    return estimatePromptTokens(response?.output, (text) => text.length);
  },
  streamReader(): StreamReader<unknown> {
    return new ResponseStreamReader();
  },
};

// Events that end a response and carry its usage.
const FINAL_RESPONSE_EVENTS = new Set([
  'response.completed',
  'response.incomplete',
  'response.failed',
]);

class ResponseStreamReader extends FinalUsageReader {
  read(event: unknown): boolean {
    const data = record(event);
    if (data === undefined) return false;
    const type = data.type;
    if (typeof data.delta === 'string') {
      // response.output_text.delta, response.reasoning_summary_text.delta,
      // response.function_call_arguments.delta, response.refusal.delta, ...
      this.outputCharacters += data.delta.length;
      return false;
    }
    const response = record(data.response);
    if (response === undefined) return false;
    if (typeof response.model === 'string') this.model = response.model;
    if (typeof type === 'string' && FINAL_RESPONSE_EVENTS.has(type)) {
      const usage = record(response.usage);
      if (usage !== undefined) this.usage = responseUsage(usage, response.model);
    }
    return false;
  }
}

/** `embeddings.create`: input tokens only. */
export const embeddings: CallAdapter = {
  provider: 'openai',
  operation: 'embeddings',
  describe(params: CallParams, countTokens: TokenCounter) {
    return {
      provider: 'openai',
      operation: 'embeddings',
      model: String(params.model),
      inputTokens: estimatePromptTokens(params.input, countTokens),
      maxOutputTokens: 0,
    };
  },
  prepare(params: CallParams) {
    return { params, hidesUsage: false };
  },
  usage(result: unknown) {
    const response = record(result);
    const usage = record(response?.usage);
    if (usage === undefined) return undefined;
    return {
      model: typeof response?.model === 'string' ? response.model : undefined,
      inputTokens: count(usage.prompt_tokens),
      outputTokens: 0,
    };
  },
  outputCharacters() {
    return 0;
  },
  streamReader(): StreamReader<unknown> {
    return new ResponseStreamReader();
  },
};
