import type { Queue } from 'bullmq';
import type { Pool } from '@wharf/db';
import { JOB_OPTIONS, type FunctionLimits, type InvokeJob, type InvokeResult, type Logger } from '@wharf/shared';
import { getDeployment, getFunctionById } from './functions-store.js';
import { buildInvokeJob } from './invocation-intake.js';
import { outcomeOfReturnValue, type InvocationRecords } from './invocation-records.js';
import type { RunnerQueues } from './queues.js';
import { quietInFlightInvocations, requeuedInvocation, type InvocationRow } from './invocations-store.js';

export interface ReconcilerDeps {
  pool: Pool;
  invokeQueue: Queue<InvokeJob, InvokeResult>;
  runnerQueues: Pick<RunnerQueues, 'queueFor'>;
  records: Pick<InvocationRecords, 'outcome' | 'ended'>;
  defaultLimits: FunctionLimits;
  logger: Logger;
}

export interface Reconciled {
  checked: number;
  finished: number;
  requeued: number;
}

/**
 * The record is the truth; Redis only carries the work. For every invocation without a final
 * state whose record has been quiet for `quietMs`: if its job finished while no API process was
 * listening (all were restarting), record the outcome; if Redis no longer has its job (lost or
 * flushed), enqueue it again. Jobs still waiting or running are left alone (a job waiting in the
 * queue of a runner that died goes back to the shared queue through that runner's peers).
 */
export async function reconcileInvocations(deps: ReconcilerDeps, quietMs: number, batch = 200): Promise<Reconciled> {
  const rows = await quietInFlightInvocations(deps.pool, quietMs, batch);
  const tally: Reconciled = { checked: rows.length, finished: 0, requeued: 0 };
  for (const row of rows) {
    // Handed back to the shared queue, or still in the queue of the runner it was routed to.
    const job = (await deps.invokeQueue.getJob(row.id)) ?? (row.routed_to ? await (await deps.runnerQueues.queueFor(row.routed_to)).getJob(row.id) : undefined);
    if (!job) {
      await requeue(deps, row);
      tally.requeued++;
      continue;
    }
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') {
      await deps.records.outcome(row.id, state === 'completed' ? outcomeOfReturnValue(job.returnvalue) : { kind: 'failed', reason: job.failedReason || 'the job failed' });
      tally.finished++;
    }
  }
  if (tally.finished + tally.requeued > 0) deps.logger.warn(tally, 'reconciled invocations that had been left behind');
  return tally;
}

async function requeue(deps: ReconcilerDeps, row: InvocationRow): Promise<void> {
  const log = deps.logger.child({ invocationId: row.id, functionId: row.function_id, version: row.version });
  const fn = await getFunctionById(deps.pool, row.function_id);
  const deployment = fn && fn.status !== 'deleted' ? await getDeployment(deps.pool, fn.id, row.version) : undefined;
  if (!fn || !deployment?.image_tag || !row.request) {
    log.warn('its job was lost and its version no longer exists: failing it');
    await deps.records.ended(row.id, 'failed', 'NOT_DEPLOYED', `version ${row.version} of the function no longer exists`);
    return;
  }
  const job = buildInvokeJob(fn, { ...deployment, image_tag: deployment.image_tag }, deps.defaultLimits, row.id, row.request, row.attempts);
  await deps.invokeQueue.add('invoke', job, { ...JOB_OPTIONS.invoke, jobId: row.id });
  await requeuedInvocation(deps.pool, row.id);
  log.warn({ was: row.status, attempts: row.attempts }, 'its job was missing from Redis: enqueued it again');
}
