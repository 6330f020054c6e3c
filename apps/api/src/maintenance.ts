import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE_NAMES, coerceError, type Logger } from '@wharf/shared';

export interface ScheduledTask {
  /** One of MAINTENANCE_JOBS: the job scheduler's id and the job's name. */
  id: string;
  everyMs: number;
  run: () => Promise<unknown>;
}

/**
 * Scheduled housekeeping. Every API process upserts the same job schedulers (idempotent) and runs
 * a worker, but a scheduler makes one job per tick, so exactly one process does each task each
 * time, however many API processes there are.
 */
export async function startMaintenance(connection: Redis, prefix: string, logger: Logger, tasks: ScheduledTask[]) {
  const queue = new Queue(QUEUE_NAMES.maintenance, { connection, prefix });
  for (const task of tasks) {
    await queue.upsertJobScheduler(task.id, { every: task.everyMs }, { name: task.id, opts: { removeOnComplete: 100, removeOnFail: 100 } });
  }
  const byId = new Map(tasks.map((task) => [task.id, task]));
  const worker = new Worker(
    QUEUE_NAMES.maintenance,
    async (job) => {
      const task = byId.get(job.name);
      if (!task) throw new Error(`unknown maintenance job ${job.name}`);
      return task.run();
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

/** The ids of the job schedulers on the maintenance queue (how an operator or a test sees what is scheduled). */
export async function maintenanceSchedulers(connection: Redis, prefix: string): Promise<string[]> {
  const queue = new Queue(QUEUE_NAMES.maintenance, { connection, prefix });
  try {
    return (await queue.getJobSchedulers()).map((s) => s.key).sort();
  } finally {
    await queue.close();
  }
}
