import type { UsageEvent } from '@quotakit/core';
import { decodeText, encodeOptional, encodeText } from './text-encoding.js';

/**
 * Events as the `append_usage` function takes them: a JSON array of objects with short keys
 * (parsed once by `json_to_recordset`). Ids are encoded (text-encoding.ts); the metadata
 * travels as JSON text inside the JSON, so that whatever it holds (`\u0000` included) reaches
 * its `json` column unchanged. Absent fields are left out (NULL).
 */
export function usagePayload(events: readonly UsageEvent[]): string {
  const rows = new Array<Record<string, unknown>>(events.length);
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    rows[i] = {
      i: encodeText(event.id),
      a: event.at.toISOString(),
      r: event.resource,
      n: event.amount,
      u: encodeOptional(event.userId),
      g: encodeOptional(event.agentId),
      t: encodeOptional(event.tenantId),
      ru: encodeOptional(event.runId),
      ta: encodeOptional(event.taskId),
      k: encodeOptional(event.idempotencyKey),
      m: JSON.stringify(event.metadata ?? {}),
    };
  }
  return JSON.stringify(rows);
}

/** The columns {@link toUsageEvent} reads, in a SELECT list over `usage_events`. */
export const USAGE_COLUMNS =
  'seq, id, floor(extract(epoch FROM at) * 1000)::double precision AS at_ms, ' +
  `to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at_text, ` +
  'resource, amount, user_id, agent_id, tenant_id, run_id, task_id, idempotency_key, ' +
  'metadata::text AS metadata';

/** A row of {@link USAGE_COLUMNS}. */
export interface UsageRow {
  seq: number;
  id: string;
  at_ms: number;
  /** The exact instant (microseconds, UTC): the paging cursor. */
  at_text: string;
  resource: string;
  amount: number;
  user_id: string | null;
  agent_id: string | null;
  tenant_id: string | null;
  run_id: string | null;
  task_id: string | null;
  idempotency_key: string | null;
  metadata: string;
}

const EMPTY_METADATA = '{}';

/** The UsageEvent a row holds, ids decoded, absent fields left out. */
export function toUsageEvent(row: UsageRow): UsageEvent {
  const event: UsageEvent = {
    id: decodeText(row.id),
    at: new Date(row.at_ms),
    resource: row.resource,
    amount: row.amount,
    metadata: row.metadata === EMPTY_METADATA ? {} : JSON.parse(row.metadata),
  };
  if (row.user_id !== null) event.userId = decodeText(row.user_id);
  if (row.agent_id !== null) event.agentId = decodeText(row.agent_id);
  if (row.tenant_id !== null) event.tenantId = decodeText(row.tenant_id);
  if (row.run_id !== null) event.runId = decodeText(row.run_id);
  if (row.task_id !== null) event.taskId = decodeText(row.task_id);
  if (row.idempotency_key !== null) event.idempotencyKey = decodeText(row.idempotency_key);
  return event;
}
