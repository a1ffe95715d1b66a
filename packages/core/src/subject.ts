/**
 * Who a call is made for. Each id binds the subject to the rules of that scope; a subject
 * without an id in a scope is not bound by that scope's rules (global rules bind everyone).
 * Ids are data, never code: any string of 1 to 512 characters is safe.
 */
export interface Subject {
  userId?: string;
  agentId?: string;
  tenantId?: string;
  /** One run of an agent, for per-run budgets. */
  runId?: string;
}

/** Longest id accepted, in UTF-16 code units. */
export const MAX_ID_LENGTH = 512;

/** The scopes a subject's ids bind, each with its field (no `global`: it has no id). */
export const SUBJECT_SCOPES = [
  ['user', 'userId'],
  ['agent', 'agentId'],
  ['tenant', 'tenantId'],
  ['run', 'runId'],
] as const;
