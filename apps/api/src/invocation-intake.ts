import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import { transaction } from '@wharf/db';
import { JOB_OPTIONS, WharfError, admitInvocation, releaseAdmission, type CloudRequestPayload, type FunctionLimits, type InvokeJob } from '@wharf/shared';
import { SIGNING_HEADERS, sha256Hex } from '@wharf/shared/signing';
import { findApiKey, touchApiKey } from './api-keys-store.js';
import { authenticateUser, hasBearerToken } from './auth.js';
import type { ApiDeps } from './deps.js';
import { refusePendingDeletion, uuid } from './function-access.js';
import { findInvocable, type FunctionRow, type InvocableFunction, type ServingDeployment } from './functions-store.js';
import type { InvocationOutcome } from './invocation-records.js';
import { claimIdempotencyKey, deleteInvocation, insertInvocation } from './invocations-store.js';
import { responseBody, responseHeaders } from './request-mapping.js';
import { deriveKeySecret, secretsEqual, verifySignature } from './signing.js';

/** How long an Idempotency-Key keeps returning its first invocation. */
export const IDEMPOTENCY_WINDOW_HOURS = 24;

/** Which function a request addresses: by id (`/api/functions/:id/…`) or by name (`/fn/:name/…`). */
export type InvocationTarget = { id: string } | { name: string };

/**
 * Who may invoke: the owner (bearer token); a holder of one of the function's keys, which must
 * sign the request unless the function skips signing (a signature is checked whenever sent);
 * anyone, at /fn/<name>, when the function is public. An unknown, revoked or foreign key reads
 * exactly like a wrong signature, so that key ids cannot be probed.
 */
export async function authorizeInvocation(deps: ApiDeps, req: Request, res: Response, body: Buffer, target: InvocationTarget): Promise<InvocableFunction> {
  if (hasBearerToken(req)) {
    await authenticateUser(deps.pool, req, res);
    const userId: string = res.locals.userId;
    if ('id' in target) {
      const fn = uuid.safeParse(target.id).success ? await findInvocable(deps.pool, { id: target.id, userId }) : undefined;
      if (!fn || fn.status === 'deleted') throw new WharfError('FUNCTION_NOT_FOUND', `no function ${target.id}`);
      return fn;
    }
    const fn = (await findInvocable(deps.pool, { userId, name: target.name })) ?? (await findInvocable(deps.pool, { publicName: target.name }));
    if (fn) return fn;
    throw new WharfError('FUNCTION_NOT_FOUND', `no function ${target.name}`);
  }
  const keyId = req.get(SIGNING_HEADERS.keyId);
  if (keyId) return authorizeKey(deps, req, body, keyId, target);
  const open = 'name' in target ? await findInvocable(deps.pool, { publicName: target.name }) : undefined;
  if (open) return open;
  throw new WharfError('UNAUTHENTICATED', `send "Authorization: Bearer <token>", or an API key in ${SIGNING_HEADERS.keyId}`);
}

