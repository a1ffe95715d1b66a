import { context, metrics, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQuotaEngine } from '../src/engine.js';
import { MemoryStore } from '../src/memory-store.js';
import { withSpanAttributes } from '../src/telemetry.js';
import { asyncView } from './async-store.js';

class CollectingReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

const spans = new InMemorySpanExporter();
const reader = new CollectingReader();
const meterProvider = new MeterProvider({ readers: [reader] });

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
  );
  metrics.setGlobalMeterProvider(meterProvider);
});

afterAll(() => {
  trace.disable();
  metrics.disable();
  context.disable();
});

beforeEach(() => spans.reset());

async function metric(name: string) {
  const { resourceMetrics } = (await reader.collect()) as { resourceMetrics: ResourceMetrics };
  return resourceMetrics.scopeMetrics
    .flatMap((scope) => scope.metrics)
    .find((m) => m.descriptor.name === name);
}

const defaults = { llm_tokens: { limit: 1000, period: 'per_day' as const } };

describe('OpenTelemetry', () => {
  it('records quota.consume as a child of the active span, with the quota attributes', async () => {
    const engine = createQuotaEngine({ defaults });
    const tracer = trace.getTracer('app');
    await tracer.startActiveSpan('agent.step', async (parent) => {
      await engine.consume({ userId: 'u', amounts: { llm_tokens: 850 } });
      parent.end();
    });
    const consume = spans.getFinishedSpans().find((span) => span.name === 'quota.consume')!;
    const parent = spans.getFinishedSpans().find((span) => span.name === 'agent.step')!;
    expect(consume.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(consume.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(consume.attributes).toMatchObject({
      'quota.resource': 'llm_tokens',
      'quota.status': 'approaching_limit',
      'quota.allowed': true,
      'quota.limit': 1000,
      'quota.used': 850,
      'quota.remaining': 150,
      'quota.scope': 'user',
    });
  });

  it('names a span for every operation', async () => {
    const engine = createQuotaEngine({ defaults });
    await engine.checkQuota({ userId: 'u', resource: 'llm_tokens', amount: 10 });
    const reservation = await engine.reserve({ userId: 'u', amounts: { llm_tokens: 10 } });
    await reservation.commit({ llm_tokens: 5 });
    await engine.recordUsage({ userId: 'u', resource: 'llm_tokens', amount: 1 });
    expect(spans.getFinishedSpans().map((span) => span.name)).toEqual([
      'quota.check',
      'quota.reserve',
      'quota.commit',
      'quota.record',
    ]);
  });

  it('marks a refusal on the span and an unknown decision as an error', async () => {
    const refusing = createQuotaEngine({ defaults });
    await refusing.consume({ userId: 'u', amounts: { llm_tokens: 2000 } });
    const failing = createQuotaEngine({
      defaults,
      store: asyncView(new MemoryStore(), { consume: () => Promise.reject(new Error('down')) }),
    });
    await failing.consume({ userId: 'u', amounts: { llm_tokens: 1 } });
    const [refused, unknown] = spans.getFinishedSpans();
    expect(refused!.attributes).toMatchObject({
      'quota.allowed': false,
      'quota.status': 'exceeded',
    });
    expect(refused!.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(unknown!.attributes['quota.status']).toBe('unknown');
    expect(unknown!.status.code).toBe(SpanStatusCode.ERROR);
  });

  it('records bad input as an exception on the span', async () => {
    const engine = createQuotaEngine({ defaults });
    await expect(engine.consume({ userId: '', amounts: { llm_tokens: 1 } })).rejects.toThrow();
    const [span] = spans.getFinishedSpans();
    expect(span!.status.code).toBe(SpanStatusCode.ERROR);
    expect(span!.events.map((event) => event.name)).toContain('exception');
  });

  it('counts decisions by status, usage by resource, and operation latency', async () => {
    const engine = createQuotaEngine({
      defaults: { llm_requests: { limit: 2, period: 'per_day' } },
    });
    for (let i = 0; i < 3; i++) await engine.consume({ userId: 'm', amounts: { llm_requests: 1 } });
    const decisions = await metric('quota.decisions');
    const byStatus = Object.fromEntries(
      decisions!.dataPoints
        .filter((point) => point.attributes['quota.resource'] === 'llm_requests')
        .map((point) => [point.attributes['quota.status'], point.value]),
    );
    expect(byStatus).toMatchObject({ within_limit: 1, at_limit: 1, exceeded: 1 });
    const usage = await metric('quota.usage');
    const requests = usage!.dataPoints.find(
      (p) => p.attributes['quota.resource'] === 'llm_requests',
    );
    expect(requests!.value).toBe(2);
    const duration = await metric('quota.operation.duration');
    expect(duration!.descriptor.unit).toBe('s');
    const consumes = duration!.dataPoints.find(
      (p) => p.attributes['quota.operation'] === 'consume',
    );
    expect((consumes!.value as { count: number }).count).toBeGreaterThanOrEqual(3);
  });

  it('counts as usage what was spent: commits, not the holds before them', async () => {
    const engine = createQuotaEngine({
      defaults: {
        llm_tokens: { limit: 1_000, period: 'per_day' },
        storage_space: { limit: 1_000, period: 'total' },
      },
    });
    // The reader's sums run over the whole file: compare against where they stood.
    const spentSoFar = async () =>
      Object.fromEntries(
        ((await metric('quota.usage'))?.dataPoints ?? []).map((point) => [
          point.attributes['quota.resource'],
          point.value as number,
        ]),
      );
    const before = await spentSoFar();
    const committed = await engine.reserve({ userId: 's', amounts: { llm_tokens: 100 } });
    await committed.commit({ llm_tokens: 30 });
    const released = await engine.reserve({ userId: 's', amounts: { llm_tokens: 50 } });
    await released.release();
    await engine.recordUsage({ userId: 's', resource: 'llm_tokens', amount: 5 });
    await engine.consume({ userId: 's', amounts: { llm_tokens: 7 } });
    // A gauge freed again: the engine's usage goes down, the spent total does not.
    await engine.recordUsage({ userId: 's', resource: 'storage_space', amount: 40 });
    await engine.recordUsage({ userId: 's', resource: 'storage_space', amount: -40 });

    const status = await engine.getQuotaStatus('llm_tokens', { userId: 's' });
    expect(status.used).toBe(42);
    const after = await spentSoFar();
    expect((after.llm_tokens ?? 0) - (before.llm_tokens ?? 0)).toBe(42);
    expect((after.storage_space ?? 0) - (before.storage_space ?? 0)).toBe(40);
  });

  it('adds the attributes of withSpanAttributes to every quota span under it', async () => {
    const engine = createQuotaEngine({ defaults });
    const outer = withSpanAttributes(context.active(), { 'gen_ai.request.model': 'm1' });
    const inner = withSpanAttributes(outer, { 'gen_ai.usage.input_tokens': 12 });
    await context.with(inner, () => engine.consume({ userId: 'a', amounts: { llm_tokens: 1 } }));
    await engine.consume({ userId: 'a', amounts: { llm_tokens: 1 } });
    const [within, outside] = spans.getFinishedSpans();
    expect(within?.attributes).toMatchObject({
      'gen_ai.request.model': 'm1',
      'gen_ai.usage.input_tokens': 12,
      'quota.resource': 'llm_tokens',
    });
    expect(outside?.attributes['gen_ai.request.model']).toBeUndefined();
  });

  it('reports metrics from an engine made before the meter provider was registered', async () => {
    metrics.disable();
    const engine = createQuotaEngine({ defaults: { memory_usage: { limit: 9, period: 'total' } } });
    const lateReader = new CollectingReader();
    try {
      await engine.consume({ userId: 'late', amounts: { memory_usage: 1 } });
      metrics.setGlobalMeterProvider(new MeterProvider({ readers: [lateReader] }));
      await engine.consume({ userId: 'late', amounts: { memory_usage: 2 } });
      const { resourceMetrics } = (await lateReader.collect()) as {
        resourceMetrics: ResourceMetrics;
      };
      const usage = resourceMetrics.scopeMetrics
        .flatMap((scope) => scope.metrics)
        .find((m) => m.descriptor.name === 'quota.usage');
      // Only what was recorded once a provider was there.
      expect(usage?.dataPoints.map((point) => point.value)).toEqual([2]);
    } finally {
      metrics.disable();
      metrics.setGlobalMeterProvider(meterProvider);
    }
  });

  it('sends no prompt text or subject ids into span attributes', async () => {
    const engine = createQuotaEngine({ defaults });
    await engine.consume({ userId: 'secret-user@example.com', amounts: { llm_tokens: 1 } });
    const serialized = JSON.stringify(spans.getFinishedSpans().map((span) => span.attributes));
    expect(serialized).not.toContain('secret-user');
  });

  it('can be turned off', async () => {
    const engine = createQuotaEngine({ defaults, telemetry: false });
    await engine.consume({ userId: 'u', amounts: { llm_tokens: 1 } });
    expect(spans.getFinishedSpans()).toHaveLength(0);
  });
});
