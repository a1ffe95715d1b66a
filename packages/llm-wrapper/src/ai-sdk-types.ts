// The AI SDK's language model types, reached through `ai` itself (the application's peer
// dependency) rather than `@ai-sdk/provider`, which strict installs (pnpm) do not expose to
// the application. All of them are the v3 specification of ai 6.x.
import type { LanguageModelMiddleware } from 'ai';

type WrapStreamOptions = Parameters<NonNullable<LanguageModelMiddleware['wrapStream']>>[0];

/** `LanguageModelV3`: the model a middleware wraps. */
export type AiSdkModel = WrapStreamOptions['model'];
/** `LanguageModelV3CallOptions`: prompt, maxOutputTokens, tools, abortSignal, ... */
export type AiSdkCallOptions = WrapStreamOptions['params'];
/** `LanguageModelV3GenerateResult`. */
export type AiSdkGenerateResult = Awaited<ReturnType<WrapStreamOptions['doGenerate']>>;
/** `LanguageModelV3StreamResult`. */
export type AiSdkStreamResult = Awaited<ReturnType<WrapStreamOptions['doStream']>>;
/** `LanguageModelV3StreamPart`. */
export type AiSdkStreamPart =
  AiSdkStreamResult['stream'] extends ReadableStream<infer Part> ? Part : never;
/** `LanguageModelV3Usage`: structured input and output token counts. */
export type AiSdkUsage = AiSdkGenerateResult['usage'];
/** `LanguageModelV3Message`. */
export type AiSdkMessage = AiSdkCallOptions['prompt'][number];
