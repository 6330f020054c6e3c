import type { QueueEvents } from 'bullmq';
import { coerceError, invocationStartedSchema, type Logger } from '@wharf/shared';
import { outcomeOfReturnValue, type InvocationOutcome, type InvocationRecords, type JobOutcome } from './invocation-records.js';

interface Waiter {
  resolve: (outcome: InvocationOutcome) => void;
  timer: NodeJS.Timeout;
}

/**
 * One QueueEvents subscription per invoke queue (the shared one, and each runner's own queue this
 * process sent a job to), all feeding one map of waiters keyed by invocation id.
 * (A `waitUntilFinished` per request would add a listener per request and leak under load.)
 * A waiter is told as soon as its outcome arrives, while the record is being written (the caller
 * does not wait for PostgreSQL); reads of invocations first wait for the writes this process has
 * in flight (`recorded`), so a caller that reads its invocation right after the response sees
 * the final record.
 */
export class InvocationWaiter {
  private readonly waiters = new Map<string, Waiter>();
  private readonly writes = new Set<Promise<void>>();

  constructor(
    private readonly records: Pick<InvocationRecords, 'running' | 'outcome'>,
    private readonly logger: Logger,
  ) {}

  /** Hears the runs, outcomes and failures of one invoke queue's jobs. */
  listen(events: QueueEvents): void {
    const { records } = this;
    // A runner reports progress once, when an invocation is still running after a moment: which run this is, and where.
    events.on('progress', ({ jobId, data }) => {
      const started = invocationStartedSchema.safeParse(data);
      if (started.success) this.record('running', jobId, () => records.running(jobId, started.data));
    });
    events.on('completed', ({ jobId, returnvalue }) => {
      // QueueEvents has already JSON-decoded the return value; only its shape is left to check.
      const outcome = outcomeOfReturnValue(returnvalue);
      this.record('completed', jobId, () => records.outcome(jobId, outcome), outcome);
    });
    events.on('failed', ({ jobId, failedReason }) => {
      const outcome: JobOutcome = { kind: 'failed', reason: failedReason };
      this.record('failed', jobId, () => records.outcome(jobId, outcome), outcome);
    });
  }

  /** Register before enqueueing, so that a completion cannot arrive before anyone listens. */
  wait(invocationId: string, deadlineMs: number): Promise<InvocationOutcome> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(invocationId, { kind: 'deadline' }), deadlineMs);
      this.waiters.set(invocationId, { resolve, timer });
    });
  }

  cancel(invocationId: string): void {
    const waiter = this.waiters.get(invocationId);
    if (!waiter) return;
    clearTimeout(waiter.timer);
    this.waiters.delete(invocationId);
  }

  /** Resolves once every record write this process has begun is over (reads of invocations wait for it). */
  async recorded(): Promise<void> {
    await Promise.all(this.writes);
  }

  private settle(invocationId: string, outcome: InvocationOutcome): void {
    const waiter = this.waiters.get(invocationId);
    if (!waiter) return;
    this.cancel(invocationId);
    waiter.resolve(outcome);
  }

  private record(event: string, jobId: string, write: () => Promise<unknown>, outcome?: InvocationOutcome): void {
    if (outcome) this.settle(jobId, outcome);
    const written: Promise<void> = write()
      .then(
        () => undefined,
        (err) => this.logger.error({ err: coerceError(err), invocationId: jobId, event }, 'could not record invocation event'),
      )
      .finally(() => this.writes.delete(written));
    this.writes.add(written);
  }
}
