import { createHash } from 'node:crypto';
import express, { Router, type Response } from 'express';
import multer from 'multer';
import { z } from 'zod';
import { FUNCTION_MODES, FUNCTION_NAME_PATTERN, FUNCTION_RUNTIMES, JOB_OPTIONS, WARM_SETTINGS, WharfError } from '@wharf/shared';
import { announceFunctionChange } from './function-changes.js';
import type { ApiDeps } from './deps.js';
import { addDays, deletionInfo, deploymentBody, functionBody } from './function-bodies.js';
import {
  cancelDeletion,
  createDeployment,
  discardDeployment,
  getBuildLog,
  getDeployment,
  getFunction,
  initFunction,
  listDeployments,
  listFunctions,
  listPendingDeletions,
  pendingDeletionOf,
  rollbackTo,
  startRebuild,
  abandonRebuild,
  scheduleDeletion,
  setPinned,
  updateFunctionConfig,
  type FunctionRow,
} from './functions-store.js';
import { recentLogs } from './invocations-store.js';
import { ownFunction, pageSchema, refusePendingDeletion, uuid } from './function-access.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the platform sets for every invocation; a deployment may not shadow them. */
const RESERVED_ENV = /^(WHARF_|FUNCTION_|SHARED_PATH$)/;

const envSchema = z
  .record(z.string().regex(ENV_NAME, 'variable names are letters, digits and _'), z.string())
  .refine((env) => !Object.keys(env).some((k) => RESERVED_ENV.test(k)), 'WHARF_*, FUNCTION_* and SHARED_PATH are reserved');

