import type Docker from 'dockerode';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { coerceError } from './errors.js';
import { deletedFunctionsKey, prunedImagesKey } from './queues.js';
import { deleteFromRegistry } from './registry.js';
import { LABELS } from './status.js';

/**
 * Removes, from this host's Docker engine, the images of functions deleted for good and of old
 * versions pruned by `WHARF_KEEP_VERSIONS`. Every host that builds or runs functions sweeps on
 * its own schedule, so a host that was down meanwhile still cleans up when it comes back.
 */
export async function sweepRetiredImages(docker: Docker, redis: Redis, prefix: string, logger: Logger, registry?: string): Promise<number> {
  const images = await docker.listImages({ filters: { label: [`${LABELS.managed}=true`] } });
  const functionIds = [...new Set(images.map((image) => image.Labels?.[LABELS.functionId]).filter((id): id is string => !!id))];
  const tags = images.flatMap((image) => image.RepoTags ?? []);
  if (functionIds.length === 0) return 0;
  const [scores, tagScores] = await Promise.all([
    redis.zmscore(deletedFunctionsKey(prefix), ...functionIds),
    tags.length ? redis.zmscore(prunedImagesKey(prefix), ...tags) : Promise.resolve([]),
  ]);
  const deleted = new Set(functionIds.filter((_, i) => scores[i] !== null));
  const pruned = new Set(tags.filter((_, i) => tagScores[i] !== null));
  let removed = 0;
  for (const image of images) {
    const functionId = image.Labels?.[LABELS.functionId];
    const prunedTags = (image.RepoTags ?? []).filter((tag) => pruned.has(tag));
    const whole = !!functionId && deleted.has(functionId);
    if (!whole && prunedTags.length === 0) continue;
    try {
      // A pruned version's tag goes (and the image with it, once no tag is left); a deleted function's image goes whole.
      if (whole) {
        await docker.getImage(image.Id).remove({ force: true });
        // A builder also takes what it pushed off the registry.
        for (const tag of (image.RepoTags ?? []).filter((t) => registry && t.startsWith(`${registry}/`))) await deleteFromRegistry(tag);
      } else {
        for (const tag of prunedTags) await docker.getImage(tag).remove();
      }
      removed += 1;
      logger.info({ functionId, imageId: image.Id, tags: image.RepoTags, reason: whole ? 'function deleted' : 'version pruned' }, 'removed image');
    } catch (err) {
      // Gone already (another process on this engine swept first) or still in use: the next sweep retries.
      logger.debug({ err: coerceError(err), functionId, imageId: image.Id }, 'could not remove image');
    }
  }
  return removed;
}

/** Sweeps now and then every `intervalMs`; `stop()` waits for a sweep in progress. */
export function startImageSweeper(options: { docker: Docker; redis: Redis; prefix: string; intervalMs: number; logger: Logger; registry?: string }) {
  const { docker, redis, prefix, intervalMs, logger, registry } = options;
  let running: Promise<unknown> = Promise.resolve();
  const tick = () => {
    running = sweepRetiredImages(docker, redis, prefix, logger, registry).catch((err) =>
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
