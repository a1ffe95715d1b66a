import { QuotaConfigError } from './errors.js';

/**
 * The option names of an options type, as the set {@link rejectUnknownOptions} takes. Listed as
 * an object with every option of `T` and nothing else, so that an option added to the type and
 * not here (or the other way round) fails the typecheck.
 *
 * @example
 * const KNOWN = optionKeys<MemoryLedgerOptions>({ maxEvents: true });
 */
export function optionKeys<T extends object>(
  names: { readonly [K in keyof Required<T>]: true },
): ReadonlySet<string> {
  return new Set(Object.keys(names));
}

/**
 * Refuses an options object with a key its owner does not take, so that a misspelt option
 * (`timeout` for `timeoutMs`) fails at construction instead of leaving the default silently in
 * place. For the packages built on core (stores, wrappers), whose options are checked by hand
 * rather than by a strict schema.
 *
 * @param options the caller's options object.
 * @param known every option the owner takes.
 * @param owner what is being built, for the message (`'RedisStore'`).
 * @param path the options' own path, as a prefix of the key's (`'cleanup.'`). Defaults to `''`.
 * @throws QuotaConfigError naming the first unknown key.
 * @example
 * rejectUnknownOptions({ client, timeout: 5 }, new Set(['client', 'timeoutMs']), 'RedisStore');
 * // QuotaConfigError: Invalid QuotaKit configuration at timeout: not an option of RedisStore
 */
export function rejectUnknownOptions(
  options: object,
  known: ReadonlySet<string>,
  owner: string,
  path = '',
): void {
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new QuotaConfigError(`${path}${key}`, `not an option of ${owner}`);
  }
}
