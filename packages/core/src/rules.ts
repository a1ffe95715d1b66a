import type { QuotaPeriod } from './periods.js';
import type { ResourceKind } from './resource-types.js';

/**
 * Whose usage a rule counts. A subject without an id in a scope is not bound by that
 * scope's rules; `global` rules bind everyone and share one counter.
 */
export type QuotaScope = 'user' | 'agent' | 'tenant' | 'run' | 'global';

/** All scopes, in the order the engine evaluates them. */
export const QUOTA_SCOPES: readonly QuotaScope[] = Object.freeze([
  'user',
  'agent',
  'tenant',
  'run',
  'global',
]);

/**
 * How usage within a window is judged.
 * - `fixed` (default): usage in the current calendar window.
 * - `sliding`: current window + previous window weighted by how much of it still overlaps
 *   the last `period` (a weighted two-window estimate), for smooth per-minute limits.
 */
export type QuotaAlgorithm = 'fixed' | 'sliding';

/** `enforce` (default) refuses; `shadow` is evaluated, reported and notified but never refuses. */
export type QuotaRuleMode = 'enforce' | 'shadow';

/**
 * A limit on one resource, as written in configuration.
 *
 * @example
 * { limit: 20_000, period: 'per_minute', algorithm: 'sliding' }
 */
export interface QuotaRule {
  /** Maximum amount within one window (or per request, or in total). 0 blocks the resource. */
  limit: number;
  /** The window the limit applies to. */
  period: QuotaPeriod;
  /** Whose usage is counted. Defaults to `'user'`. */
  scope?: QuotaScope;
  /** Defaults to `'fixed'`. `'sliding'` needs a calendar period (not per_request or total). */
  algorithm?: QuotaAlgorithm;
  /** Ratio at which the status becomes `approaching_limit`. Defaults to `0.8`. */
  warningThreshold?: number;
  /** Ratio at which the status becomes `at_limit`. Defaults to `0.95`. */
  criticalThreshold?: number;
  /** Defaults to `'enforce'`; `'shadow'` reports without refusing. */
  mode?: QuotaRuleMode;
  /** A name for headers and dashboards. Defaults to `<resource>-<period>`. */
  name?: string;
}

/** Rules by resource: one rule or several that must all admit a request. */
export type QuotaRules = Partial<Record<string, QuotaRule | readonly QuotaRule[]>>;

/** A rule after validation, with every default filled in. Immutable. */
export interface ResolvedRule {
  readonly resource: string;
  readonly kind: ResourceKind;
  readonly scope: QuotaScope;
  readonly limit: number;
  readonly period: QuotaPeriod;
  readonly algorithm: QuotaAlgorithm;
  readonly warningThreshold: number;
  readonly criticalThreshold: number;
  readonly mode: QuotaRuleMode;
  readonly name: string;
  /** Where the rule came from: the defaults, or an override for one id. */
  readonly source: 'default' | 'override';
}
