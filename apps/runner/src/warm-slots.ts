import type { Redis } from 'ioredis';
import { coerceError, runnerWarmSlotListsKey, warmSlotsKey, type Logger } from '@wharf/shared';

export interface WarmSlotsDeps {
  redis: Redis;
  prefix: string;
  runnerId: string;
  logger: Logger;
}

/**
 * This runner's entries in the free-warm-slot lists the API routes warm invocations by
 * (`warmSlotsKey`): one entry per free slot of a live instance. Updates go out in order on one
 * connection without being awaited; one that is lost costs a routed call a cold start (or a
 * call a missed warm hit), never an invocation.
 */
export class WarmSlots {
  private readonly lists = new Set<string>();
  private closed = false;

  private constructor(private readonly deps: WarmSlotsDeps) {}

  /** Entries a previous run of this runner left are taken back first: its instances are gone. */
  static async start(deps: WarmSlotsDeps): Promise<WarmSlots> {
    await takeBackWarmSlots(deps.redis, deps.prefix, deps.runnerId);
    return new WarmSlots(deps);
  }

  /** `change` more (or, negative, fewer) free slots on this runner for the function version. */
  adjust(functionId: string, version: number, change: number): void {
    if (change === 0 || (change > 0 && this.closed)) return;
    const { redis, prefix, runnerId, logger } = this.deps;
    const list = warmSlotsKey(prefix, functionId, version);
    const pipeline = redis.pipeline();
    if (change > 0) {
      pipeline.lpush(list, ...Array<string>(change).fill(runnerId));
      if (!this.lists.has(list)) pipeline.sadd(runnerWarmSlotListsKey(prefix, runnerId), list);
      this.lists.add(list);
    } else {
      pipeline.lrem(list, -change, runnerId);
    }
    pipeline.exec().catch((err) => logger.warn({ err: coerceError(err), functionId, version }, 'could not update the free warm slots'));
  }

  /** The runner is stopping: no call is routed here any more. */
  async close(): Promise<void> {
    this.closed = true;
    await takeBackWarmSlots(this.deps.redis, this.deps.prefix, this.deps.runnerId);
  }
}

/** Removes a runner's entries from every free-warm-slot list: it stopped, or started again, or died. */
export async function takeBackWarmSlots(redis: Redis, prefix: string, runnerId: string): Promise<void> {
  const listsKey = runnerWarmSlotListsKey(prefix, runnerId);
  const lists = await redis.smembers(listsKey);
  const pipeline = redis.pipeline();
  for (const list of lists) pipeline.lrem(list, 0, runnerId);
  await pipeline.del(listsKey).exec();
}
