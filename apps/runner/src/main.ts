import Docker from 'dockerode';
import { Worker } from 'bullmq';
import {
  QUEUE_NAMES,
  createLogger,
  createRedis,
  handleShutdown,
  parseEnv,
  runMain,
  runnerEnvSchema,
  type InvokeJob,
  type InvokeResult,
} from '@wharf/shared';
import { createInvokeProcessor } from './invoke-processor.js';
import { reapLeftovers } from './reaper.js';

runMain('runner', async () => {
  const env = parseEnv(runnerEnvSchema);
  const logger = createLogger('runner', env.LOG_LEVEL).child({ runnerId: env.WHARF_RUNNER_ID });
  const limits = {
    timeoutMs: env.WHARF_FUNCTION_TIMEOUT_MS,
    memoryMb: env.WHARF_FUNCTION_MEMORY_MB,
    cpus: env.WHARF_FUNCTION_CPUS,
    pids: env.WHARF_FUNCTION_PIDS,
  };
  logger.info({ limits, concurrency: env.WHARF_RUNNER_CONCURRENCY, functionsDir: env.WHARF_FUNCTIONS_DIR, prefix: env.WHARF_QUEUE_PREFIX }, 'starting');

  const docker = new Docker();
  await docker.ping();
  await reapLeftovers(docker, env.WHARF_FUNCTIONS_DIR, env.WHARF_RUNNER_ID, logger);

  const connection = createRedis(env.REDIS_URL, 'worker');
  const processor = createInvokeProcessor({
    docker,
    logger,
    runnerId: env.WHARF_RUNNER_ID,
    functionsDir: env.WHARF_FUNCTIONS_DIR,
    limits,
    maxOutputBytes: env.WHARF_MAX_RESULT_BYTES,
  });
  const worker = new Worker<InvokeJob, InvokeResult>(QUEUE_NAMES.invoke, processor, {
    connection,
    prefix: env.WHARF_QUEUE_PREFIX,
    concurrency: env.WHARF_RUNNER_CONCURRENCY,
  });
  worker.on('error', (err) => logger.error({ err }, 'worker error'));
  await worker.waitUntilReady();
  logger.info('runner ready');

  handleShutdown(logger, [
    ['worker', () => worker.close()],
    ['redis', () => connection.quit()],
  ]);
});
