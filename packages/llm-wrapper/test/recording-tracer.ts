import { type Attributes, context, type SpanStatus, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  type ReadableSpan,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll } from 'vitest';

/** A span as the tests read it: live, so that `ended` and late attributes show. */
export interface RecordedSpan {
  readonly name: string;
  readonly attributes: Attributes;
  readonly status: SpanStatus;
  readonly ended: boolean;
  readonly spanId: string;
  /** The parent span's id; undefined for a root span. */
  readonly parentSpanId: string | undefined;
}

/** The real SDK's spans, each kept from its start (an exporter would only see ended ones). */
class RecordingProcessor implements SpanProcessor {
  readonly #spans: RecordedSpan[];

  constructor(spans: RecordedSpan[]) {
    this.#spans = spans;
  }

  onStart(span: ReadableSpan): void {
    this.#spans.push({
      get name() {
        return span.name;
      },
      get attributes() {
        return span.attributes;
      },
      get status() {
        return span.status;
      },
      get ended() {
        return span.ended;
      },
      spanId: span.spanContext().spanId,
      parentSpanId: span.parentSpanContext?.spanId,
    });
  }

  onEnd(): void {}

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Records the spans of the calling test file's tests with the real OpenTelemetry SDK and an
 * AsyncLocalStorage context manager (as NodeSDK registers one): returns the array they are
 * kept in.
 */
export function recordSpansForFile(): RecordedSpan[] {
  const spans: RecordedSpan[] = [];
  const contextManager = new AsyncLocalStorageContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(contextManager.enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new RecordingProcessor(spans)] }),
    );
  });
  afterAll(() => {
    trace.disable();
    context.disable();
  });
  return spans;
}
