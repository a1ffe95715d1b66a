import type {
  OverrideFilter,
  OverrideKey,
  OverrideScope,
  QuotaStore,
  StoreClaimRequest,
  StoreConsumeRequest,
  StoreConsumeResult,
  StoreCounter,
  StoredOverride,
  StoreReadRequest,
  StoreReadResult,
  StoreRecordRequest,
  StoreRecordResult,
  StoreSettleRequest,
  StoreSettleResult,
  Subject,
  UsageEvent,
  VersionedOverrides,
} from '@quotakit/core';
import { StaleOverridesError } from '@quotakit/core';
import type { QueryResult } from 'pg';
import { type MigrationResult, migrate, quoteIdentifier } from './migrations.js';
import type { PgPool } from './pg-pool.js';
import { PostgresLedger } from './postgres-ledger.js';
import {
  type PostgresStoreOptions,
  resolvePostgresStoreOptions,
} from './postgres-store-options.js';
import { QueryRunner, type Statement, schemaStatement } from './query-runner.js';
import { decodeText, encodeText } from './text-encoding.js';
import { usagePayload } from './usage-rows.js';

const SCOPE_FIELDS: ReadonlyArray<readonly [OverrideScope, keyof Subject]> = [
  ['user', 'userId'],
  ['agent', 'agentId'],
  ['tenant', 'tenantId'],
  ['run', 'runId'],
];
const NO_OVERRIDES: readonly StoredOverride[] = Object.freeze([]);

/** Rows removed (or, for holds, returned) by one {@link PostgresStore.cleanup}. */
export interface CleanupResult {
  counters: number;
  holds: number;
  reservations: number;
  idempotencyKeys: number;
  claims: number;
}

/** Requests that may carry usage events for the store's own ledger (the engine fills them). */
interface WithUsage {
  readonly usage?: readonly UsageEvent[] | undefined;
}

interface OverrideRow {
  scope: OverrideScope;
  id: string;
  resource: string;
  rules: string;
}

/** A row of the getOverrides statement: an override, or (last) whether none exists at all. */
interface OverrideLookupRow extends Omit<OverrideRow, 'scope'> {
  scope: OverrideScope | null;
  none: boolean | null;
}

/**
 * A durable quota store on PostgreSQL: counters, reservations, leases, idempotency keys,
 * threshold claims and run-time overrides in tables of one schema, shared by every engine
 * that uses the same database and schema, across processes and machines, and kept across
 * restarts.
 *
 * Every store call is one statement (a PL/pgSQL function for the counting ones), so one
 * transaction and one round trip. Counter rows are locked in key order, never more than the
 * operation touches, so concurrent writers queue per counter instead of behind one lock and
 * never deadlock. Time is the engine's clock, passed with each call: windows end and
 * reservations return by it, never by the database's clock.
 *
 * Its usage ledger, {@link PostgresStore.ledger}, lives in the same schema. An engine given
 * this store (and no `ledger` option of its own) hands each operation's usage events to the
 * store, which writes them in the transaction that changes the counters: after a crash,
 * counters and ledger agree, and an idempotency key is claimed in that same transaction.
 *
 * Call {@link PostgresStore.migrate} once per database (or run `quotakit-postgres migrate`)
 * before the first operation.
 *
 * @example
 * import { Pool } from 'pg';
 * import { createQuotaEngine } from '@quotakit/core';
 * import { PostgresStore } from '@quotakit/postgres';
 *
 * const store = new PostgresStore({ pool: new Pool({ connectionString: process.env.DATABASE_URL }) });
 * await store.migrate();
 * const engine = createQuotaEngine({
 *   store,
 *   defaults: { llm_tokens: { limit: 1_000_000, period: 'per_day' } },
 * });
 */
export class PostgresStore implements QuotaStore {
  /** The per-operation timeout in ms: the engine relies on it instead of a timer of its own. */
  readonly timeoutMs: number;
  /** The schema holding the tables. */
  readonly schema: string;
  /**
   * The usage ledger in the same schema: `usage_events`, written in the same transaction as
   * the counters by engines that use this store without a `ledger` option of their own.
   * Use it for reports (`store.ledger.report(...)`).
   */
  readonly ledger: PostgresLedger;
  readonly #pool: PgPool;
  readonly #runner: QueryRunner;
  readonly #statements: ReturnType<typeof statements>;
  readonly #cleanupEvery: number;
  readonly #cleanupBatch: number;
  readonly #cleanupGraceMs: number;
  readonly #overrideHintMs: number;
  /** When (performance.now) a lookup last showed that no override exists; -Infinity if not. */
  #noOverridesSeenAt = Number.NEGATIVE_INFINITY;
  /** Bumped by every override write: lookups sent before it say nothing current. */
  #overrideEpoch = 0;
  /** Said once that the schema predates the overrides version (migration 2). */
  #warnedUnversioned = false;
  #operations = 0;
  #cleaning: Promise<void> | undefined;

