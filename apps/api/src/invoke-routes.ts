import express, { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { ApiDeps } from './deps.js';
import { getInvocationById } from './invocations-store.js';
import { acceptInvocation, authorizeInvocation, invokeAndWait, jobForActiveVersion, sendOutcome, type InvocationTarget } from './invocation-intake.js';
import { toCloudRequest } from './request-mapping.js';

/** Optional on invoke-async: where to POST the final record. */
const callbackUrl = z
  .string()
  .max(2048)
  .url()
  .refine((url) => /^https?:\/\//i.test(url), 'must be an http(s) URL')
  .optional();
const idempotencyKey = z.string().min(1).max(255).optional();

/** Raw bytes: a signature covers the body exactly as sent, and binary bodies pass through. */
function rawBody(deps: ApiDeps) {
  return express.raw({ type: () => true, limit: deps.maxRequestBytes });
}

function bodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

/**
 * The invocation plane under /api/functions. Its routes take the owner's bearer token or one of
 * the function's API keys, so they sit before the control plane's bearer-only guard.
 */
export function invokeRoutes(deps: ApiDeps): Router {
  const router = Router();

  router.post('/:id/invoke', rawBody(deps), async (req, res) => {
    const body = bodyOf(req);
    const fn = await authorizeInvocation(deps, req, res, body, { id: String(req.params.id) });
    const job = jobForActiveVersion(deps, fn, toCloudRequest(req, body));
    const { outcome, waitedMs } = await invokeAndWait(deps, job);
    sendOutcome(res, job.invocationId, outcome, waitedMs);
  });

  router.post('/:id/invoke-async', rawBody(deps), async (req, res) => {
    const body = bodyOf(req);
    const target: InvocationTarget = { id: String(req.params.id) };
    const fn = await authorizeInvocation(deps, req, res, body, target);
    const options = z
      .object({ callbackUrl, idempotencyKey })
      .parse({ callbackUrl: req.get('x-wharf-callback-url') ?? req.query.callback_url, idempotencyKey: req.get('idempotency-key') });
    const job = jobForActiveVersion(deps, fn, toCloudRequest(req, body));
    const accepted = await acceptInvocation(deps, job, options);
    const log = { invocationId: accepted.invocationId, functionId: fn.id, version: job.version };
    if (accepted.replayed) {
      deps.logger.info(log, 'idempotency key seen before: answering with the first invocation');
      const first = await getInvocationById(deps.pool, accepted.invocationId);
      res.set('Idempotent-Replayed', 'true');
      return sendAccepted(res, accepted.invocationId, first?.status ?? 'queued');
    }
    deps.logger.info(log, 'asynchronous invocation accepted');
    sendAccepted(res, accepted.invocationId, 'queued');
  });

  return router;
}

/** `ANY /fn/:name/*`: the function's own URL. Everything after the name is the function's path. */
export function triggerRoutes(deps: ApiDeps): Router {
  const router = Router();
  router.all('/:name{/*rest}', rawBody(deps), async (req, res) => {
    const body = bodyOf(req);
    const name = String(req.params.name);
    const fn = await authorizeInvocation(deps, req, res, body, { name });
    // req.path is "/<name>/<rest>", still percent-encoded as the function should see it.
    const slash = req.path.indexOf('/', 1);
    const path = slash === -1 ? '/' : req.path.slice(slash);
    const job = jobForActiveVersion(deps, fn, toCloudRequest(req, body, path));
    const { outcome, waitedMs } = await invokeAndWait(deps, job);
    sendOutcome(res, job.invocationId, outcome, waitedMs);
  });
  return router;
}

function sendAccepted(res: Response, invocationId: string, status: string): void {
  res.status(202).set('X-Wharf-Invocation-Id', invocationId).json({
    invocation_id: invocationId,
    status,
    status_url: `/api/invocations/${invocationId}`,
  });
}
