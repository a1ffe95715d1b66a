import { z } from 'zod';
import { isQuotaError, QuotaConfigError } from './errors.js';
import { MemoryLedger } from './memory-ledger.js';
import { MemoryStore } from './memory-store.js';
import { isWindowedPeriod, QUOTA_PERIODS, type QuotaPeriod } from './periods.js';
import { resourceKind } from './resource-types.js';
import {
  QUOTA_SCOPES,
  type QuotaRule,
  type QuotaRules,
  type QuotaScope,
  type ResolvedRule,
} from './rules.js';
import { DEFAULT_CRITICAL_THRESHOLD, DEFAULT_WARNING_THRESHOLD } from './statuses.js';
import type { QuotaStore } from './store.js';
import { MAX_ID_LENGTH, withinIdLength } from './subject.js';
import { defaultTaskEstimator, type TaskEstimator } from './task-estimator.js';
import { isValidTimeZone } from './time-zone.js';
import type { UsageEvent, UsageLedger } from './usage-ledger.js';

/**
 * Per-id rules that replace the default rules of the same scope for that one id
 * (a user override replaces the default user-scope rules; other scopes still bind).
 */
export interface QuotaOverrides {
  users?: Record<string, QuotaRules>;
  agents?: Record<string, QuotaRules>;
  tenants?: Record<string, QuotaRules>;
  runs?: Record<string, QuotaRules>;
}

/**
 * Options of {@link createQuotaEngine}. Validated once, at construction; a bad option throws
 * a {@link QuotaConfigError} naming its path.
 */
export interface QuotaEngineOptions {
  /** Where counters live. Defaults to a new {@link MemoryStore}. */
  store?: QuotaStore;
  /** Rules by resource, for every subject. Defaults to none: every resource is unlimited. */
  defaults?: QuotaRules;
  /** Rules for particular users, agents, tenants or runs. */
  overrides?: QuotaOverrides;
  /** IANA time zone that calendar windows align to. Defaults to `'UTC'`. */
  timeZone?: string;
  /**
   * What a decision is when the store cannot answer (status `unknown`): `'open'` admits,
   * `'closed'` refuses. Defaults to `'open'`.
   */
  failureMode?: 'open' | 'closed';
  /** Current time in epoch ms. Defaults to `Date.now`; inject one in tests. */
  clock?: () => number;
  /** Default `warningThreshold` of rules that set none. Defaults to `0.8`. */
  warningThreshold?: number;
  /** Default `criticalThreshold` of rules that set none. Defaults to `0.95`. */
  criticalThreshold?: number;
  /** How long an idempotency key is remembered. Defaults to `86_400_000` ms (one day). */
  idempotencyTtlMs?: number;
  /** Lifetime of reservations and leases that set no `ttlMs`. Defaults to `60_000` ms. */
  reservationTtlMs?: number;
  /**
   * Longest wait for an asynchronous store before a decision becomes `unknown`.
   * Networked stores time out sooner by themselves. Defaults to `10_000` ms.
   */
  storeTimeoutMs?: number;
  /**
   * How long an engine trusts what it read of the run-time overrides of a networked store
   * before reading again (an in-process store is always read directly). While the store holds
   * at most 10,000 overrides the engine lists them all in one call, once per this time, for
   * every subject; past that it reads them id by id. `0` reads id by id on every call. With a
   * store that versions its overrides (`listVersionedOverrides`), each decision that reads or
   * writes a counter also checks the listing's version, so another engine's change shows at
   * once even within this time.
   * Defaults to `5_000` ms.
   */
  overrideCacheTtlMs?: number;
  /**
   * Receives errors that have no caller to go to: a threshold listener that throws, a store
   * that fails while reading overrides. Defaults to `console.warn`.
   */
  onError?: (error: unknown) => void;
  /**
   * OpenTelemetry spans and metrics through `@opentelemetry/api` (no-ops until the
   * application registers an SDK). Defaults to `true`.
   */
  telemetry?: boolean;
  /**
   * Estimates what a task will spend, for `checkTaskQuota` and `runTask`. Defaults to
   * {@link defaultTaskEstimator} (keywords in English and Russian, and the description's
   * length).
   */
  estimator?: TaskEstimator;
  /**
   * Where every recorded or committed amount is kept as a {@link UsageEvent}, for
   * `usageEvents` and `exportUsage`, written in batches off the hot path. Defaults to the
   * store's own ledger when it keeps one (PostgresStore: written in the same transaction as
   * the counters), else to a bounded {@link MemoryLedger}; `false` keeps none.
   */
  ledger?: UsageLedger | false;
}

/** Rules of one resource, grouped by scope. */
export type ScopedRules = Readonly<Record<QuotaScope, readonly ResolvedRule[]>>;