async function authorizeKey(deps: ApiDeps, req: Request, body: Buffer, keyId: string, target: InvocationTarget): Promise<InvocableFunction> {
  const key = await findApiKey(deps.pool, keyId);
  const fn = key ? await findInvocable(deps.pool, { id: key.function_id }) : undefined;
  const secret = deriveKeySecret(deps.signingSecret, keyId);
  const addressed = !!fn && ('id' in target ? uuid.safeParse(target.id).success && fn.id === target.id : fn.name === target.name);
  const keyMatches = addressed && fn.status !== 'deleted' && secretsEqual(sha256Hex(secret), key!.secret_hash);
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

/** The job for one run of a function's deployment; the function's config wins over what the deploy carried. */
export function buildInvokeJob(
  fn: FunctionRow,
  deployment: ServingDeployment & { image_tag: string },
  defaults: FunctionLimits,
  invocationId: string,
  request: CloudRequestPayload,
  priorAttempts = 0,
): InvokeJob {
  return {
    invocationId,
    functionId: fn.id,
    functionName: fn.name,
    ownerId: fn.user_id,
    version: deployment.version,
    image: deployment.image_tag,
    request,
    env: { ...deployment.env, ...fn.env },
    timeoutMs: fn.timeout_ms ?? defaults.timeoutMs,
    memoryMb: fn.memory_mb ?? defaults.memoryMb,
    cpus: fn.cpus ?? defaults.cpus,
    mode: deployment.runtime === 'isolated-files' ? 'isolated' : fn.mode,
    runtime: deployment.runtime ?? 'node',
    ...(deployment.handler ? { handler: deployment.handler } : {}),
    concurrency: fn.concurrency,
    minInstances: fn.min_instances,
    ...(priorAttempts > 0 ? { priorAttempts } : {}),
  };
}

/** A job for the function's active version, or 410/409 when it cannot run. */
export function jobForActiveVersion(deps: ApiDeps, fn: InvocableFunction, request: CloudRequestPayload): InvokeJob {
  refusePendingDeletion(fn);
  const { serving } = fn;
  if (!serving?.image_tag) throw new WharfError('NOT_DEPLOYED', `function ${fn.name} has no active version yet`);
  return buildInvokeJob(fn, { ...serving, image_tag: serving.image_tag }, deps.defaultLimits, randomUUID(), request);
}

export interface Acceptance {
  invocationId: string;
  /** The Idempotency-Key was seen before: this is the first invocation's id, and nothing new runs. */
  replayed: boolean;
}

/**
 * Writes the invocation's record (and claims its idempotency key) before enqueueing it, so that
 * an accepted invocation always has a record; if Redis refuses the job, the record goes too.
 */
export async function acceptInvocation(
  deps: ApiDeps,
  job: InvokeJob,
  options: { callbackUrl?: string; idempotencyKey?: string; onRefused?: () => void } = {},
): Promise<Acceptance> {
  const queued = { invocationId: job.invocationId, functionId: job.functionId, ownerId: job.ownerId ?? '' };
  const warmSlots = deps.runnerQueues.warmSlotsFor(job);
  // First, so that a full queue (or Redis down) refuses the call before anything is written.
  const admission = await admitInvocation(deps.redis, deps.queuePrefix, queued, deps.queueLimits, warmSlots);
  if (!admission.admitted) {
    const full =
      admission.full === 'function'
        ? `function ${job.functionName} already has ${deps.queueLimits.perFunction} invocations waiting to run`
        : `your functions already have ${deps.queueLimits.perUser} invocations waiting to run`;
    throw new WharfError('TOO_MANY_REQUESTS', `${full}; try again shortly`);
  }
  const { runnerId: routedTo } = admission;
  // Not queued after all: the bounds no longer count it, and the warm slot it took is free again.
  const release = () =>
    Promise.all([
      releaseAdmission(deps.redis, deps.queuePrefix, queued),
      warmSlots && routedTo ? deps.redis.lpush(warmSlots, routedTo) : undefined,
    ]).catch((err) => deps.logger.warn({ err, invocationId: job.invocationId }, 'could not release the queue slot'));
  const record = { id: job.invocationId, functionId: job.functionId, version: job.version, request: job.request, callbackUrl: options.callbackUrl, routedTo };
  const { idempotencyKey } = options;
  let replayOf: string | undefined;
  try {
    // One statement needs no transaction: without a key, that saves every call two round trips.
    if (!idempotencyKey) await insertInvocation(deps.pool, record);
    else {
      replayOf = await transaction(deps.pool, async (client) => {
        await insertInvocation(client, record);
        const first = await claimIdempotencyKey(client, job.functionId, idempotencyKey, job.invocationId, IDEMPOTENCY_WINDOW_HOURS);
        if (first) await client.query(`DELETE FROM invocations WHERE id = $1`, [job.invocationId]);
        return first;
      });
    }
  } catch (err) {
    await release();
    throw err;
  }
  if (replayOf) {
    await release();
    return { invocationId: replayOf, replayed: true };
  }
  try {
    const queue = routedTo ? await deps.runnerQueues.queueFor(routedTo) : deps.invokeQueue;
    await queue.add('invoke', job, { ...JOB_OPTIONS.invoke, jobId: job.invocationId });
  } catch (err) {
    options.onRefused?.();
    await Promise.all([deleteInvocation(deps.pool, job.invocationId), release()]);
    throw err;
  }
  return { invocationId: job.invocationId, replayed: false };
}

/** Runs the job and waits for its outcome, within the function's time limit plus the queueing allowance. */
export async function invokeAndWait(deps: ApiDeps, job: InvokeJob): Promise<{ outcome: InvocationOutcome; waitedMs: number }> {
  const started = Date.now();
  // Listen before enqueueing, so that a fast completion cannot be missed.
  const outcome = deps.waiter.wait(job.invocationId, job.timeoutMs + deps.queueAllowanceMs);
  await acceptInvocation(deps, job, { onRefused: () => deps.waiter.cancel(job.invocationId) });
  const finished = await outcome;
  const waitedMs = Date.now() - started;
  deps.logger.info(
    { invocationId: job.invocationId, functionId: job.functionId, version: job.version, outcome: finished.kind === 'completed' ? finished.result.status : finished.kind, waitedMs },
    'synchronous invocation answered',
  );
  return { outcome: finished, waitedMs };
}

/** The function's response as the HTTP response, or the outcome's error code. */
export function sendOutcome(res: Response, invocationId: string, outcome: InvocationOutcome, waitedMs: number): void {
  res.set('X-Wharf-Invocation-Id', invocationId);
  if (outcome.kind === 'deadline') {
    throw new WharfError('FUNCTION_TIMEOUT', `no result in ${waitedMs} ms; the invocation's record will hold its outcome at /api/invocations/${invocationId}`);
  }
  if (outcome.kind === 'failed') throw new WharfError('RUNNER_ERROR', `the invocation could not be run: ${outcome.reason}`);
  const { result } = outcome;
  res.set('X-Wharf-Duration-Ms', String(Math.round(result.durationMs)));
  if (result.status === 'succeeded' && result.response) {
    res.status(result.response.statusCode).set(responseHeaders(result.response.headers)).send(responseBody(result.response));
    return;
  }
  const error = result.error ?? { code: 'FUNCTION_CRASHED' as const, message: 'the function produced no result' };
  throw new WharfError(error.code, error.message);
}
