/**
 * The eleven built-in resources. String values are part of the API: they appear in JSON,
 * in store keys and in the messages.
 *
 * Users may add resources of their own (for example `cost_usd`) simply by configuring a
 * rule for them; such resources are counters.
 *
 * @example
 * engine.checkQuota({ resource: ResourceType.LLM_TOKENS, amount: 500, userId: 'u1' });
 */
export const ResourceType = {
  LLM_REQUESTS: 'llm_requests',
  LLM_TOKENS: 'llm_tokens',
  DATABASE_QUERIES: 'database_queries',
  FILE_OPERATIONS: 'file_operations',
  NETWORK_REQUESTS: 'network_requests',
  /** Seconds of execution. */
  EXECUTION_TIME: 'execution_time',
  /** Megabytes currently in use (a gauge). */
  MEMORY_USAGE: 'memory_usage',
  /** Megabytes currently stored (a gauge). */
  STORAGE_SPACE: 'storage_space',
  /** Tasks running right now (a gauge). */
  CONCURRENT_TASKS: 'concurrent_tasks',
  AGENT_CREATIONS: 'agent_creations',
  TOOL_CREATIONS: 'tool_creations',
} as const;

/** One of the eleven built-in resource names. */
export type ResourceType = (typeof ResourceType)[keyof typeof ResourceType];

/**
 * A resource name: a built-in {@link ResourceType} or a custom name that has a rule.
 * The `string & {}` keeps editor completion for the built-in names.
 */
export type ResourceName = ResourceType | (string & {});

/** All built-in resource names, in declaration order. */
export const RESOURCE_TYPES: readonly ResourceType[] = Object.freeze(Object.values(ResourceType));

/**
 * How a resource behaves over time.
 * - `counter`: accumulates within a period (requests, tokens, seconds, creations).
 * - `gauge`: a current level that goes up and down (concurrency, memory, storage);
 *   recording a negative amount on a gauge releases that much.
 */
export type ResourceKind = 'counter' | 'gauge';

const GAUGES: ReadonlySet<string> = new Set<string>([
  ResourceType.CONCURRENT_TASKS,
  ResourceType.MEMORY_USAGE,
  ResourceType.STORAGE_SPACE,
]);

const BUILT_IN: ReadonlySet<string> = new Set<string>(RESOURCE_TYPES);

/** The kind of a resource; custom resources are counters. */
export function resourceKind(resource: string): ResourceKind {
  return GAUGES.has(resource) ? 'gauge' : 'counter';
}

/** Whether `resource` is one of the eleven built-in names. */
export function isBuiltInResource(resource: string): resource is ResourceType {
  return BUILT_IN.has(resource);
}