  /**
   * @throws QuotaConfigError naming the bad option (a missing pool, a schema that is not a
   * plain identifier, a timeout that is not a positive whole number of ms...).
   */
  constructor(options: PostgresStoreOptions) {
    const resolved = resolvePostgresStoreOptions(options);
    this.timeoutMs = resolved.timeoutMs;
    this.schema = resolved.schema;
    this.#pool = resolved.pool;
    this.#runner = new QueryRunner(resolved.pool, resolved.timeoutMs);
    this.#statements = statements(resolved.schema, resolved.preparedStatements);
    this.#cleanupEvery = resolved.cleanupEvery;
    this.#cleanupBatch = resolved.cleanupBatch;
    this.#cleanupGraceMs = resolved.cleanupGraceMs;
    this.#overrideHintMs = resolved.overrideHintMs;
    this.ledger = new PostgresLedger({
      pool: resolved.pool,
      schema: resolved.schema,
      timeoutMs: resolved.timeoutMs,
      preparedStatements: resolved.preparedStatements,
    });
    guardPool(resolved.pool);
  }

  /**
   * Creates or upgrades the store's tables and functions (and the ledger's) in `schema`:
   * versioned migrations, all applied in one transaction or none, idempotent, and safe when
   * several processes run it at once. Needed once per database and package upgrade.
   *
   * @example
   * const { applied } = await store.migrate(); // [] when already up to date
   */
  migrate(): Promise<MigrationResult> {
    return migrate(this.#pool, this.schema, ['ledger', 'store']);
  }

  /** Reads counters (expired windows and returned reservations as 0); writes nothing. */
  async read(request: StoreReadRequest): Promise<StoreReadResult> {
    const version = request.overridesVersion;
    const result = await this.#runner.query<{ v: number[] | null }>(
      version === undefined ? this.#statements.read : this.#statements.readChecked,
      version === undefined
        ? [request.now, keysOf(request.counters)]
        : [request.now, keysOf(request.counters), version],
    );
    return { values: current(result.rows[0]!.v) };
  }