/** The engine's configuration after validation: every default filled in, rules indexed. */
export interface ResolvedConfig {
  readonly store: QuotaStore;
  readonly timeZone: string;
  readonly failureMode: 'open' | 'closed';
  readonly clock: () => number;
  readonly idempotencyTtlMs: number;
  readonly reservationTtlMs: number;
  readonly storeTimeoutMs: number;
  readonly overrideCacheTtlMs: number;
  readonly onError: (error: unknown) => void;
  readonly telemetry: boolean;
  readonly estimator: TaskEstimator;
  readonly ledger: UsageLedger | null;
  /** True when `ledger` is the store's own, written by the store with each operation. */
  readonly ledgerInStore: boolean;
  /** Default thresholds of rules that set none. */
  readonly thresholds: { readonly warning: number; readonly critical: number };
  /** Default rules by resource. */
  readonly defaults: ReadonlyMap<string, ScopedRules>;
  /** Override rules: scope -> id -> resource -> rules. */
  readonly overrides: ReadonlyMap<
    QuotaScope,
    ReadonlyMap<string, ReadonlyMap<string, readonly ResolvedRule[]>>
  >;
  /** Every resource that some rule names. */
  readonly resources: ReadonlySet<string>;
}

const STORE_METHODS = [
  'read',
  'consume',
  'record',
  'settle',
  'getOverrides',
  'setOverride',
  'removeOverride',
  'listOverrides',
  'claim',
] as const;

/** Resource names: letters, digits, `_`, `.`, `-`; they appear in keys and HTTP headers. */
export const RESOURCE_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

const thresholdSchema = z.number().gt(0, 'must be above 0').max(1, 'must be at most 1');

const ruleSchema = z.strictObject({
  limit: z.number({ error: 'must be a finite number' }).min(0, 'must be 0 or more'),
  period: z.enum(QUOTA_PERIODS as [QuotaPeriod, ...QuotaPeriod[]], {
    error: `must be one of ${QUOTA_PERIODS.join(', ')}`,
  }),
  scope: z.enum(QUOTA_SCOPES as [QuotaScope, ...QuotaScope[]]).optional(),
  algorithm: z.enum(['fixed', 'sliding']).optional(),
  warningThreshold: thresholdSchema.optional(),
  criticalThreshold: thresholdSchema.optional(),
  mode: z.enum(['enforce', 'shadow']).optional(),
  name: z
    .string()
    .regex(RESOURCE_NAME_PATTERN, 'must be 1 to 64 letters, digits, _, . or -')
    .optional(),
});

/** Names that would alias Object.prototype members in a result map: never resource names. */
export const RESERVED_RESOURCE_NAMES: ReadonlySet<string> = new Set([
  '__proto__',
  'constructor',
  'prototype',
]);

// Rule maps are only checked for shape here; each rule is validated on its own by
// resolveRule, so that an error names the exact rule (a zod union would only say
// "Invalid input" for the whole entry).
const rulesSchema = z.record(z.string(), z.unknown());

const idSchema = z
  .string()
  .min(1, 'ids must not be empty')
  .refine(withinIdLength, `ids must be at most ${MAX_ID_LENGTH} characters`);

const positiveMs = z.number().int('must be whole milliseconds').positive('must be above 0');

const optionsSchema = z.strictObject({
  store: z
    .custom<QuotaStore>(isQuotaStore, `must implement ${STORE_METHODS.join(', ')}`)
    .optional(),
  defaults: rulesSchema.optional(),
  overrides: z
    .strictObject({
      users: z.record(z.string(), rulesSchema).optional(),
      agents: z.record(z.string(), rulesSchema).optional(),
      tenants: z.record(z.string(), rulesSchema).optional(),
      runs: z.record(z.string(), rulesSchema).optional(),
    })
    .optional(),
  timeZone: z.string().refine(isValidTimeZone, 'must be an IANA time zone name').optional(),
  failureMode: z.enum(['open', 'closed']).optional(),
  clock: z
    .custom<() => number>((value) => typeof value === 'function', 'must be a function')
    .optional(),
  warningThreshold: thresholdSchema.optional(),
  criticalThreshold: thresholdSchema.optional(),
  idempotencyTtlMs: positiveMs.optional(),
  reservationTtlMs: positiveMs.optional(),
  storeTimeoutMs: positiveMs.optional(),
  overrideCacheTtlMs: z.number().int('must be whole milliseconds').min(0).optional(),
  onError: z
    .custom<(error: unknown) => void>((value) => typeof value === 'function', 'must be a function')
    .optional(),
  telemetry: z.boolean().optional(),
  estimator: z
    .custom<TaskEstimator>((value) => typeof value === 'function', 'must be a function')
    .optional(),
  ledger: z
    .custom<UsageLedger | false>(
      (value) =>
        value === false ||
        (typeof value === 'object' &&
          value !== null &&
          typeof (value as UsageLedger).append === 'function' &&
          typeof (value as UsageLedger).query === 'function'),
      'must be a ledger with append and query, or false',
    )
    .optional(),
});

