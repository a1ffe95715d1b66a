import type { OverrideScope, Subject } from '@quotakit/core';

/** Which subject id spreads keys over a Redis Cluster; see `RedisStoreOptions.shardBy`. */
export type ShardBy = 'tenant' | 'user';

/**
 * Where everything lives in Redis. Every key starts with a hash tag, `{prefix}` or, with
 * `shardBy`, `{prefix|t|<tenant id>}` / `{prefix|u|<user id>}`, so that all the keys one
 * operation touches hash to one Cluster slot. Then comes a kind (`c` counter, `r` reservation
 * record, `rx` reservation expiry index, `i` idempotency key, `k` claim, `o` / `ox` / `on`
 * overrides) and the data it is for.
 *
 * Ids and engine keys are data: they come after the tag, where braces no longer matter (Redis
 * hashes only the first `{...}`), and they are kept verbatim unless {@link encodeId} has to
 * change them, so no id can reach another key. Ids inside a tag have `%`, `{` and `}`
 * percent-escaped, so that no id can end the tag early.
 */
export class KeyLayout {
  /** `{prefix}`: the tag of everything not sharded (overrides, claims) and the default. */
  readonly globalTag: string;
  readonly #tagHead: string;
  readonly #shardField: 'tenantId' | 'userId' | undefined;
  readonly #overrideCount: string;
  /** The global tag's reservation index, built once: most stores never shard. */
  readonly #globalReservationIndex: string;

  constructor(prefix: string, shardBy: ShardBy | undefined) {
    this.globalTag = `{${prefix}}`;
    this.#shardField =
      shardBy === 'tenant' ? 'tenantId' : shardBy === 'user' ? 'userId' : undefined;
    this.#tagHead = shardBy === undefined ? '' : `{${prefix}|${shardBy === 'tenant' ? 't' : 'u'}|`;
    this.#overrideCount = `${this.globalTag}:on`;
    this.#globalReservationIndex = `${this.globalTag}:rx`;
  }

  /** Whether keys are spread by a subject id (then the override count is in another slot). */
  get sharded(): boolean {
    return this.#shardField !== undefined;
  }

  /**
   * The hash tag of the subject's keys: the shard of its tenant or user id, or the global tag
   * when the layout is not sharded or the subject has no such id.
   */
  tagOf(subject: Subject): string {
    const field = this.#shardField;
    if (field === undefined) return this.globalTag;
    const id = subject[field];
    return id === undefined ? this.globalTag : `${this.#tagHead}${escapeTagId(encodeId(id))}}`;
  }

  counter(tag: string, key: string): string {
    return `${tag}:c:${encodeId(key)}`;
  }

  /** The ZSET of a shard's reservation records, scored by expiresAt (engine clock). */
  reservationIndex(tag: string): string {
    return tag === this.globalTag ? this.#globalReservationIndex : `${tag}:rx`;
  }

  reservation(tag: string, id: string): string {
    return `${tag}:r:${encodeId(id)}`;
  }

  idempotency(tag: string, key: string): string {
    return `${tag}:i:${encodeId(key)}`;
  }

  claim(key: string): string {
    return `${this.globalTag}:k:${encodeId(key)}`;
  }

  /** Number of stored overrides, returned by every script that can reach it. */
  overrideCount(): string {
    return this.#overrideCount;
  }

  /**
   * The overrides' version, bumped by every write of one. Counter scripts find it beside their
   * reservation index (`{tag}:rx` -> `{tag}:ov`): only read there when not sharded.
   */
  overridesVersion(): string {
    return `${this.globalTag}:ov`;
  }

  /** Hash of one id's overrides: resource -> rules as JSON. */
  overrides(scope: OverrideScope, id: string): string {
    return `${this.overridesHead(scope)}${encodeId(id)}`;
  }

  /** What {@link overrides} puts before the (encoded) id. */
  overridesHead(scope: OverrideScope): string {
    return `${this.globalTag}:o:${scope}:`;
  }

  /** SET of the (encoded) ids that have overrides in a scope. */
  overrideIndex(scope: OverrideScope): string {
    return `${this.globalTag}:ox:${scope}`;
  }
}

/**
 * Redis keys are bytes and JavaScript strings are UTF-16: a lone surrogate would become U+FFFD
 * on the wire, so two different ids could share a key. Such strings (and, to keep the mapping
 * one-to-one, any string starting with NUL) become NUL + their JSON, whose escapes keep every
 * code unit; every other string stays as it is.
 */
export function encodeId(id: string): string {
  if (id.charCodeAt(0) !== 0 && (id as WellFormedCheck).isWellFormed()) return id;
  return `\u0000${JSON.stringify(id)}`;
}

/** The inverse of {@link encodeId}. */
export function decodeId(stored: string): string {
  return stored.charCodeAt(0) === 0 ? (JSON.parse(stored.slice(1)) as string) : stored;
}

// String.prototype.isWellFormed is in Node 20 (ES2024), beyond the ES2023 lib compiled against.
type WellFormedCheck = string & { isWellFormed(): boolean };

const TAG_SPECIALS = /[%{}]/g;
const TAG_ESCAPES: Readonly<Record<string, string>> = { '%': '%25', '{': '%7B', '}': '%7D' };

function escapeTagId(id: string): string {
  return id.replace(TAG_SPECIALS, (char) => TAG_ESCAPES[char]!);
}
