import { type ErrorClass, QuotaConfigError } from '@quotakit/core';
import { messages } from './anthropic-calls.js';
import { chatCompletions, embeddings, responses } from './openai-calls.js';
import { type CallAdapter, quotaCreate, type WrappedMethod } from './quota-call.js';
import {
  type QuotaWrapperOptions,
  type ResolvedWrapperOptions,
  resolveWrapperOptions,
} from './wrapper-options.js';

type Resource = Record<string, unknown> & { create?: unknown };

function resourceAt(owner: unknown, key: string): Resource | undefined {
  const value = (owner as Record<string, unknown> | null | undefined)?.[key];
  return typeof value === 'object' && value !== null ? (value as Resource) : undefined;
}

function hasCreate(resource: Resource | undefined): resource is Resource {
  return typeof resource?.create === 'function';
}

/**
 * Wraps an openai (5.x to 7.x) or @anthropic-ai/sdk (0.50 and later, 1.x) client so that every
 * model call is checked against the subject's quotas before it leaves and charged with the
 * tokens the provider reports after it. Returns the same client type; the client passed in
 * is not changed, so one client can be wrapped once per subject or engine.
 *
 * Wrapped: openai `chat.completions.create` (and the helpers built on it: `parse()`,
 * `stream()`, `runTools()`), `responses.create` (`parse()`, `stream()`),
 * `embeddings.create`; Anthropic `messages.create` and `messages.stream()` (counted once:
 * the stream helper calls `create`), and the same on `beta.messages`. Everything else on the
 * client works as before, unmetered. Clients are recognised by shape, so a second copy of an
 * SDK works too.
 *
 * Before a call: reserves `llm_requests: 1` and `llm_tokens` = input estimate + output cap
 * (`max_completion_tokens` / `max_tokens` / `max_output_tokens`, times `n`; else
 * `defaultMaxOutputTokens` per choice), plus the estimated `cost_usd` with `prices`. Refused:
 * the returned promise rejects with a `QuotaExceededError` and no request is made (or,
 * with `onExceeded: 'clamp'`, the output cap is lowered to fit). After: records the usage the
 * provider reported (input with cached tokens, output with reasoning tokens) and returns the
 * rest of the reservation. Streams are metered as the caller reads them.
 *
 * @throws QuotaConfigError when `client` is neither an openai nor an Anthropic client, or
 *   an option is bad.
 * @example
 * import OpenAI from 'openai';
 * import { withQuota } from '@quotakit/llm-wrapper';
 *
 * const openai = withQuota(new OpenAI(), { engine, subject: () => ({ userId: currentUser() }) });
 * const reply = await openai.chat.completions.create({
 *   model: 'gpt-4o-mini', max_completion_tokens: 300,
 *   messages: [{ role: 'user', content: 'Hello' }],
 * }); // QuotaExceededError when the user's llm_tokens budget cannot hold it
 */
