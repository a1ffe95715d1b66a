import { z } from 'zod';
import { DASHBOARD_HTML, dashboardContentSecurityPolicy } from './admin-dashboard.js';
import { throwConfigError } from './config.js';
import type { QuotaEngine } from './engine.js';
import { isQuotaError } from './errors.js';
import type { SetQuotaRequest } from './runtime-overrides.js';
import type { OverrideFilter, OverrideScope } from './store.js';
import type { Subject } from './subject.js';

/** What an admin request asks to do; `authorize` receives it to decide per action. */
export type AdminAction = 'status' | 'list_quotas' | 'set_quota' | 'remove_quota' | 'dashboard';

/** One route of the admin API, relative to where the application mounts it. */
export interface AdminRoute {
  readonly method: 'GET' | 'PUT' | 'DELETE';
  /** In the `:param` syntax that Express and Hono share. */
  readonly path: string;
  readonly action: AdminAction;
}

/**
 * The admin API's routes; both adapters register exactly these.
 * - `GET /status?userId=&agentId=&tenantId=&runId=`: `engine.getAllQuotasStatus(subject)` as
 *   JSON, and the server's time (by `clock`) in the `Quota-Now` header, so that a client can
 *   count down to each `resetAt`;
 * - `GET /quotas?scope=&id=`: the run-time quotas in the store (`engine.listQuotas`);
 * - `PUT /quotas/:scope/:id/:resource`: sets a run-time quota, the body being one rule
 *   (`{ "limit": 5000, "period": "per_day" }`) or several (`{ "rules": [...] }`); a rule may
 *   name its `scope` when it is the path's (400 otherwise);
 * - `DELETE /quotas/:scope/:id/:resource`: removes it (404 when there was none);
 * - `GET /dashboard`: one self-contained HTML page of usage bars.
 */
export const ADMIN_ROUTES: readonly AdminRoute[] = Object.freeze([
  { method: 'GET', path: '/status', action: 'status' },
  { method: 'GET', path: '/quotas', action: 'list_quotas' },
  { method: 'PUT', path: '/quotas/:scope/:id/:resource', action: 'set_quota' },
  { method: 'DELETE', path: '/quotas/:scope/:id/:resource', action: 'remove_quota' },
  { method: 'GET', path: '/dashboard', action: 'dashboard' },
]);

/**
 * Options of `quotaAdmin()` in `@quotakit/express` and `@quotakit/hono`, `Req` being the
 * Express request or the Hono context.
 */
export interface QuotaAdminOptions<Req> {
  /** The engine whose quotas the API shows and changes. */
  engine: QuotaEngine;
  /**
   * Lets a request in when it returns (or resolves to) true; false answers 401 with
   * `WWW-Authenticate: Bearer`. Without it every admin request is refused with 403. It runs
   * before anything is read or changed, and receives the action asked for, so that the
   * dashboard page (which holds no data and asks for a token itself) may be let through.
   *
   * @example
   * authorize: (req, { action }) =>
   *   action === 'dashboard' || req.get('authorization') === `Bearer ${process.env.ADMIN_TOKEN}`
   */
  authorize?: (request: Req, access: { action: AdminAction }) => boolean | Promise<boolean>;
  /**
   * Current time in epoch ms for the `Quota-Now` header of `/status`. Defaults to the
   * engine's clock (`engine.now()`).
   */
  clock?: () => number;
}

/** One admin request, as an adapter hands it over. */
export interface AdminRequest<Req> {
  /** The framework's request (Express) or context (Hono), for `authorize`. */
  request: Req;
  /** Route parameters, already percent-decoded by the framework. */
  params: Readonly<Record<string, string | undefined>>;
  /** Query parameters (the first value of each). */
  query: Readonly<Record<string, string | undefined>>;
  /**
   * Reads the JSON body; called only for `set_quota`, once the request is authorized. A
   * rejection (malformed JSON, too large) answers 400 with its message.
   */
  readBody?: () => Promise<unknown>;
}

/** An admin response: the adapter copies it as it is. `body` is JSON or the dashboard's HTML. */
export interface AdminResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The header of `GET /status` that carries the server's time (ISO 8601). */
export const NOW_HEADER = 'Quota-Now';

const JSON_HEADERS = Object.freeze({
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
});

const optionsSchema = z.strictObject({
  engine: z.custom<QuotaEngine>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as QuotaEngine).getAllQuotasStatus === 'function',
    'must be a QuotaEngine (createQuotaEngine)',
  ),
  authorize: z.custom((value) => typeof value === 'function', 'must be a function').optional(),
  clock: z.custom((value) => typeof value === 'function', 'must be a function').optional(),
});

// Only the shape is checked here; the engine checks the values (periods, limits, thresholds)
// and its messages name the rule.
const ruleSchema = z.strictObject({
  limit: z.number(),
  period: z.string(),
  // A rule written out whole may name its scope: it must be the path's.
  scope: z.string().optional(),
  algorithm: z.string().optional(),
  warningThreshold: z.number().optional(),
  criticalThreshold: z.number().optional(),
  mode: z.string().optional(),
  name: z.string().optional(),
});
const rulesSchema = z.strictObject({ rules: z.array(ruleSchema).min(1) });

const SUBJECT_FIELDS = ['userId', 'agentId', 'tenantId', 'runId'] as const;

/**
 * The framework-neutral admin API: authorization, validation and the engine calls, answering
 * plain {@link AdminResponse}s. `@quotakit/express` and `@quotakit/hono` register
 * {@link ADMIN_ROUTES} and hand each request to {@link handle}.
 */
