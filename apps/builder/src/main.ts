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
  parseEnv,
  runMain,
  startImageSweeper,
  type BuildJob,
  type BuildResult,
} from '@wharf/shared';
import { createBuildProcessor } from './build-processor.js';

runMain('builder', async () => {
  const env = parseEnv(builderEnvSchema);
  const logger = createLogger('builder', env.LOG_LEVEL);
  logger.info({ baseImage: env.WHARF_BASE_IMAGE, concurrency: env.WHARF_BUILDER_CONCURRENCY, builderId: env.WHARF_BUILDER_ID, prefix: env.WHARF_QUEUE_PREFIX }, 'starting');

  const pool = createPool(env.DATABASE_URL, logger);
  await migrate(pool);
  const docker = new Docker();
  await docker.getImage(env.WHARF_BASE_IMAGE).inspect().catch((err: Error) => {
    throw new Error(`base image ${env.WHARF_BASE_IMAGE} is not on this Docker engine (run infra/setup.sh, or set WHARF_BASE_IMAGE): ${err.message}`);
  });

  const connection = createRedis(env.REDIS_URL, 'worker');
  const processor = createBuildProcessor({
    pool,
    docker,
    logger,
    baseImage: env.WHARF_BASE_IMAGE,
    buildDir: env.WHARF_BUILD_DIR,
    builderId: env.WHARF_BUILDER_ID,
  });
  const worker = new Worker<BuildJob, BuildResult>(QUEUE_NAMES.build, processor, {
    connection,
    prefix: env.WHARF_QUEUE_PREFIX,
    concurrency: env.WHARF_BUILDER_CONCURRENCY,
    // Analysis runs on this event loop and can hold it for seconds; a long lock keeps such a build from being taken for stalled.
    lockDuration: 60_000,
  });
  worker.on('error', (err) => logger.error({ err }, 'worker error'));
  await worker.waitUntilReady();
  const sweeper = startImageSweeper({ docker, redis: connection, prefix: env.WHARF_QUEUE_PREFIX, intervalMs: env.WHARF_IMAGE_SWEEP_INTERVAL_MS, logger });
  logger.info({ attempts: JOB_OPTIONS.build.attempts }, 'builder ready');

  handleShutdown(logger, [
    ['worker', () => worker.close()],
    ['image sweeper', () => sweeper.stop()],
    ['redis', () => connection.quit()],
    ['postgres', () => pool.end()],
  ]);
});
