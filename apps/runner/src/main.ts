import Docker from 'dockerode';
import { Worker } from 'bullmq';
import {
  QUEUE_NAMES,
  createLogger,
  createRedis,
  functionMaximaFrom,
  handleShutdown,
  parseEnv,
  runMain,
  runnerEnvSchema,
  startImageSweeper,
  type InvokeJob,
  type InvokeResult,
} from '@wharf/shared';
import { createInvokeProcessor } from './invoke-processor.js';
import { reapLeftovers } from './reaper.js';

runMain('runner', async () => {
  const env = parseEnv(runnerEnvSchema);
  const logger = createLogger('runner', env.LOG_LEVEL).child({ runnerId: env.WHARF_RUNNER_ID });
  const maxima = { ...functionMaximaFrom(env), pids: env.WHARF_FUNCTION_PIDS };
  logger.info({ maxima, concurrency: env.WHARF_RUNNER_CONCURRENCY, functionsDir: env.WHARF_FUNCTIONS_DIR, prefix: env.WHARF_QUEUE_PREFIX }, 'starting');

  const docker = new Docker();
  await docker.ping();
  await reapLeftovers(docker, env.WHARF_FUNCTIONS_DIR, env.WHARF_RUNNER_ID, logger);

  const connection = createRedis(env.REDIS_URL, 'worker');
  const processor = createInvokeProcessor({
    docker,
    logger,
    runnerId: env.WHARF_RUNNER_ID,
    functionsDir: env.WHARF_FUNCTIONS_DIR,
    maxima,
    maxOutputBytes: env.WHARF_MAX_RESULT_BYTES,
  });
  const worker = new Worker<InvokeJob, InvokeResult>(QUEUE_NAMES.invoke, processor, {
    connection,
    prefix: env.WHARF_QUEUE_PREFIX,
    concurrency: env.WHARF_RUNNER_CONCURRENCY,
  });
  worker.on('error', (err) => logger.error({ err }, 'worker error'));
  await worker.waitUntilReady();
  const sweeper = startImageSweeper({ docker, redis: connection, prefix: env.WHARF_QUEUE_PREFIX, intervalMs: env.WHARF_IMAGE_SWEEP_INTERVAL_MS, logger });
  logger.info('runner ready');

  handleShutdown(logger, [
    ['worker', () => worker.close()],
    ['image sweeper', () => sweeper.stop()],
    ['redis', () => connection.quit()],
  ]);
});