export class QuotaAdminApi<Req> {
  readonly #engine: QuotaEngine;
  readonly #authorize: QuotaAdminOptions<Req>['authorize'];
  readonly #clock: () => number;

  /** @throws QuotaConfigError naming the bad option. */
  constructor(options: QuotaAdminOptions<Req>) {
    const parsed = optionsSchema.safeParse(options);
    if (!parsed.success) throwConfigError(parsed.error);
    this.#engine = options.engine;
    this.#authorize = options.authorize;
    this.#clock = options.clock ?? (() => options.engine.now());
    if (this.#authorize === undefined) {
      console.warn('[quotakit] quotaAdmin() has no authorize function: it refuses every request');
    }
  }

  /** Answers one request for `action`. Rejects only when `authorize` throws. */
  async handle(action: AdminAction, input: AdminRequest<Req>): Promise<AdminResponse> {
    if (this.#authorize === undefined) {
      return json(403, {
        error: 'forbidden',
        message: 'quotaAdmin() was created without authorize: every request is refused',
      });
    }
    if ((await this.#authorize(input.request, { action })) !== true) {
      return {
        ...json(401, { error: 'unauthorized', message: 'Not authorized for the quota admin API' }),
        headers: { ...JSON_HEADERS, 'WWW-Authenticate': 'Bearer realm="quotakit"' },
      };
    }
    try {
      switch (action) {
        case 'status':
          return await this.#status(input.query);
        case 'list_quotas':
          return await this.#list(input.query);
        case 'set_quota':
          return await this.#set(input);
        case 'remove_quota':
          return await this.#remove(input.params);
        case 'dashboard':
          return {
            status: 200,
            headers: {
              'Content-Type': 'text/html; charset=utf-8',
              'Cache-Control': 'no-store',
              'Content-Security-Policy': await dashboardContentSecurityPolicy(),
              'X-Content-Type-Options': 'nosniff',
              'Referrer-Policy': 'no-referrer',
            },
            body: DASHBOARD_HTML,
          };
      }
    } catch (error) {
      // A rule the store cannot enforce (one that crosses shards) is a QuotaConfigError: for
      // the admin who sent it, a bad request like any other.
      if (
        isQuotaError(error) &&
        (error.code === 'quota_validation' || error.code === 'quota_config')
      ) {
        return json(400, { error: 'invalid_request', message: error.message });
      }
      if (isQuotaError(error) && error.code === 'quota_store') {
        return json(503, { error: 'store_unavailable', message: error.message });
      }
      throw error;
    }
  }

  async #status(query: AdminRequest<Req>['query']): Promise<AdminResponse> {
    const subject: Subject = {};
    for (const field of SUBJECT_FIELDS) {
      const id = query[field];
      if (id !== undefined) subject[field] = id;
    }
    const status = await this.#engine.getAllQuotasStatus(subject);
    // The body is getAllQuotasStatus as JSON, nothing added; the dashboard counts the time to
    // each reset from the server's clock (an injected one too), which comes as a header.
    const response = json(200, status);
    response.headers[NOW_HEADER] = new Date(this.#clock()).toISOString();
    return response;
  }

  async #list(query: AdminRequest<Req>['query']): Promise<AdminResponse> {
    const filter: OverrideFilter = {
      ...(query.scope !== undefined && { scope: query.scope as OverrideScope }),
      ...(query.id !== undefined && { id: query.id }),
    };
    return json(200, { quotas: await this.#engine.listQuotas(filter) });
  }

  async #set(input: AdminRequest<Req>): Promise<AdminResponse> {
    let body: unknown;
    try {
      body = await input.readBody?.();
    } catch (error) {
      // body-parser marks an oversized body with status 413; anything else is malformed.
      const tooLarge = (error as { status?: unknown } | null)?.status === 413;
      return json(tooLarge ? 413 : 400, {
        error: 'invalid_request',
        message: tooLarge
          ? 'The body is larger than 16 KiB'
          : `Invalid JSON body: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return json(400, {
        error: 'invalid_request',
        message:
          'The body must be a JSON object: a rule such as {"limit":1000,"period":"per_day"} or {"rules":[...]}',
      });
    }
    const parsed = ('rules' in body ? rulesSchema : ruleSchema).safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = issue.path.map(String).join('.');
      return json(400, {
        error: 'invalid_request',
        message: `Invalid rule${path === '' ? '' : ` at ${path}`}: ${issue.message}`,
      });
    }
    const { scope, id, resource } = input.params;
    const rules = 'rules' in parsed.data ? parsed.data.rules : [parsed.data];
    const other = rules.find((rule) => rule.scope !== undefined && rule.scope !== scope);
    if (other !== undefined) {
      return json(400, {
        error: 'invalid_request',
        message: `Invalid rule: scope ${JSON.stringify(other.scope)} in the body is not the path's ${JSON.stringify(scope)}`,
      });
    }
    const withoutScope = rules.map(({ scope: _scope, ...rule }) => rule);
    const request = { rules: withoutScope, scope, id, resource } as SetQuotaRequest;
    return json(200, { quota: await this.#engine.setQuota(request) });
  }

  async #remove(params: AdminRequest<Req>['params']): Promise<AdminResponse> {
    const { scope, id, resource } = params;
    const key = { scope: scope as OverrideScope, id: id!, resource: resource! };
    if (await this.#engine.removeQuota(key)) return json(200, { removed: true });
    return json(404, {
      error: 'not_found',
      message: `No run-time quota for ${scope} ${JSON.stringify(id)} on ${resource}`,
    });
  }
}

function json(status: number, body: unknown): AdminResponse {
  return { status, headers: { ...JSON_HEADERS }, body: JSON.stringify(body) };
}
