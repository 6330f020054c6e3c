import Docker from 'dockerode';
import { Worker } from 'bullmq';
import { createPool, migrate } from '@wharf/db';
import {
  JOB_OPTIONS,
  QUEUE_NAMES,
  builderEnvSchema,
  createLogger,
  createRedis,
  handleShutdown,
  startHealthServer,
  parseEnv,
  runMain,
  startImageSweeper,
  type BuildJob,
  type BuildResult,
} from '@wharf/shared';
import path from 'node:path';
import { AnalysisPool } from './analysis-pool.js';
import { createBuildProcessor } from './build-processor.js';
import { ChildProcesses } from './child-processes.js';
import { interruptedInstalls } from './dependencies.js';
import { discardFolders } from './leftovers.js';
import { removeDanglingImages } from './image.js';

runMain('builder', async () => {
  const env = parseEnv(builderEnvSchema);
  const logger = createLogger('builder', env.LOG_LEVEL);
  logger.info({ baseImage: env.WHARF_BASE_IMAGE, registry: env.WHARF_REGISTRY, concurrency: env.WHARF_BUILDER_CONCURRENCY, builderId: env.WHARF_BUILDER_ID, prefix: env.WHARF_QUEUE_PREFIX }, 'starting');

  const pool = createPool(env.DATABASE_URL, logger);
  await migrate(pool);
  const docker = new Docker();
  await docker.getImage(env.WHARF_BASE_IMAGE).inspect().catch((err: Error) => {
    throw new Error(`base image ${env.WHARF_BASE_IMAGE} is not on this Docker engine (run infra/setup.sh, or set WHARF_BASE_IMAGE): ${err.message}`);
  });

  // A predecessor under this id that was killed may have left npm or analysis processes running:
  // they are ended before anything touches the folders they write in.
  const children = await ChildProcesses.open(path.join(env.WHARF_BUILD_DIR, `${env.WHARF_BUILDER_ID}.children`), logger);
  // Each builder id has a folder of its own, so a builder restarting under that id can clear what
  // its predecessor left (a killed build's folder) without touching another builder's work.
  const buildDir = path.join(env.WHARF_BUILD_DIR, env.WHARF_BUILDER_ID);
  const leftovers = await discardFolders([buildDir, ...(await interruptedInstalls(env.WHARF_BUILDER_CACHE_DIR, env.WHARF_BUILDER_ID))], logger);
  const dangling = await removeDanglingImages(docker, env.WHARF_BUILDER_ID);
  if (dangling + leftovers.discarded > 0) logger.info({ dangling, folders: leftovers.discarded }, 'removing what an interrupted build left');

  const analysis = new AnalysisPool({ size: env.WHARF_BUILDER_CONCURRENCY, analysisTimeoutMs: env.WHARF_ANALYSIS_TIMEOUT_MS, bundleTimeoutMs: env.WHARF_BUNDLE_TIMEOUT_MS, children });
  const warming = Date.now();
  await analysis.warmUp();
  logger.info({ ms: Date.now() - warming, pids: analysis.pids() }, 'analysis processes warm');
  const connection = createRedis(env.REDIS_URL, 'worker');
  const processor = createBuildProcessor({
    pool,
    docker,
    redis: connection,
    queuePrefix: env.WHARF_QUEUE_PREFIX,
    keepVersions: env.WHARF_KEEP_VERSIONS,
    logger,
    baseImage: env.WHARF_BASE_IMAGE,
    registry: env.WHARF_REGISTRY,
    buildDir,
    builderId: env.WHARF_BUILDER_ID,
    analysis,
    children,
    install: { cacheDir: env.WHARF_BUILDER_CACHE_DIR, builderId: env.WHARF_BUILDER_ID, registry: env.WHARF_NPM_REGISTRY, timeoutMs: env.WHARF_INSTALL_TIMEOUT_MS },
    timeouts: { imageMs: env.WHARF_IMAGE_TIMEOUT_MS },
  });
  const worker = new Worker<BuildJob, BuildResult>(QUEUE_NAMES.build, processor, {
    connection,
    prefix: env.WHARF_QUEUE_PREFIX,
    concurrency: env.WHARF_BUILDER_CONCURRENCY,
    lockDuration: env.WHARF_BUILDER_LOCK_MS,
    stalledInterval: env.WHARF_BUILDER_LOCK_MS,
  });
  worker.on('error', (err) => logger.error({ err }, 'worker error'));
  await worker.waitUntilReady();
  const sweeper = startImageSweeper({ docker, redis: connection, prefix: env.WHARF_QUEUE_PREFIX, intervalMs: env.WHARF_IMAGE_SWEEP_INTERVAL_MS, logger, registry: env.WHARF_REGISTRY });
  // Ready while the worker takes jobs and Redis answers: a draining or disconnected worker reads as unavailable.
  const health = env.WHARF_HEALTH_PORT ? await startHealthServer(env.WHARF_HEALTH_PORT, () => worker.isRunning() && connection.status === 'ready') : undefined;
  logger.info({ attempts: JOB_OPTIONS.build.attempts }, 'builder ready');

  handleShutdown(logger, [
    ['worker', () => worker.close()],
    ['health', () => health?.close()],
    ['image sweeper', () => sweeper.stop()],
    ['analysis processes', () => analysis.close()],
    ['child processes', () => children.killAll()],
    ['discarded folders', () => leftovers.deleted],
    ['redis', () => connection.quit()],
    ['postgres', () => pool.end()],
  ]);
});
