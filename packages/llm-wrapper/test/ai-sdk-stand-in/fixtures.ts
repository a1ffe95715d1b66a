import { createOpenAI } from '@ai-sdk/openai';
import {
  createQuotaEngine,
  MemoryStore,
  type QuotaEngine,
  type QuotaEngineOptions,
  type QuotaStore,
  type UsageEvent,
} from '@quotakit/core';
import { type QuotaModelMiddlewareOptions, quotaMiddleware } from '@quotakit/llm-wrapper';
import { wrapLanguageModel } from 'ai';
import type { StandIn } from './server.js';

export const SUBJECT = { userId: 'u1' } as const;

/** The real `@ai-sdk/openai` Chat Completions model, talking to the stand-in over HTTP. */
export function openaiChatModel(standIn: StandIn, modelId = 'gpt-4o') {
  return createOpenAI({ baseURL: standIn.baseURL, apiKey: 'test-key' }).chat(modelId);
}

export const DEFAULT_RULES: QuotaEngineOptions['defaults'] = {
  llm_requests: { limit: 100, period: 'per_day' },
  llm_tokens: { limit: 100_000, period: 'per_day' },
};

/** Rules of a single daily limit of `limit` tokens. */
export function tokensPerDay(limit: number): QuotaEngineOptions['defaults'] {
  return { llm_tokens: { limit, period: 'per_day' } };
}

/** Records `amount` tokens as already used by SUBJECT today, as earlier calls would have. */
export async function spendTokens(engine: QuotaEngine, amount: number): Promise<void> {
  await engine.recordUsage({ ...SUBJECT, resource: 'llm_tokens', amount });
}

/** The fast estimate (a quarter of the characters, rounded up) that the tests configure. */
export const fastTokens = (text: string) => Math.ceil(text.length / 4);
/** What the middleware estimates for a prompt of one user message: the text + 4 of framing. */
export const userPromptTokens = (text: string) => 4 + fastTokens(text);

export interface Setup {
  engine: QuotaEngine;
  /** The stand-in's OpenAI chat model wrapped with quotaMiddleware. */
  model: ReturnType<typeof wrapLanguageModel>;
  used(resource: string, subject?: { userId: string }): Promise<number | null>;
  events(resource: string): Promise<UsageEvent[]>;
}

export function setup(
  standIn: StandIn,
  options: Partial<QuotaModelMiddlewareOptions> = {},
  rules: QuotaEngineOptions['defaults'] = DEFAULT_RULES,
  store: QuotaStore = new MemoryStore(),
): Setup {
  const engine = createQuotaEngine({ defaults: rules, store });
  const model = wrapLanguageModel({
    model: openaiChatModel(standIn),
    middleware: quotaMiddleware({ engine, subject: SUBJECT, estimator: 'fast', ...options }),
  });
  return {
    engine,
    model,
    used: async (resource, subject = SUBJECT) =>
      (await engine.getQuotaStatus(resource, subject)).used,
    async events(resource) {
      const found: UsageEvent[] = [];
      for await (const event of engine.usageEvents({
        from: new Date(0),
        to: new Date(Date.now() + 86_400_000),
        resource,
      })) {
        found.push(event);
      }
      return found;
    },
  };
}

/**
 * A store whose writes land a few milliseconds late, as over a network: what the middleware
 * does not await before the consumer sees the end is then visibly missing.
 */
export function slowWriteStore(): QuotaStore {
  const memory = new MemoryStore();
  const later = () => new Promise((resolve) => setTimeout(resolve, 10));
  return {
    read: (request) => memory.read(request),
    consume: (request) => memory.consume(request),
    record: async (request) => {
      await later();
      return memory.record(request);
    },
    settle: async (request) => {
      await later();
      return memory.settle(request);
    },
    getOverrides: (request) => memory.getOverrides(request),
    setOverride: (override) => memory.setOverride(override),
    removeOverride: (key) => memory.removeOverride(key),
    listOverrides: (filter) => memory.listOverrides(filter),
    claim: (request) => memory.claim(request),
  };
}
