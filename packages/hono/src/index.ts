export { type HonoOnExceeded, type QuotaOptions, type QuotaVariables, quota } from './quota.js';
export { type QuotaAdminAppOptions, quotaAdmin } from './quota-admin.js';
