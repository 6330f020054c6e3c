import { randomUUID } from 'node:crypto';
import { JOB_OPTIONS, PREWARM_JOB, retireChannel } from '@wharf/shared';
import type { ApiDeps } from './deps.js';
import { getDeployment, type FunctionRow } from './functions-store.js';
import { buildInvokeJob } from './invocation-intake.js';

/** A prewarm job carries no invocation: this request is never handed to the function. */
const NO_REQUEST = { method: 'GET', path: '/', headers: {}, query: {} };

/**
 * After a function's code or settings changed (rollback, config, deletion): every runner retires
 * its warm instances of it at once, and `min_instances` new ones are started with what serves now.
 * Best effort: an instance that missed the announcement is retired at its next invocation, when
 * the runner sees its image or settings differ.
 */
export async function announceFunctionChange(deps: ApiDeps, fn: FunctionRow): Promise<void> {
  try {
    await deps.redis.publish(retireChannel(deps.queuePrefix), fn.id);
    if (fn.mode !== 'warm' || fn.min_instances === 0 || fn.status !== 'active' || fn.active_version === null) return;
    const deployment = await getDeployment(deps.pool, fn.id, fn.active_version);
    if (!deployment?.image_tag) return;
    const jobs = Array.from({ length: fn.min_instances }, () => {
      const job = buildInvokeJob(fn, { ...deployment, image_tag: deployment.image_tag! }, deps.defaultLimits, randomUUID(), NO_REQUEST);
      return { name: PREWARM_JOB, data: job, opts: { ...JOB_OPTIONS.invoke, attempts: 1, jobId: job.invocationId } };
    });
    await deps.invokeQueue.addBulk(jobs);
  } catch (err) {
    deps.logger.warn({ err, functionId: fn.id }, 'could not announce the change to runners');
  }
}