export function functionsRoutes(deps: ApiDeps): Router {
  const { pool } = deps;
  const router = Router();
  const json = express.json();
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: deps.maxArchiveBytes, files: 1, fields: 8 } });
  const configSchema = z.strictObject({
    timeout_ms: z.number().int().min(100).max(deps.maxLimits.timeoutMs).nullable().optional(),
    memory_mb: z.number().int().min(16).max(deps.maxLimits.memoryMb).nullable().optional(),
    cpus: z.number().min(0.01).max(deps.maxLimits.cpus).nullable().optional(),
    env: envSchema.optional(),
    skip_signing: z.boolean().optional(),
    public: z.boolean().optional(),
    mode: z.enum(FUNCTION_MODES).optional(),
    concurrency: z.number().int().min(1).max(WARM_SETTINGS.maxConcurrency).optional(),
    min_instances: z.number().int().min(0).max(WARM_SETTINGS.maxMinInstances).optional(),
  });

  router.get('/', async (_req, res) => {
    const functions = await listFunctions(pool, res.locals.userId);
    res.json({ functions: functions.map(functionBody), count: functions.length });
  });

  router.post('/init', json, async (req, res) => {
    const body = z.object({ name: z.string(), skip_signing: z.boolean().default(false) }).parse(req.body ?? {});
    if (!FUNCTION_NAME_PATTERN.test(body.name)) {
      throw new WharfError('INVALID_NAME', `function names match ${FUNCTION_NAME_PATTERN}: lower-case letter first, then letters, digits, _ or -, 63 at most`);
    }
    const { fn, created } = await initFunction(pool, res.locals.userId, body.name, body.skip_signing, deps.quotas);
    if (created) res.status(201).json({ message: 'Function initialized successfully', ...functionBody(fn) });
    else res.status(200).json({ message: 'Function already exists', ...functionBody(fn), deployment_version: fn.latest_version, already_exists: true });
  });

  router.post('/deploy', upload.single('archive'), async (req, res) => {
    const fields = z.object({ function_id: uuid, env: z.string().optional(), runtime: z.enum(FUNCTION_RUNTIMES).optional() }).parse(req.body ?? {});
    const fn = await ownFunction(deps, res, fields.function_id);
    refusePendingDeletion(fn);
    if (!req.file) throw new WharfError('ARCHIVE_MISSING', 'attach the function as a tar.gz in the multipart field "archive"');
    const archive = req.file.buffer;
    if (archive[0] !== 0x1f || archive[1] !== 0x8b) throw new WharfError('ARCHIVE_INVALID', 'the archive is not gzip-compressed (expected a .tar.gz)');
    const env = envSchema.parse(fields.env === undefined ? {} : parseJsonField('env', fields.env));

    const sha256 = createHash('sha256').update(archive).digest('hex');
    const deployment = await createDeployment(pool, fn, archive, sha256, env, fields.runtime, deps.quotas);
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

  // Before `/:id`, which would otherwise take "pending-deletions" for an id.
  router.get('/pending-deletions', async (_req, res) => {
    const now = deps.now();
    const rows = await listPendingDeletions(pool, res.locals.userId);
    res.json({
      pending_deletions: rows.map((row) => ({
        ...deletionInfo(row, now),
        function_uuid: row.function_id,
        function_name: row.function_name,
        function_status: row.function_status,
        image_tag: row.image_tag,
      })),
      count: rows.length,
    });
  });

  router.get('/:id', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id, { includeDeleted: true });
    const active = fn.active_version === null ? undefined : await getDeployment(pool, fn.id, fn.active_version);
    res.json({ ...functionBody(fn), active_deployment: active ? deploymentBody(active, fn.active_version) : null });
  });

  router.get('/:id/deployments', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const { page, per_page: perPage } = pageSchema.parse(req.query);
    const { rows, total } = await listDeployments(pool, fn.id, page, perPage);
    const totalPages = Math.ceil(total / perPage);
    res.json({
      function_uuid: fn.id,
      function_name: fn.name,
      function_status: fn.status,
      page,
      per_page: perPage,
      count: total,
      total_pages: totalPages,
      has_next: page < totalPages,
      deployments: rows.map((d) => deploymentBody(d, fn.active_version)),
    });
  });

  async function ownDeployment(res: Response, id: string, versionParam: string) {
    const fn = await ownFunction(deps, res, id);
    const version = z.coerce.number().int().positive().safeParse(versionParam);
    const deployment = version.success ? await getDeployment(pool, fn.id, version.data) : undefined;
    if (!deployment) throw new WharfError('DEPLOYMENT_NOT_FOUND', `function ${fn.id} has no version ${versionParam}`);
    return { fn, deployment };
  }

  router.get('/:id/deployments/:version', async (req, res) => {
    const { fn, deployment } = await ownDeployment(res, req.params.id, req.params.version);
    res.json(deploymentBody(deployment, fn.active_version));
  });

  /** The build log so far; `?offset=` (from the last answer's `next_offset`) returns only what is new, for following a build. */
  router.get('/:id/deployments/:version/logs', async (req, res) => {
    const { deployment } = await ownDeployment(res, req.params.id, req.params.version);
    const { offset } = z.object({ offset: z.coerce.number().int().min(0).default(0) }).parse(req.query);
    const log = await getBuildLog(pool, deployment.id);
    res.json({ version: deployment.version, status: deployment.status, log: log.slice(offset), next_offset: log.length, finished: deployment.status !== 'building' });
  });

  /**
   * Pinning keeps a version's archive past WHARF_KEEP_VERSIONS, so that a rollback can rebuild it
   * once its image is retired. Only a successful build whose archive is still stored can be pinned.
   */
  router.put('/:id/deployments/:version/pin', async (req, res) => {
    const { fn, deployment } = await ownDeployment(res, req.params.id, req.params.version);
    refusePendingDeletion(fn);
    if (deployment.status !== 'succeeded') {
      throw new WharfError('VERSION_NOT_DEPLOYABLE', `version ${deployment.version} is ${deployment.status}; only a successful build can be pinned`);
    }
    const pinned = await setPinned(pool, deployment.id, true);
    if (!pinned) throw notRetained(fn, deployment.version);
    deps.logger.info({ functionId: fn.id, version: deployment.version }, 'version pinned');
    res.json(deploymentBody(pinned, fn.active_version));
  });

  router.delete('/:id/deployments/:version/pin', async (req, res) => {
    const { fn, deployment } = await ownDeployment(res, req.params.id, req.params.version);
    refusePendingDeletion(fn);
    const unpinned = (await setPinned(pool, deployment.id, false))!;
    deps.logger.info({ functionId: fn.id, version: deployment.version }, 'version unpinned');
    res.json(deploymentBody(unpinned, fn.active_version));
  });

  router.post('/:id/rollback', json, async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const { version } = z.object({ version: z.number().int().positive() }).parse(req.body ?? {});
    refusePendingDeletion(fn);
    const deployment = await getDeployment(pool, fn.id, version);
    if (!deployment) throw new WharfError('DEPLOYMENT_NOT_FOUND', `function ${fn.name} has no version ${version}`);
    if (deployment.status !== 'succeeded') {
      throw new WharfError('VERSION_NOT_DEPLOYABLE', `version ${version} is ${deployment.status}; only a successful build can serve`);
    }
    if (!deployment.image_tag) {
      // Its image was retired (WHARF_KEEP_VERSIONS); if its archive was kept (pinned), rebuild it, then it serves.
      if (deployment.archive_dropped_at) throw notRetained(fn, version);
      if (!(await startRebuild(pool, deployment))) {
        const current = await getDeployment(pool, fn.id, version);
        if (current?.archive_dropped_at) throw notRetained(fn, version);
        throw new WharfError('VERSION_NOT_DEPLOYABLE', `version ${version} is being rebuilt already`);
      }
      try {
        await deps.buildQueue.add(
          'build',
          { deploymentId: deployment.id, functionId: fn.id, version, activate: true },
          { ...JOB_OPTIONS.build, jobId: `${deployment.id}-rebuild-${Date.now()}` },
        );
      } catch (err) {
        await abandonRebuild(pool, deployment.id, fn.id);
        throw err;
      }
      deps.logger.info({ functionId: fn.id, from: fn.active_version, to: version }, 'rollback to a retired version: rebuilding it');
      res.status(202).json({
        message: `version ${version}'s image was retired; it is being rebuilt and serves once built (follow …/deployments/${version}/logs)`,
        rebuilding: true,
        function: functionBody((await getFunction(pool, res.locals.userId, fn.id))!),
        previous_version: fn.active_version,
      });
      return;
    }
    const updated = await rollbackTo(pool, fn.id, version);
    if (!updated) {
      // The guarded update found the function pending deletion after all (a concurrent DELETE), or the image retired meanwhile.
      refusePendingDeletion((await getFunction(pool, res.locals.userId, fn.id)) ?? fn);
      throw new WharfError('VERSION_NOT_DEPLOYABLE', `version ${version}'s image was retired meanwhile; roll back again to rebuild it`);
    }
    deps.logger.info({ functionId: fn.id, from: fn.active_version, to: version }, 'rolled back');
    await announceFunctionChange(deps, fn.id);
    res.json({ message: `version ${version} is now active`, function: functionBody(updated), previous_version: fn.active_version });
  });

  router.patch('/:id/config', json, async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const patch = configSchema.parse(req.body ?? {});
    refusePendingDeletion(fn);
    try {
      const updated = await updateFunctionConfig(pool, fn, patch, deps.quotas);
      await announceFunctionChange(deps, fn.id);
      res.json(functionBody(updated));
    } catch (err) {
      if ((err as { constraint?: string }).constraint === 'functions_public_name') {
        throw new WharfError('PUBLIC_NAME_TAKEN', `another public function is already called ${fn.name}: public functions share /fn/<name>`);
      }
      throw err;
    }
  });

  router.delete('/:id', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const now = deps.now();
    const deletion = await scheduleDeletion(pool, fn.id, 'user_requested', addDays(now, deps.deletionGraceDays));
    if (!deletion) throw new WharfError('FUNCTION_NOT_FOUND', `no function ${fn.id}`);
    deps.logger.info({ functionId: fn.id, deletionDate: deletion.deletion_date }, 'deletion scheduled');
    await announceFunctionChange(deps, fn.id);
    res.status(202).json({
      message: `function ${fn.name} will be deleted on ${deletion.deletion_date.toISOString()} unless the deletion is cancelled`,
      function_uuid: fn.id,
      function_name: fn.name,
      status: 'pending_deletion',
      deletion_info: deletionInfo(deletion, now),
    });
  });

  router.get('/:id/deletion-status', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id, { includeDeleted: true });
    const deletion = await pendingDeletionOf(pool, fn.id);
    res.json({
      function_uuid: fn.id,
      function_name: fn.name,
      function_status: fn.status,
      has_pending_deletion: deletion !== undefined,
      ...(deletion ? { deletion_info: deletionInfo(deletion, deps.now()) } : {}),
    });
  });

  router.post('/:id/cancel-deletion', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const restored = await cancelDeletion(pool, fn.id);
    if (!restored) throw new WharfError('NO_PENDING_DELETION', `function ${fn.name} is not scheduled for deletion`);
    deps.logger.info({ functionId: fn.id, status: restored.status }, 'deletion cancelled');
    await announceFunctionChange(deps, fn.id);
    res.json({
      success: true,
      message: `the deletion of ${fn.name} is cancelled`,
      function: { uuid: restored.id, name: restored.name, status: restored.status },
    });
  });

  router.get('/:id/logs', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const { limit, since } = z
      .object({ limit: z.coerce.number().int().min(1).max(100).default(20), since: z.coerce.date().optional() })
      .parse(req.query);
    await deps.waiter.recorded();
    res.json({ function_id: fn.id, function_name: fn.name, invocations: await recentLogs(pool, fn.id, limit, since) });
  });

  return router;
}

/** Rollback or pin of a version whose image was retired and whose archive was dropped. */
function notRetained(fn: FunctionRow, version: number): WharfError {
  return new WharfError(
    'VERSION_NOT_RETAINED',
    `version ${version} of ${fn.name} is no longer stored: its image was retired and its archive dropped (past WHARF_KEEP_VERSIONS, and not pinned). ` +
      `Pin versions you may roll back to (PUT /api/functions/${fn.id}/deployments/<version>/pin) before they leave the window; to run this code again, deploy it again`,
  );
}

function parseJsonField(field: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new WharfError('VALIDATION_FAILED', `${field}: not valid JSON`);
  }
}
