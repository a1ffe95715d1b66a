/**
 * An agent framework's ExecutionService on QuotaKit: check a task before it is queued, run
 * it under a concurrency slot, and record the LLM requests and tokens it really spent.
 *
 *   pnpm tsx examples/execution-service.ts
 */
import { pathToFileURL } from 'node:url';
import { createQuotaEngine, type QuotaEngine, type QuotaTask } from '@quotakit/core';

/** Stands in for a model SDK: answers at once and bills about a token per 4 characters. */
async function callModel(prompt: string, signal: AbortSignal) {
  signal.throwIfAborted();
  return {
    text: `Done: ${prompt.toLowerCase()}`,
    usage: { totalTokens: Math.ceil(prompt.length / 4) + 400 },
  };
}

class ExecutionService {
  constructor(private readonly engine: QuotaEngine) {}

  /** Runs the task when its quotas allow; otherwise says which quota refused it. */
  async execute(task: QuotaTask): Promise<string> {
    // Before the task is queued: is there room for what it is estimated to spend?
    const check = await this.engine.checkTaskQuota(task);
    if (!check.allAllowed) {
      const refused = Object.values(check.results).filter((result) => !result.allowed);
      const estimated = `${check.estimates.llm_requests} LLM requests`;
      return `refused (estimated ${estimated}): ${refused.map((r) => r.message).join(' ')}`;
    }
    // runTask checks again (usage may have moved since), holds a concurrent_tasks slot while
    // the task runs, records execution_time and frees the slot, also if the model throws.
    return this.engine.runTask(
      task,
      async (ctx) => {
        const reply = await callModel(task.description, ctx.signal);
        await ctx.record('llm_requests', 1);
        await ctx.record('llm_tokens', reply.usage.totalTokens);
        return reply.text;
      },
      { timeoutMs: 30_000 },
    );
  }
}

/** Runs three tasks for one user on a small daily budget; returns what it prints. */
export async function main(): Promise<string[]> {
  const engine = createQuotaEngine({
    defaults: {
      llm_requests: { limit: 4, period: 'per_day' },
      llm_tokens: { limit: 20_000, period: 'per_day' },
      execution_time: { limit: 3600, period: 'per_day' },
      concurrent_tasks: { limit: 2, period: 'total' },
    },
  });
  const service = new ExecutionService(engine);
  const tasks: QuotaTask[] = [
    { id: 'task-1', createdBy: 'alice', description: 'Summarize the quarterly report' },
    { id: 'task-2', createdBy: 'alice', description: 'Translate the summary into Russian' },
    { id: 'task-3', createdBy: 'alice', description: 'Analyze churn and compare regions' },
  ];
  const lines: string[] = [];
  for (const task of tasks) {
    lines.push(`${task.id}: ${await service.execute(task)}`);
  }
  const { quotas } = await engine.getAllQuotasStatus({ userId: 'alice' });
  lines.push(
    `alice has used ${quotas.llm_requests!.used} LLM requests and ${quotas.llm_tokens!.used} tokens today`,
  );
  await engine.close();
  return lines;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const line of await main()) console.log(line);
}
