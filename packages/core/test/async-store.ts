import type { MemoryStore } from '../src/memory-store.js';
import type { QuotaStore } from '../src/store.js';

/**
 * The store contract of a MemoryStore without its synchronous twins, so the engine takes the
 * path a networked store takes. `fail` lets a test break chosen methods.
 */
export function asyncView(
  memory: MemoryStore,
  fail: Partial<Record<keyof QuotaStore, () => Promise<never>>> = {},
): QuotaStore {
  return {
    read: fail.read ?? ((r) => memory.read(r)),
    consume: fail.consume ?? ((r) => memory.consume(r)),
    record: fail.record ?? ((r) => memory.record(r)),
    settle: fail.settle ?? ((r) => memory.settle(r)),
    getOverrides: fail.getOverrides ?? ((r) => memory.getOverrides(r)),
    setOverride: fail.setOverride ?? ((o) => memory.setOverride(o)),
    removeOverride: fail.removeOverride ?? ((k) => memory.removeOverride(k)),
    listOverrides: fail.listOverrides ?? ((f) => memory.listOverrides(f)),
    claim: fail.claim ?? ((c) => memory.claim(c)),
  };
}
