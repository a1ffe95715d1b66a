import {
  type Attributes,
  type Context,
  context,
  ProxyTracerProvider,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { type QuotaCheckResult, withSpanAttributes } from '@quotakit/core';
import { VERSION } from './version.js';

const SCOPE = '@quotakit/llm-wrapper';
/** The span of one wrapped call's quota decision, from reservation to settlement. */
export const LLM_CALL_SPAN = 'quota.llm_call';
const SPAN_OPTIONS = Object.freeze({ kind: SpanKind.INTERNAL });
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

/** Whether an application registered a tracer provider (otherwise spans are no-ops). */
function tracingRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return (
    !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_TRACER_PROVIDER
  );
}

/** What the span of a call is told about it; never prompt or completion text. */
export interface CallDescription {
  provider: string;
  operation: string;
  model: string;
}

/**
 * The span of one wrapped call. Carries the OpenTelemetry GenAI semantic-convention
 * attributes (`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
 * `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`) and the `quota.*` attributes of
 * the deciding result. The engine's own `quota.reserve` and `quota.commit` spans are its
 * siblings, children of the caller's active span as every engine span is (DESIGN section 8),
 * and carry the call's GenAI attributes. Undefined (nothing allocated) when no tracer provider
 * is registered.
 */
export class CallSpan {
  readonly #span: Span;
  readonly context: Context;

  private constructor(span: Span, parent: Context, call: CallDescription) {
    this.#span = span;
    // The caller's context, not this span's: the engine's quota.reserve and quota.commit spans
    // stay children of the caller's span, and carry the call's attributes too.
    this.context = withSpanAttributes(parent, requestAttributes(call));
  }

  static start(call: CallDescription): CallSpan | undefined {
    if (!tracingRegistered()) return undefined;
    const parent = context.active();
    const span = trace.getTracer(SCOPE, VERSION).startSpan(LLM_CALL_SPAN, SPAN_OPTIONS, parent);
    if (!span.isRecording()) {
      span.end();
      return undefined;
    }
    span.setAttributes(requestAttributes(call));
    return new CallSpan(span, parent, call);
  }

  /**
   * Runs `fn` in the caller's context with the call's GenAI attributes (and `attributes` as
   * well when given) added to every engine span started in it.
   */
  within<T>(fn: () => T, attributes?: Attributes): T {
    return context.with(
      attributes === undefined ? this.context : withSpanAttributes(this.context, attributes),
      fn,
    );
  }

  decided(results: Readonly<Record<string, QuotaCheckResult>>, allowed: boolean): void {
    let deciding: QuotaCheckResult | undefined;
    for (const resource in results) {
      const result = results[resource]!;
      if (!result.allowed) {
        deciding = result;
        break;
      }
      if (deciding === undefined || resource === 'llm_tokens') deciding = result;
    }
    if (deciding !== undefined) this.#span.setAttributes(resultAttributes(deciding));
    this.#span.setAttribute('quota.allowed', allowed);
  }

  clamped(outputCap: number): void {
    this.#span.setAttribute('quota.clamped_output_tokens', outputCap);
  }

  settled(usage: SettledUsage): void {
    this.#span.setAttributes(usageAttributes(usage));
    this.#span.end();
  }

  failed(error: unknown): void {
    const type =
      error instanceof Error
        ? ((error as { status?: unknown }).status !== undefined
            ? String((error as { status?: unknown }).status)
            : error.name) || 'Error'
        : typeof error;
    // `error.type`: the GenAI conventions' attribute for a failed call (status code or class).
    this.#span.setAttribute('error.type', type);
    this.#span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
    this.#span.end();
  }

  released(): void {
    this.#span.end();
  }
}

/** What a settled call reports to its span. */
export interface SettledUsage {
  model?: string | undefined;
  inputTokens: number;
  outputTokens: number;
  estimated?: boolean | undefined;
}

// https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/
function requestAttributes(call: CallDescription): Attributes {
  return {
    'gen_ai.operation.name': call.operation,
    'gen_ai.provider.name': call.provider,
    'gen_ai.request.model': call.model,
  };
}

/** The GenAI usage attributes of a settled call (and whether its counts are estimates). */
export function usageAttributes(usage: SettledUsage): Attributes {
  const attributes: Attributes = {
    'gen_ai.usage.input_tokens': usage.inputTokens,
    'gen_ai.usage.output_tokens': usage.outputTokens,
    'quota.estimated': usage.estimated === true,
  };
  if (usage.model) attributes['gen_ai.response.model'] = usage.model;
  return attributes;
}

function resultAttributes(result: QuotaCheckResult): Attributes {
  const attributes: Attributes = {
    'quota.resource': result.resource,
    'quota.status': result.status,
    'quota.requested': result.requested,
  };
  if (result.limit !== null) attributes['quota.limit'] = result.limit;
  if (result.used !== null) attributes['quota.used'] = result.used;
  if (result.remaining !== null) attributes['quota.remaining'] = result.remaining;
  if (result.scope !== null) attributes['quota.scope'] = result.scope;
  return attributes;
}
