import {
  QuotaConfigError,
  type QuotaRule,
  type QuotaRules,
  type QuotaScope,
  type StoreCounter,
} from '@quotakit/core';
import type { ShardBy } from './key-layout.js';

/**
 * Scopes whose counters one shard cannot hold: a global counter is everyone's; a tenant's or an
 * agent's usage comes from many users, so it cannot live in each user's shard. (Sharding by
 * tenant assumes that users, agents and runs each belong to one tenant.)
 */
const CROSSING_SCOPES: Readonly<Record<ShardBy, ReadonlySet<QuotaScope>>> = {
  tenant: new Set<QuotaScope>(['global']),
  user: new Set<QuotaScope>(['global', 'tenant', 'agent']),
};

/** A rule as configured, or as the engine resolved it (with its resource). */
export type ShardCheckedRule = Pick<QuotaRule, 'scope'> & { readonly resource?: string };

/**
 * Throws a QuotaConfigError for the first rule whose scope crosses shards under `shardBy`.
 * `rules` is an engine's `defaults` map (resource -> rule or rules) or a list of rules.
 */
export function validateShardRules(
  shardBy: ShardBy,
  rules: QuotaRules | Iterable<ShardCheckedRule>,
  path: string,
): void {
  const crossing = CROSSING_SCOPES[shardBy];
  const check = (rule: ShardCheckedRule | undefined, at: string) => {
    const scope = rule?.scope ?? 'user';
    if (crossing.has(scope)) throw crossingError(shardBy, scope, at);
  };
  if (Symbol.iterator in rules) {
    let index = 0;
    for (const rule of rules as Iterable<ShardCheckedRule>) {
      check(rule, rule.resource === undefined ? `${path}.${index}` : `${path}.${rule.resource}`);
      index += 1;
    }
    return;
  }
  for (const [resource, value] of Object.entries(rules as QuotaRules)) {
    if (Array.isArray(value)) {
      for (const [index, rule] of value.entries()) check(rule, `${path}.${resource}.${index}`);
    } else {
      check(value as QuotaRule | undefined, `${path}.${resource}`);
    }
  }
}

/**
 * The first counter of a request whose rule's scope crosses shards, as a QuotaConfigError;
 * undefined when every counter fits the subject's shard. Reads the scope from the engine's
 * counter key layout, `resource|period|windowStart|scope|id` (see core's operation-plan.ts);
 * the redis tests break if that layout changes.
 */
export function crossingCounterError(
  shardBy: ShardBy,
  counters: readonly StoreCounter[],
): QuotaConfigError | undefined {
  const crossing = CROSSING_SCOPES[shardBy];
  for (const { key } of counters) {
    const scope = scopeOfCounterKey(key);
    if (scope !== undefined && crossing.has(scope as QuotaScope)) {
      return crossingError(shardBy, scope as QuotaScope, `rules of resource ${key.split('|')[0]}`);
    }
  }
  return undefined;
}

function scopeOfCounterKey(key: string): string | undefined {
  const afterPeriod = key.indexOf('|', key.indexOf('|') + 1);
  const afterWindow = afterPeriod < 0 ? -1 : key.indexOf('|', afterPeriod + 1);
  const afterScope = afterWindow < 0 ? -1 : key.indexOf('|', afterWindow + 1);
  return afterScope < 0 ? undefined : key.slice(afterWindow + 1, afterScope);
}

function crossingError(shardBy: ShardBy, scope: QuotaScope, path: string): QuotaConfigError {
  return new QuotaConfigError(
    path,
    `a '${scope}' rule counts usage across shards, which RedisStore with shardBy '${shardBy}' ` +
      `cannot keep in one slot: drop shardBy or the rule`,
  );
}
