import { describe, expect, it } from 'vitest';
import { checkResult } from '../src/check-result.js';
import {
  isQuotaError,
  isStaleOverridesError,
  QuotaError,
  QuotaExceededError,
  QuotaStoreError,
  QuotaValidationError,
  quotaExceededErrorAs,
  StaleOverridesError,
} from '../src/errors.js';

/** An SDK's base error, as the openai and Anthropic SDKs declare theirs. */
class SdkError extends Error {}

function refusal(): QuotaExceededError {
  const result = checkResult(false, 'llm_tokens', 500, undefined, []);
  return new QuotaExceededError({ ...result, status: 'exceeded', retryAfterMs: 1_000 });
}

describe('QuotaExceededError re-made as an SDK error', () => {
  it('is both the SDK error and a QuotaExceededError, with every field', () => {
    const original = refusal();
    const error = quotaExceededErrorAs(SdkError, original);
    expect(error).toBeInstanceOf(SdkError);
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error).toBeInstanceOf(QuotaError);
    expect(isQuotaError(error)).toBe(true);
    expect(error).toMatchObject({
      name: 'QuotaExceededError',
      message: original.message,
      code: 'quota_exceeded',
      result: original.result,
      results: original.results,
      retryAfterMs: 1_000,
    });
  });

  it('leaves other error classes to the ordinary check', () => {
    const error = quotaExceededErrorAs(SdkError, refusal());
    expect(error).not.toBeInstanceOf(QuotaValidationError);
    expect(error).not.toBeInstanceOf(QuotaStoreError);
    // Another QuotaKit error is a QuotaError, never a QuotaExceededError.
    expect(new QuotaStoreError('down')).not.toBeInstanceOf(QuotaExceededError);
    expect(new SdkError('plain')).not.toBeInstanceOf(QuotaExceededError);
    expect({ code: 'quota_exceeded' }).not.toBeInstanceOf(QuotaExceededError);
  });

  it('recognises a refusal from another copy of the package by its brand', () => {
    const foreign = Object.assign(new Error('Quota exceeded'), {
      code: 'quota_exceeded',
      [Symbol.for('quotakit.error')]: true,
    });
    expect(foreign).toBeInstanceOf(QuotaExceededError);
    expect(foreign).toBeInstanceOf(QuotaError);
  });
});

describe('StaleOverridesError', () => {
  it('is recognised by its mark, whatever a bundle named its class', () => {
    expect(isStaleOverridesError(new StaleOverridesError())).toBe(true);
    expect(new StaleOverridesError()).toBeInstanceOf(QuotaStoreError);
    // Another copy of the package, minified: a class of another name, the same mark.
    class o extends QuotaStoreError {
      readonly staleOverrides = true;
    }
    expect(isStaleOverridesError(new o('stale'))).toBe(true);
    // A store failure is not one, even named like it.
    const named = new QuotaStoreError('down');
    named.name = 'StaleOverridesError';
    expect(isStaleOverridesError(named)).toBe(false);
    expect(isStaleOverridesError({ staleOverrides: true })).toBe(false);
  });
});
