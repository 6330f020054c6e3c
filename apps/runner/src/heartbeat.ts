import type { Redis } from 'ioredis';
import { coerceError, runnerKey, runnerQueuesKey, runnersKey, type Logger, type RunnerHeartbeat } from '@wharf/shared';

export interface HeartbeatDeps {
  redis: Redis;
  prefix: string;
  intervalMs: number;
  logger: Logger;
  /** What the runner is and does right now. */
  snapshot: () => Omit<RunnerHeartbeat, 'seenAt'>;
}

/**
 * Advertises this runner in Redis every `intervalMs` (`GET /api/cluster` lists them). The key
 * expires after three missed beats, so a runner that died drops out on its own (and its peers
 * hand its queue's jobs back, see `startHandingBack`).
 */
export async function startHeartbeat(deps: HeartbeatDeps): Promise<{ stop: () => Promise<void> }> {
  const { redis, prefix, intervalMs, logger } = deps;
  const beat = async () => {
    const heartbeat: RunnerHeartbeat = { ...deps.snapshot(), seenAt: new Date().toISOString() };
    await redis
      .multi()
      .set(runnerKey(prefix, heartbeat.id), JSON.stringify(heartbeat), 'PX', intervalMs * 3)
      .sadd(runnersKey(prefix), heartbeat.id)
      // Its own queue is known for as long as it lives (a peer may have forgotten it while it restarted).
      .sadd(runnerQueuesKey(prefix), heartbeat.id)
      .exec();
  };
  await beat();
  const timer = setInterval(() => beat().catch((err) => logger.warn({ err: coerceError(err) }, 'heartbeat failed')), intervalMs);
  return {
    stop: async () => {
      clearInterval(timer);
      const { id } = deps.snapshot();
      await redis.multi().del(runnerKey(prefix, id)).srem(runnersKey(prefix), id).exec();
    },
  };
}
