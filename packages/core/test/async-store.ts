import { MemoryLedger } from '../src/memory-ledger.js';
import type { MemoryStore } from '../src/memory-store.js';
import type { QuotaStore } from '../src/store.js';
import type { UsageEvent } from '../src/usage-ledger.js';

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
    listVersionedOverrides: fail.listVersionedOverrides ?? (() => memory.listVersionedOverrides()),
    claim: fail.claim ?? ((c) => memory.claim(c)),
  };
}

/**
 * A MemoryStore that keeps its own ledger the way PostgresStore does: the usage events of an
 * operation are appended in the same step as its counters change, and only when they do.
 */
export function withOwnLedger(memory: MemoryStore, ledger = new MemoryLedger()): QuotaStore {
  const append = (usage: readonly UsageEvent[] | undefined) => {
    if (usage !== undefined && usage.length > 0) void ledger.append(usage);
  };
  return {
    ...asyncView(memory),
    ledger,
    consume: async (request) => {
      const outcome = memory.consumeSync(request);
      if (outcome.allowed && request.hold === undefined) append(request.usage);
      return outcome;
    },
    record: async (request) => {
      const outcome = memory.recordSync(request);
      if (!outcome.duplicate) append(request.usage);
      return outcome;
    },
    settle: async (request) => {
      const outcome = memory.settleSync(request);
      append(request.usage);
      return outcome;
    },
  };
}
