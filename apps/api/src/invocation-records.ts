import type { Queue } from 'bullmq';
import type { Pool } from '@wharf/db';
import { JOB_OPTIONS, coerceError, invokeResultSchema, type ErrorCode, type InvocationStarted, type InvokeResult, type Logger, type WebhookJob } from '@wharf/shared';
import { endInvocation, finishInvocation, markInvocationRunning, type InvocationRow } from './invocations-store.js';

/** How a job ended, as the queue tells it. */
export type JobOutcome = { kind: 'completed'; result: InvokeResult } | { kind: 'failed'; reason: string };
/** What a synchronous caller gets: the job's outcome, or its deadline passing first. */
export type InvocationOutcome = JobOutcome | { kind: 'deadline' };

/** A finished job's return value as an outcome: the runner's result, or a failure if it is malformed. */
export function outcomeOfReturnValue(returnvalue: unknown): JobOutcome {
  const parsed = invokeResultSchema.safeParse(returnvalue);
  return parsed.success ? { kind: 'completed', result: parsed.data } : { kind: 'failed', reason: 'the runner returned a malformed result' };
}

/**
 * Every state change of an invocation goes through here: the waiter (queue events), the
 * reconciler and cancellation all record the same way. Whoever writes the final state — once,
 * guarded by the record's status — hands the record to its callback.
 */
export class InvocationRecords {
  constructor(
    private readonly pool: Pool,
    private readonly webhookQueue: Queue<WebhookJob>,
    private readonly logger: Logger,
  ) {}

  running(invocationId: string, started: InvocationStarted): Promise<void> {
    return markInvocationRunning(this.pool, invocationId, started);
  }

  /** The outcome of the invocation's job: the function's result, or the job's own failure (its runner could not run it). */
  async outcome(invocationId: string, outcome: JobOutcome): Promise<InvocationRow | undefined> {
    if (outcome.kind === 'completed') return this.finished(await finishInvocation(this.pool, invocationId, outcome.result));
    return this.ended(invocationId, 'failed', 'RUNNER_ERROR', outcome.reason);
  }

  async ended(invocationId: string, status: 'failed' | 'cancelled', code: ErrorCode, message: string): Promise<InvocationRow | undefined> {
    return this.finished(await endInvocation(this.pool, invocationId, status, code, message));
  }

  private async finished(row: InvocationRow | undefined): Promise<InvocationRow | undefined> {
    if (row?.callback_url) {
      const job: WebhookJob = { invocationId: row.id, url: row.callback_url };
      // The job id makes a second enqueue of the same delivery a no-op.
      await this.webhookQueue
        .add('deliver', job, { ...JOB_OPTIONS.webhook, jobId: `callback-${row.id}` })
        .catch((err) => this.logger.error({ err: coerceError(err), invocationId: row.id }, 'could not enqueue the callback'));
    }
    return row;
  }
}
