// The one Node-only entry point: AsyncLocalStorage lives in `node:async_hooks` (also offered by
// Bun, Deno and Cloudflare Workers with nodejs_compat), so the main entry never imports it.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Subject } from '@quotakit/core';
import { SUBJECT_SOURCE } from './wrapper-options.js';

type SubjectSource = () => Subject | undefined;
type SubjectSlot = { [SUBJECT_SOURCE]?: SubjectSource; [STORAGE]?: AsyncLocalStorage<Subject> };

const STORAGE = Symbol.for('quotakit.llm-wrapper.subject-storage');
const slot = globalThis as SubjectSlot;
// One storage per process, shared by every copy of this package (the main entry reads the
// subject through the global slot, so a second copy must see the same one).
slot[STORAGE] ??= new AsyncLocalStorage<Subject>();
const storage: AsyncLocalStorage<Subject> = slot[STORAGE];
slot[SUBJECT_SOURCE] ??= () => storage.getStore();

/**
 * Runs `fn` with `subject` as the quota subject of every wrapped call made inside it, however
 * deep and across awaits (AsyncLocalStorage). A `subject` passed in `withQuota` or
 * `quotaMiddleware` options comes first; a subject function returning `undefined` falls back
 * to this one. Nested calls replace the subject for their inner scope. Returns what `fn`
 * returns.
 *
 * @example
 * import { runWithQuotaSubject } from '@quotakit/llm-wrapper/node';
 *
 * app.use((req, res, next) => runWithQuotaSubject({ userId: req.user.id }, next));
 * // ...later, anywhere in the request:
 * await openai.chat.completions.create({ ... }); // charged to req.user.id
 */
export function runWithQuotaSubject<T>(subject: Subject, fn: () => T): T {
  return storage.run({ ...subject }, fn);
}

/** The subject set by the innermost {@link runWithQuotaSubject}, if any. */
export function currentQuotaSubject(): Subject | undefined {
  return storage.getStore();
}