/** Whether `value` has every method of the store contract. */
export function isQuotaStore(value: unknown): value is QuotaStore {
  if (typeof value !== 'object' || value === null) return false;
  const store = value as Record<string, unknown>;
  return STORE_METHODS.every((m) => typeof store[m] === 'function');
}

/** Throws the first zod issue as a QuotaConfigError with its path. */
export function throwConfigError(error: z.ZodError, basePath = ''): never {
  const issue = error.issues[0]!;
  const path = [basePath, ...issue.path.map(String)].filter(Boolean).join('.');
  throw new QuotaConfigError(path, issue.message);
}

const OVERRIDE_SCOPES = [
  ['users', 'user'],
  ['agents', 'agent'],
  ['tenants', 'tenant'],
  ['runs', 'run'],
] as const;

/**
 * Validates engine options and resolves them into a {@link ResolvedConfig}. Never mutates
 * the caller's object.
 *
 * @throws QuotaConfigError naming the bad option's path and the reason.
 */
export function resolveConfig(options: QuotaEngineOptions): ResolvedConfig {
  const parsed = optionsSchema.safeParse(options ?? {});
  if (!parsed.success) throwConfigError(parsed.error);
  const input = options ?? {};
  const warning = input.warningThreshold ?? DEFAULT_WARNING_THRESHOLD;
  const critical = input.criticalThreshold ?? DEFAULT_CRITICAL_THRESHOLD;
  if (critical < warning) {
    throw new QuotaConfigError(
      'criticalThreshold',
      `must be at least warningThreshold (${warning}), got ${critical}`,
    );
  }
  const thresholds = { warning, critical };
  const resources = new Set<string>();

  const defaults = new Map<string, ScopedRules>();
  // Entries of the caller's objects are read with Object.entries, never by property
  // assignment, so ids such as `__proto__` stay plain data.
  for (const [resource, value] of Object.entries(input.defaults ?? {})) {
    if (value === undefined) continue;
    validateResourceName(resource, `defaults.${resource}`);
    const grouped: Record<QuotaScope, ResolvedRule[]> = {
      user: [],
      agent: [],
      tenant: [],
      run: [],
      global: [],
    };
    toRuleList(value, `defaults.${resource}`).forEach((rule, index) => {
      const path = Array.isArray(value) ? `defaults.${resource}.${index}` : `defaults.${resource}`;
      const resolved = resolveRule(resource, rule, 'default', thresholds, path);
      grouped[resolved.scope].push(resolved);
    });
    defaults.set(resource, grouped);
    resources.add(resource);
  }

  const overrides = new Map<QuotaScope, Map<string, Map<string, readonly ResolvedRule[]>>>();
  for (const [key, scope] of OVERRIDE_SCOPES) {
    const byId = new Map<string, Map<string, readonly ResolvedRule[]>>();
    for (const [id, rules] of Object.entries(input.overrides?.[key] ?? {})) {
      const idCheck = idSchema.safeParse(id);
      if (!idCheck.success) throwConfigError(idCheck.error, `overrides.${key}`);
      const byResource = new Map<string, readonly ResolvedRule[]>();
      for (const [resource, value] of Object.entries(rules)) {
        if (value === undefined) continue;
        const base = `overrides.${key}.${id}.${resource}`;
        validateResourceName(resource, base);
        const list = toRuleList(value, base).map((rule, index) => {
          const path = Array.isArray(value) ? `${base}.${index}` : base;
          if (rule.scope !== undefined && rule.scope !== scope) {
            throw new QuotaConfigError(
              `${path}.scope`,
              `an override under ${key} applies to scope '${scope}', got '${rule.scope}'`,
            );
          }
          return resolveRule(resource, { ...rule, scope }, 'override', thresholds, path);
        });
        byResource.set(resource, list);
        resources.add(resource);
      }
      byId.set(id, byResource);
    }
    if (byId.size > 0) overrides.set(scope, byId);
  }

  const store: QuotaStore = input.store ?? new MemoryStore();
  if (store.checkRules) {
    // Each resource's rules apart, so that a rule the store refuses is named by its place in
    // the configuration.
    for (const [resource, scoped] of defaults) {
      checkStoreRules(store, Object.values(scoped).flat(), `defaults.${resource}`);
    }
    for (const [key, scope] of OVERRIDE_SCOPES) {
      for (const [id, byResource] of overrides.get(scope) ?? []) {
        for (const [resource, rules] of byResource) {
          checkStoreRules(store, rules, `overrides.${key}.${id}.${resource}`);
        }
      }
    }
  }
  return {
    store,
    timeZone: input.timeZone ?? 'UTC',
    failureMode: input.failureMode ?? 'open',
    clock: input.clock ?? Date.now,
    idempotencyTtlMs: input.idempotencyTtlMs ?? 86_400_000,
    reservationTtlMs: input.reservationTtlMs ?? 60_000,
    storeTimeoutMs: input.storeTimeoutMs ?? 10_000,
    overrideCacheTtlMs: input.overrideCacheTtlMs ?? 5_000,
    onError: input.onError ?? warnOnce,
    telemetry: input.telemetry ?? true,
    estimator: input.estimator ?? defaultTaskEstimator,
    ledger: input.ledger === false ? null : (input.ledger ?? store.ledger ?? new MemoryLedger()),
    ledgerInStore: input.ledger === undefined && store.ledger !== undefined,
    thresholds,
    defaults,
    overrides,
    resources,
  };
}

