import {
  Admission,
  addressSubject,
  QuotaConfigError,
  QuotaGate,
  type QuotaHandle,
  type QuotaMiddlewareOptions,
  type QuotaRefusal,
  type Subject,
} from '@quotakit/core';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

declare global {
  namespace Express {
    interface Request {
      /**
       * Set by `quota()` from `@quotakit/express` on the routes behind it: the subject
       * charged, the engine's answer, and `record(resource, amount)`.
       */
      quota: QuotaHandle;
    }
  }
}

/**
 * Answers a refused request (429, or 503 when the store did not answer and the failure mode
 * is closed) instead of the default JSON body. The rate-limit headers are already set.
 */
export type ExpressOnExceeded = (req: Request, res: Response, refusal: QuotaRefusal) => void;

/** Options of {@link quota}; `identify`, `amounts` and `skip` receive the request. */
export type QuotaOptions = QuotaMiddlewareOptions<Request, ExpressOnExceeded>;

/**
 * Express middleware (Express 4 and 5) that charges every request to a subject before the
 * handler runs: a refused request gets a 429 with `{ error: 'quota_exceeded', message,
 * quota }`, `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` headers; an allowed
 * one carries the same headers and reaches the handler with `req.quota`.
 *
 * In reserve mode the reservation is committed with what the handler recorded when the
 * response finishes, and released whole when it fails: an error (Express answers 500), any
 * 5xx, or the client closing the connection before the end. An error with a status below 500
 * looks like a 4xx answer and commits, unless the error handler calls
 * `req.quota.settle(false)`.
 *
 * @throws QuotaConfigError for a bad option, at once.
 * @example
 * app.post('/chat', quota({ engine, mode: 'reserve',
 *   identify: (req) => ({ userId: req.user.id }),
 *   amounts: (req) => ({ llm_requests: 1, llm_tokens: req.get('x-token-estimate') ?? 2000 }) }),
 *   async (req, res) => {
 *     const reply = await callModel(req.body);
 *     req.quota.record('llm_tokens', reply.usage.total_tokens);
 *     res.json(reply);
 *   });
 */
export function quota(options: QuotaOptions): RequestHandler {
  const gate = new QuotaGate<Request, ExpressOnExceeded>(options, identifyByAddress);
  const { onExceeded } = gate;
  const answer = (req: Request, res: Response, next: NextFunction, admission: Admission) => {
    try {
      const { handle, refusal } = admission;
      req.quota = handle;
      admission.writeHeaders(res);
      if (refusal === undefined) {
        if (handle.mode !== 'skip') handle.whenPending(() => settleWithResponse(res, handle));
        next();
      } else if (onExceeded !== undefined && refusal.status !== 400) {
        onExceeded(req, res, refusal);
      } else {
        res.status(refusal.status).json(refusal.body);
      }
    } catch (error) {
      next(error);
    }
  };
  return (req, res, next) => {
    // An in-memory engine decides before admit returns: the request goes on at once.
    const admitted = gate.admit(req);
    if (admitted instanceof Admission) {
      answer(req, res, next, admitted);
    } else {
      Promise.resolve(admitted).then((admission) => answer(req, res, next, admission), next);
    }
  };
}

/**
 * Settles the handle when the response ends. In Express 5 an error thrown by an async handler
 * skips later middleware, so the response itself is watched: `finish` with a 5xx status is a
 * failure, and `close` before `finish` is a client that went away.
 */
function settleWithResponse(res: Response, handle: QuotaHandle): void {
  if (res.writableFinished) {
    void handle.settle(res.statusCode < 500);
    return;
  }
  res.once('finish', () => void handle.settle(res.statusCode < 500));
  res.once('close', () => void handle.settle(res.writableFinished && res.statusCode < 500));
}

function identifyByAddress(req: Request): Subject {
  // req.ip follows the application's `trust proxy` setting.
  const address = req.ip ?? req.socket?.remoteAddress;
  if (address === undefined) {
    throw new QuotaConfigError('identify', 'the request has no client address: pass identify');
  }
  return addressSubject(address);
}
