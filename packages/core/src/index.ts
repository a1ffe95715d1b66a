export {
  isQuotaStore,
  type QuotaEngineOptions,
  type QuotaOverrides,
  RESOURCE_NAME_PATTERN,
} from './config.js';
export {
  type AcquireRequest,
  type AllQuotasStatus,
  type CheckQuotaRequest,
  type ConsumeRequest,
  createQuotaEngine,
  QuotaEngine,
  type RecordUsageRequest,
  type ReserveRequest,
} from './engine.js';
export {
  isQuotaError,
  QuotaConfigError,
  QuotaError,
  type QuotaErrorCode,
  QuotaExceededError,
  QuotaStoreError,
  QuotaValidationError,
} from './errors.js';
export type { QuotaEngineEvents, ThresholdEvent, ThresholdListener } from './events.js';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export {
  isWindowedPeriod,
  QUOTA_PERIODS,
  QuotaPeriod,
  type TimeWindow,
  type WindowedPeriod,
  windowAt,
} from './periods.js';
export type { Amounts, CommitResult, Lease, Reservation } from './reservation.js';
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
  StoreSettleRequest,
  StoreSettleResult,
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
export type { OperationTrace, QuotaOperation } from './telemetry.js';
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