  /**
   * Checks every limit and adds every amount, or nothing, in one transaction; with `hold`,
   * keeps the amounts as a reservation; else writes the request's usage events when admitted.
   */
  async consume(request: StoreConsumeRequest): Promise<StoreConsumeResult> {
    this.#countOperation(request.now);
    const { counters, limits, hold } = request;
    const limitCounters = new Array<number>(limits.length);
    const limitValues = new Array<number>(limits.length);
    const previous = new Array<number | null>(limits.length);
    const weights = new Array<number | null>(limits.length);
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i]!;
      limitCounters[i] = limit.counter;
      limitValues[i] = limit.limit;
      previous[i] = limit.previous ?? null;
      weights[i] = limit.previous === undefined ? null : (limit.previousWeight ?? 0);
    }
    const version = request.overridesVersion;
    const params: unknown[] = [
      request.now,
      keysOf(counters),
      amountsOf(counters),
      ttlsOf(counters),
      limitCounters,
      limitValues,
      previous,
      weights,
      hold === undefined ? null : encodeText(hold.id),
      hold === undefined ? null : hold.ttlMs,
      hold === undefined ? usageOf(request) : null,
      this.timeoutMs,
    ];
    if (version !== undefined) params.push(version);
    const result = await this.#runner.query<{ v: number[] | null }>(
      version === undefined ? this.#statements.consume : this.#statements.consumeChecked,
      params,
    );
    const v = current(result.rows[0]!.v);
    return { allowed: v[0] === 1, values: v.slice(1) };
  }

  /**
   * Adds every amount unconditionally, once per idempotency key while it is remembered; the
   * key, the counters and the usage events commit together.
   */
  async record(request: StoreRecordRequest): Promise<StoreRecordResult> {
    this.#countOperation(request.now);
    const { counters, idempotencyKey } = request;
    const result = await this.#runner.query<{ v: number[] }>(this.#statements.record, [
      request.now,
      keysOf(counters),
      amountsOf(counters),
      ttlsOf(counters),
      idempotencyKey === undefined ? null : encodeText(idempotencyKey),
      request.idempotencyTtlMs,
      usageOf(request),
      this.timeoutMs,
    ]);
    const v = result.rows[0]!.v;
    return { duplicate: v[0] === 1, values: v.slice(1) };
  }

  /** Returns a reservation's held amounts and adds the actual ones (and their usage events). */
  async settle(request: StoreSettleRequest): Promise<StoreSettleResult> {
    this.#countOperation(request.now);
    const { counters } = request;
    const result = await this.#runner.query<{ v: number[] }>(this.#statements.settle, [
      request.now,
      encodeText(request.reservationId),
      keysOf(counters),
      amountsOf(counters),
      ttlsOf(counters),
      usageOf(request),
      this.timeoutMs,
    ]);
    const v = result.rows[0]!.v;
    return { found: v[0] === 1, values: v.slice(1) };
  }

  /**
   * True while a reply at most `overrideHintMs` old showed that no run-time override exists
   * at all: the engine then skips override lookups without asking.
   */
  hasNoOverrides(): boolean {
    return performance.now() - this.#noOverridesSeenAt <= this.#overrideHintMs;
  }

  /**
   * The run-time overrides of the subject's ids, in one statement; answered without one
   * while a lookup at most `overrideHintMs` old showed that no override exists at all.
   */
  async getOverrides(request: { readonly subject: Subject }): Promise<readonly StoredOverride[]> {
    if (performance.now() - this.#noOverridesSeenAt <= this.#overrideHintMs) return NO_OVERRIDES;
    const scopes: string[] = [];
    const ids: string[] = [];
    for (const [scope, field] of SCOPE_FIELDS) {
      const id = request.subject[field];
      if (id === undefined) continue;
      scopes.push(scope);
      ids.push(encodeText(id));
    }
    if (ids.length === 0) return NO_OVERRIDES;
    const epoch = this.#overrideEpoch;
    const result = await this.#runner.query<OverrideLookupRow>(this.#statements.getOverrides, [
      scopes,
      ids,
    ]);
    const found: StoredOverride[] = [];
    for (const row of result.rows) {
      if (row.scope === null) {
        if (row.none === true && epoch === this.#overrideEpoch) {
          this.#noOverridesSeenAt = performance.now();
        }
      } else {
        found.push(toOverride(row as OverrideRow));
      }
    }
    return found;
  }

  /** Creates or replaces the override of (scope, id, resource). */
  async setOverride(override: StoredOverride): Promise<void> {
    this.#beginOverrideWrite();
    await this.#runner.query(this.#statements.setOverride, [
      override.scope,
      encodeText(override.id),
      override.resource,
      JSON.stringify(override.rules),
    ]);
  }

  /** Deletes one override; resolves false when there was none. */
  async removeOverride(key: OverrideKey): Promise<boolean> {
    this.#beginOverrideWrite();
    const result = await this.#runner.query(this.#statements.removeOverride, [
      key.scope,
      encodeText(key.id),
      key.resource,
    ]);
    return result.rowCount === 1;
  }

  /** Overrides matching the filter (an admin call: it reads every match). */
  async listOverrides(filter: OverrideFilter): Promise<readonly StoredOverride[]> {
    const values: string[] = [];
    const conditions: string[] = [];
    if (filter.scope !== undefined) {
      values.push(filter.scope);
      conditions.push(`scope = $${values.length}`);
    }
    if (filter.id !== undefined) {
      values.push(encodeText(filter.id));
      conditions.push(`id = $${values.length}`);
    }
    const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
    const result = await this.#runner.query<OverrideRow>(
      { text: `${this.#statements.listOverrides}${where}` },
      values,
    );
    return result.rows.map(toOverride);
  }

  /**
   * Every run-time override and their version, in one statement (QuotaStore's optional
   * `listVersionedOverrides`): reads and consumes that name another version do nothing and
   * fail with a StaleOverridesError, so that every engine on the database decides with the
   * overrides as they stand. Needs the schema's migration 2 (`migrate()`).
   */
  async listVersionedOverrides(): Promise<VersionedOverrides> {
    let result: QueryResult<
      { version: string } & { [K in keyof OverrideRow]: OverrideRow[K] | null }
    >;
    try {
      result = await this.#runner.query(this.#statements.listVersionedOverrides, []);
    } catch (error) {
      if (!lacksTable(error)) throw error;
      // A schema from before migration 2: the overrides, with no version to check (engines
      // see another's change within their overrideCacheTtlMs, as before), and a word to
      // migrate, once.
      if (!this.#warnedUnversioned) {
        this.#warnedUnversioned = true;
        console.warn(`[quotakit/postgres] ${(error as Error).message}`);
      }
      return { version: undefined, overrides: await this.listOverrides({}) };
    }
    const overrides: StoredOverride[] = [];
    for (const row of result.rows) {
      if (row.scope !== null) overrides.push(toOverride(row as OverrideRow));
    }
    return { version: result.rows[0]!.version, overrides };
  }

  /** Claims a one-time key (threshold notifications) until `ttlMs` passes by the request's now. */
  async claim(request: StoreClaimRequest): Promise<boolean> {
    const result = await this.#runner.query(this.#statements.claim, [
      encodeText(request.key),
      request.now,
      request.ttlMs,
    ]);
    return result.rowCount === 1;
  }

  /**
   * Deletes one batch of rows that expired more than `cleanup.graceMs` before `now`
   * (counters of ended windows, settled or expired reservations, idempotency keys, claims)
   * and returns expired reservations' amounts to live counters. Runs by itself every
   * `cleanup.everyOperations` operations; call it from a job of your own with
   * `cleanup: false`. Rows another operation holds are skipped, never waited for.
   *
   * @param options.now the engine clock's time, epoch ms. Defaults to `Date.now()`.
   */
  async cleanup(options: { now?: number } = {}): Promise<CleanupResult> {
    const now = options.now ?? Date.now();
    const result = await this.#runner.query<{ v: number[] }>(this.#statements.cleanup, [
      now - this.#cleanupGraceMs,
      this.#cleanupBatch,
    ]);
    const [counters, holds, reservations, idempotencyKeys, claims] = result.rows[0]!.v;
    return {
      counters: counters!,
      holds: holds!,
      reservations: reservations!,
      idempotencyKeys: idempotencyKeys!,
      claims: claims!,
    };
  }

  /**
   * Waits for a background cleanup under way. The pool belongs to the application: end it
   * yourself.
   */
  async close(): Promise<void> {
    await this.#cleaning;
  }

  #beginOverrideWrite(): void {
    this.#noOverridesSeenAt = Number.NEGATIVE_INFINITY;
    this.#overrideEpoch += 1;
  }

  /** Starts a background cleanup every `everyOperations` counting operations, one at a time. */
  #countOperation(now: number): void {
    if (this.#cleanupEvery === 0) return;
    this.#operations += 1;
    if (this.#operations < this.#cleanupEvery || this.#cleaning !== undefined) return;
    this.#operations = 0;
    this.#cleaning = this.cleanup({ now }).then(
      () => {
        this.#cleaning = undefined;
      },
      () => {
        // An outage shows in the operations themselves; the next cleanup tries again.
        this.#cleaning = undefined;
      },
    );
  }
}

