import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { coerceError } from './errors.js';
import { deletedFunctionsKey } from './queues.js';
import { LABELS } from './status.js';

/**
 * Removes, from this host's Docker engine, the images of functions deleted for good. Every host
 * that builds or runs functions sweeps on its own schedule, so a host that was down when a
 * function was deleted still cleans up when it comes back.
 */
export async function sweepDeletedImages(docker: Docker, redis: Redis, prefix: string, logger: Logger): Promise<number> {
  const images = await docker.listImages({ filters: { label: [`${LABELS.managed}=true`] } });
  const functionIds = [...new Set(images.map((image) => image.Labels?.[LABELS.functionId]).filter((id): id is string => !!id))];
  if (functionIds.length === 0) return 0;
  const scores = await redis.zmscore(deletedFunctionsKey(prefix), ...functionIds);
  const deleted = new Set(functionIds.filter((_, i) => scores[i] !== null));
  let removed = 0;
  for (const image of images) {
    const functionId = image.Labels?.[LABELS.functionId];
    if (!functionId || !deleted.has(functionId)) continue;
    try {
      await docker.getImage(image.Id).remove({ force: true });
      removed += 1;
      logger.info({ functionId, imageId: image.Id, tags: image.RepoTags }, 'removed image of a deleted function');
    } catch (err) {
      // Gone already (another process on this engine swept first) or still in use: the next sweep retries.
      logger.debug({ err: coerceError(err), functionId, imageId: image.Id }, 'could not remove image');
    }
  }
  return removed;
}

/** Sweeps now and then every `intervalMs`; `stop()` waits for a sweep in progress. */
export function startImageSweeper(options: { docker: Docker; redis: Redis; prefix: string; intervalMs: number; logger: Logger }) {
  const { docker, redis, prefix, intervalMs, logger } = options;
  let running: Promise<unknown> = Promise.resolve();
  const tick = () => {
    running = sweepDeletedImages(docker, redis, prefix, logger).catch((err) =>
      logger.warn({ err: coerceError(err) }, 'image sweep failed; retrying at the next interval'),
    );
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
