import { appendUsage } from './ledger-schema.js';

/**
 * PostgresStore's tables and functions. Every counting operation is one call of one of
 * these functions: one statement, so one transaction, one round trip. `s` is the quoted
 * schema name.
 *
 * Times are the engine's clock (epoch ms, passed with each call), never the database's, so
 * injected clocks work and windows end when the engine says. Counter rows are locked in key
 * order (COLLATE "C"), always after inserting the missing ones in the same order, so that
 * concurrent operations on overlapping counters queue instead of deadlocking, without any
 * lock wider than the rows an operation touches.
 *
 * Reservations: a held amount stays in its counter and is listed in `holds`. A hold whose time
 * has passed is returned lazily: subtracted by the next operation that locks its counter (and
 * by the background cleanup), and meanwhile left out by every read, so it is returned exactly
 * once and reads never write.
 */

/** Variables the fragments below use, declared by every function that includes them. */
const LOCK_VARIABLES = `  v_values double precision[];
  v_expired text[];
  v_missing boolean;
  v_hold record;`;

/**
 * PL/pgSQL that locks the counters `keys` (creating, as 0, those with a positive amount)
 * in key order, returns holds of live counters whose time has passed, and leaves in
 * `v_values` their values in request order and in `v_expired` the keys of rows whose window
 * has ended. Inlined in each function rather than called: a nested call costs more than the
 * statements themselves.
 */
function lockCounters(s: string, keys: string, amounts: string, ttls: string): string {
  return `  FOR v_attempt IN 1 .. 3 LOOP
    INSERT INTO ${s}.counters (key, value, expires_at)
    SELECT u.k, 0, p_now + u.t FROM unnest(${keys}, ${amounts}, ${ttls}) AS u(k, a, t)
    WHERE u.a > 0 ORDER BY u.k
    ON CONFLICT (key) DO NOTHING;
    WITH locked AS MATERIALIZED (
      SELECT c.key, c.value, c.expires_at <= p_now AS ended FROM ${s}.counters c
      WHERE c.key = ANY (${keys}) ORDER BY c.key FOR UPDATE
    )
    SELECT coalesce(array_agg(CASE WHEN l.ended THEN 0 ELSE coalesce(l.value, 0) END
        ORDER BY u.n), '{}'),
      coalesce(array_agg(l.key) FILTER (WHERE l.ended), '{}'),
      coalesce(bool_or(l.key IS NULL AND u.a > 0), false)
    INTO v_values, v_expired, v_missing
    FROM unnest(${keys}, ${amounts}) WITH ORDINALITY AS u(k, a, n)
    LEFT JOIN locked l ON l.key = u.k;
    -- A row can vanish between the insert and the lock (the cleanup deleted it, long
    -- expired): insert it again.
    EXIT WHEN NOT v_missing;
    IF v_attempt = 3 THEN
      RAISE EXCEPTION 'quotakit: counter rows deleted while being locked';
    END IF;
  END LOOP;
  -- Holds whose time has passed, in live counters: returned now, for good.
  IF EXISTS (SELECT 1 FROM ${s}.holds h WHERE h.key = ANY (${keys})
      AND h.expires_at <= p_now AND h.key <> ALL (v_expired)) THEN
    FOR v_hold IN DELETE FROM ${s}.holds h WHERE h.key = ANY (${keys})
      AND h.expires_at <= p_now AND h.key <> ALL (v_expired) RETURNING h.key, h.amount
    LOOP
      UPDATE ${s}.counters SET value = greatest(0, value - v_hold.amount)
      WHERE key = v_hold.key;
    END LOOP;
    SELECT array_agg(CASE WHEN c.key IS NULL OR c.expires_at <= p_now THEN 0 ELSE c.value END
      ORDER BY u.n) INTO v_values
    FROM unnest(${keys}) WITH ORDINALITY AS u(k, n) LEFT JOIN ${s}.counters c ON c.key = u.k;
  END IF;`;
}

/**
 * PL/pgSQL that adds `p_amounts` to the locked counters `p_keys`, as MemoryStore does: 0
 * writes nothing; a counter whose window has ended (`v_expired`) starts again from a positive
 * amount and forgets what was held in the old window; values never go below 0; expiry only
 * moves later.
 */
