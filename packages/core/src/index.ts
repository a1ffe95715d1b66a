export {
  ADMIN_ROUTES,
  type AdminAction,
  type AdminRequest,
  type AdminResponse,
  type AdminRoute,
  QuotaAdminApi,
  type QuotaAdminOptions,
} from './admin-api.js';
export { DASHBOARD_HTML, dashboardContentSecurityPolicy } from './admin-dashboard.js';
export { addressSubject, clientAddressKey, DEFAULT_IPV6_SUBNET_BITS } from './client-address.js';
export {
  isQuotaStore,
  type QuotaEngineOptions,
  type QuotaOverrides,
  RESOURCE_NAME_PATTERN,
} from './config.js';
export { createQuotaEngine, QuotaEngine } from './engine.js';
export {
  type ErrorClass,
  isQuotaError,
  isStaleOverridesError,
  QuotaConfigError,
  QuotaError,
  type QuotaErrorCode,
  QuotaExceededError,
  QuotaStoreError,
  QuotaValidationError,
  quotaExceededErrorAs,
  StaleOverridesError,
} from './errors.js';
export type { QuotaEngineEvents, ThresholdEvent, ThresholdListener } from './events.js';
export { optionKeys, rejectUnknownOptions } from './known-options.js';
export { MemoryLedger, type MemoryLedgerOptions } from './memory-ledger.js';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export {
  isWindowedPeriod,
  QUOTA_PERIODS,
  QuotaPeriod,
  type TimeWindow,
  type WindowedPeriod,
  windowAt,
} from './periods.js';
export {
  COST_USD,
  definePriceTable,
  findModelPrice,
  type ModelPrice,
  type PriceTable,
  type TokenUsage,
  tokenCostUsd,
} from './price-table.js';
export { Admission, QuotaGate, type QuotaMiddlewareOptions } from './quota-gate.js';
export { QuotaHandle, type QuotaMode } from './quota-handle.js';
export {
  invalidQuotaRequest,
  type QuotaRefusal,
  type QuotaRefusalBody,
  quotaRefusal,
} from './quota-refusal.js';
export {
  type HeaderTarget,
  type RateLimitHeaderStyle,
  secondsUntil,
  windowSeconds,
  writeQuotaHeaders,
  writeRetryAfter,
} from './rate-limit-headers.js';
export { parseAmount, parseRequestAmounts, type RequestAmounts } from './request-amounts.js';
export type {
  AcquireRequest,
  AllQuotasStatus,
  CheckQuotaRequest,
  ConsumeRequest,
  RecordUsageRequest,
  ReserveRequest,
} from './requests.js';
export type { Amounts, CommitOptions, CommitResult, Lease, Reservation } from './reservation.js';
export {
  isBuiltInResource,
  RESOURCE_TYPES,
  type ResourceKind,
  type ResourceName,
  ResourceType,
  resourceKind,
} from './resource-types.js';
export type {
  QuotaCheckResult,
  QuotaDecision,
  QuotaStatusReport,
  RuleEvaluation,
} from './results.js';
export {
  QUOTA_SCOPES,
  type QuotaAlgorithm,
  type QuotaRule,
  type QuotaRuleMode,
  type QuotaRules,
  type QuotaScope,
  type ResolvedRule,
} from './rules.js';
export type { OverrideRule, SetQuotaRequest } from './runtime-overrides.js';
export {
  DEFAULT_CRITICAL_THRESHOLD,
  DEFAULT_WARNING_THRESHOLD,
  QUOTA_STATUSES,
  QuotaStatus,
  quotaMessage,
} from './statuses.js';
export type {
  OverrideFilter,
  OverrideKey,
  OverrideScope,
  QuotaStore,
  StoreClaimRequest,
  StoreConsumeRequest,
  StoreConsumeResult,
  StoreCounter,
  StoredOverride,
  StoreLimit,
  StoreReadRequest,
  StoreReadResult,
  StoreRecordRequest,
  StoreRecordResult,
  StoreRequestBase,
  StoreRuleBoundRequest,
  StoreSettleRequest,
  StoreSettleResult,
  VersionedOverrides,
} from './store.js';
export { MAX_ID_LENGTH, type Subject } from './subject.js';
export {
  DEFAULT_ESTIMATION_RULES,
  DEFAULT_TASK_BASELINE,
  DEFAULT_TOKENS_PER_CHARACTER,
  defaultTaskEstimator,
  type EstimationRule,
  type KeywordEstimatorOptions,
  keywordEstimator,
  type QuotaTask,
  type TaskEstimates,
  type TaskEstimator,
} from './task-estimator.js';
export {
  type RunTaskOptions,
  type TaskContext,
  type TaskQuotaCheck,
  type TaskRecordOptions,
  TaskTimeoutError,
} from './task-runner.js';
export {
  type OperationTrace,
  type QuotaOperation,
  withSpanAttributes,
} from './telemetry.js';
export {
  USAGE_CSV_HEADER,
  type UsageExportFormat,
  usageEventToCloudEvent,
  usageEventToCsv,
} from './usage-export.js';
export {
  USAGE_EVENT_FIELDS,
  type UsageEvent,
  type UsageLedger,
  type UsageQuery,
} from './usage-ledger.js';
export { VERSION } from './version.js';
export {
  verifyWebhookSignature,
  WebhookDeliveryError,
  type WebhookFailureReason,
  type WebhookNotifier,
  type WebhookNotifierOptions,
  type WebhookThresholdPayload,
  webhookNotifier,
} from './webhook-notifier.js';
