import os from 'node:os';
import Docker from 'dockerode';
import { Worker, type Processor } from 'bullmq';
import {
  ConfigError,
  QUEUE_NAMES,
  createLogger,
  createRedis,
  functionMaximaFrom,
  handleShutdown,
  startHealthServer,
  parseEnv,
  releaseAdmission,
  runMain,
  runnerQueueName,
  runnerEnvSchema,
  startImageSweeper,
  type InvokeJob,
  type InvokeResult,
} from '@wharf/shared';
import { Cancellations } from './cancellations.js';
import { hostLimitsFrom } from './container-runner.js';
import { containerNamePrefix, createInvokeProcessor } from './invoke-processor.js';
import { WarmPool, warmSocketPathFits } from './warm-pool.js';
import { reapLeftovers } from './reaper.js';
import { startHeartbeat } from './heartbeat.js';
import { EngineWatch } from './engine-watch.js';
import { WarmSlots } from './warm-slots.js';
import { Capacity } from './capacity.js';
import { startHandingBack } from './hand-back.js';

runMain('runner', async () => {
  const env = parseEnv(runnerEnvSchema);
  const logger = createLogger('runner', env.LOG_LEVEL).child({ runnerId: env.WHARF_RUNNER_ID });
  const maxima = functionMaximaFrom(env);
  const caps = { resultBytes: env.WHARF_MAX_RESULT_BYTES, logBytes: env.WHARF_MAX_LOG_BYTES };
  const hostLimits = hostLimitsFrom(env);
  logger.info({ maxima, hostLimits, caps, slots: env.WHARF_RUNNER_SLOTS, functionsDir: env.WHARF_FUNCTIONS_DIR, prefix: env.WHARF_QUEUE_PREFIX }, 'starting');

  const docker = new Docker();
  await docker.ping();
  await reapLeftovers(docker, env.WHARF_FUNCTIONS_DIR, env.WHARF_RUNNER_ID, logger);

  const engine = await EngineWatch.start(docker, logger);
  const connection = createRedis(env.REDIS_URL, 'worker');
  if (!warmSocketPathFits(env.WHARF_FUNCTIONS_DIR, containerNamePrefix(env.WHARF_RUNNER_ID))) {
    throw new ConfigError(`invalid configuration: WHARF_FUNCTIONS_DIR=${JSON.stringify(env.WHARF_FUNCTIONS_DIR)}: too long for warm instances' sockets (Unix socket paths are at most 107 bytes); use a shorter folder or WHARF_RUNNER_ID`);
  }
  const capacity = new Capacity(env.WHARF_RUNNER_SLOTS);
  const slots = await WarmSlots.start({ redis: connection, prefix: env.WHARF_QUEUE_PREFIX, runnerId: env.WHARF_RUNNER_ID, logger });
  const warm = new WarmPool({
    docker,
    logger,
    runnerId: env.WHARF_RUNNER_ID,
    functionsDir: env.WHARF_FUNCTIONS_DIR,
    caps,
    idleMs: env.WHARF_WARM_IDLE_MS,
    maxInstances: env.WHARF_WARM_MAX_INSTANCES,
    namePrefix: containerNamePrefix(env.WHARF_RUNNER_ID),
    engine,
    slots,
    freeRunnerSlots: () => capacity.free,
  });
  const cancellations = await Cancellations.start(env.REDIS_URL, connection, env.WHARF_QUEUE_PREFIX, logger, (functionId) => {
    void warm.retireFunction(functionId).catch((err) => logger.warn({ err, functionId }, 'could not retire warm instances'));
  });
  const processor = createInvokeProcessor({
    docker,
    logger,
    runnerId: env.WHARF_RUNNER_ID,
    functionsDir: env.WHARF_FUNCTIONS_DIR,
    maxima,
    hostLimits,
    caps,
    cancellations,
    warm,
    releaseAdmission: (job) => releaseAdmission(connection, env.WHARF_QUEUE_PREFIX, job),
    engine,
  });
  // Either queue's job starts once it has one of the runner's slots; a routed one took a warm slot the API had from this runner.
  const run =
    (routed: boolean): Processor<InvokeJob, InvokeResult> =>
    async (job) => {
      if (routed) warm.routedSlotTaken(job.data.functionId, job.data.version);
      const slotted = capacity.acquire(routed);
      worker.concurrency = capacity.sharedConcurrency;
      warm.rebalance();
      await slotted;
      try {
        return await processor(job);
      } finally {
        capacity.release(routed);
        worker.concurrency = capacity.sharedConcurrency;
        warm.rebalance();
      }
    };
  const workerOptions = { connection, prefix: env.WHARF_QUEUE_PREFIX, lockDuration: env.WHARF_RUNNER_LOCK_MS, stalledInterval: env.WHARF_RUNNER_LOCK_MS };
  // The shared queue: as many jobs at once as this host has slots.
  const worker = new Worker<InvokeJob, InvokeResult>(QUEUE_NAMES.invoke, run(false), { ...workerOptions, concurrency: env.WHARF_RUNNER_SLOTS });
  // This runner's own queue: calls sent for a free slot of a live instance here (no more are advertised than slots are free).
  const routed = new Worker<InvokeJob, InvokeResult>(runnerQueueName(env.WHARF_RUNNER_ID), run(true), { ...workerOptions, concurrency: env.WHARF_RUNNER_SLOTS });
  for (const w of [worker, routed]) w.on('error', (err) => logger.error({ err, queue: w.name }, 'worker error'));
  await Promise.all([worker.waitUntilReady(), routed.waitUntilReady()]);
  const handingBack = startHandingBack({ redis: connection, prefix: env.WHARF_QUEUE_PREFIX, runnerId: env.WHARF_RUNNER_ID, intervalMs: env.WHARF_HEARTBEAT_MS, logger });
  const sweeper = startImageSweeper({ docker, redis: connection, prefix: env.WHARF_QUEUE_PREFIX, intervalMs: env.WHARF_IMAGE_SWEEP_INTERVAL_MS, logger });
  const startedAt = new Date().toISOString();
  const heartbeat = await startHeartbeat({
    redis: connection,
    prefix: env.WHARF_QUEUE_PREFIX,
    intervalMs: env.WHARF_HEARTBEAT_MS,
    logger,
    snapshot: () => ({
      id: env.WHARF_RUNNER_ID,
      host: os.hostname(),
      engine: process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock',
      slots: env.WHARF_RUNNER_SLOTS,
      running: capacity.running,
      warmInstances: warm.size,
      warmHits: warm.hits,
      warmMisses: warm.misses,
      startedAt,
    }),
  });
  // Ready while the worker takes jobs and Redis answers: a draining or disconnected worker reads as unavailable.
  const health = env.WHARF_HEALTH_PORT ? await startHealthServer(env.WHARF_HEALTH_PORT, () => worker.isRunning() && connection.status === 'ready') : undefined;
  logger.info('runner ready');

  handleShutdown(logger, [
    // No call is routed here any more; those in flight finish; what still waits in this runner's queue goes to the shared one.
    ['warm slots', () => slots.close()],
    ['workers', () => Promise.all([worker.close(), routed.close()])],
    ['own queue', () => handingBack.handBackOwn()],
    ['handing back', () => handingBack.stop()],
    ['health', () => health?.close()],
    ['heartbeat', () => heartbeat.stop()],
    ['warm instances', () => warm.close()],
    ['image sweeper', () => sweeper.stop()],
    ['engine watch', () => engine.stop()],
    ['cancellations', () => cancellations.close()],
    ['redis', () => connection.quit()],
  ]);
});
