import {
  type Attributes,
  type Context,
  type Counter,
  context,
  createContextKey,
  createNoopMeter,
  type Histogram,
  type Meter,
  type MeterProvider,
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

/** The metric instruments of one meter provider. */
export interface Instruments {
  readonly usage: Counter;
  readonly decisions: Counter;
  readonly duration: Histogram;
}

function instrumentsOf(meter: Meter): Instruments {
  return {
    usage: meter.createCounter('quota.usage', {
      description: 'Amounts spent (consumed, recorded, committed), by resource',
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

// Through the global symbol registry, as the API makes keys: any copy of the package sees it.
const SPAN_ATTRIBUTES = createContextKey('quotakit.span-attributes');

/**
 * `parent` with `attributes` that every `quota.*` span started under it carries as well,
 * added to those it had already. The LLM wrapper puts the GenAI semantic-convention attributes
 * (`gen_ai.request.model`, `gen_ai.usage.input_tokens`, ...) on the engine's spans this way.
 * Run the engine call in the returned context (`context.with(ctx, fn)`); that takes a
 * registered context manager (NodeSDK registers one), without which OpenTelemetry keeps no
 * context at all and the attributes, like parent spans, are lost.
 *
 * @example
 * const ctx = withSpanAttributes(context.active(), { 'gen_ai.request.model': 'gpt-4o' });
 * await context.with(ctx, () => engine.reserve(request));
 */
export function withSpanAttributes(parent: Context, attributes: Attributes): Context {
  const outer = parent.getValue(SPAN_ATTRIBUTES) as Attributes | undefined;
  return parent.setValue(
    SPAN_ATTRIBUTES,
    outer === undefined ? { ...attributes } : { ...outer, ...attributes },
  );
}

/** An operation in flight: its span and its start time. */
export interface OperationTrace {
  readonly operation: QuotaOperation;
  readonly span: Span;
  readonly startedAt: number;
  /** The metric instruments when the operation began; undefined without a meter provider. */
  readonly instruments: Instruments | undefined;
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
  /** The meter provider the instruments were made from: another one gets new instruments. */
  #meterProvider: MeterProvider | undefined;
  /** Instruments, or undefined while no meter provider is registered (nothing to pay for). */
  #instruments: Instruments | undefined;

  constructor() {
    // The API's proxy tracer forwards to an SDK registered later, so it can be kept. Meters
    // have no such proxy: the registered meter provider is looked up on every operation (a
    // global read), so an engine made before the SDK starts reports metrics once it does.
    this.#tracer = trace.getTracer(SCOPE, VERSION);
  }

  /** The instruments of the registered meter provider; undefined while none is registered. */
  #currentInstruments(): Instruments | undefined {
    const provider = metrics.getMeterProvider();
    if (provider !== this.#meterProvider) {
      this.#meterProvider = provider;
      const meter = provider.getMeter(SCOPE, VERSION);
      this.#instruments = meter === createNoopMeter() ? undefined : instrumentsOf(meter);
    }
    return this.#instruments;
  }

  /**
   * Starts the span of an operation, as a child of the active span; undefined when neither
   * a tracer nor a meter provider is registered, so that the engine skips telemetry whole.
   * Attributes set with {@link withSpanAttributes} on the active context go on the span too.
   */
  begin(operation: QuotaOperation): OperationTrace | undefined {
    const instruments = this.#currentInstruments();
    if (instruments === undefined && !tracingRegistered()) return undefined;
    const parent = context.active();
    const span = this.#tracer.startSpan(SPAN_NAMES[operation], SPAN_OPTIONS, parent);
    if (span.isRecording()) {
      const extra = parent.getValue(SPAN_ATTRIBUTES) as Attributes | undefined;
      if (extra !== undefined) span.setAttributes(extra);
    }
    return { operation, span, startedAt: instruments ? performance.now() : 0, instruments };
  }

  /** Whether {@link end} will use results: a recording span or registered metrics. */
  wantsResults(traced: OperationTrace): boolean {
    return traced.instruments !== undefined || traced.span.isRecording();
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
    const instruments = traced.instruments;
    if (instruments === undefined) return;
    // A reserve only holds: what it holds counts as usage when it is committed. A gauge's
    // release (a negative amount) is not usage, and a monotonic counter takes no negatives.
    const spends = recorded && operation !== 'reserve';
    for (const result of results) {
      instruments.decisions.add(1, {
        'quota.operation': operation,
        'quota.resource': result.resource,
        'quota.status': result.status,
        'quota.allowed': result.allowed,
      });
      if (spends && result.requested > 0) {
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
