import { randomUUID } from 'node:crypto';
import express, { Router, type Request, type Response } from 'express';
import { JOB_OPTIONS, WharfError, type InvokeJob } from '@wharf/shared';
import { findApiKey, touchApiKey } from './api-keys-store.js';
import type { ApiDeps } from './deps.js';
import { authenticateUser, hasBearerToken } from './auth.js';
import { ownFunction, refusePendingDeletion, uuid } from './functions-routes.js';
import { getDeployment, getFunctionById, type FunctionRow } from './functions-store.js';
import type { InvocationOutcome } from './invocation-waiter.js';
import { deleteInvocation, insertQueuedInvocation } from './invocations-store.js';
import { responseHeaders, toCloudRequest } from './request-mapping.js';
import { SIGNING_HEADERS, sha256Hex } from '@wharf/shared/signing';
import { deriveKeySecret, secretsEqual, verifySignature } from './signing.js';

/**
 * The invocation plane's routes. They take either the owner's bearer token or one of the
 * function's API keys (signed, unless the function skips signing), so they sit before the
 * control plane's bearer-only guard.
 */
export function invokeRoutes(deps: ApiDeps): Router {
  const router = Router();
  // Raw bytes: a signature covers the body exactly as sent.
  const rawBody = express.raw({ type: () => true, limit: deps.maxRequestBytes });

  async function prepare(req: Request, res: Response): Promise<{ job: InvokeJob; fn: FunctionRow }> {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const fn = await authorizeInvocation(deps, req, res, body);
    refusePendingDeletion(fn);
    const deployment = fn.active_version === null ? undefined : await getDeployment(deps.pool, fn.id, fn.active_version);
    if (!deployment?.image_tag) throw new WharfError('NOT_DEPLOYED', `function ${fn.name} has no active version yet`);
    const job: InvokeJob = {
      invocationId: randomUUID(),
      functionId: fn.id,
      functionName: fn.name,
      version: deployment.version,
      image: deployment.image_tag,
      request: toCloudRequest(req, body),
      // The function's config applies to every version, so it wins over what a deploy carried.
      env: { ...deployment.env, ...fn.env },
      timeoutMs: fn.timeout_ms ?? deps.defaultLimits.timeoutMs,
      memoryMb: fn.memory_mb ?? deps.defaultLimits.memoryMb,
      cpus: fn.cpus ?? deps.defaultLimits.cpus,
    };
    return { job, fn };
  }

  /** Records the invocation, then enqueues it; if Redis refuses, the record goes too, so nothing half-exists. */
  async function enqueue(job: InvokeJob, onRefused: () => void = () => {}): Promise<void> {
    await insertQueuedInvocation(deps.pool, job.invocationId, job.functionId, job.version);
    try {
      await deps.invokeQueue.add('invoke', job, { ...JOB_OPTIONS.invoke, jobId: job.invocationId });
    } catch (err) {
      onRefused();
      await deleteInvocation(deps.pool, job.invocationId);
      throw err;
    }
  }

  router.post('/:id/invoke', rawBody, async (req, res) => {
    const { job } = await prepare(req, res);
    const started = Date.now();
    // Listen before enqueueing, so that a fast completion cannot be missed.
    const outcome = deps.waiter.wait(job.invocationId, job.timeoutMs + deps.queueAllowanceMs);
    await enqueue(job, () => deps.waiter.cancel(job.invocationId));
    const finished = await outcome;
    const waitedMs = Date.now() - started;
    deps.logger.info(
      { invocationId: job.invocationId, functionId: job.functionId, version: job.version, outcome: finished.kind === 'completed' ? finished.result.status : finished.kind, waitedMs },
      'synchronous invocation answered',
    );
    sendOutcome(res, job.invocationId, finished, waitedMs);
  });

  router.post('/:id/invoke-async', rawBody, async (req, res) => {
    const { job } = await prepare(req, res);
    await enqueue(job);
    deps.logger.info({ invocationId: job.invocationId, functionId: job.functionId, version: job.version }, 'asynchronous invocation accepted');
    res.status(202).set('X-Wharf-Invocation-Id', job.invocationId).json({
      invocation_id: job.invocationId,
      status: 'queued',
      status_url: `/api/invocations/${job.invocationId}`,
    });
  });

  return router;
}

/**
 * Who may invoke: the owner (bearer token), or a holder of one of the function's keys. A key
 * must sign the request unless the function skips signing; a signature is checked whenever sent.
 * An unknown, revoked or foreign key reads exactly like a wrong signature, so that key ids cannot be probed.
 */
async function authorizeInvocation(deps: ApiDeps, req: Request, res: Response, body: Buffer): Promise<FunctionRow> {
  const id = String(req.params.id);
  if (hasBearerToken(req)) {
    await authenticateUser(deps.pool, req, res);
    return ownFunction(deps, res, id);
  }

  const keyId = req.get(SIGNING_HEADERS.keyId);
  if (!keyId) throw new WharfError('UNAUTHENTICATED', `send "Authorization: Bearer <token>", or an API key in ${SIGNING_HEADERS.keyId}`);
  const [fn, key] = uuid.safeParse(id).success ? await Promise.all([getFunctionById(deps.pool, id), findApiKey(deps.pool, keyId)]) : [undefined, undefined];
  const secret = deriveKeySecret(deps.signingSecret, keyId);
  const keyMatches = !!fn && !!key && key.function_id === fn.id && fn.status !== 'deleted' && secretsEqual(sha256Hex(secret), key.secret_hash);
  const signed = req.get(SIGNING_HEADERS.signature) !== undefined || !fn?.skip_signing;

  if (signed) {
    const check = verifySignature({
      secret,
      timestamp: req.get(SIGNING_HEADERS.timestamp),
      signature: req.get(SIGNING_HEADERS.signature),
      method: req.method,
      path: req.originalUrl,
      body,
      nowSeconds: Math.floor(deps.now().getTime() / 1000),
    });
    if (!check.ok) throw new WharfError('INVALID_SIGNATURE', check.reason);
    if (!keyMatches) throw new WharfError('INVALID_SIGNATURE', 'the signature does not match');
  } else {
    const given = req.get(SIGNING_HEADERS.apiKey) ?? '';
    if (!keyMatches || !secretsEqual(given, secret)) {
      throw new WharfError('INVALID_API_KEY', `send the key's id in ${SIGNING_HEADERS.keyId} and its secret in ${SIGNING_HEADERS.apiKey}`);
    }
  }
  void touchApiKey(deps.pool, keyId).catch((err) => deps.logger.warn({ err, keyId }, 'could not record key use'));
  return fn!;
}

function sendOutcome(res: Response, invocationId: string, outcome: InvocationOutcome, waitedMs: number): void {
  res.set('X-Wharf-Invocation-Id', invocationId);
  if (outcome.kind === 'deadline') {
    throw new WharfError('FUNCTION_TIMEOUT', `no result in ${waitedMs} ms; the invocation's record will hold its outcome at /api/invocations/${invocationId}`);
  }
  if (outcome.kind === 'failed') throw new WharfError('RUNNER_ERROR', `the invocation could not be run: ${outcome.reason}`);
  const { result } = outcome;
  res.set('X-Wharf-Duration-Ms', String(Math.round(result.durationMs)));
  if (result.status === 'succeeded' && result.response) {
    res.status(result.response.statusCode).set(responseHeaders(result.response.headers)).send(result.response.body);
    return;
  }
  const error = result.error ?? { code: 'FUNCTION_CRASHED' as const, message: 'the function produced no result' };
  throw new WharfError(error.code, error.message);
}
