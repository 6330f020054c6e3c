import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type Docker from 'dockerode';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Pool } from '@wharf/db';
import {
  LABELS,
  WharfError,
  attemptNumber,
  buildJobSchema,
  coerceError,
  imageTagFor,
  prunedImagesKey,
  retireChannel,
  deleteFromRegistry,
  type BuildJob,
  type BuildResult,
  type Logger,
} from '@wharf/shared';
import type { AnalysisPool } from './analysis-pool.js';
import type { ChildProcesses } from './child-processes.js';
import { hideHostPaths } from './host-paths.js';
import { extractArchive, readProjectFiles, sourcePaths } from './archive.js';
import { launcherBundle } from './bundle.js';
import { dependencyPlan, installDependencies, type InstallSettings } from './dependencies.js';
import { buildImage, pushImage, type ImageContent } from './image.js';
import { chooseRuntime } from './runtimes.js';
import type { FunctionClassInfo } from './analysis.js';
import { appendBuildLog, loadDeployment, markDeploymentSucceeded, markDeploymentFailed, retireOldImages } from './deployments.js';

/** The SDK bundled into every image (the builder's own copy, whatever the archive asked for). */
const SDK_VERSION: string = createRequire(import.meta.url)('@wharf/sdk/package.json').version;

export interface BuildDeps {
  pool: Pool;
  docker: Docker;
  redis: Redis;
  queuePrefix: string;
  keepVersions: number;
  logger: Logger;
  baseImage: string;
  /** Images are pushed there when set (several container hosts). */
  registry?: string;
  buildDir: string;
  builderId: string;
  install: InstallSettings;
  analysis: Pick<AnalysisPool, 'analyse' | 'typeCheck' | 'bundle'>;
  /** npm runs as one of these: killed with the builder, and by its successor if it outlived it. */
  children: Pick<ChildProcesses, 'run'>;
  timeouts: { imageMs: number };
}

/** Dependencies, type-check and bundle of a `@cloudFunction` class: what its image holds. */
async function prepareNodeFunction(
  deps: BuildDeps,
  sourceDir: string,
  /** package.json, package-lock.json, tsconfig.json: the sources themselves are read by the analysis processes. */
  projectFiles: Map<string, string>,
  fn: FunctionClassInfo,
  buildLog: (...lines: string[]) => Promise<void>,
): Promise<ImageContent> {
  const plan = dependencyPlan(projectFiles, deps.install.registry);
  let installed: Awaited<ReturnType<typeof installDependencies>> | undefined;
  if (plan) {
    await buildLog(`dependencies: ${Object.entries(plan.dependencies).map(([name, spec]) => `${name}@${spec}`).join(', ')} (${plan.lock ? 'npm ci, from package-lock.json' : 'npm install, no lock file'})`);
    const at = Date.now();
    installed = await installDependencies(plan, deps.install, deps.children);
    // The archive's own node_modules, if it brought one, must not shadow what was installed.
    await fs.rm(path.join(sourceDir, 'node_modules'), { recursive: true, force: true });
    await buildLog(...installed.output.slice(-30), `dependencies: ${installed.cached ? 'cached' : 'installed'} in ${Date.now() - at} ms${installed.native ? '; native add-ons found: packages copied into the image unbundled' : ''}`);
  }

  await deps.analysis.typeCheck(sourceDir, installed?.nodeModules);
  await buildLog('typecheck: no errors');

  const bundle = await deps.analysis.bundle(sourceDir, fn, installed && { nodeModules: installed.nodeModules, external: installed.native ? Object.keys(plan!.dependencies) : [] });
  await buildLog(`bundle: ${(bundle.length / 1024).toFixed(1)} KB`);
  return { runtime: 'node', bundle, nodeModules: installed?.native ? installed.nodeModules : undefined };
}

