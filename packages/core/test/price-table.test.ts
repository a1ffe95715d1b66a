import { describe, expect, it } from 'vitest';
import {
  COST_USD,
  createQuotaEngine,
  definePriceTable,
  findModelPrice,
  QuotaConfigError,
  QuotaValidationError,
  tokenCostUsd,
} from '../src/index.js';

const prices = definePriceTable({
  'gpt-4o': { inputPerMillion: 2.5, cachedInputPerMillion: 1.25, outputPerMillion: 10 },
  'gpt-4o-mini': { inputPerMillion: 0.15, outputPerMillion: 0.6 },
  'claude-sonnet-4': { inputPerMillion: 3, cachedInputPerMillion: 0.3, outputPerMillion: 15 },
});

describe('price table', () => {
  it('prices cached input at the cached rate and the rest at the input rate', () => {
    const cost = tokenCostUsd(prices, {
      model: 'gpt-4o',
      inputTokens: 1200,
      cachedInputTokens: 1000,
      outputTokens: 300,
    });
    expect(cost).toBe(0.00475);
  });

  it('charges cached tokens the full input price when the model has no cache price', () => {
    expect(
      tokenCostUsd(prices, {
        model: 'gpt-4o-mini',
        inputTokens: 1000,
        cachedInputTokens: 1000,
        outputTokens: 0,
      }),
    ).toBe(0.00015);
  });

  it('matches a dated snapshot by the longest prefix, and an unknown model not at all', () => {
    expect(findModelPrice(prices, 'gpt-4o-mini-2024-07-18')).toBe(prices['gpt-4o-mini']);
    expect(findModelPrice(prices, 'gpt-4o-2024-08-06')).toBe(prices['gpt-4o']);
    expect(
      tokenCostUsd(prices, { model: 'llama-3', inputTokens: 10, outputTokens: 10 }),
    ).toBeUndefined();
  });

  it('rejects bad prices with the path of the model and field', () => {
    expect(() => definePriceTable({ m: { inputPerMillion: -1, outputPerMillion: 1 } })).toThrow(
      QuotaConfigError,
    );
    try {
      definePriceTable({ m: { inputPerMillion: 1, outputPerMillion: Number.NaN } });
    } catch (error) {
      expect((error as QuotaConfigError).path).toBe('prices.m.outputPerMillion');
    }
  });

  it('rejects negative, non-finite and inconsistent token counts', () => {
    expect(() =>
      tokenCostUsd(prices, { model: 'gpt-4o', inputTokens: -1, outputTokens: 0 }),
    ).toThrow(QuotaValidationError);
    expect(() =>
      tokenCostUsd(prices, {
        model: 'gpt-4o',
        inputTokens: 1,
        outputTokens: Number.POSITIVE_INFINITY,
      }),
    ).toThrow(/outputTokens/);
    expect(() =>
      tokenCostUsd(prices, {
        model: 'gpt-4o',
        inputTokens: 5,
        cachedInputTokens: 6,
        outputTokens: 0,
      }),
    ).toThrow(/cachedInputTokens/);
  });

  it('makes a money budget refuse like any other quota', async () => {
    const engine = createQuotaEngine({
      defaults: { [COST_USD]: { limit: 0.01, period: 'per_day' } },
    });
    const cost = tokenCostUsd(prices, {
      model: 'claude-sonnet-4',
      inputTokens: 2000,
      outputTokens: 200,
    });
    expect(cost).toBe(0.009);
    const first = await engine.consume({ userId: 'u', amounts: { [COST_USD]: cost ?? 0 } });
    expect(first.allowed).toBe(true);
    const second = await engine.consume({ userId: 'u', amounts: { [COST_USD]: cost ?? 0 } });
    expect(second.allowed).toBe(false);
    expect(second.results[COST_USD]?.message).toBe(
      'Quota exceeded for cost_usd. Limit: 0.01, cannot proceed.',
    );
    await engine.close();
  });
});
