import { QuotaValidationError, type UsageQuery } from '@quotakit/core';
import { decodeText } from './text-encoding.js';
import { usageConditions } from './usage-filter.js';

/**
 * How a report splits time: calendar windows in `timeZone`, as quota periods are (minute and
 * hour at :00, day at midnight, week on Monday, month on the 1st), or `'total'` for the whole
 * range as one window.
 */
export type UsageReportWindow =
  | 'per_minute'
  | 'per_hour'
  | 'per_day'
  | 'per_week'
  | 'per_month'
  | 'total';

/**
 * Event fields a report can group by (it always groups by resource): a subject id, the task,
 * or a top-level metadata field as `metadata.<key>` (`'metadata.model'` for cost per model),
 * grouped by its value as text.
 */
export type UsageReportDimension =
  | 'userId'
  | 'agentId'
  | 'tenantId'
  | 'runId'
  | 'taskId'
  | `metadata.${string}`;

/** What {@link PostgresLedger.report} sums. */
export interface UsageReportQuery extends UsageQuery {
  /** Window of each row. Defaults to `'per_day'`. */
  window?: UsageReportWindow;
  /**
   * Fields that split rows besides resource and window; an id absent from an event groups
   * as absent. `[]` sums every subject together. Defaults to
   * `['userId', 'agentId', 'tenantId', 'runId']` (one row per subject as recorded).
   */
  groupBy?: readonly UsageReportDimension[];
  /** IANA time zone of the calendar windows. Defaults to `'UTC'`. */
  timeZone?: string;
}

/** One line of a usage report: what one group spent in one window. */
export interface UsageReportRow {
  /** Start of the calendar window (for `'total'`, the query's `from`). */
  windowStart: Date;
  /**
   * End of the calendar window, exclusive (for `'total'`, the query's `to`). Only events in
   * [from, to) count, so the first and last windows may be partly outside the range.
   */
  windowEnd: Date;
  resource: string;
  userId?: string;
  agentId?: string;
  tenantId?: string;
  runId?: string;
  taskId?: string;
  /**
   * The metadata fields grouped by, with their values as text; a field an event lacks is
   * absent.
   */
  metadata?: Record<string, string>;
  /** Sum of the amounts. */
  amount: number;
  /** Number of usage events summed. */
  events: number;
}

const UNITS: Readonly<Record<Exclude<UsageReportWindow, 'total'>, string>> = {
  per_minute: 'minute',
  per_hour: 'hour',
  per_day: 'day',
  per_week: 'week', // date_trunc weeks start on Monday (ISO 8601), like quota periods.
  per_month: 'month',
};

type IdDimension = 'userId' | 'agentId' | 'tenantId' | 'runId' | 'taskId';

const COLUMNS: Readonly<Record<IdDimension, string>> = {
  userId: 'user_id',
  agentId: 'agent_id',
  tenantId: 'tenant_id',
  runId: 'run_id',
  taskId: 'task_id',
};

const METADATA_PREFIX = 'metadata.';
const MAX_METADATA_KEY_LENGTH = 128;

const DEFAULT_GROUP_BY: readonly UsageReportDimension[] = [
  'userId',
  'agentId',
  'tenantId',
  'runId',
];

/** A report as SQL, and how to read its rows. */
export interface ReportStatement {
  readonly text: string;
  readonly values: unknown[];
  readonly read: (row: Record<string, unknown>) => UsageReportRow;
}

/**
 * The SQL of a usage report over `${schema}.usage_events`: sums and counts per window,
 * resource and the chosen fields, oldest window first.
 *
 * @throws QuotaValidationError for a bad range, window, field or time zone.
 */