/** Past `keepVersions`, older versions' images go: listed for every host's sweeper, and removed from this engine now. */
async function retireImages(deps: BuildDeps, functionId: string, log: Logger): Promise<void> {
  const retired = await retireOldImages(deps.pool, functionId, deps.keepVersions);
  if (retired.length === 0) return;
  await deps.redis.zadd(prunedImagesKey(deps.queuePrefix), ...retired.flatMap((tag) => [Date.now(), tag]));
  for (const tag of retired) {
    await deps.docker.getImage(tag).remove().catch(() => {});
    // Pushed there for the other hosts: it leaves the registry too (the sweeps take it off every engine).
    if (deps.registry && tag.startsWith(`${deps.registry}/`)) await deleteFromRegistry(tag).catch((err) => log.warn({ err, tag }, 'could not delete the image from the registry'));
  }
  log.info({ retired }, 'retired images of old versions');
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
    const buildLog = (...lines: string[]) => appendBuildLog(deps.pool, data.deploymentId, lines.map((line) => `[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`));
    await buildLog(`${data.activate ? 'rebuild (rollback)' : 'build'} of v${data.version} on ${deps.builderId} (attempt ${attemptNumber(job)})`);
    const tag = imageTagFor(data.functionId, data.version, deps.registry);
    // A version rebuilt after its image was retired: no host may sweep the new image away.
    if (data.activate) await deps.redis.zrem(prunedImagesKey(deps.queuePrefix), tag);

    await fs.mkdir(deps.buildDir, { recursive: true });
    const workDir = await fs.mkdtemp(path.join(deps.buildDir, `${data.deploymentId}-`));
    try {
      const sourceDir = path.join(workDir, 'src');
      const contextDir = path.join(workDir, 'context');
      await fs.mkdir(sourceDir);
      await fs.mkdir(contextDir);

      // Dropped by retention (an old version, or a failed build) after the job was queued.
      if (!deployment.archive) throw new WharfError('VERSION_NOT_RETAINED', `the archive of v${data.version} is no longer stored; deploy it again`);
      await extractArchive(deployment.archive, sourceDir);
      const sources = await sourcePaths(sourceDir);
      await buildLog(`archive: ${deployment.archive.length} bytes, sha256 ${deployment.archiveSha256.slice(0, 12)}…, ${sources.length} source files`);
      const choice = await chooseRuntime(sourceDir, deployment.runtime, () => deps.analysis.analyse(sourceDir));
      log.info({ runtime: choice.runtime, handler: choice.handler }, 'runtime chosen');
      await buildLog(choice.runtime === 'node' ? `analysis: class ${choice.fn.className} in ${choice.fn.file}` : `runtime: ${choice.runtime}, entry ${choice.handler}`);
      const content = choice.runtime === 'node' ? await prepareNodeFunction(deps, sourceDir, await readProjectFiles(sourceDir), choice.fn, buildLog) : { runtime: choice.runtime, appDir: sourceDir, launcher: await launcherBundle() };

      const output = await buildImage(deps.docker, contextDir, {
        tag,
        baseImage: deps.baseImage,
        content,
        labels: {
          [LABELS.functionId]: data.functionId,
          [LABELS.version]: String(data.version),
          [LABELS.deploymentId]: data.deploymentId,
          [LABELS.archiveSha256]: deployment.archiveSha256,
          [LABELS.builderId]: deps.builderId,
          [LABELS.sdkVersion]: SDK_VERSION,
        },
      }, deps.timeouts.imageMs);
      await buildLog(...output.map((line) => `docker: ${line}`), `image ${tag} built`);
      if (deps.registry) {
        await pushImage(deps.docker, tag, deps.timeouts.imageMs);
        await buildLog(`pushed to ${deps.registry}`);
      }
      await buildLog(`v${data.version} is active`);
      await markDeploymentSucceeded(deps.pool, data.deploymentId, { imageTag: tag, runtime: choice.runtime, handler: choice.handler }, data.activate);
      log.info({ imageTag: tag, buildMs: Date.now() - started }, 'deployment active');
      // Warm instances of the version that served until now retire at once on every runner.
      await deps.redis.publish(retireChannel(deps.queuePrefix), data.functionId);
      await retireImages(deps, data.functionId, log);
      return { status: 'succeeded', imageTag: tag };
    } catch (thrown) {
      // What the owner reads names files as the archive does, never this host's folders.
      const shown = (message: string) => hideHostPaths(message, [[path.join(workDir, 'src'), ''], [workDir, ''], [deps.install.cacheDir, '<npm cache>']]);
      if (thrown instanceof WharfError) {
        // The archive is at fault: retrying cannot help.
        const message = shown(thrown.message);
        await buildLog(`failed: ${thrown.code}: ${message}`);
        await markDeploymentFailed(deps.pool, data.deploymentId, thrown.code, message);
        log.info({ code: thrown.code, reason: message }, 'deployment failed');
        return { status: 'failed', error: { code: thrown.code, message } };
      }
      const err = coerceError(thrown);
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.error({ err, attempt: job.attemptsMade + 1, lastAttempt }, 'build failed');
      await buildLog(`error: ${shown(err.message)}${lastAttempt ? '' : ' (will retry)'}`).catch(() => {});
      if (lastAttempt) await markDeploymentFailed(deps.pool, data.deploymentId, 'BUILD_FAILED', shown(err.message));
      throw err;
    } finally {
      await fs.rm(workDir, { recursive: true, force: true, maxRetries: 5 });
    }
  };
}
