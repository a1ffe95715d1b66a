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

/**
 * Longest id accepted, in characters (Unicode code points: an emoji counts once, though a
 * JavaScript string holds it as two UTF-16 units).
 */
export const MAX_ID_LENGTH = 512;

/**
 * Whether `id` has at most {@link MAX_ID_LENGTH} characters. Counts code points only for the
 * rare id whose UTF-16 length is over the limit.
 */
export function withinIdLength(id: string): boolean {
  if (id.length <= MAX_ID_LENGTH) return true;
  if (id.length > 2 * MAX_ID_LENGTH) return false;
  return characterCount(id) <= MAX_ID_LENGTH;
}

/** Characters (code points) of `text`, counted without making an array of them. */
export function characterCount(text: string): number {
  let characters = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one character.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i += 1;
    }
    characters += 1;
  }
  return characters;
}

/** The scopes a subject's ids bind, each with its field (no `global`: it has no id). */
export const SUBJECT_SCOPES = [
  ['user', 'userId'],
  ['agent', 'agentId'],
  ['tenant', 'tenantId'],
  ['run', 'runId'],
] as const;
