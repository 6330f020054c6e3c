import { createPool, migrate } from '@wharf/db';
import { MAINTENANCE_JOBS, apiEnvSchema, createLogger, createRedis, functionMaximaFrom, handleShutdown, parseEnv, runMain } from '@wharf/shared';
import { loadSigningSecret } from './api-keys-store.js';
import { createApp } from './app.js';
import { reapDueDeletions } from './deletion-reaper.js';
import { startPrewarming } from './function-changes.js';
import { dropFailedArchives } from './functions-store.js';
import { IDEMPOTENCY_WINDOW_HOURS } from './invocation-intake.js';
import { InvocationRecords } from './invocation-records.js';
import { InvocationWaiter } from './invocation-waiter.js';
import { pruneInvocations } from './invocations-store.js';
import { startMaintenance } from './maintenance.js';
import { RunnerQueues, createQueues } from './queues.js';
import { reconcileInvocations } from './reconciler.js';
import { startWebhookWorker } from './webhooks.js';

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
  await Promise.all([queues.build.waitUntilReady(), queues.invoke.waitUntilReady(), queues.invokeEvents.waitUntilReady(), queues.webhook.waitUntilReady()]);

  const records = new InvocationRecords(pool, queues.webhook, logger);
  const waiter = new InvocationWaiter(records, logger);
  waiter.listen(queues.invokeEvents);
  const runnerQueues = new RunnerQueues({ producer, redisUrl: env.REDIS_URL, prefix: env.WHARF_QUEUE_PREFIX, waiter, logger, routing: env.WHARF_WARM_ROUTING });
  const signingSecret = await loadSigningSecret(pool, env.WHARF_SIGNING_SECRET);
  const defaultLimits = { timeoutMs: env.WHARF_FUNCTION_TIMEOUT_MS, memoryMb: env.WHARF_FUNCTION_MEMORY_MB, cpus: env.WHARF_FUNCTION_CPUS };

  const now = () => new Date();
  const prefix = env.WHARF_QUEUE_PREFIX;
  const maintenance = await startMaintenance(housekeeping, prefix, logger, [
    {
      id: MAINTENANCE_JOBS.reapDeletions,
      everyMs: env.WHARF_DELETION_REAPER_INTERVAL_MS,
      run: async () => ({ reaped: await reapDueDeletions({ pool, redis: housekeeping, queuePrefix: prefix, logger }, now()) }),
    },
    {
      id: MAINTENANCE_JOBS.reconcileInvocations,
      everyMs: env.WHARF_RECONCILE_INTERVAL_MS,
      run: () => reconcileInvocations({ pool, invokeQueue: queues.invoke, runnerQueues, records, defaultLimits, logger }, env.WHARF_RECONCILE_AFTER_MS),
    },
    {
      // Retention: invocation records, and failed builds' archives, past their time.
      id: MAINTENANCE_JOBS.pruneInvocations,
      everyMs: env.WHARF_PRUNE_INTERVAL_MS,
      run: async () => {
        const pruned = await pruneInvocations(pool, env.WHARF_INVOCATION_RETENTION_HOURS, IDEMPOTENCY_WINDOW_HOURS);
        const failedArchivesDropped = await dropFailedArchives(pool, env.WHARF_FAILED_ARCHIVE_RETENTION_MINUTES);
        if (failedArchivesDropped > 0) logger.info({ failedArchivesDropped }, "failed builds' archives dropped past their retention");
        return { pruned, failedArchivesDropped };
      },
    },
  ]);
  const callbacks = await startWebhookWorker({ pool, redis: housekeeping, queuePrefix: prefix, signingSecret, timeoutMs: env.WHARF_CALLBACK_TIMEOUT_MS, logger });

  const app = createApp({
    pool,
    logger,
    buildQueue: queues.build,
    invokeQueue: queues.invoke,
    runnerQueues,
    waiter,
    records,
    redis: producer,
    queuePrefix: prefix,
    maxArchiveBytes: env.WHARF_MAX_ARCHIVE_BYTES,
    maxRequestBytes: env.WHARF_MAX_REQUEST_BYTES,
    queueAllowanceMs: env.WHARF_QUEUE_ALLOWANCE_MS,
    queueLimits: { perFunction: env.WHARF_MAX_QUEUED_PER_FUNCTION, perUser: env.WHARF_MAX_QUEUED_PER_USER },
    defaultLimits,
    maxLimits: functionMaximaFrom(env),
    deletionGraceDays: env.WHARF_DELETION_GRACE_DAYS,
    quotas: {
      maxFunctions: env.WHARF_USER_MAX_FUNCTIONS,
      maxArchiveBytes: env.WHARF_USER_MAX_ARCHIVE_BYTES,
      maxDeploysPerHour: env.WHARF_USER_MAX_DEPLOYS_PER_HOUR,
      maxMinInstances: env.WHARF_USER_MAX_MIN_INSTANCES,
    },
    signingSecret,
    now,
  });
  const prewarming = await startPrewarming({ pool, redis: producer, invokeQueue: queues.invoke, queuePrefix: prefix, defaultLimits, logger }, env.REDIS_URL);
  const server = app.listen(env.WHARF_API_PORT, env.WHARF_API_HOST);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  logger.info({ url: `http://${env.WHARF_API_HOST}:${env.WHARF_API_PORT}` }, 'api ready');

  handleShutdown(logger, [
    // Stop accepting requests; those in flight (including synchronous invokes) finish first.
    ['http', () => new Promise((resolve) => server.close(resolve))],
    ['maintenance', () => maintenance.close()],
    ['prewarming', () => prewarming.close()],
    ['callbacks', () => callbacks.close()],
    ['queues', () => Promise.all([queues.invokeEvents.close(), queues.invoke.close(), queues.build.close(), queues.webhook.close(), runnerQueues.close()])],
    ['invocation records', () => waiter.recorded()],
    ['redis', () => Promise.all([producer.quit(), subscriber.quit(), housekeeping.quit()])],
    ['postgres', () => pool.end()],
  ]);
});
