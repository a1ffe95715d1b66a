import { describe, expect, it } from 'vitest';
import { createQuotaEngine } from '../src/engine.js';

describe('under contention the engine never admits past a limit', () => {
  const engine = () =>
    createQuotaEngine({
      defaults: {
        llm_requests: [
          { limit: 1000, period: 'per_day' },
          { limit: 5000, period: 'per_minute', scope: 'global' },
        ],
      },
    });

  it('admits exactly 1,000 of 10,000 concurrent consumes', async () => {
    const quota = engine();
    const decisions = await Promise.all(
      Array.from({ length: 10_000 }, () =>
        quota.consume({ userId: 'hot', amounts: { llm_requests: 1 } }),
      ),
    );
    expect(decisions.filter((d) => d.allowed)).toHaveLength(1000);
    expect((await quota.getQuotaStatus('llm_requests', { userId: 'hot' })).used).toBe(1000);
  });

  it('admits exactly 1,000 of 10,000 concurrent reserves, and commits them exactly', async () => {
    const quota = engine();
    const reservations = await Promise.all(
      Array.from({ length: 10_000 }, () =>
        quota.reserve({ userId: 'hot', amounts: { llm_requests: 1 }, ttlMs: 60_000 }),
      ),
    );
    const admitted = reservations.filter((r) => r.allowed);
    expect(admitted).toHaveLength(1000);
    // Half commit what they reserved, half give it back.
    await Promise.all(admitted.map((r, i) => (i % 2 ? r.commit() : r.release())));
    expect((await quota.getQuotaStatus('llm_requests', { userId: 'hot' })).used).toBe(500);
  });

  it('takes exactly as many concurrent leases as concurrent_tasks allows', async () => {
    const quota = createQuotaEngine({
      defaults: { concurrent_tasks: { limit: 4, period: 'total' } },
    });
    const leases = await Promise.all(
      Array.from({ length: 200 }, () => quota.acquire({ userId: 'hot', ttlMs: 60_000 })),
    );
    expect(leases.filter((l) => l.allowed)).toHaveLength(4);
  });
});
