import { QuotaValidationError } from './errors.js';
import type { Amounts } from './reservation.js';

/**
 * Amounts as an HTTP middleware's `amounts` function may return them: numbers, or strings
 * read straight from a header or a query parameter (parsed as decimal numbers). A resource
 * whose amount is `undefined` is not asked for.
 *
 * @example
 * (req) => ({ llm_requests: 1, llm_tokens: req.get('x-token-estimate') ?? 1000 })
 */
export type RequestAmounts = Partial<Record<string, number | string | undefined>>;

// Plain decimal notation only: no hex, no exponent, no sign, no `Infinity`.
const DECIMAL = /^\s*(\d+(\.\d*)?|\.\d+)\s*$/;

/**
 * Reads amounts that come from a request into a fresh object the engine can take.
 *
 * @throws QuotaValidationError with a message fit for the client (it becomes a 400) when an
 * amount is not a finite number of 0 or more, or when none is asked for.
 */
export function parseRequestAmounts(amounts: unknown): Amounts {
  if (typeof amounts !== 'object' || amounts === null || Array.isArray(amounts)) {
    throw new QuotaValidationError('amounts must be an object of resource -> amount');
  }
  // A null-prototype object: a resource named `__proto__` stays data.
  const parsed: Record<string, number> = Object.create(null);
  let count = 0;
  for (const resource in amounts) {
    if (!Object.hasOwn(amounts, resource)) continue;
    const raw = (amounts as Record<string, unknown>)[resource];
    if (raw === undefined) continue;
    parsed[resource] = parseAmount(resource, raw);
    count++;
  }
  if (count === 0) throw new QuotaValidationError('the request asks for no amount');
  return parsed as Amounts;
}

/**
 * One amount: a finite number of 0 or more, or a string of one in decimal notation.
 *
 * @throws QuotaValidationError naming the resource and what was wrong.
 */
export function parseAmount(resource: string, raw: unknown): number {
  if (typeof raw === 'number' && Number.isFinite(raw) && raw >= 0) return raw;
  if (typeof raw === 'string' && DECIMAL.test(raw)) {
    const value = Number(raw);
    if (Number.isFinite(value)) return value;
  }
  throw new QuotaValidationError(
    `Invalid amount for ${resource}: expected a finite number of 0 or more, got ${describe(raw)}`,
  );
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) {
    return String(value);
  }
  return typeof value;
}