/** Pools that already carry the listener of {@link guardPool}. */
const guardedPools = new WeakSet<PgPool>();

/**
 * Gives a pool one listener for its `error` event (once, however many stores share it): an
 * idle connection dropped by the server (a restart, a failover) is replaced by the pool and
 * calls report failures themselves, but an `error` event without a listener would make Node
 * crash the process.
 */
function guardPool(pool: PgPool): void {
  if (guardedPools.has(pool)) return;
  guardedPools.add(pool);
  pool.on('error', () => {});
}

/** The statements of a store on `schema` (see {@link schemaStatement}). */
function statements(schema: string, prepared: boolean) {
  const s = quoteIdentifier(schema);
  const named = (name: string, text: string): Statement =>
    schemaStatement(schema, name, text, prepared);
  return {
    read: named('read', `SELECT ${s}.read_values($1::float8, $2::text[]) AS v`),
    consume: named(
      'consume',
      `SELECT ${s}.consume($1::float8, $2::text[], $3::float8[], $4::float8[], $5::int[],
        $6::float8[], $7::int[], $8::float8[], $9::text, $10::float8, $11::json, $12::int) AS v`,
    ),
    record: named(
      'record',
      `SELECT ${s}.record($1::float8, $2::text[], $3::float8[], $4::float8[], $5::text,
        $6::float8, $7::json, $8::int) AS v`,
    ),
    settle: named(
      'settle',
      `SELECT ${s}.settle($1::float8, $2::text, $3::text[], $4::float8[], $5::float8[],
        $6::json, $7::int) AS v`,
    ),
    // The same, done only while the overrides are at the version the engine planned with
    // (null otherwise): checked and applied in one statement.
    readChecked: named(
      'read_checked',
      `SELECT CASE WHEN (SELECT version FROM ${s}.overrides_version) = $3::bigint
       THEN ${s}.read_values($1::float8, $2::text[]) END AS v`,
    ),
    consumeChecked: named(
      'consume_checked',
      `SELECT CASE WHEN (SELECT version FROM ${s}.overrides_version) = $13::bigint
       THEN ${s}.consume($1::float8, $2::text[], $3::float8[], $4::float8[], $5::int[],
        $6::float8[], $7::int[], $8::float8[], $9::text, $10::float8, $11::json, $12::int)
       END AS v`,
    ),
    listVersionedOverrides: named(
      'list_versioned',
      `SELECT v.version::text AS version, o.scope, o.id, o.resource, o.rules::text AS rules
       FROM ${s}.overrides_version v LEFT JOIN ${s}.overrides o ON true`,
    ),
    cleanup: named('cleanup', `SELECT ${s}.cleanup($1::float8, $2::int) AS v`),
    claim: named(
      'claim',
      `INSERT INTO ${s}.claims AS c (key, expires_at) VALUES ($1, $2::float8 + $3::float8)
       ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
       WHERE c.expires_at <= $2::float8`,
    ),
    getOverrides: named(
      'get_overrides',
      `SELECT scope, id, resource, rules::text AS rules, NULL::boolean AS none
       FROM ${s}.overrides WHERE (scope, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
       UNION ALL
       SELECT NULL, NULL, NULL, NULL, NOT EXISTS (SELECT 1 FROM ${s}.overrides)`,
    ),
    setOverride: named(
      'set_override',
      `INSERT INTO ${s}.overrides (scope, id, resource, rules) VALUES ($1, $2, $3, $4::json)
       ON CONFLICT (scope, id, resource) DO UPDATE
       SET rules = excluded.rules, updated_at = now()`,
    ),
    removeOverride: named(
      'remove_override',
      `DELETE FROM ${s}.overrides WHERE scope = $1 AND id = $2 AND resource = $3`,
    ),
    listOverrides: `SELECT scope, id, resource, rules::text AS rules FROM ${s}.overrides`,
  };
}

