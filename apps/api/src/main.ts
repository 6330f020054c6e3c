import { createPool, migrate } from '@wharf/db';
import { apiEnvSchema, createLogger, createRedis, functionMaximaFrom, handleShutdown, parseEnv, runMain } from '@wharf/shared';
import { loadSigningSecret } from './api-keys-store.js';
import { createApp } from './app.js';
import { InvocationWaiter } from './invocation-waiter.js';
import { failInvocation, finishInvocation, markInvocationRunning } from './invocations-store.js';
import { startMaintenance } from './maintenance.js';
import { createQueues } from './queues.js';

runMain('api', async () => {
  const env = parseEnv(apiEnvSchema);
  const logger = createLogger('api', env.LOG_LEVEL);
  logger.info({ host: env.WHARF_API_HOST, port: env.WHARF_API_PORT, prefix: env.WHARF_QUEUE_PREFIX, defaultTimeoutMs: env.WHARF_FUNCTION_TIMEOUT_MS }, 'starting');

  const pool = createPool(env.DATABASE_URL, logger);
  const applied = await migrate(pool);
  if (applied.length > 0) logger.info({ applied }, 'migrations applied');

  const producer = createRedis(env.REDIS_URL, 'producer');
  const subscriber = createRedis(env.REDIS_URL, 'worker');
  const housekeeping = createRedis(env.REDIS_URL, 'worker');
  producer.on('error', (err) => logger.warn({ err }, 'redis (producer) error'));
  subscriber.on('error', (err) => logger.warn({ err }, 'redis (events) error'));
  housekeeping.on('error', (err) => logger.warn({ err }, 'redis (maintenance) error'));
  const queues = createQueues(producer, subscriber, env.WHARF_QUEUE_PREFIX);
  await Promise.all([queues.build.waitUntilReady(), queues.invoke.waitUntilReady(), queues.invokeEvents.waitUntilReady()]);

  const waiter = new InvocationWaiter(
    queues.invokeEvents,
    {
      running: (id) => markInvocationRunning(pool, id),
      completed: (id, result) => finishInvocation(pool, id, result),
      failed: (id, reason) => failInvocation(pool, id, 'RUNNER_ERROR', reason),
    },
    logger,
  );

  const now = () => new Date();
  const maintenance = await startMaintenance({
    pool,
    redis: housekeeping,
    queuePrefix: env.WHARF_QUEUE_PREFIX,
    logger,
    reaperIntervalMs: env.WHARF_DELETION_REAPER_INTERVAL_MS,
    now,
  });

  const app = createApp({
    pool,
    logger,
    buildQueue: queues.build,
    invokeQueue: queues.invoke,
    waiter,
    maxArchiveBytes: env.WHARF_MAX_ARCHIVE_BYTES,
    maxRequestBytes: env.WHARF_MAX_REQUEST_BYTES,
    queueAllowanceMs: env.WHARF_QUEUE_ALLOWANCE_MS,
    defaultLimits: { timeoutMs: env.WHARF_FUNCTION_TIMEOUT_MS, memoryMb: env.WHARF_FUNCTION_MEMORY_MB, cpus: env.WHARF_FUNCTION_CPUS },
    maxLimits: functionMaximaFrom(env),
    deletionGraceDays: env.WHARF_DELETION_GRACE_DAYS,
    signingSecret: await loadSigningSecret(pool, env.WHARF_SIGNING_SECRET),
    now,
  });
  const server = app.listen(env.WHARF_API_PORT, env.WHARF_API_HOST);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  logger.info({ url: `http://${env.WHARF_API_HOST}:${env.WHARF_API_PORT}` }, 'api ready');

  handleShutdown(logger, [
    // Stop accepting requests; those in flight (including synchronous invokes) finish first.
    ['http', () => new Promise((resolve) => server.close(resolve))],
    ['maintenance', () => maintenance.close()],
    ['queues', () => Promise.all([queues.invokeEvents.close(), queues.invoke.close(), queues.build.close()])],
    ['redis', () => Promise.all([producer.quit(), subscriber.quit(), housekeeping.quit()])],
    ['postgres', () => pool.end()],
  ]);
});