function addCounters(s: string): string {
  return `  IF cardinality(v_expired) > 0 THEN
    DELETE FROM ${s}.holds h USING unnest(p_keys, p_amounts) AS u(k, a)
    WHERE h.key = u.k AND u.a > 0 AND u.k = ANY (v_expired);
  END IF;
  UPDATE ${s}.counters c SET
    value = CASE WHEN c.key = ANY (v_expired) THEN u.a ELSE greatest(0, c.value + u.a) END,
    expires_at = CASE WHEN c.key = ANY (v_expired) THEN p_now + u.t
      WHEN c.expires_at IS NULL OR u.t IS NULL THEN NULL
      ELSE greatest(c.expires_at, p_now + u.t) END
  FROM unnest(p_keys, p_amounts, p_ttls) AS u(k, a, t)
  WHERE c.key = u.k AND u.a <> 0 AND NOT (u.a < 0 AND c.key = ANY (v_expired));`;
}

/** Version 1: counters, reservations, idempotency keys, claims, overrides and functions. */
export function storeSchemaV1(s: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${s}.counters (
  -- The engine's counter key (resource|period|window|scope|id), encoded (text-encoding.ts).
  key text COLLATE "C" PRIMARY KEY,
  value double precision NOT NULL,
  -- Engine clock, epoch ms; NULL never expires.
  expires_at double precision
) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS counters_expires_at ON ${s}.counters (expires_at)
  WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS ${s}.reservations (
  id text COLLATE "C" PRIMARY KEY,
  expires_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_expires_at ON ${s}.reservations (expires_at);

CREATE TABLE IF NOT EXISTS ${s}.holds (
  reservation_id text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  amount double precision NOT NULL,
  expires_at double precision NOT NULL,
  PRIMARY KEY (reservation_id, key)
);
CREATE INDEX IF NOT EXISTS holds_key_expires_at ON ${s}.holds (key, expires_at);
CREATE INDEX IF NOT EXISTS holds_expires_at ON ${s}.holds (expires_at);

CREATE TABLE IF NOT EXISTS ${s}.idempotency_keys (
  key text COLLATE "C" PRIMARY KEY,
  expires_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at ON ${s}.idempotency_keys (expires_at);

CREATE TABLE IF NOT EXISTS ${s}.claims (
  key text COLLATE "C" PRIMARY KEY,
  expires_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_expires_at ON ${s}.claims (expires_at);

CREATE TABLE IF NOT EXISTS ${s}.overrides (
  scope text NOT NULL,
  id text COLLATE "C" NOT NULL,
  resource text NOT NULL,
  rules json NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, id, resource)
);

-- Values of counters as of p_now, without writing: 0 for absent and ended counters, and
-- holds whose time has passed left out. (PL/pgSQL functions throughout: their plans are
-- cached per session, where a SQL function is planned on every call.)
CREATE OR REPLACE FUNCTION ${s}.read_values(p_now double precision, p_keys text[])
RETURNS double precision[] LANGUAGE plpgsql STABLE AS $fn$
BEGIN
  RETURN (SELECT coalesce(array_agg(
    CASE WHEN c.key IS NULL OR c.expires_at <= p_now THEN 0
    ELSE greatest(0, c.value - coalesce((SELECT sum(h.amount) FROM ${s}.holds h
      WHERE h.key = c.key AND h.expires_at <= p_now), 0))
    END ORDER BY k.n), '{}')
  FROM unnest(p_keys) WITH ORDINALITY AS k(key, n)
  LEFT JOIN ${s}.counters c ON c.key = k.key);
END
$fn$;

-- Checks every limit and adds every amount, or nothing. Returns [admitted (1 or 0), values
-- before the operation...]. With p_hold_id, keeps the added amounts as a reservation; else
-- appends p_usage to the ledger when admitted.
CREATE OR REPLACE FUNCTION ${s}.consume(
  p_now double precision, p_keys text[], p_amounts double precision[],
  p_ttls double precision[], p_limit_counters integer[], p_limits double precision[],
  p_previous integer[], p_weights double precision[], p_hold_id text,
  p_hold_ttl double precision, p_usage json, p_lock_timeout_ms integer)
RETURNS double precision[] LANGUAGE plpgsql AS $fn$
DECLARE
${LOCK_VARIABLES}
  v_used double precision;
  v_limit double precision;
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
${lockCounters(s, 'p_keys', 'p_amounts', 'p_ttls')}
  FOR i IN 1 .. coalesce(cardinality(p_limits), 0) LOOP
    v_used := v_values[p_limit_counters[i] + 1];
    IF p_previous[i] IS NOT NULL THEN
      v_used := v_used + v_values[p_previous[i] + 1] * coalesce(p_weights[i], 0);
    END IF;
    v_limit := p_limits[i];
    -- fitsWithin of @quotakit/core, to the bit: the same tolerance for rounding.
    IF v_used + p_amounts[p_limit_counters[i] + 1] > v_limit + 1e-9 * greatest(v_limit, 1) THEN
      RETURN array_prepend(0::double precision, v_values);
    END IF;
  END LOOP;
${addCounters(s)}
  IF p_hold_id IS NOT NULL THEN
    INSERT INTO ${s}.reservations AS r (id, expires_at) VALUES (p_hold_id, p_now + p_hold_ttl)
    ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at;
    INSERT INTO ${s}.holds (reservation_id, key, amount, expires_at)
    SELECT p_hold_id, u.k, u.a, p_now + p_hold_ttl FROM unnest(p_keys, p_amounts) AS u(k, a)
    WHERE u.a > 0
    ON CONFLICT (reservation_id, key) DO UPDATE
      SET amount = excluded.amount, expires_at = excluded.expires_at;
  ELSIF p_usage IS NOT NULL THEN
${appendUsage(s, 'p_usage')}
  END IF;
  RETURN array_prepend(1::double precision, v_values);
END
$fn$;

-- Adds every amount unconditionally, once per idempotency key while it is remembered; the
-- key, the counters and the ledger rows commit together. Returns [duplicate (1 or 0),
-- values before...].
CREATE OR REPLACE FUNCTION ${s}.record(
  p_now double precision, p_keys text[], p_amounts double precision[],
  p_ttls double precision[], p_idempotency_key text, p_idempotency_ttl double precision,
  p_usage json, p_lock_timeout_ms integer)
RETURNS double precision[] LANGUAGE plpgsql AS $fn$
DECLARE
${LOCK_VARIABLES}
  v_claimed integer;
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  IF p_idempotency_key IS NOT NULL THEN
    INSERT INTO ${s}.idempotency_keys AS i (key, expires_at)
    VALUES (p_idempotency_key, p_now + p_idempotency_ttl)
    ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
      WHERE i.expires_at <= p_now;
    GET DIAGNOSTICS v_claimed = ROW_COUNT;
    IF v_claimed = 0 THEN
      RETURN array_prepend(1::double precision, ${s}.read_values(p_now, p_keys));
    END IF;
  END IF;
${lockCounters(s, 'p_keys', 'p_amounts', 'p_ttls')}
${addCounters(s)}
  IF p_usage IS NOT NULL THEN
${appendUsage(s, 'p_usage')}
  END IF;
  RETURN array_prepend(0::double precision, v_values);
END
$fn$;

-- Returns a reservation's held amounts and adds the actual ones (and their ledger rows),
-- in one step. Returns [found (1 or 0), values after the return, before the add...].
CREATE OR REPLACE FUNCTION ${s}.settle(
  p_now double precision, p_reservation_id text, p_keys text[],
  p_amounts double precision[], p_ttls double precision[], p_usage json,
  p_lock_timeout_ms integer)
RETURNS double precision[] LANGUAGE plpgsql AS $fn$
DECLARE
${LOCK_VARIABLES}
  v_held text[];
  v_lock_keys text[];
  v_lock_amounts double precision[];
  v_lock_ttls double precision[];
  v_expires_at double precision;
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  SELECT coalesce(array_agg(h.key), '{}') INTO v_held FROM ${s}.holds h
  WHERE h.reservation_id = p_reservation_id;
  -- The held counters are locked with the new ones, all in key order.
  v_lock_keys := p_keys || v_held;
  v_lock_amounts := p_amounts || array_fill(0::double precision, ARRAY[cardinality(v_held)]);
  v_lock_ttls := p_ttls || array_fill(NULL::double precision, ARRAY[cardinality(v_held)]);
${lockCounters(s, 'v_lock_keys', 'v_lock_amounts', 'v_lock_ttls')}
  DELETE FROM ${s}.reservations WHERE id = p_reservation_id RETURNING expires_at
  INTO v_expires_at;
  -- Holds left are unexpired (returned just above otherwise) or sit in ended windows.
  FOR v_hold IN DELETE FROM ${s}.holds h WHERE h.reservation_id = p_reservation_id
    RETURNING h.key, h.amount
  LOOP
    UPDATE ${s}.counters SET value = greatest(0, value - v_hold.amount)
    WHERE key = v_hold.key AND NOT coalesce(expires_at <= p_now, false);
  END LOOP;
  v_values := ${s}.read_values(p_now, p_keys);
${addCounters(s)}
  IF p_usage IS NOT NULL THEN
${appendUsage(s, 'p_usage')}
  END IF;
  RETURN array_prepend(
    CASE WHEN v_expires_at > p_now THEN 1 ELSE 0 END::double precision, v_values);
END
$fn$;

-- Deletes rows that expired before p_horizon, at most p_batch per table, never waiting for a
-- row an operation holds. Returns [counters, holds, reservations, idempotency keys, claims].
CREATE OR REPLACE FUNCTION ${s}.cleanup(p_horizon double precision, p_batch integer)
RETURNS integer[] LANGUAGE plpgsql AS $fn$
DECLARE
  v_hold record;
  v_counter record;
  v_holds integer := 0;
  v_counters integer;
  v_reservations integer;
  v_idempotency integer;
  v_claims integer;
BEGIN
  -- Expired holds: their amounts go back to live counters, those of ended windows are
  -- dropped. A counter an operation has locked is skipped: that operation returns them.
  FOR v_hold IN SELECT h.reservation_id, h.key, h.amount FROM ${s}.holds h
    WHERE h.expires_at <= p_horizon ORDER BY h.expires_at LIMIT p_batch
    FOR UPDATE SKIP LOCKED
  LOOP
    SELECT c.key, c.expires_at INTO v_counter FROM ${s}.counters c
    WHERE c.key = v_hold.key FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      CONTINUE WHEN EXISTS (SELECT 1 FROM ${s}.counters c WHERE c.key = v_hold.key);
    ELSIF NOT coalesce(v_counter.expires_at <= p_horizon, false) THEN
      UPDATE ${s}.counters SET value = greatest(0, value - v_hold.amount)
      WHERE key = v_hold.key;
    END IF;
    DELETE FROM ${s}.holds WHERE reservation_id = v_hold.reservation_id AND key = v_hold.key;
    v_holds := v_holds + 1;
  END LOOP;

  WITH doomed AS (
    SELECT c.key FROM ${s}.counters c WHERE c.expires_at <= p_horizon
    ORDER BY c.expires_at LIMIT p_batch FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM ${s}.counters c USING doomed d WHERE c.key = d.key RETURNING c.key
  ), gone_holds AS (
    DELETE FROM ${s}.holds h USING gone g WHERE h.key = g.key
  ) SELECT count(*) INTO v_counters FROM gone;

  WITH doomed AS (
    SELECT r.id FROM ${s}.reservations r WHERE r.expires_at <= p_horizon
    ORDER BY r.expires_at LIMIT p_batch FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM ${s}.reservations r USING doomed d WHERE r.id = d.id RETURNING 1
  ) SELECT count(*) INTO v_reservations FROM gone;

  WITH doomed AS (
    SELECT i.key FROM ${s}.idempotency_keys i WHERE i.expires_at <= p_horizon
    ORDER BY i.expires_at LIMIT p_batch FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM ${s}.idempotency_keys i USING doomed d WHERE i.key = d.key RETURNING 1
  ) SELECT count(*) INTO v_idempotency FROM gone;

  WITH doomed AS (
    SELECT c.key FROM ${s}.claims c WHERE c.expires_at <= p_horizon
    ORDER BY c.expires_at LIMIT p_batch FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM ${s}.claims c USING doomed d WHERE c.key = d.key RETURNING 1
  ) SELECT count(*) INTO v_claims FROM gone;

  RETURN ARRAY[v_counters, v_holds, v_reservations, v_idempotency, v_claims];
END
$fn$;
`;
}

/**
 * Version 2: the overrides' version, one row bumped by a trigger on every override written
 * (set, replaced, removed or truncated; a removal of nothing changes nothing), so that a read or consume
 * can check in the same statement that the engine planned with the overrides as they stand.
 */
export function storeSchemaV2(s: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${s}.overrides_version (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version bigint NOT NULL
);
INSERT INTO ${s}.overrides_version (only_row, version) VALUES (true, 0) ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION ${s}.bump_overrides_version() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE ${s}.overrides_version SET version = version + 1;
  RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS overrides_version ON ${s}.overrides;
CREATE TRIGGER overrides_version AFTER INSERT OR UPDATE OR DELETE ON ${s}.overrides
  FOR EACH ROW EXECUTE FUNCTION ${s}.bump_overrides_version();
-- TRUNCATE fires no row trigger.
DROP TRIGGER IF EXISTS overrides_version_truncate ON ${s}.overrides;
CREATE TRIGGER overrides_version_truncate AFTER TRUNCATE ON ${s}.overrides
  FOR EACH STATEMENT EXECUTE FUNCTION ${s}.bump_overrides_version();
`;
}
