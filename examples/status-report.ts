/**
 * A usage report for one user: every quota that binds them, with a warning for each one
 * approaching its limit (an admin page or a nightly e-mail would show the same).
 *
 *   pnpm tsx examples/status-report.ts
 */
import { pathToFileURL } from 'node:url';
import { createQuotaEngine, type QuotaStatusReport } from '@quotakit/core';

/** Seeds a day of usage, then reports it; returns the report's lines. */
export async function main(): Promise<string[]> {
  const engine = createQuotaEngine({
    defaults: {
      llm_requests: { limit: 100, period: 'per_day' },
      llm_tokens: { limit: 100_000, period: 'per_day' },
      database_queries: { limit: 500, period: 'per_hour' },
      storage_space: { limit: 1024, period: 'total' },
    },
  });
  const userId = 'carol';
  await engine.recordUsage({ userId, resource: 'llm_requests', amount: 85 });
  await engine.recordUsage({ userId, resource: 'llm_tokens', amount: 41_000 });
  await engine.recordUsage({ userId, resource: 'database_queries', amount: 490 });
  await engine.recordUsage({ userId, resource: 'storage_space', amount: 200 });

  const { quotas } = await engine.getAllQuotasStatus({ userId });
  const reports: QuotaStatusReport[] = Object.values(quotas);
  const lines = [`Quotas of ${userId}:`];
  for (const { resource, used, limit, period, status } of reports) {
    const usage = `${used} / ${limit}`.padStart(14);
    lines.push(`  ${resource.padEnd(17)} ${usage}  ${String(period).padEnd(9)} ${status}`);
  }
  // Past the warning threshold (80 % unless the rule says otherwise): time to act, before
  // requests start being refused.
  for (const report of reports) {
    if (report.status === 'approaching_limit' || report.status === 'at_limit') {
      lines.push(`Warning: ${report.message}`);
    }
  }
  await engine.close();
  return lines;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const line of await main()) console.log(line);
}
