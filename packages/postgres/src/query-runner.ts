import { createHash } from 'node:crypto';
import { QuotaStoreError } from '@quotakit/core';
import type { PoolClient, QueryResult, QueryResultRow } from 'pg';
import type { PgPool } from './pg-pool.js';

/** A statement run through {@link QueryRunner}: `name` makes it a prepared statement. */
export interface Statement {
  readonly name?: string;
  readonly text: string;
}

/** PostgreSQL keeps the first 63 bytes of a name (NAMEDATALEN - 1) and drops the rest. */
const MAX_NAME_BYTES = 63;

/**
 * A statement of a schema's: prepared once per connection under the name
 * `quotakit:<schema>:<name>` when `prepared`, else unnamed (parsed on every call, as poolers in
 * transaction mode need). A long schema name is replaced by a digest of it: cut at 63 bytes,
 * two statements of the schema could share a name, and one would run in place of the other.
 */
export function schemaStatement(
  schema: string,
  name: string,
  text: string,
  prepared: boolean,
): Statement {
  if (!prepared) return { text };
  const full = `quotakit:${schema}:${name}`;
  if (Buffer.byteLength(full) <= MAX_NAME_BYTES) return { name: full, text };
  const digest = createHash('sha256').update(schema).digest('hex').slice(0, 24);
  return { name: `quotakit:${digest}:${name}`, text };
}

/** SQLSTATEs that mean the schema is missing or older than this package. */
const MISSING_SCHEMA = new Set(['3F000', '42P01', '42883']);
const LOCK_NOT_AVAILABLE = '55P03';
const QUERY_CANCELED = '57014';

/**
 * Result parsers of this package's own, so that what comes back never depends on type
 * parsers an application set globally with `pg.types.setTypeParser` (or on pg's defaults,
 * which give int8 as strings): numbers as JS numbers, everything else as text.
 */
const PARSERS: Readonly<Record<number, (value: string) => unknown>> = {
  16: (value) => value === 't', // bool
  20: Number, // int8: counts, far below 2^53
  21: Number, // int2
  23: Number, // int4
  700: Number, // float4
  701: Number, // float8
  1007: parseNumberArray, // int4[]
  1022: parseNumberArray, // float8[]
};
const asText = (value: string) => value;
const TYPES = { getTypeParser: (oid: number) => PARSERS[oid] ?? asText };

/** `{1,2.5,-3}` -> [1, 2.5, -3]. Arrays of numbers never hold quotes or nested braces. */
function parseNumberArray(value: string): number[] {
  if (value.length <= 2) return [];
  const parts = value.slice(1, -1).split(',');
  const numbers = new Array<number>(parts.length);
  for (let i = 0; i < parts.length; i++) numbers[i] = Number(parts[i]);
  return numbers;
}

/** A probe that has not come back within this many timeouts no longer blocks the next one. */
const PROBE_GIVE_UP_TIMEOUTS = 2;

/**
 * Runs one statement at a time on a pooled connection within a deadline, and turns every
 * failure into a QuotaStoreError (the engine's `unknown`):
 * - the whole call (waiting for a connection included) is raced against `timeoutMs`; a
 *   connection whose statement timed out is destroyed rather than handed back, so nothing
 *   stalled is reused;
 * - after a timeout or a broken connection, one call at a time goes to PostgreSQL as a probe
 *   and the others fail at once, until an answer comes back: an outage costs no waiting and
 *   leaves no growing queue of connection attempts behind;
 * - a connection that breaks while checked out never emits an unhandled `error` event.
 */
export class QueryRunner {
  readonly #pool: PgPool;
  readonly #timeoutMs: number;
  #stalled = false;
  #probeSentAt: number | undefined;

  constructor(pool: PgPool, timeoutMs: number) {
    this.#pool = pool;
    this.#timeoutMs = timeoutMs;
  }

  /** The per-call deadline in ms. */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  query<R extends QueryResultRow = QueryResultRow>(
    statement: Statement,
    values: readonly unknown[],
  ): Promise<QueryResult<R>> {
    let probe = false;
    if (this.#stalled) {
      const now = performance.now();
      const giveUpMs = this.#timeoutMs * PROBE_GIVE_UP_TIMEOUTS;
      if (this.#probeSentAt !== undefined && now - this.#probeSentAt < giveUpMs) {
        return Promise.reject(
          new QuotaStoreError(
            'PostgreSQL is not answering (a call just failed or timed out); retrying with one call at a time',
          ),
        );
      }
      this.#probeSentAt = now;
      probe = true;
    }
    return new Promise<QueryResult<R>>((resolve, reject) => {
      let done = false;
      let client: PoolClient | undefined;
      let released = false;
      const finish = (outcome: 'answered' | 'failed') => {
        done = true;
        clearTimeout(timer);
        if (probe) this.#probeSentAt = undefined;
        this.#stalled = outcome === 'failed';
      };
      const release = (destroy?: Error) => {
        if (released || client === undefined) return;
        released = true;
        // A destroyed connection keeps our error listener: it may still emit one.
        if (destroy === undefined) client.removeListener('error', ignore);
        client.release(destroy);
      };
      const timer = setTimeout(() => {
        if (done) return;
        finish('failed');
        release(new Error('quotakit: statement timed out'));
        reject(new QuotaStoreError(`PostgreSQL did not answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      // Never keep a process alive just for this timer.
      timer.unref?.();

      this.#pool.connect().then(
        (connected) => {
          client = connected;
          connected.on('error', ignore);
          if (done) {
            // Timed out while waiting for a connection: the connection itself is fine.
            release();
            return;
          }
          connected
            .query<R>({ ...statement, values: values as unknown[], types: TYPES } as never)
            .then(
              (result) => {
                release();
                if (done) return;
                finish('answered');
                resolve(result as QueryResult<R>);
              },
              (error: unknown) => {
                const broken = isConnectionFailure(error);
                release(broken ? toError(error) : undefined);
                if (done) return;
                finish(broken ? 'failed' : 'answered');
                reject(toStoreError(error, this.#timeoutMs));
              },
            );
        },
        (error: unknown) => {
          if (done) return;
          finish('failed');
          reject(toStoreError(error, this.#timeoutMs));
        },
      );
    });
  }
}

function ignore(): void {
  // The statement's own rejection reports the failure.
}

/** No answer from the server (an error it sent carries a severity), or it ended the session. */
function isConnectionFailure(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return true;
  const severity = (error as { severity?: unknown }).severity;
  return typeof severity !== 'string' || severity === 'FATAL' || severity === 'PANIC';
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A failure as the engine expects it, with a message that says what to do. */
export function toStoreError(error: unknown, timeoutMs: number): QuotaStoreError {
  if (error instanceof QuotaStoreError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const reason = error instanceof Error ? error.message : String(error);
  if (code === LOCK_NOT_AVAILABLE || code === QUERY_CANCELED) {
    return new QuotaStoreError(
      `PostgreSQL could not finish within ${timeoutMs} ms (${reason}): rows were locked by other work`,
      { cause: error },
    );
  }
  if (typeof code === 'string' && MISSING_SCHEMA.has(code)) {
    return new QuotaStoreError(
      `The quotakit tables are missing or out of date (${reason}): run \`await store.migrate()\` or \`quotakit-postgres migrate\``,
      { cause: error },
    );
  }
  return new QuotaStoreError(`PostgreSQL failed: ${reason}`, { cause: error });
}
