import fs from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Pool } from '@wharf/db';
import {
  LABELS,
  WharfError,
  buildJobSchema,
  coerceError,
  imageTagFor,
  type BuildJob,
  type BuildResult,
  type Logger,
} from '@wharf/shared';
import { analyseSources } from './analysis.js';
import { extractArchive, readSources } from './archive.js';
import { bundleFunction } from './bundle.js';
import { buildImage } from './image.js';
import { loadDeployment, markDeploymentSucceeded, markDeploymentFailed } from './deployments.js';

export interface BuildDeps {
  pool: Pool;
  docker: Docker;
  logger: Logger;
  baseImage: string;
  buildDir: string;
  builderId: string;
}

export function createBuildProcessor(deps: BuildDeps) {
  return async function processBuild(job: Job<BuildJob, BuildResult>): Promise<BuildResult> {
    const data = buildJobSchema.parse(job.data);
    const log = deps.logger.child({ deploymentId: data.deploymentId, functionId: data.functionId, version: data.version });
    const deployment = await loadDeployment(deps.pool, data.deploymentId);
    if (!deployment) throw new UnrecoverableError(`deployment ${data.deploymentId} does not exist`);
    if (deployment.status !== 'building') {
      log.info({ status: deployment.status }, 'deployment already finished; nothing to do');
      return { status: deployment.status === 'succeeded' ? 'succeeded' : 'failed' };
    }

    const started = Date.now();
    await fs.mkdir(deps.buildDir, { recursive: true });
    const workDir = await fs.mkdtemp(path.join(deps.buildDir, `${data.deploymentId}-`));
    try {
      const sourceDir = path.join(workDir, 'src');
      const contextDir = path.join(workDir, 'context');
      await fs.mkdir(sourceDir);
      await fs.mkdir(contextDir);

      await extractArchive(deployment.archive, sourceDir);
      const files = await readSources(sourceDir);
      const fn = analyseSources(files);
      log.info({ file: fn.file, className: fn.className }, 'function class found');
      const bundle = await bundleFunction(sourceDir, fn, files);

      const tag = imageTagFor(data.functionId, data.version);
      await buildImage(deps.docker, contextDir, {
        tag,
        baseImage: deps.baseImage,
        bundle,
        labels: {
          [LABELS.functionId]: data.functionId,
          [LABELS.version]: String(data.version),
          [LABELS.deploymentId]: data.deploymentId,
          [LABELS.archiveSha256]: deployment.archiveSha256,
          [LABELS.builderId]: deps.builderId,
        },
      });
      await markDeploymentSucceeded(deps.pool, data.deploymentId, tag);
      log.info({ imageTag: tag, buildMs: Date.now() - started }, 'deployment active');
      return { status: 'succeeded', imageTag: tag };
    } catch (thrown) {
      if (thrown instanceof WharfError) {
        // The archive is at fault: retrying cannot help.
        await markDeploymentFailed(deps.pool, data.deploymentId, thrown.code, thrown.message);
        log.info({ code: thrown.code, reason: thrown.message }, 'deployment failed');
        return { status: 'failed', error: { code: thrown.code, message: thrown.message } };
      }
      const err = coerceError(thrown);
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.error({ err, attempt: job.attemptsMade + 1, lastAttempt }, 'build failed');
      if (lastAttempt) await markDeploymentFailed(deps.pool, data.deploymentId, 'BUILD_FAILED', err.message);
      throw err;
    } finally {
      await fs.rm(workDir, { recursive: true, force: true });
    }
  };
}