/**
 * Validates one rule and fills in its defaults.
 *
 * @throws QuotaConfigError naming `path` and the reason.
 */
export function resolveRule(
  resource: string,
  rule: QuotaRule,
  source: 'default' | 'override',
  thresholds: { warning: number; critical: number },
  path: string,
): ResolvedRule {
  const parsed = ruleSchema.safeParse(rule);
  if (!parsed.success) throwConfigError(parsed.error, path);
  const algorithm = rule.algorithm ?? 'fixed';
  if (algorithm === 'sliding' && !isWindowedPeriod(rule.period)) {
    throw new QuotaConfigError(
      `${path}.algorithm`,
      `'sliding' needs a calendar period, not '${rule.period}'`,
    );
  }
  const kind = resourceKind(resource);
  if (kind === 'gauge' && rule.period !== 'total' && rule.period !== 'per_request') {
    throw new QuotaConfigError(
      `${path}.period`,
      `${resource} is a gauge (a level that goes up and down): use 'total' or 'per_request', not '${rule.period}'`,
    );
  }
  const warningThreshold = rule.warningThreshold ?? thresholds.warning;
  const criticalThreshold =
    rule.criticalThreshold ?? Math.max(thresholds.critical, warningThreshold);
  if (criticalThreshold < warningThreshold) {
    throw new QuotaConfigError(
      `${path}.criticalThreshold`,
      `must be at least warningThreshold (${warningThreshold}), got ${criticalThreshold}`,
    );
  }
  return Object.freeze({
    resource,
    kind,
    scope: rule.scope ?? 'user',
    limit: rule.limit,
    period: rule.period,
    algorithm,
    warningThreshold,
    criticalThreshold,
    mode: rule.mode ?? 'enforce',
    name: rule.name ?? `${resource}-${rule.period}`,
    source,
  });
}

function toRuleList(value: QuotaRule | readonly QuotaRule[], path: string): readonly QuotaRule[] {
  if (!Array.isArray(value)) return [value as QuotaRule];
  if (value.length === 0) throw new QuotaConfigError(path, 'must list at least one rule');
  return value;
}

function validateResourceName(resource: string, path: string): void {
  if (!RESOURCE_NAME_PATTERN.test(resource)) {
    throw new QuotaConfigError(path, 'resource names are 1 to 64 letters, digits, _, . or -');
  }
  if (RESERVED_RESOURCE_NAMES.has(resource)) {
    throw new QuotaConfigError(path, `'${resource}' is a reserved name`);
  }
}

// Errors without a caller (a failing listener, a store down while overrides are read) are
// worth a line now and then, not one per request: at most one line a minute.
let lastWarningAt = Number.NEGATIVE_INFINITY;
function warnOnce(error: unknown): void {
  const now = Date.now();
  if (now - lastWarningAt < 60_000) return;
  lastWarningAt = now;
  console.warn('[quotakit]', error instanceof Error ? error.message : error);
}

/** The store's `checkRules` on one group of rules, its refusal named by `path`. */
function checkStoreRules(store: QuotaStore, rules: readonly ResolvedRule[], path: string): void {
  try {
    store.checkRules?.(rules);
  } catch (error) {
    if (isQuotaError(error) && error.code === 'quota_config') {
      // An older copy of the package has no `reason`: take the message without its prefix.
      const { reason } = error as Partial<QuotaConfigError>;
      throw new QuotaConfigError(
        path,
        reason ?? error.message.replace(/^Invalid QuotaKit configuration(?: at [^:]*)?: /, ''),
      );
    }
    throw error;
  }
}
