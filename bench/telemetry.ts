/**
 * What OpenTelemetry costs the in-memory engine: consume with telemetry off, on with no SDK
 * registered (the API is a no-op), and on with a real SDK (spans sampled and exported to a
 * discarding exporter, metrics aggregated by a reader), each against telemetry off in the
 * same rounds.
 */
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { createQuotaEngine, type QuotaEngine } from '@quotakit/core';
import {
  type BenchOptions,
  type BenchSuite,
  OPS_PER_SAMPLE,
  type PairedCase,
  printPairedTable,
  runPaired,
} from './harness.js';

// Never reached in a run (well under 1e8 operations), and within the range of real limits.
const HUGE = 1e9;
const amounts = { llm_requests: 1 };

/** Accepts spans and drops them: the cost measured is the SDK's, not an exporter's I/O. */
class DiscardingExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: (result: { code: 0 }) => void): void {
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

class PassiveReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

const engine = (telemetry: boolean): QuotaEngine =>
  createQuotaEngine({
    telemetry,
    defaults: { llm_requests: { limit: HUGE, period: 'per_day' } },
  });

function consumeLoop(quota: QuotaEngine): () => Promise<void> {
  return async () => {
    for (let i = 0; i < OPS_PER_SAMPLE; i++) {
      const decision = await quota.consume({ userId: 'u1', amounts });
      if (!decision.allowed) throw new Error('refused: the benchmark is wrong');
    }
  };
}

function registerSdk(): () => Promise<void> {
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(new DiscardingExporter())],
  });
  trace.setGlobalTracerProvider(tracerProvider);
  const meterProvider = new MeterProvider({ readers: [new PassiveReader()] });
  metrics.setGlobalMeterProvider(meterProvider);
  return async () => {
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
    trace.disable();
    metrics.disable();
    context.disable();
  };
}

async function run(options: BenchOptions): Promise<void> {
  // No SDK: engines are created before anything is registered.
  const withoutSdk: PairedCase[] = [
    {
      name: 'consume · telemetry on, no SDK',
      quotakit: consumeLoop(engine(true)),
      peer: consumeLoop(engine(false)),
    },
  ];
  console.log('\nNo OpenTelemetry SDK registered (the default for most applications)');
  printPairedTable(await runPaired(withoutSdk, options), 'telemetry off');

  const unregister = registerSdk();
  try {
    const withSdk: PairedCase[] = [
      {
        name: 'consume · telemetry on, SDK recording',
        quotakit: consumeLoop(engine(true)),
        peer: consumeLoop(engine(false)),
      },
    ];
    console.log('\nOpenTelemetry SDK registered: every span recorded, metrics aggregated');
    printPairedTable(await runPaired(withSdk, options), 'telemetry off');
  } finally {
    await unregister();
  }
}

export const telemetry: BenchSuite = {
  name: 'telemetry',
  title: 'the cost of OpenTelemetry on the in-memory consume path',
  run,
};