/** A table of the schema is missing (PostgreSQL's undefined_table): a migration not run. */
function lacksTable(error: unknown): boolean {
  return (error as { cause?: { code?: unknown } } | null)?.cause?.code === '42P01';
}

/** The values of a checked statement: null when the overrides had moved on. */
function current(values: number[] | null): number[] {
  if (values === null) throw new StaleOverridesError();
  return values;
}

function keysOf(counters: readonly StoreCounter[]): string[] {
  const keys = new Array<string>(counters.length);
  for (let i = 0; i < counters.length; i++) keys[i] = encodeText(counters[i]!.key);
  return keys;
}

function amountsOf(counters: readonly StoreCounter[]): number[] {
  const amounts = new Array<number>(counters.length);
  for (let i = 0; i < counters.length; i++) amounts[i] = counters[i]!.amount;
  return amounts;
}

function ttlsOf(counters: readonly StoreCounter[]): Array<number | null> {
  const ttls = new Array<number | null>(counters.length);
  for (let i = 0; i < counters.length; i++) ttls[i] = counters[i]!.ttlMs;
  return ttls;
}

/** The request's usage events as `append_usage` takes them, or null when there are none. */
function usageOf(request: WithUsage): string | null {
  const { usage } = request;
  return usage === undefined || usage.length === 0 ? null : usagePayload(usage);
}

function toOverride(row: OverrideRow): StoredOverride {
  return {
    scope: row.scope,
    id: decodeText(row.id),
    resource: row.resource,
    rules: JSON.parse(row.rules),
  };
}
