export { type QuotaModelMiddlewareOptions, quotaMiddleware } from './ai-sdk-middleware.js';
export {
  type CallBudget,
  DEFAULT_MAX_OUTPUT_TOKENS,
  DEFAULT_MIN_OUTPUT_TOKENS,
  DEFAULT_RESERVATION_TTL_MS,
  estimatePromptTokens,
  estimateTextTokens,
  type LlmCall,
  loadExactTokenizer,
  MEDIA_PART_TOKENS,
  openCallBudget,
  type QuotaWrapperOptions,
  type ReportedUsage,
  type ResolvedWrapperOptions,
  resolveWrapperOptions,
  type TokenCounter,
  type TokenEstimator,
} from './call-budget.js';
export { LLM_CALL_SPAN } from './call-telemetry.js';
export { QuotaAPIPromise } from './quota-api-promise.js';
export { VERSION } from './version.js';
export { withQuota } from './with-quota.js';
