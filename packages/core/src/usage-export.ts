import { USAGE_EVENT_FIELDS, type UsageEvent } from './usage-ledger.js';

/** Export formats of `engine.exportUsage`. */
export type UsageExportFormat = 'csv' | 'cloudevents';

/** The CSV header line: the UsageEvent field names. */
export const USAGE_CSV_HEADER = USAGE_EVENT_FIELDS.join(',');

/**
 * One CSV line (RFC 4180 quoting) of an event: `at` as an ISO 8601 instant, `metadata` as
 * JSON, absent fields empty.
 */
export function usageEventToCsv(event: UsageEvent): string {
  return USAGE_EVENT_FIELDS.map((field) => {
    const value = event[field];
    if (value === undefined) return '';
    if (field === 'at') return (value as Date).toISOString();
    const text = field === 'metadata' ? JSON.stringify(value) : String(value);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  }).join(',');
}

/**
 * One CloudEvents 1.0 JSON line: the event's own id (stable across re-exports), `type`
 * `dev.quotakit.usage.recorded`, `subject` the most specific id (run, then user, agent,
 * tenant) and the UsageEvent as `data`.
 */
export function usageEventToCloudEvent(event: UsageEvent, source = 'quotakit'): string {
  return JSON.stringify({
    specversion: '1.0',
    id: event.id,
    source,
    type: 'dev.quotakit.usage.recorded',
    subject: event.runId ?? event.userId ?? event.agentId ?? event.tenantId,
    time: event.at.toISOString(),
    datacontenttype: 'application/json',
    data: event,
  });
}
