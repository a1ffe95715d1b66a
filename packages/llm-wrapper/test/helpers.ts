import Anthropic from '@anthropic-ai/sdk';
import {
  createQuotaEngine,
  type QuotaEngine,
  type QuotaEngineOptions,
  type Subject,
  type UsageEvent,
} from '@quotakit/core';
import OpenAI from 'openai';
import type { StandInProvider } from './stand-in/index.js';

/** An engine with generous daily budgets unless the test gives its own rules. */
export function testEngine(
  defaults: Parameters<typeof createQuotaEngine>[0] extends infer O
    ? O extends { defaults?: infer D }
      ? D
      : never
    : never = {
    llm_requests: { limit: 1_000, period: 'per_day' },
    llm_tokens: { limit: 1_000_000, period: 'per_day' },
  },
): QuotaEngine {
  return createQuotaEngine({ defaults });
}

/** Daily rules of ten requests and `tokens` tokens: a budget a test can run out of. */
export function smallDailyBudget(tokens: number): QuotaEngineOptions['defaults'] {
  return {
    llm_requests: { limit: 10, period: 'per_day' },
    llm_tokens: { limit: tokens, period: 'per_day' },
  };
}

export function openaiClient(standIn: StandInProvider, maxRetries = 0): OpenAI {
  return new OpenAI({ baseURL: standIn.openaiBaseURL, apiKey: 'test-key', maxRetries });
}

export function anthropicClient(standIn: StandInProvider, maxRetries = 0): Anthropic {
  return new Anthropic({ baseURL: standIn.anthropicBaseURL, apiKey: 'test-key', maxRetries });
}

/** Every usage event of a subject, oldest first. */
export async function usageEvents(engine: QuotaEngine, subject: Subject): Promise<UsageEvent[]> {
  const events: UsageEvent[] = [];
  for await (const event of engine.usageEvents({
    from: new Date(0),
    to: new Date(Date.now() + 60_000),
    ...subject,
  })) {
    events.push(event);
  }
  return events;
}

/** The llm_tokens usage events of a subject, oldest first. */
export async function tokenEvents(engine: QuotaEngine, subject: Subject): Promise<UsageEvent[]> {
  return (await usageEvents(engine, subject)).filter((event) => event.resource === 'llm_tokens');
}

/** What the counters say a subject has used, by resource. */
export async function used(
  engine: QuotaEngine,
  subject: Subject,
  resources: readonly string[] = ['llm_requests', 'llm_tokens'],
): Promise<Record<string, number | null>> {
  const out: Record<string, number | null> = {};
  for (const resource of resources)
    out[resource] = (await engine.getQuotaStatus(resource, subject)).used;
  return out;
}

/** The total recorded per resource in the ledger. */
export async function recorded(
  engine: QuotaEngine,
  subject: Subject,
): Promise<Record<string, number>> {
  const totals: Record<string, number> = {};
  for (const event of await usageEvents(engine, subject)) {
    totals[event.resource] = (totals[event.resource] ?? 0) + event.amount;
  }
  return totals;
}

/** A short chat prompt: the fast estimate counts it 'hi' = 1 + 4 per message + 3 priming = 8. */
export const HI = [{ role: 'user' as const, content: 'hi' }];
export const HI_ESTIMATE = 8;
