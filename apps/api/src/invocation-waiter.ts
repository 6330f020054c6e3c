import type { QueueEvents } from 'bullmq';
import { coerceError, invocationStartedSchema, type Logger } from '@wharf/shared';
import { outcomeOfReturnValue, type InvocationOutcome, type InvocationRecords, type JobOutcome } from './invocation-records.js';

/**
 * How long a `running` write waits: most warm invocations end sooner, and then their record goes
 * from queued to its outcome in one write (the outcome carries the start time, runner and attempt).
 */
export const RUNNING_WRITE_DELAY_MS = 50;

interface Waiter {
  resolve: (outcome: InvocationOutcome) => void;
  timer: NodeJS.Timeout;
}

/**
 * One QueueEvents subscription per API process, feeding a map of waiters keyed by invocation id.
 * (A `waitUntilFinished` per request would add a listener per request and leak under load.)
 * Every completion is recorded before any waiter is told, so a caller that reads the invocation
 * right after its response sees the final record.
 */
export class InvocationWaiter {
  private readonly waiters = new Map<string, Waiter>();
  private readonly runningWrites = new Map<string, { timer: NodeJS.Timeout; write: () => Promise<void> }>();

  constructor(
    private readonly events: QueueEvents,
    private readonly records: Pick<InvocationRecords, 'running' | 'outcome'>,
    private readonly logger: Logger,
  ) {
    // A runner reports progress once, when it starts the container: which run this is, and where.
    events.on('progress', ({ jobId, data }) => {
      const started = invocationStartedSchema.safeParse(data);
      if (!started.success) return;
      this.skipRunningWrite(jobId);
      const write = () => {
        this.skipRunningWrite(jobId);
        return this.record('running', jobId, () => records.running(jobId, started.data));
      };
      this.runningWrites.set(jobId, { timer: setTimeout(write, RUNNING_WRITE_DELAY_MS), write });
    });
    events.on('completed', ({ jobId, returnvalue }) => {
      // QueueEvents has already JSON-decoded the return value; only its shape is left to check.
      const outcome = outcomeOfReturnValue(returnvalue);
      this.skipRunningWrite(jobId);
      void this.record('completed', jobId, () => records.outcome(jobId, outcome), outcome);
    });
    events.on('failed', ({ jobId, failedReason }) => {
      const outcome: JobOutcome = { kind: 'failed', reason: failedReason };
      this.skipRunningWrite(jobId);
      void this.record('failed', jobId, () => records.outcome(jobId, outcome), outcome);
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

  get pending(): number {
    return this.waiters.size;
  }

  /** At shutdown, after the queue events stopped: the `running` writes still waiting are made now. */
  async flush(): Promise<void> {
    await Promise.all([...this.runningWrites.values()].map(({ write }) => write()));
  }

  private skipRunningWrite(jobId: string): void {
    clearTimeout(this.runningWrites.get(jobId)?.timer);
    this.runningWrites.delete(jobId);
  }

  private settle(invocationId: string, outcome: InvocationOutcome): void {
    const waiter = this.waiters.get(invocationId);
    if (!waiter) return;
    this.cancel(invocationId);
    waiter.resolve(outcome);
  }

  private async record(event: string, jobId: string, write: () => Promise<unknown>, outcome?: InvocationOutcome): Promise<void> {
    try {
      await write();
    } catch (err) {
      this.logger.error({ err: coerceError(err), invocationId: jobId, event }, 'could not record invocation event');
    } finally {
      if (outcome) this.settle(jobId, outcome);
    }
  }
}