export function reportStatement(schema: string, query: UsageReportQuery): ReportStatement {
  const values: unknown[] = [];
  const conditions = usageConditions(query, values);
  const window = query.window ?? 'per_day';
  if (window !== 'total' && !Object.hasOwn(UNITS, window)) {
    throw new QuotaValidationError(
      `window must be one of ${[...Object.keys(UNITS), 'total'].join(', ')}, got ${JSON.stringify(window)}`,
    );
  }
  const groupBy = [...new Set(query.groupBy ?? DEFAULT_GROUP_BY)];
  // The metadata fields asked for, each a computed column `m<i>` of the inner query; the key
  // travels as a parameter, never as SQL.
  const metadataKeys: string[] = [];
  const metadataColumns: string[] = [];
  for (const field of groupBy) {
    if (isIdDimension(field)) continue;
    const key =
      typeof field === 'string' && field.startsWith(METADATA_PREFIX)
        ? field.slice(METADATA_PREFIX.length)
        : '';
    if (key === '' || key.length > MAX_METADATA_KEY_LENGTH) {
      throw new QuotaValidationError(
        `groupBy accepts ${Object.keys(COLUMNS).join(', ')} or metadata.<key>, got ${JSON.stringify(field)}`,
      );
    }
    values.push(key);
    metadataKeys.push(key);
    metadataColumns.push(`(metadata ->> $${values.length}::text) AS m${metadataColumns.length}`);
  }
  const timeZone = query.timeZone ?? 'UTC';
  if (!isTimeZone(timeZone)) {
    throw new QuotaValidationError(`timeZone must be an IANA time zone name, got ${timeZone}`);
  }
  // Where each grouped field is read from in a row: an id column, or a metadata column.
  const grouped: Array<{ column: string; id?: IdDimension; key?: string }> = [];
  let metadataIndex = 0;
  for (const field of groupBy) {
    if (isIdDimension(field)) {
      grouped.push({ column: COLUMNS[field], id: field });
    } else {
      grouped.push({ column: `m${metadataIndex}`, key: metadataKeys[metadataIndex]! });
      metadataIndex += 1;
    }
  }
  const columns = grouped.map((entry) => entry.column);
  const computed = metadataColumns.map((column) => `${column}, `).join('');
  const where = conditions.join(' AND ');
  const ms = (instant: string) => `floor(extract(epoch FROM ${instant}) * 1000)::double precision`;
  let text: string;
  if (window === 'total') {
    const keys = ['resource', ...columns];
    text = `SELECT ${keys.join(', ')}, NULL::double precision AS window_start,
        NULL::double precision AS window_end,
        sum(amount)::double precision AS amount, count(*)::bigint AS events
      FROM (SELECT ${computed}* FROM ${schema}.usage_events WHERE ${where}) AS e
      GROUP BY ${keys.join(', ')}
      ORDER BY ${keys.map((key) => `${key} NULLS FIRST`).join(', ')}`;
  } else {
    values.push(UNITS[window], timeZone);
    const unit = `$${values.length - 1}::text`;
    const zone = `$${values.length}::text`;
    const keys = ['local_start', 'resource', ...columns];
    text = `SELECT ${keys.slice(1).join(', ')},
        ${ms(`(local_start AT TIME ZONE ${zone})`)} AS window_start,
        ${ms(`((local_start + ('1 ' || ${unit})::interval) AT TIME ZONE ${zone})`)} AS window_end,
        sum(amount)::double precision AS amount, count(*)::bigint AS events
      FROM (SELECT date_trunc(${unit}, at AT TIME ZONE ${zone}) AS local_start, ${computed}*
        FROM ${schema}.usage_events WHERE ${where}) AS e
      GROUP BY ${keys.join(', ')}
      ORDER BY ${keys.map((key) => `${key} NULLS FIRST`).join(', ')}`;
  }
  const from = query.from.getTime();
  const to = query.to.getTime();
  const read = (row: Record<string, unknown>): UsageReportRow => {
    const out: UsageReportRow = {
      windowStart: new Date(window === 'total' ? from : (row.window_start as number)),
      windowEnd: new Date(window === 'total' ? to : (row.window_end as number)),
      resource: row.resource as string,
      amount: row.amount as number,
      events: row.events as number,
    };
    for (const { column, id, key } of grouped) {
      const value = row[column];
      if (typeof value !== 'string') continue;
      if (id !== undefined) {
        out[id] = decodeText(value);
      } else if (key !== undefined) {
        out.metadata ??= {};
        out.metadata[key] = value;
      }
    }
    return out;
  };
  return { text, values, read };
}

function isIdDimension(field: UsageReportDimension): field is IdDimension {
  return Object.hasOwn(COLUMNS, field);
}

function isTimeZone(name: string): boolean {
  if (typeof name !== 'string' || name === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
