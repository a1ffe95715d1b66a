import { QuotaValidationError, type UsageQuery } from '@quotakit/core';
import { encodeText } from './text-encoding.js';

const SUBJECT_COLUMNS = [
  ['userId', 'user_id'],
  ['agentId', 'agent_id'],
  ['tenantId', 'tenant_id'],
  ['runId', 'run_id'],
] as const;

/**
 * The WHERE conditions of a {@link UsageQuery} over `usage_events`: `at` in [from, to), and
 * each given subject id and resource. Parameters are appended to `values`.
 *
 * @throws QuotaValidationError for a range that is not two valid Dates, from before to.
 */
export function usageConditions(query: UsageQuery, values: unknown[]): string[] {
  if (typeof query !== 'object' || query === null) {
    throw new QuotaValidationError('A usage query needs { from, to }');
  }
  const { from, to } = query;
  if (!(from instanceof Date) || Number.isNaN(from.getTime())) {
    throw new QuotaValidationError('from must be a valid Date');
  }
  if (!(to instanceof Date) || Number.isNaN(to.getTime())) {
    throw new QuotaValidationError('to must be a valid Date');
  }
  if (from.getTime() > to.getTime()) throw new QuotaValidationError('from must not be after to');
  values.push(from.toISOString(), to.toISOString());
  const conditions = [
    `at >= $${values.length - 1}::timestamptz`,
    `at < $${values.length}::timestamptz`,
  ];
  for (const [field, column] of SUBJECT_COLUMNS) {
    const id = query[field];
    if (id === undefined || id === null) continue;
    if (typeof id !== 'string') throw new QuotaValidationError(`${field} must be a string`);
    values.push(encodeText(id));
    conditions.push(`${column} = $${values.length}`);
  }
  if (query.resource !== undefined && query.resource !== null) {
    if (typeof query.resource !== 'string') {
      throw new QuotaValidationError('resource must be a string');
    }
    values.push(query.resource);
    conditions.push(`resource = $${values.length}`);
  }
  return conditions;
}
