/**
 * The usage ledger's tables and functions, shared by PostgresLedger and PostgresStore (whose
 * counter functions append to the same table in the same transaction). `s` is the quoted
 * schema name.
 */

/**
 * The PL/pgSQL statement that appends the events of the JSON array `events` (see
 * `append_usage`): shared by `append_usage` and inlined by the store's functions, which write
 * usage in the same transaction as the counters.
 */
export function appendUsage(s: string, events: string): string {
  return `  INSERT INTO ${s}.usage_events (id, at, resource, amount, user_id, agent_id, tenant_id,
    run_id, task_id, idempotency_key, metadata)
  SELECT e.i, e.a, e.r, e.n, e.u, e.g, e.t, e.ru, e.ta, e.k, coalesce(e.m::json, '{}'::json)
  FROM json_to_recordset(${events}) AS e(i text, a timestamptz, r text, n double precision,
    u text, g text, t text, ru text, ta text, k text, m text)
  ON CONFLICT (id) DO NOTHING;`;
}

/** Version 1: the `usage_events` table and `append_usage`. */
export function ledgerSchemaV1(s: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${s}.usage_events (
  -- Insertion order: breaks ties between events of the same instant, for stable paging.
  seq bigint GENERATED ALWAYS AS IDENTITY,
  -- The event's id (stable across exports). Ids and subject ids are stored through the
  -- package's reversible encoding (text-encoding.ts): verbatim unless they hold NUL,
  -- U+0001 or a lone surrogate.
  id text COLLATE "C" NOT NULL,
  at timestamptz NOT NULL,
  resource text NOT NULL,
  amount double precision NOT NULL,
  user_id text COLLATE "C",
  agent_id text COLLATE "C",
  tenant_id text COLLATE "C",
  run_id text COLLATE "C",
  task_id text COLLATE "C",
  idempotency_key text COLLATE "C",
  -- json rather than jsonb: kept byte for byte, and it may hold \\u0000, which jsonb refuses.
  metadata json NOT NULL DEFAULT '{}',
  CONSTRAINT usage_events_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS usage_events_at ON ${s}.usage_events (at, seq);
CREATE INDEX IF NOT EXISTS usage_events_user_at ON ${s}.usage_events (user_id, at)
  WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_events_tenant_at ON ${s}.usage_events (tenant_id, at)
  WHERE tenant_id IS NOT NULL;

-- Appends events given as a JSON array of objects {i: id, a: at (ISO 8601), r: resource,
-- n: amount, u: user_id, g: agent_id, t: tenant_id, ru: run_id, ta: task_id,
-- k: idempotency_key, m: metadata as JSON text}. An event whose id is already there is
-- skipped, so a retried append never doubles one. Returns the number of events written.
-- PL/pgSQL rather than SQL: its plan is cached per session, where a SQL function's is not.
CREATE OR REPLACE FUNCTION ${s}.append_usage(p_events json) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
  v_written integer;
BEGIN
${appendUsage(s, 'p_events')}
  GET DIAGNOSTICS v_written = ROW_COUNT;
  RETURN v_written;
END
$fn$;
`;
}
