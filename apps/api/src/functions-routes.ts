import { createHash, randomUUID } from 'node:crypto';
import express, { Router, type Response } from 'express';
import multer from 'multer';
import { z } from 'zod';
import type { Queue } from 'bullmq';
import type { Pool } from '@wharf/db';
import {
  FUNCTION_NAME_PATTERN,
  JOB_OPTIONS,
  WharfError,
  type BuildJob,
  type BuildResult,
  type InvokeJob,
  type InvokeResult,
  type Logger,
} from '@wharf/shared';
import {
  createDeployment,
  discardDeployment,
  getDeployment,
  getFunction,
  initFunction,
  type DeploymentRow,
  type FunctionRow,
} from './functions-store.js';
import { deleteInvocation, insertQueuedInvocation } from './invocations-store.js';
import type { InvocationOutcome, InvocationWaiter } from './invocation-waiter.js';
import { responseHeaders, toCloudRequest } from './request-mapping.js';

export interface FunctionsDeps {
  pool: Pool;
  logger: Logger;
  buildQueue: Queue<BuildJob, BuildResult>;
  invokeQueue: Queue<InvokeJob, InvokeResult>;
  waiter: InvocationWaiter;
  maxArchiveBytes: number;
  maxRequestBytes: number;
  functionTimeoutMs: number;
  queueAllowanceMs: number;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the platform sets for every invocation; a deployment may not shadow them. */
const RESERVED_ENV = /^(WHARF_|FUNCTION_|SHARED_PATH$)/;

const envSchema = z
  .record(z.string().regex(ENV_NAME, 'variable names are letters, digits and _'), z.string())
  .refine((env) => !Object.keys(env).some((k) => RESERVED_ENV.test(k)), 'WHARF_*, FUNCTION_* and SHARED_PATH are reserved');

const uuid = z.string().uuid('must be a UUID');

export function functionsRoutes(deps: FunctionsDeps): Router {
  const { pool } = deps;
  const router = Router();
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: deps.maxArchiveBytes, files: 1, fields: 8 } });
  const anyBody = [
    express.json({ limit: deps.maxRequestBytes }),
    express.text({ type: () => true, limit: deps.maxRequestBytes }),
  ];

  async function ownFunction(res: Response, id: string): Promise<FunctionRow> {
    const fn = uuid.safeParse(id).success ? await getFunction(pool, res.locals.userId, id) : undefined;
    if (!fn) throw new WharfError('FUNCTION_NOT_FOUND', `no function ${id}`);
    return fn;
  }

  router.post('/init', express.json(), async (req, res) => {
    const name = z.object({ name: z.string() }).parse(req.body ?? {}).name;
    if (!FUNCTION_NAME_PATTERN.test(name)) {
      throw new WharfError('INVALID_NAME', `function names match ${FUNCTION_NAME_PATTERN}: lower-case letter first, then letters, digits, _ or -, 63 at most`);
    }
    const { fn, created } = await initFunction(pool, res.locals.userId, name);
    if (created) res.status(201).json(functionBody(fn));
    else res.status(200).json({ ...functionBody(fn), already_exists: true });
  });

  router.post('/deploy', upload.single('archive'), async (req, res) => {
    const fields = z.object({ function_id: uuid, env: z.string().optional() }).parse(req.body ?? {});
    const fn = await ownFunction(res, fields.function_id);
    if (!req.file) throw new WharfError('ARCHIVE_MISSING', 'attach the function as a tar.gz in the multipart field "archive"');
    const archive = req.file.buffer;
    if (archive[0] !== 0x1f || archive[1] !== 0x8b) throw new WharfError('ARCHIVE_INVALID', 'the archive is not gzip-compressed (expected a .tar.gz)');
    const env = envSchema.parse(fields.env === undefined ? {} : parseJsonField('env', fields.env));

    const sha256 = createHash('sha256').update(archive).digest('hex');
    const deployment = await createDeployment(pool, fn.id, archive, sha256, env);
    try {
      await deps.buildQueue.add(
        'build',
        { deploymentId: deployment.id, functionId: fn.id, version: deployment.version },
        { ...JOB_OPTIONS.build, jobId: deployment.id },
      );
    } catch (err) {
      await discardDeployment(pool, deployment, fn.status);
      throw err;
    }
    deps.logger.info({ deploymentId: deployment.id, functionId: fn.id, version: deployment.version, archiveBytes: archive.length }, 'deployment accepted');
    res.status(202).json({ deployment: { id: deployment.id, version: deployment.version, status: deployment.status } });
  });

  router.get('/:id', async (req, res) => {
    const fn = await ownFunction(res, req.params.id);
    const active = fn.active_version === null ? undefined : await getDeployment(pool, fn.id, fn.active_version);
    res.json({ ...functionBody(fn), active_deployment: active ? deploymentBody(active) : null });
  });

  router.get('/:id/deployments/:version', async (req, res) => {
    const fn = await ownFunction(res, req.params.id);
    const version = z.coerce.number().int().positive().safeParse(req.params.version);
    const deployment = version.success ? await getDeployment(pool, fn.id, version.data) : undefined;
    if (!deployment) throw new WharfError('DEPLOYMENT_NOT_FOUND', `function ${fn.id} has no version ${req.params.version}`);
    res.json(deploymentBody(deployment));
  });

  router.post('/:id/invoke', ...anyBody, async (req, res) => {
    const fn = await ownFunction(res, req.params.id);
    const deployment = fn.active_version === null ? undefined : await getDeployment(pool, fn.id, fn.active_version);
    if (!deployment?.image_tag) throw new WharfError('NOT_DEPLOYED', `function ${fn.name} has no active version yet`);

    const invocationId = randomUUID();
    const started = Date.now();
    await insertQueuedInvocation(pool, invocationId, fn.id, deployment.version);
    const outcome = deps.waiter.wait(invocationId, deps.functionTimeoutMs + deps.queueAllowanceMs);
    try {
      await deps.invokeQueue.add(
        'invoke',
        {
          invocationId,
          functionId: fn.id,
          functionName: fn.name,
          version: deployment.version,
          image: deployment.image_tag,
          request: toCloudRequest(req),
          env: deployment.env,
          timeoutMs: deps.functionTimeoutMs,
        },
        { ...JOB_OPTIONS.invoke, jobId: invocationId },
      );
    } catch (err) {
      deps.waiter.cancel(invocationId);
      await deleteInvocation(pool, invocationId);
      throw err;
    }
    const finished = await outcome;
    const waitedMs = Date.now() - started;
    deps.logger.info(
      { invocationId, functionId: fn.id, version: deployment.version, outcome: finished.kind === 'completed' ? finished.result.status : finished.kind, waitedMs },
      'synchronous invocation answered',
    );
    sendOutcome(res, invocationId, finished, waitedMs);
  });

  return router;
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

function parseJsonField(field: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new WharfError('VALIDATION_FAILED', `${field}: not valid JSON`);
  }
}

function functionBody(fn: FunctionRow) {
  return {
    id: fn.id,
    name: fn.name,
    status: fn.status,
    active_version: fn.active_version,
    created_at: fn.created_at,
    updated_at: fn.updated_at,
  };
}

function deploymentBody(d: DeploymentRow) {
  return {
    id: d.id,
    function_id: d.function_id,
    version: d.version,
    status: d.status,
    image_tag: d.image_tag,
    archive_sha256: d.archive_sha256,
    env_keys: Object.keys(d.env),
    error: d.error_code ? { code: d.error_code, message: d.error_message } : null,
    created_at: d.created_at,
    finished_at: d.finished_at,
  };
}