export function withQuota<Client extends object>(
  client: Client,
  options: QuotaWrapperOptions,
): Client {
  const resolved = resolveWrapperOptions(options);
  if (typeof client !== 'object' || client === null) {
    throw new QuotaConfigError('client', 'expected an openai or @anthropic-ai/sdk client');
  }
  const overrides: Record<string, unknown> = {};
  const wrapped = overlayClient(client, overrides);
  const errorClass = sdkErrorClass(client);
  const chat = resourceAt(client, 'chat');
  const completions = resourceAt(chat, 'completions');
  const messagesResource = resourceAt(client, 'messages');
  let wrappedAny = false;

  if (hasCreate(completions)) {
    overrides.chat = derive(chat!, wrapped, {
      completions: meteredResource(completions, wrapped, resolved, chatCompletions, errorClass),
    });
    wrappedAny = true;
  }
  for (const [key, adapter] of [
    ['responses', responses],
    ['embeddings', embeddings],
  ] as const) {
    const resource = resourceAt(client, key);
    if (hasCreate(resource) && completions !== undefined) {
      overrides[key] = meteredResource(resource, wrapped, resolved, adapter, errorClass);
    }
  }
  if (hasCreate(messagesResource) && completions === undefined) {
    overrides.messages = meteredResource(messagesResource, wrapped, resolved, messages, errorClass);
    wrappedAny = true;
    // Anthropic's beta surface takes the same parameters and reports the same usage.
    const beta = resourceAt(client, 'beta');
    const betaMessages = resourceAt(beta, 'messages');
    if (hasCreate(betaMessages)) {
      overrides.beta = derive(beta!, wrapped, {
        messages: meteredResource(betaMessages, wrapped, resolved, messages, errorClass),
      });
    }
  }
  if (!wrappedAny) {
    throw new QuotaConfigError(
      'client',
      'expected an openai client (chat.completions.create) or an @anthropic-ai/sdk client (messages.create)',
    );
  }
  const withOptions = (client as { withOptions?: unknown }).withOptions;
  if (typeof withOptions === 'function') {
    // A copy with other options (timeout, retries) stays metered, under the same quotas.
    overrides.withOptions = (clientOptions: unknown) =>
      withQuota(withOptions.call(client, clientOptions) as Client, resolved as never);
  }
  return wrapped;
}

/**
 * A resource object (`client.chat.completions`, `client.messages`) with a metered `create`.
 * It inherits everything else from the SDK's own object, and its `_client` is the wrapped
 * client, so that the SDK's helpers (`stream()`, `parse()`), which call
 * `this._client.<resource>.create` or `this.create`, go through the metered `create`.
 * The SDK's `create` itself still runs with its own object as `this`.
 */
function meteredResource(
  resource: Resource,
  wrappedClient: object,
  options: ResolvedWrapperOptions,
  adapter: CallAdapter,
  errorClass: ErrorClass | undefined,
): Resource {
  const create = resource.create as WrappedMethod['create'];
  return derive(resource, wrappedClient, {
    create: quotaCreate(options, { adapter, resource, create, errorClass }),
  });
}

/**
 * The client's base error class, read by shape (`OpenAI.OpenAIError`,
 * `Anthropic.AnthropicError` are statics of the client class), so that a user's own copy of
 * an SDK is recognised as well; undefined when it has none.
 */
function sdkErrorClass(client: object): ErrorClass | undefined {
  const clientClass = (client as { constructor?: Record<string, unknown> }).constructor;
  for (const name of ['OpenAIError', 'AnthropicError']) {
    const candidate = clientClass?.[name];
    if (typeof candidate === 'function' && candidate.prototype instanceof Error) {
      return candidate as ErrorClass;
    }
  }
  return undefined;
}

function derive(
  resource: Resource,
  wrappedClient: object,
  fields: Record<string, unknown>,
): Resource {
  const descriptors: PropertyDescriptorMap = {};
  for (const [key, value] of Object.entries(fields)) {
    descriptors[key] = { value, enumerable: true, configurable: true, writable: true };
  }
  if ('_client' in resource) {
    descriptors._client = { value: wrappedClient, configurable: true, writable: true };
  }
  return Object.create(resource, descriptors) as Resource;
}

/**
 * The wrapped client: the SDK's own client with some properties replaced. A Proxy, because
 * the clients keep private (`#`) fields, which only the client object itself may read: every
 * method read through it is bound to the client, never called with the proxy as `this`.
 */
function overlayClient<Client extends object>(
  client: Client,
  overrides: Record<string, unknown>,
): Client {
  const bound = new Map<PropertyKey, { method: Function; bound: Function }>();
  return new Proxy(client, {
    get(target, key) {
      if (typeof key === 'string' && Object.hasOwn(overrides, key)) return overrides[key];
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      const cached = bound.get(key);
      if (cached !== undefined && cached.method === value) return cached.bound;
      const method = value.bind(target);
      bound.set(key, { method: value, bound: method });
      return method;
    },
  });
}
