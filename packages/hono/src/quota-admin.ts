import { ADMIN_ROUTES, QuotaAdminApi, type QuotaAdminOptions } from '@quotakit/core';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';

// Bodies are rules: 16 KiB is plenty, as in the Express router.
const limitBody = bodyLimit({
  maxSize: 16 * 1024,
  onError: (c) =>
    c.json({ error: 'invalid_request', message: 'The body is larger than 16 KiB' }, 413),
});

/**
 * Options of {@link quotaAdmin}. `authorize` receives the Hono context `c`, as `identify`,
 * `amounts` and `skip` do; the request's `headers`, `url` and `method` can also be read on it
 * as on a web `Request`, so an `authorize(request)` written that way works too.
 */
export type QuotaAdminAppOptions = QuotaAdminOptions<Context>;

/**
 * A Hono app with the admin API, to mount with `app.route(path, quotaAdmin(...))`: the same
 * routes, validation and dashboard as `@quotakit/express`'s router. Without `authorize`
 * every request is refused with 403.
 *
 * @throws QuotaConfigError for a bad option, at once.
 * @example
 * app.route('/admin/quotas', quotaAdmin({
 *   engine,
 *   authorize: (c, { action }) =>
 *     action === 'dashboard' || c.req.header('authorization') === `Bearer ${env.ADMIN_TOKEN}`,
 * }));
 */
export function quotaAdmin(options: QuotaAdminAppOptions): Hono {
  const api = new QuotaAdminApi<Context>(options);
  const app = new Hono();
  for (const route of ADMIN_ROUTES) {
    app.on(route.method, route.path, limitBody, async (c) => {
      const response = await api.handle(route.action, {
        request: readableAsRequest(c),
        params: c.req.param(),
        query: c.req.query(),
        readBody: () => c.req.json(),
      });
      return c.body(response.body, response.status as 200, response.headers);
    });
  }
  return app;
}

/** The web Request fields `authorize` may read on the context. */
const REQUEST_FIELDS = new Set<PropertyKey>(['headers', 'url', 'method']);

/**
 * `c` for `authorize`, with the raw request's `headers`, `url` and `method` readable on it
 * (a context has none of its own). Everything else is the context's own, methods bound to it
 * (Hono's context keeps private fields, which only the context itself may read).
 */
function readableAsRequest(c: Context): Context {
  return new Proxy(c, {
    get(target, key) {
      if (REQUEST_FIELDS.has(key) && !(key in target)) {
        return target.req.raw[key as 'headers' | 'url' | 'method'];
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
