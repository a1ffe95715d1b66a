import { z } from 'zod';
import { QuotaConfigError, QuotaValidationError } from './errors.js';

/**
 * The resource that money budgets count, in US dollars. Not one of the built-in resource
 * types: configure a rule for it (`cost_usd: { limit: 50, period: 'per_month' }`) and record
 * it with {@link tokenCostUsd}, as the LLM wrapper does for every call.
 */
export const COST_USD = 'cost_usd';

/**
 * What one model costs, in US dollars per million tokens, as the providers publish it.
 *
 * @example
 * const gpt4o: ModelPrice = { inputPerMillion: 2.5, cachedInputPerMillion: 1.25, outputPerMillion: 10 };
 */
export interface ModelPrice {
  /** Price of a million input (prompt) tokens that were not read from the provider's cache. */
  readonly inputPerMillion: number;
  /**
   * Price of a million input tokens read from the provider's prompt cache. Defaults to
   * `inputPerMillion` (no cache discount).
   */
  readonly cachedInputPerMillion?: number;
  /** Price of a million output tokens; reasoning tokens are billed as output. */
  readonly outputPerMillion: number;
}

/**
 * Prices by model name. A call's model matches its exact name first, then the longest entry
 * that is a prefix of it, so `'gpt-4o'` prices `'gpt-4o-2024-08-06'` and a dated snapshot
 * can still be given a price of its own. QuotaKit ships no prices: they change, and the
 * table that bills your users should be the one you chose.
 *
 * @example
 * const prices = definePriceTable({
 *   'gpt-4o': { inputPerMillion: 2.5, cachedInputPerMillion: 1.25, outputPerMillion: 10 },
 *   'claude-sonnet-4': { inputPerMillion: 3, cachedInputPerMillion: 0.3, outputPerMillion: 15 },
 * });
 */
export type PriceTable = Readonly<Record<string, ModelPrice>>;

/**
 * Token counts of one model call, normalised the way the LLM wrapper records them:
 * `inputTokens` includes the cached ones, `outputTokens` includes reasoning tokens.
 */
export interface TokenUsage {
  /** The model the provider reports having used (or the requested one). */
  readonly model: string;
  /** Every input token, cached ones included. */
  readonly inputTokens: number;
  /** The part of `inputTokens` read from the provider's prompt cache. Defaults to 0. */
  readonly cachedInputTokens?: number;
  /** Every output token, reasoning tokens included. */
  readonly outputTokens: number;
}

const price = z.number().finite().nonnegative();

const modelPriceSchema = z
  .object({
    inputPerMillion: price,
    cachedInputPerMillion: price.optional(),
    outputPerMillion: price,
  })
  .strict();

const priceTableSchema = z.record(z.string().min(1), modelPriceSchema);

/**
 * Validates a price table once and returns a frozen copy that {@link tokenCostUsd} can use.
 * Throws a QuotaConfigError naming the model and field when a price is negative, not a
 * number, or unknown.
 */
export function definePriceTable(table: Record<string, ModelPrice>): PriceTable {
  const parsed = priceTableSchema.safeParse(table);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.map(String).join('.') ?? '';
    throw new QuotaConfigError(
      path ? `prices.${path}` : 'prices',
      issue?.message ?? 'not a price table',
    );
  }
  const copy: Record<string, ModelPrice> = Object.create(null);
  for (const [model, entry] of Object.entries(parsed.data)) {
    copy[model] = Object.freeze({ ...entry });
  }
  return Object.freeze(copy);
}

/**
 * The table entry that prices `model`: its exact name, else the longest entry that is a
 * prefix of it, else `undefined`.
 */
export function findModelPrice(table: PriceTable, model: string): ModelPrice | undefined {
  if (Object.hasOwn(table, model)) return table[model];
  let best: string | undefined;
  for (const name of Object.keys(table)) {
    if (model.startsWith(name) && (best === undefined || name.length > best.length)) best = name;
  }
  return best === undefined ? undefined : table[best];
}

/**
 * What a call cost in US dollars under `table`, or `undefined` when the table has no price
 * for its model (the caller then records no cost rather than a wrong one).
 * Throws a QuotaValidationError for a negative or non-finite token count, or cached tokens
 * above the input tokens.
 *
 * @example
 * tokenCostUsd(prices, { model: 'gpt-4o', inputTokens: 1200, cachedInputTokens: 1000, outputTokens: 300 });
 * // (200 × 2.5 + 1000 × 1.25 + 300 × 10) / 1e6 = 0.00475
 */
export function tokenCostUsd(table: PriceTable, usage: TokenUsage): number | undefined {
  const cached = usage.cachedInputTokens ?? 0;
  for (const [field, count] of [
    ['inputTokens', usage.inputTokens],
    ['cachedInputTokens', cached],
    ['outputTokens', usage.outputTokens],
  ] as const) {
    if (typeof count !== 'number' || !Number.isFinite(count) || count < 0) {
      throw new QuotaValidationError(
        `Invalid ${field} ${String(count)}: token counts must be finite non-negative numbers.`,
      );
    }
  }
  if (cached > usage.inputTokens) {
    throw new QuotaValidationError(
      `Invalid cachedInputTokens ${cached}: more than inputTokens ${usage.inputTokens}.`,
    );
  }
  const entry = findModelPrice(table, usage.model);
  if (entry === undefined) return undefined;
  const cachedPrice = entry.cachedInputPerMillion ?? entry.inputPerMillion;
  const micros =
    (usage.inputTokens - cached) * entry.inputPerMillion +
    cached * cachedPrice +
    usage.outputTokens * entry.outputPerMillion;
  // Rounded to a billionth of a dollar: float noise in the last digits would otherwise show
  // up as 0.004750000000000001 in ledgers and CSV exports.
  return Math.round(micros / 1e-3) / 1e9;
}
