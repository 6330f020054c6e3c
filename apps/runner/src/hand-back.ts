import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  JOB_OPTIONS,
  QUEUE_NAMES,
  coerceError,
  runnerKey,
  runnerQueueName,
  runnerQueuesKey,
  type InvokeJob,
  type InvokeResult,
  type Logger,
} from '@wharf/shared';
import { takeBackWarmSlots } from './warm-slots.js';

type InvokeQueue = Queue<InvokeJob, InvokeResult>;

/** How long one runner's claim on moving a job lasts: if it dies mid-move, another moves the job after it. */
const MOVE_CLAIM_MS = 60_000;

/**
 * Moves the jobs of a runner's own queue that no live worker holds (waiting ones, and running
 * ones whose lock expired with their runner) to the shared queue, under the same id, with the runs
 * they already had counted in `priorAttempts`. Several runners may do this at once: each job is
 * claimed by one of them first; removal fails while a worker holds the job. How many were moved.
 */
export async function handBackJobs(from: InvokeQueue, shared: InvokeQueue, redis: Redis, logger: Logger): Promise<number> {
  let moved = 0;
  for (const job of await from.getJobs(['waiting', 'prioritized', 'delayed', 'active'])) {
    if (!job?.id) continue;
    const claim = `${from.qualifiedName}:moving:${job.id}`;
    if ((await redis.set(claim, '1', 'PX', MOVE_CLAIM_MS, 'NX')) !== 'OK') continue;
    try {
      await job.remove();
    } catch {
      // Still held (its lock has not lapsed yet): the next sweep tries again.
      await redis.del(claim);
      continue;
    }
    const priorAttempts = (job.data.priorAttempts ?? 0) + job.attemptsStarted;
    await shared.add(job.name, { ...job.data, ...(priorAttempts > 0 ? { priorAttempts } : {}) }, { ...JOB_OPTIONS.invoke, jobId: job.id });
    logger.info({ invocationId: job.id, functionId: job.data.functionId, from: from.name, priorAttempts }, 'handed back to the shared queue');
    moved++;
  }
  return moved;
}

/** How long a queue keeps finished jobs (the reconciler may read an outcome nobody heard): as every invoke queue does. */
const FINISHED_RETENTION = { completedMs: JOB_OPTIONS.invoke.removeOnComplete.age * 1000, failedMs: JOB_OPTIONS.invoke.removeOnFail.age * 1000 };

/**
 * A gone runner's queue, once its finished jobs are past that retention (nobody else will ever
 * trim them) and nothing else is left in it, is removed; true when it was.
 */
export async function forgetIfDrained(queue: InvokeQueue, retention = FINISHED_RETENTION): Promise<boolean> {
  await queue.clean(retention.completedMs, 0, 'completed');
  await queue.clean(retention.failedMs, 0, 'failed');
  const counts = await queue.getJobCounts();
  if (Object.values(counts).some((count) => count > 0)) return false;
  await queue.obliterate();
  return true;
}

export interface HandBackDeps {
  redis: Redis;
  prefix: string;
  /** This runner: its own queue is not a peer's. */
  runnerId: string;
  intervalMs: number;
  logger: Logger;
}

/**
 * Every `intervalMs`, the runners whose heartbeat expired (three missed beats: dead, or stopped
 * after a job reached their queue) have their queue's jobs handed back to the shared queue and
 * their free warm slots taken back; a drained queue is removed and forgotten. `handBackOwn`
 * does the same for this runner's own queue as it stops.
 */
export function startHandingBack(deps: HandBackDeps): { handBackOwn: () => Promise<number>; stop: () => Promise<void> } {
  const { redis, prefix, logger } = deps;
  const shared: InvokeQueue = new Queue(QUEUE_NAMES.invoke, { connection: redis, prefix });
  const withQueueOf = async <T>(runnerId: string, use: (queue: InvokeQueue) => Promise<T>): Promise<T> => {
    const queue: InvokeQueue = new Queue(runnerQueueName(runnerId), { connection: redis, prefix });
    try {
      return await use(queue);
    } finally {
      await queue.close();
    }
  };
  const sweep = async () => {
    const peers = (await redis.smembers(runnerQueuesKey(prefix))).filter((id) => id !== deps.runnerId);
    if (peers.length === 0) return;
    const beats = await redis.mget(peers.map((id) => runnerKey(prefix, id)));
    for (const [i, peer] of peers.entries()) {
      if (beats[i] !== null) continue;
      await withQueueOf(peer, async (queue) => {
        const moved = await handBackJobs(queue, shared, redis, logger);
        await takeBackWarmSlots(redis, prefix, peer);
        if (await forgetIfDrained(queue)) await redis.srem(runnerQueuesKey(prefix), peer);
        if (moved > 0) logger.warn({ peer, moved }, "a runner is gone: its queue's jobs went back to the shared queue");
      });
    }
  };
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweep()
      .catch((err) => logger.warn({ err: coerceError(err) }, 'could not hand back the jobs of runners that are gone'))
      .finally(() => (running = false));
  }, deps.intervalMs);
  return {
    handBackOwn: () => withQueueOf(deps.runnerId, (queue) => handBackJobs(queue, shared, redis, logger)),
    stop: async () => {
      clearInterval(timer);
      await shared.close();
    },
  };
}
