import { Router } from 'express';
import type { Redis } from 'ioredis';
import { runnerHeartbeatSchema, runnerKey, runnersKey, type RunnerHeartbeat } from '@wharf/shared';
import type { ApiDeps } from './deps.js';

/** The runners whose heartbeat is current; those whose key expired (three missed beats) are forgotten. */
export async function liveRunners(redis: Redis, prefix: string): Promise<RunnerHeartbeat[]> {
  const ids = (await redis.smembers(runnersKey(prefix))).sort();
  if (ids.length === 0) return [];
  const beats = await redis.mget(ids.map((id) => runnerKey(prefix, id)));
  const gone = ids.filter((_, i) => beats[i] === null);
  if (gone.length > 0) await redis.srem(runnersKey(prefix), ...gone);
  return beats.flatMap((beat) => {
    const parsed = beat === null ? undefined : runnerHeartbeatSchema.safeParse(JSON.parse(beat));
    return parsed?.success ? [parsed.data] : [];
  });
}

/**
 * `GET /api/cluster`: the container hosts' runners and their load. Any signed-in user may read
 * it; it names no function, so it tells nothing about other users' work.
 */
export function clusterRoutes(deps: Pick<ApiDeps, 'redis' | 'queuePrefix'>): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    const runners = await liveRunners(deps.redis, deps.queuePrefix);
    const sum = (pick: (runner: RunnerHeartbeat) => number) => runners.reduce((total, runner) => total + pick(runner), 0);
    res.json({
      runners: runners.map((runner) => ({
        id: runner.id,
        host: runner.host,
        engine: runner.engine,
        slots: runner.slots,
        running: runner.running,
        warm_instances: runner.warmInstances,
        warm_hits: runner.warmHits,
        warm_misses: runner.warmMisses,
        started_at: runner.startedAt,
        seen_at: runner.seenAt,
      })),
      totals: { runners: runners.length, slots: sum((r) => r.slots), running: sum((r) => r.running), warm_instances: sum((r) => r.warmInstances), warm_hits: sum((r) => r.warmHits), warm_misses: sum((r) => r.warmMisses) },
    });
  });
  return router;
}
