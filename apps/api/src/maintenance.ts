import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { MAINTENANCE_JOBS, QUEUE_NAMES, coerceError } from '@wharf/shared';
import { reapDueDeletions, type ReaperDeps } from './deletion-reaper.js';

/**
 * Scheduled housekeeping. Every API process upserts the same job scheduler (idempotent) and runs
 * a worker, but the scheduler makes one job per tick, so exactly one process reaps each time,
 * however many API processes there are.
 */
export async function startMaintenance(deps: ReaperDeps & { reaperIntervalMs: number; now: () => Date }) {
  const { redis: connection, queuePrefix: prefix, logger } = deps;
  const queue = new Queue(QUEUE_NAMES.maintenance, { connection, prefix });
  await queue.upsertJobScheduler(
    MAINTENANCE_JOBS.reapDeletions,
    { every: deps.reaperIntervalMs },
    { name: MAINTENANCE_JOBS.reapDeletions, opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
  const worker = new Worker(
    QUEUE_NAMES.maintenance,
    async (job) => {
      if (job.name !== MAINTENANCE_JOBS.reapDeletions) throw new Error(`unknown maintenance job ${job.name}`);
      const reaped = await reapDueDeletions(deps, deps.now());
      return { reaped };
    },
    { connection, prefix, concurrency: 1 },
  );
  worker.on('failed', (job, err) => logger.error({ err: coerceError(err), job: job?.name }, 'maintenance job failed'));
  worker.on('error', (err) => logger.error({ err }, 'maintenance worker error'));
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}

/** The ids of the job schedulers on the maintenance queue (how an operator or a test sees that the reaper is scheduled). */
export async function maintenanceSchedulers(connection: Redis, prefix: string): Promise<string[]> {
  const queue = new Queue(QUEUE_NAMES.maintenance, { connection, prefix });
  try {
    return (await queue.getJobSchedulers()).map((s) => s.key);
  } finally {
    await queue.close();
  }
}
