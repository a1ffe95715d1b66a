import {
  ADMIN_ROUTES,
  type AdminResponse,
  QuotaAdminApi,
  type QuotaAdminOptions,
} from '@quotakit/core';
import express, { type Request, type Response, type Router } from 'express';

/** Options of {@link quotaAdmin}; `authorize` receives the Express request. */
export type QuotaAdminRouterOptions = QuotaAdminOptions<Request>;

/**
 * An Express router with the admin API, to mount wherever the application chooses:
 * `GET /status?userId=&agentId=&tenantId=&runId=`, `GET /quotas`,
 * `PUT /quotas/:scope/:id/:resource` (a rule as the JSON body), `DELETE
 * /quotas/:scope/:id/:resource`, and `GET /dashboard` (usage bars in one HTML page).
 * Without `authorize` every request is refused with 403.
 *
 * @throws QuotaConfigError for a bad option, at once.
 * @example
 * app.use('/admin/quotas', quotaAdmin({
 *   engine,
 *   authorize: (req, { action }) =>
 *     action === 'dashboard' || req.get('authorization') === `Bearer ${process.env.ADMIN_TOKEN}`,
 * }));
 */
export function quotaAdmin(options: QuotaAdminRouterOptions): Router {
  const api = new QuotaAdminApi<Request>(options);
  const router = express.Router();
  const parseJson = express.json({ limit: '16kb' });
  for (const route of ADMIN_ROUTES) {
    const method = route.method === 'GET' ? 'get' : route.method === 'PUT' ? 'put' : 'delete';
    router[method](route.path, (req, res, next) => {
      const readBody = () =>
        new Promise<unknown>((resolve, reject) => {
          parseJson(req, res, (error?: unknown) => (error ? reject(error) : resolve(req.body)));
        });
      api
        .handle(route.action, {
          request: req,
          params: req.params as Record<string, string>,
          query: firstValues(req.query),
          readBody,
        })
        .then((response) => send(res, response), next);
    });
  }
  return router;
}

function send(res: Response, response: AdminResponse): void {
  res.status(response.status).set(response.headers).send(response.body);
}

/** The first value of each query parameter (`?id=a&id=b` reads `a`). */
function firstValues(query: Request['query']): Record<string, string | undefined> {
  const values: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(query)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') values[name] = first;
  }
  return values;
}
