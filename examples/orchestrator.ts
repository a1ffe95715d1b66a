/**
 * An orchestrator in front of agents: before planning a user's request it asks QuotaKit
 * whether the task fits the user's quotas, and answers with the quota's message when it does
 * not, instead of starting work that would be cut off.
 *
 *   pnpm tsx examples/orchestrator.ts
 */
import { pathToFileURL } from 'node:url';
import { createQuotaEngine, type QuotaEngine } from '@quotakit/core';

/** Handles one chat request: a reply from the agent, or the reason it cannot run. */
async function handleRequest(engine: QuotaEngine, userId: string, text: string): Promise<string> {
  const task = { description: text, createdBy: userId, agentId: 'assistant' };
  const check = await engine.checkTaskQuota(task);
  if (!check.allAllowed) {
    const refused = Object.values(check.results).find((result) => !result.allowed)!;
    return refused.message;
  }
  return engine.runTask(task, async (ctx) => {
    // The agent would plan and call tools here; it spends one model call.
    await ctx.record('llm_requests', 1);
    return `On it: ${text}`;
  });
}

/** One user sends four requests with room for three; returns the replies. */
export async function main(): Promise<string[]> {
  const engine = createQuotaEngine({
    defaults: {
      llm_requests: { limit: 3, period: 'per_day' },
      concurrent_tasks: { limit: 1, period: 'total' },
    },
  });
  const replies: string[] = [];
  for (const text of [
    'Find flights to Lisbon',
    'Book a table for two',
    'Какая погода в Москве?',
    'Remind me at 9',
  ]) {
    replies.push(await handleRequest(engine, 'bob', text));
  }
  await engine.close();
  return replies;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const reply of await main()) console.log(reply);
}
