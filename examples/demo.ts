/**
 * `pnpm demo`: the engine at work on the in-memory store. Three users of an agent platform
 * spend LLM tokens through the day; each row is one call, with the decision and the status
 * it moved the user to. The clock is simulated, so the demo runs in a blink.
 */
import { pathToFileURL } from 'node:url';
import { createQuotaEngine, type QuotaCheckResult } from '@quotakit/core';

/** One call of the demo: who asked for how much, what was decided, where it left them. */
export type DemoRow = Record<string, string | number>;

/** Runs the demo's calls on a fresh engine: the table's rows, then where each user stands. */
export async function main(): Promise<{ rows: DemoRow[]; standing: string[] }> {
  let now = Date.parse('2026-11-28T09:00:00Z');

  const engine = createQuotaEngine({
    clock: () => now,
    defaults: {
      llm_requests: { limit: 6, period: 'per_day' },
      llm_tokens: [
        { limit: 10_000, period: 'per_day' },
        { limit: 4_000, period: 'per_minute', algorithm: 'sliding' },
      ],
      concurrent_tasks: { limit: 2, period: 'total' },
    },
    overrides: { users: { carol: { llm_tokens: { limit: 30_000, period: 'per_day' } } } },
  });

  const calls: Array<[user: string, tokens: number]> = [
    ['alice', 1_500],
    ['bob', 3_000],
    ['alice', 2_500],
    ['carol', 3_900],
    ['alice', 3_000],
    ['bob', 3_500],
    ['alice', 1_200],
    ['bob', 2_900],
    ['alice', 2_000],
    ['carol', 3_900],
    ['bob', 1_000],
    ['alice', 500],
    ['alice', 800],
    ['bob', 2_000],
    ['carol', 3_900],
  ];

  const rows: DemoRow[] = [];
  for (const [user, tokens] of calls) {
    now += 45_000;
    const lease = await engine.acquire({ userId: user, ttlMs: 60_000 });
    const reservation = await engine.reserve({
      userId: user,
      amounts: { llm_requests: 1, llm_tokens: tokens },
      ttlMs: 30_000,
    });
    const tokenResult = reservation.results.llm_tokens as QuotaCheckResult;
    if (reservation.allowed) {
      // The model answered with a little less than the estimate: commit what was really spent.
      await reservation.commit({ llm_tokens: Math.round(tokens * 0.9) });
    }
    await lease.release();
    const after = await engine.getQuotaStatus('llm_tokens', { userId: user });
    const daily = after.rules.find((rule) => rule.period === 'per_day');
    rows.push({
      time: new Date(now).toISOString().slice(11, 19),
      user,
      asked: tokens,
      decision: reservation.allowed ? 'allowed' : 'REFUSED',
      'binding rule': `${tokenResult.limit} ${tokenResult.period}`,
      'used today': daily?.used ?? '?',
      'daily limit': daily?.limit ?? '-',
      // The decision's status, judged on its binding rule (the one with the least left).
      status: tokenResult.status,
    });
  }

  const standing: string[] = [];
  for (const user of ['alice', 'bob', 'carol']) {
    const { quotas } = await engine.getAllQuotasStatus({ userId: user });
    standing.push(`${user.padEnd(6)} ${quotas.llm_tokens!.message}`);
  }
  await engine.close();
  return { rows, standing };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { rows, standing } = await main();
  console.log('QuotaKit demo: three users spending LLM tokens (in-memory store)\n');
  console.table(rows);
  console.log('\nWhere everyone stands:');
  for (const line of standing) console.log(`  ${line}`);
}
