import type { AiSdkCallOptions, AiSdkMessage } from './ai-sdk-types.js';
import { MEDIA_PART_TOKENS } from './call-budget.js';

/** Counts the tokens of one text (the wrapper's `estimator`). */
export type CountTokens = (text: string) => number;

// The framing each message adds in chat formats (role, separators): a few tokens apiece, as
// OpenAI's cookbook counts them.
const MESSAGE_OVERHEAD_TOKENS = 4;

/**
 * Estimated input tokens of an AI SDK call: the text of its prompt (system, user, assistant,
 * reasoning, tool calls and results), its tool definitions and its JSON response schema,
 * counted with `countTokens`. Files count {@link MEDIA_PART_TOKENS} each, whatever their
 * size. Reads nothing but the call's options.
 */
export function estimateCallInputTokens(
  params: AiSdkCallOptions,
  countTokens: CountTokens,
): number {
  const textTokens = (text: string | undefined) => (text ? countTokens(text) : 0);
  const jsonTokens = (value: unknown) => textTokens(jsonText(value));
  let tokens = 0;
  for (const message of params.prompt) {
    tokens += MESSAGE_OVERHEAD_TOKENS + messageTokens(message, textTokens, jsonTokens);
  }
  for (const tool of params.tools ?? []) {
    tokens +=
      tool.type === 'function'
        ? textTokens(tool.name) + textTokens(tool.description) + jsonTokens(tool.inputSchema)
        : textTokens(tool.name) + jsonTokens(tool.args);
  }
  if (params.responseFormat?.type === 'json') {
    tokens +=
      jsonTokens(params.responseFormat.schema) + textTokens(params.responseFormat.description);
  }
  return tokens;
}

type Counter<T> = (value: T) => number;

function messageTokens(
  message: AiSdkMessage,
  textTokens: Counter<string | undefined>,
  jsonTokens: Counter<unknown>,
): number {
  if (message.role === 'system') return textTokens(message.content);
  let tokens = 0;
  for (const part of message.content) {
    switch (part.type) {
      case 'text':
      case 'reasoning':
        tokens += textTokens(part.text);
        break;
      case 'file':
        tokens += MEDIA_PART_TOKENS;
        break;
      case 'tool-call':
        tokens += textTokens(part.toolName) + jsonTokens(part.input);
        break;
      case 'tool-result':
        tokens += textTokens(part.toolName) + toolOutputTokens(part.output, textTokens, jsonTokens);
        break;
      case 'tool-approval-response':
        tokens += textTokens(part.reason);
        break;
    }
  }
  return tokens;
}

type ToolOutput = Extract<
  Extract<AiSdkMessage, { role: 'tool' }>['content'][number],
  { type: 'tool-result' }
>['output'];

function toolOutputTokens(
  output: ToolOutput,
  textTokens: Counter<string | undefined>,
  jsonTokens: Counter<unknown>,
): number {
  switch (output.type) {
    case 'text':
    case 'error-text':
      return textTokens(output.value);
    case 'json':
    case 'error-json':
      return jsonTokens(output.value);
    case 'execution-denied':
      return textTokens(output.reason);
    case 'content': {
      let tokens = 0;
      for (const item of output.value) {
        tokens += item.type === 'text' ? textTokens(item.text) : MEDIA_PART_TOKENS;
      }
      return tokens;
    }
  }
}

/** The text a value is sent as: strings as they are, anything else as JSON. */
function jsonText(value: unknown): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  try {
    return JSON.stringify(value);
  } catch {
    // A value JSON cannot encode (a cycle, a BigInt) cannot be sent as JSON either.
    return undefined;
  }
}
