export { type ExpressOnExceeded, type QuotaOptions, quota } from './quota.js';
export { type QuotaAdminRouterOptions, quotaAdmin } from './quota-admin.js';
