import {
  type Attributes,
  type AttributeValue,
  type Span,
  type SpanStatus,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { afterAll, beforeAll } from 'vitest';

export interface RecordedSpan {
  name: string;
  attributes: Attributes;
  status: SpanStatus | undefined;
  ended: boolean;
}

/** A tracer provider that keeps every span's name, attributes and status in `spans`. */
export function recordingTracerProvider(spans: RecordedSpan[]): TracerProvider {
  const tracer: Tracer = {
    startSpan(name) {
      const recorded: RecordedSpan = { name, attributes: {}, status: undefined, ended: false };
      spans.push(recorded);
      const span: Span = {
        spanContext: () => ({
          traceId: `${'0'.repeat(31)}1`,
          spanId: `${'0'.repeat(15)}1`,
          traceFlags: 1,
        }),
        setAttribute: (key: string, value: AttributeValue) => {
          recorded.attributes[key] = value;
          return span;
        },
        setAttributes: (attributes: Attributes) => {
          Object.assign(recorded.attributes, attributes);
          return span;
        },
        addEvent: () => span,
        addLink: () => span,
        addLinks: () => span,
        setStatus: (status: SpanStatus) => {
          recorded.status = status;
          return span;
        },
        updateName: () => span,
        end: () => {
          recorded.ended = true;
        },
        isRecording: () => !recorded.ended,
        recordException: () => undefined,
      };
      return span;
    },
    startActiveSpan: (() => {
      throw new Error('not used by QuotaKit');
    }) as Tracer['startActiveSpan'],
  };
  return { getTracer: () => tracer };
}

/** Records the spans of the calling test file's tests: returns the array they are kept in. */
export function recordSpansForFile(): RecordedSpan[] {
  const spans: RecordedSpan[] = [];
  beforeAll(() => {
    trace.setGlobalTracerProvider(recordingTracerProvider(spans));
  });
  afterAll(() => {
    trace.disable();
  });
  return spans;
}
