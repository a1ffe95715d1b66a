import { QuotaConfigError } from '@quotakit/core';

/** Counts the tokens of one text. */
export type TokenCounter = (text: string) => number;

/**
 * How prompts are counted before a call: `'fast'` (about 4 characters a token, no
 * dependency), `'exact'` (gpt-tokenizer when the application has it installed, else fast), or
 * your own counter.
 */
export type TokenEstimator = 'fast' | 'exact' | TokenCounter;

/**
 * Tokens assumed for an image, audio clip or file in a prompt, whose real count the
 * providers compute from pixels and seconds. Generous on purpose: a reservation too large is
 * returned at commit; one too small can overspend.
 */
export const MEDIA_PART_TOKENS = 1_000;

// Characters per token of English text under the GPT and Claude tokenizers, rounded down so
// that the estimate errs high.
const CHARACTERS_PER_TOKEN = 4;

/** The fast estimate: a quarter of the characters, rounded up. Never reads anything. */
export function fastTokenCount(text: string): number {
  return Math.ceil(text.length / CHARACTERS_PER_TOKEN);
}

/** The fast estimate for a number of characters (of streamed output, say). */
export function characterTokens(characters: number): number {
  return Math.ceil(characters / CHARACTERS_PER_TOKEN);
}

interface GptTokenizer {
  countTokens(text: string, options?: { disallowedSpecial?: Set<string> }): number;
}

let exactCounter: TokenCounter | undefined;
let exactLoading: Promise<boolean> | undefined;
const NO_SPECIAL = { disallowedSpecial: new Set<string>() };

/**
 * Starts loading `gpt-tokenizer` (once per process) and resolves true when it can count,
 * false when it is not installed. Estimation uses it as soon as it has loaded; await this in
 * start-up code (or a test) to have every estimate exact from the first call.
 */
export function loadExactTokenizer(): Promise<boolean> {
  exactLoading ??= importOptional('gpt-tokenizer').then(
    (module) => {
      const tokenizer = (module as { default?: GptTokenizer } & GptTokenizer) ?? undefined;
      const countTokens = tokenizer?.countTokens ?? tokenizer?.default?.countTokens;
      if (typeof countTokens !== 'function') return false;
      exactCounter = (text) => {
        try {
          // Special tokens in user text are counted as text, not refused.
          return countTokens(text, NO_SPECIAL);
        } catch {
          return fastTokenCount(text);
        }
      };
      return true;
    },
    () => false,
  );
  return exactLoading;
}

/**
 * An optional peer, imported only at run time: a specifier bundlers cannot see, so that
 * applications without the package build and run; Node resolves it from the application.
 */
function importOptional(specifier: string): Promise<unknown> {
  return import(/* webpackIgnore: true */ /* @vite-ignore */ specifier);
}

/** The exact counter: gpt-tokenizer once it has loaded, fast until then (or forever). */
function exactTokenCount(text: string): number {
  return exactCounter === undefined ? fastTokenCount(text) : exactCounter(text);
}

/**
 * Estimates the tokens of a text the fast way: about 4 characters a token, rounded up. Never
 * reads anything. (The `estimator: 'exact'` option counts with gpt-tokenizer instead.)
 *
 * @example
 * estimateTextTokens('Hello, world'); // 3
 */
export function estimateTextTokens(text: string): number {
  return fastTokenCount(text);
}

/** Resolves the `estimator` option to a counter. */
export function resolveTokenCounter(estimator: TokenEstimator): TokenCounter {
  if (estimator === 'fast') return fastTokenCount;
  if (estimator === 'exact') {
    void loadExactTokenizer();
    return exactTokenCount;
  }
  if (typeof estimator === 'function') {
    return (text) => {
      const count = estimator(text);
      return Number.isFinite(count) && count > 0 ? Math.ceil(count) : 0;
    };
  }
  throw new QuotaConfigError('estimator', `expected 'fast', 'exact' or a function`);
}

// Keys whose string values are identifiers or enumerations, not prompt text.
const NON_TEXT_KEYS = new Set([
  'role',
  'type',
  'id',
  'call_id',
  'tool_call_id',
  'tool_use_id',
  'model',
  'detail',
  'media_type',
  'mime_type',
  'format',
  'cache_control',
  'status',
  'strict',
]);
// Keys whose values carry a media part (base64 data, a URL to an image or a file).
const MEDIA_KEYS = new Set(['image_url', 'input_audio', 'file', 'file_data', 'source', 'file_id']);
/** Tokens every message adds for its role and separators (OpenAI's chat format). */
const TOKENS_PER_MESSAGE = 4;

/**
 * Estimates the input tokens of a prompt in any of the SDKs' shapes: a string, an array of
 * messages or items, content parts, tool definitions. Counts the text of every string in it
 * (identifiers such as roles and ids excepted), {@link MEDIA_PART_TOKENS} per image, audio
 * or file part, and a few tokens per message for the chat format. Arrays of numbers (token
 * ids, as embeddings accept) count one token each. Bounded by the size of the value.
 */
export function estimatePromptTokens(value: unknown, countTokens: TokenCounter): number {
  return walk(value, countTokens, 0);
}

function walk(value: unknown, countTokens: TokenCounter, depth: number): number {
  if (typeof value === 'string') return countTokens(value);
  if (typeof value !== 'object' || value === null || depth > 32) return 0;
  if (Array.isArray(value)) {
    let total = 0;
    for (const item of value) {
      if (typeof item === 'number') total += 1;
      else if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
        total += walk(item, countTokens, depth + 1) + ('role' in item ? TOKENS_PER_MESSAGE : 0);
      } else total += walk(item, countTokens, depth + 1);
    }
    return total;
  }
  let total = 0;
  for (const key in value as Record<string, unknown>) {
    if (!Object.hasOwn(value, key) || NON_TEXT_KEYS.has(key)) continue;
    const field = (value as Record<string, unknown>)[key];
    if (MEDIA_KEYS.has(key)) total += MEDIA_PART_TOKENS;
    else total += walk(field, countTokens, depth + 1);
  }
  return total;
}
