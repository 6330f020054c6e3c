import { createHash } from 'node:crypto';
import { JOB_OPTIONS, PREWARM_JOB, createRedis, retireChannel } from '@wharf/shared';
import type { ApiDeps } from './deps.js';
import { findInvocable } from './functions-store.js';
import { buildInvokeJob } from './invocation-intake.js';

/** A prewarm job carries no invocation: this request is never handed to the function. */
const NO_REQUEST = { method: 'GET', path: '/', headers: {}, query: {} };

type ChangeDeps = Pick<ApiDeps, 'pool' | 'redis' | 'invokeQueue' | 'queuePrefix' | 'defaultLimits' | 'logger'>;

/**
 * After a function's code or settings changed here (rollback, config, deletion): every runner
 * retires its warm instances of it at once, and every API process hears it too (see
 * `startPrewarming`). A builder announces a new active version the same way. Best effort: an
 * instance that missed the announcement is retired at its next invocation, when the runner sees
 * its image or settings differ.
 */
export async function announceFunctionChange(deps: ChangeDeps, functionId: string): Promise<void> {
  await deps.redis.publish(retireChannel(deps.queuePrefix), functionId).catch((err) => deps.logger.warn({ err, functionId }, 'could not announce the change'));
}

/**
 * Whatever changed a function (a new version, a rollback, its config), its `min_instances` are
 * started at once with what serves now: prewarm jobs on the invoke queue. Every API process
 * hears every change; the jobs' ids come from the function's state, so they are enqueued once.
 */
export async function startPrewarming(deps: ChangeDeps, redisUrl: string): Promise<{ close: () => Promise<void> }> {
  const subscriber = createRedis(redisUrl, 'worker');
  subscriber.on('error', (err) => deps.logger.warn({ err }, 'redis (function changes) error'));
  subscriber.on('message', (_channel: string, functionId: string) => void prewarm(deps, functionId));
  await subscriber.subscribe(retireChannel(deps.queuePrefix));
  return { close: async () => void (await subscriber.quit()) };
}

async function prewarm(deps: ChangeDeps, functionId: string): Promise<void> {
  try {
    const fn = await findInvocable(deps.pool, { id: functionId });
    const serving = fn?.serving;
    if (!fn || !serving?.image_tag || fn.mode !== 'warm' || fn.min_instances === 0 || fn.status !== 'active') return;
    const state = `${fn.id}:${serving.version}:${fn.updated_at.toISOString()}`;
    const jobs = Array.from({ length: fn.min_instances }, (_, i) => {
      const job = buildInvokeJob(fn, { ...serving, image_tag: serving.image_tag! }, deps.defaultLimits, uuidFrom(`${state}:${i}`), NO_REQUEST);
      return { name: PREWARM_JOB, data: job, opts: { ...JOB_OPTIONS.invoke, attempts: 1, jobId: job.invocationId } };
    });
    await deps.invokeQueue.addBulk(jobs);
    deps.logger.info({ functionId, version: serving.version, instances: fn.min_instances }, 'min_instances: prewarm jobs enqueued');
  } catch (err) {
    deps.logger.warn({ err, functionId }, 'could not enqueue prewarm jobs');
  }
}

/** A name-based (version 5 layout) UUID: the same input gives the same id in every process. */
function uuidFrom(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex');
  const variant = ((parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
