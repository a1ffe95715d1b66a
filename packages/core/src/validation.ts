import { QuotaValidationError } from './errors.js';
import { isBuiltInResource, resourceKind } from './resource-types.js';
import type { RuleBook, RuntimeRules } from './rule-book.js';
import { characterCount, MAX_ID_LENGTH, type Subject, withinIdLength } from './subject.js';
import type { UsageQuery } from './usage-ledger.js';

/**
 * Reads the subject ids out of a request into a fresh object, so that nothing else the
 * caller passed travels further. `undefined` and `null` mean "no id in that scope".
 *
 * @throws QuotaValidationError for an id that is not a string of 1 to 512 characters.
 */
export function toSubject(request: Subject): Subject {
  // Unrolled: this runs on every call.
  const subject: Subject = {};
  const { userId, agentId, tenantId, runId } = request;
  if (userId != null) subject.userId = validateId(userId, 'userId');
  if (agentId != null) subject.agentId = validateId(agentId, 'agentId');
  if (tenantId != null) subject.tenantId = validateId(tenantId, 'tenantId');
  if (runId != null) subject.runId = validateId(runId, 'runId');
  return subject;
}

/**
 * @throws QuotaValidationError unless `id` is a string of 1 to 512 characters.
 */
export function validateId(id: unknown, field: string): string {
  if (typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH) return id;
  if (typeof id !== 'string') {
    throw new QuotaValidationError(`${field} must be a string, got ${describe(id)}`);
  }
  if (id.length === 0) throw new QuotaValidationError(`${field} must not be empty`);
  if (!withinIdLength(id)) {
    throw new QuotaValidationError(
      `${field} must be at most ${MAX_ID_LENGTH} characters, got ${characterCount(id)}`,
    );
  }
  return id;
}

/**
 * @throws QuotaValidationError unless `resource` is built in or named by some rule.
 */
export function validateResource(
  resource: unknown,
  rules: RuleBook,
  runtime: RuntimeRules | null = null,
): string {
  if (typeof resource !== 'string') {
    throw new QuotaValidationError(`resource must be a string, got ${describe(resource)}`);
  }
  if (!isBuiltInResource(resource) && !rules.has(resource, runtime)) {
    throw new QuotaValidationError(
      `Unknown resource "${resource.slice(0, 80)}": not a built-in resource and no rule names it`,
    );
  }
  return resource;
}

/**
 * An amount must be a finite number; it may be negative only where `allowRelease` is set
 * and the resource is a gauge (a negative amount releases that much).
 *
 * @throws QuotaValidationError naming the resource and what was wrong.
 */
export function validateAmount(resource: string, amount: unknown, allowRelease: boolean): number {
  if (typeof amount !== 'number' || Number.isNaN(amount)) {
    throw new QuotaValidationError(
      `Amount for ${resource} must be a number, got ${describe(amount)}`,
    );
  }
  if (!Number.isFinite(amount)) {
    throw new QuotaValidationError(`Amount for ${resource} must be finite, got ${amount}`);
  }
  if (amount < 0 && !(allowRelease && resourceKind(resource) === 'gauge')) {
    throw new QuotaValidationError(
      allowRelease
        ? `Amount for ${resource} must not be negative (${resource} is a counter), got ${amount}`
        : `Amount for ${resource} must not be negative, got ${amount}`,
    );
  }
  return amount;
}

/**
 * @throws QuotaValidationError unless `ttlMs` is a positive finite number of milliseconds.
 */
export function validateTtl(ttlMs: unknown, field = 'ttlMs'): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new QuotaValidationError(
      `${field} must be a positive number of ms, got ${describe(ttlMs)}`,
    );
  }
  return Math.ceil(ttlMs);
}

/**
 * Reads an amounts object's own entries (a Map-safe copy: keys such as `__proto__` stay data).
 *
 * @throws QuotaValidationError unless `amounts` is a plain object naming at least one
 * resource (or any object, when `allowEmpty`).
 */
export function validateAmounts(amounts: unknown, allowEmpty = false): [string, unknown][] {
  if (typeof amounts !== 'object' || amounts === null || Array.isArray(amounts)) {
    throw new QuotaValidationError(
      `amounts must be an object of resource -> amount, got ${describe(amounts)}`,
    );
  }
  // for-in over own keys: Object.entries costs more than the rest of a small decision.
  const entries: [string, unknown][] = [];
  for (const name in amounts) {
    if (Object.hasOwn(amounts, name))
      entries.push([name, (amounts as Record<string, unknown>)[name]]);
  }
  if (entries.length === 0 && !allowEmpty) {
    throw new QuotaValidationError('amounts must name at least one resource');
  }
  return entries;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value;
}

/**
 * Validates a usage query: `from` and `to` as Dates, ISO strings or epoch ms, from <= to.
 *
 * @throws QuotaValidationError naming the bad field.
 */
export function toUsageQuery(query: UsageQuery): UsageQuery {
  if (typeof query !== 'object' || query === null) {
    throw new QuotaValidationError('expected an object with from and to');
  }
  const from = toDate(query.from, 'from');
  const to = toDate(query.to, 'to');
  if (from.getTime() > to.getTime()) {
    throw new QuotaValidationError('from must not be after to');
  }
  const clean: UsageQuery = { ...toSubject(query), from, to };
  if (query.resource !== undefined) {
    if (typeof query.resource !== 'string' || query.resource.length === 0) {
      throw new QuotaValidationError('resource must be a non-empty string');
    }
    clean.resource = query.resource;
  }
  return clean;
}

function toDate(value: unknown, field: string): Date {
  const date =
    value instanceof Date
      ? value
      : typeof value === 'string' || typeof value === 'number'
        ? new Date(value)
        : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) {
    throw new QuotaValidationError(`${field} must be a Date, an ISO 8601 string or epoch ms`);
  }
  return date;
}

/** Checks a record's or commit's metadata (a plain object) and task id; returns them. */
export function validateUsageDetails(
  metadata: unknown,
  taskId: unknown,
): { metadata: Record<string, unknown> | undefined; taskId: string | undefined } {
  if (
    metadata !== undefined &&
    (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
  ) {
    throw new QuotaValidationError('metadata must be a plain object');
  }
  if (taskId !== undefined) validateId(taskId, 'taskId');
  return {
    metadata: metadata as Record<string, unknown> | undefined,
    taskId: taskId as string | undefined,
  };
}
