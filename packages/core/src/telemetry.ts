import {
  type Attributes,
  type Counter,
  context,
  createNoopMeter,
  type Histogram,
  metrics,
  ProxyTracerProvider,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { QuotaCheckResult } from './results.js';
import { VERSION } from './version.js';

/** The engine operations that get a span, named `quota.<operation>`. */
export type QuotaOperation = 'check' | 'consume' | 'reserve' | 'commit' | 'record';

const SCOPE = '@quotakit/core';
const SPAN_OPTIONS = Object.freeze({ kind: SpanKind.INTERNAL });
// The API's no-op provider, as a fresh proxy reports it before anything is registered.
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

/** Whether an application registered a tracer provider (otherwise spans are no-ops). */
function tracingRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return (
    !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_TRACER_PROVIDER
  );
}

const SPAN_NAMES: Readonly<Record<QuotaOperation, string>> = {
  check: 'quota.check',
  consume: 'quota.consume',
  reserve: 'quota.reserve',
  commit: 'quota.commit',
  record: 'quota.record',
};

/** An operation in flight: its span and its start time. */
export interface OperationTrace {
  readonly operation: QuotaOperation;
  readonly span: Span;
  readonly startedAt: number;
}

/**
 * Spans and metrics through `@opentelemetry/api` alone: a no-op until the application
 * registers an SDK. Attribute objects are built only when a span is recording. Prompt text
 * never reaches telemetry: only resource names, amounts, statuses and limits do.
 *
 * Spans: `quota.check`, `quota.consume`, `quota.reserve`, `quota.commit`, `quota.record`,
 * children of the caller's active span, with `quota.resource`, `quota.status`,
 * `quota.allowed`, `quota.limit`, `quota.used`, `quota.remaining`, `quota.scope` of the
 * deciding result (the first refused one, else the first), and status ERROR when the store
 * failed. Metrics: `quota.usage` (amounts recorded, by resource), `quota.decisions` (by
 * operation, resource, status and allowed), `quota.operation.duration` (seconds, by
 * operation).
 */
export class QuotaTelemetry {
  readonly #tracer: Tracer;
  /** Instruments, or undefined when no meter provider is registered (nothing to pay for). */
  readonly #instruments:
    | { readonly usage: Counter; readonly decisions: Counter; readonly duration: Histogram }
    | undefined;

  constructor() {
    // The API's proxy tracer forwards to an SDK registered later, so it can be kept. Meters
    // have no such proxy: create the engine after registering a MeterProvider (as with any
    // instrumented library); with none registered, metrics cost nothing at all.
    this.#tracer = trace.getTracer(SCOPE, VERSION);
    const meter = metrics.getMeter(SCOPE, VERSION);
    if (meter === createNoopMeter()) return;
    this.#instruments = {
      usage: meter.createCounter('quota.usage', {
        description: 'Amounts recorded, by resource',
      }),
      decisions: meter.createCounter('quota.decisions', {
        description: 'Quota decisions, by operation, resource, status and allowed',
      }),
      duration: meter.createHistogram('quota.operation.duration', {
        description: 'Duration of quota engine operations',
        unit: 's',
      }),
    };
  }

  /**
   * Starts the span of an operation, as a child of the active span; undefined when neither
   * a tracer nor a meter provider is registered, so that the engine skips telemetry whole.
   */
  begin(operation: QuotaOperation): OperationTrace | undefined {
    if (this.#instruments === undefined && !tracingRegistered()) return undefined;
    const span = this.#tracer.startSpan(SPAN_NAMES[operation], SPAN_OPTIONS, context.active());
    return { operation, span, startedAt: this.#instruments ? performance.now() : 0 };
  }

  /** Whether {@link end} will use results: a recording span or registered metrics. */
  wantsResults(traced: OperationTrace): boolean {
    return this.#instruments !== undefined || traced.span.isRecording();
  }

  /**
   * Ends an operation with its results. `recorded` says whether the amounts were written
   * (admitted consume or reserve, record, commit).
   */
  end(traced: OperationTrace, results: readonly QuotaCheckResult[], recorded: boolean): void {
    const { span, operation } = traced;
    const deciding = results.find((result) => !result.allowed) ?? results[0];
    if (span.isRecording() && deciding !== undefined) {
      span.setAttributes(resultAttributes(deciding));
      if (results.length > 1)
        span.setAttribute(
          'quota.resources',
          results.map((r) => r.resource),
        );
      if (deciding.status === 'unknown') {
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'quota store unavailable' });
      }
    }
    span.end();
    const instruments = this.#instruments;
    if (instruments === undefined) return;
    for (const result of results) {
      instruments.decisions.add(1, {
        'quota.operation': operation,
        'quota.resource': result.resource,
        'quota.status': result.status,
        'quota.allowed': result.allowed,
      });
      if (recorded && result.requested !== 0) {
        instruments.usage.add(result.requested, { 'quota.resource': result.resource });
      }
    }
    instruments.duration.record((performance.now() - traced.startedAt) / 1000, {
      'quota.operation': operation,
    });
  }

  /** Ends an operation that threw (bad input or a store failure on commit). */
  fail(traced: OperationTrace, error: unknown): void {
    const { span } = traced;
    if (span.isRecording()) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    span.end();
  }
}

function resultAttributes(result: QuotaCheckResult): Attributes {
  const attributes: Attributes = {
    'quota.resource': result.resource,
    'quota.status': result.status,
    'quota.allowed': result.allowed,
    'quota.requested': result.requested,
  };
  if (result.limit !== null) attributes['quota.limit'] = result.limit;
  if (result.used !== null) attributes['quota.used'] = result.used;
  if (result.remaining !== null) attributes['quota.remaining'] = result.remaining;
  if (result.scope !== null) attributes['quota.scope'] = result.scope;
  if (result.period !== null) attributes['quota.period'] = result.period;
  return attributes;
}
