import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Pool } from '@wharf/db';
import type { AdmissionLimits, BuildJob, BuildResult, FunctionLimits, InvokeJob, InvokeResult, Logger } from '@wharf/shared';
import type { InvocationRecords } from './invocation-records.js';
import type { InvocationWaiter } from './invocation-waiter.js';
import type { RunnerQueues } from './queues.js';
import type { UserQuotas } from './quotas.js';

/** Everything the HTTP layer needs, wired once in main.ts. */
export interface ApiDeps {
  pool: Pool;
  logger: Logger;
  buildQueue: Queue<BuildJob, BuildResult>;
  /** The shared invoke queue: any runner takes its jobs. */
  invokeQueue: Queue<InvokeJob, InvokeResult>;
  /** Each runner's own queue, for warm invocations routed to it. */
  runnerQueues: RunnerQueues;
  waiter: InvocationWaiter;
  records: InvocationRecords;
  /** For cancellations: the cancelled-invocation keys and the channel runners listen on. */
  redis: Redis;
  queuePrefix: string;
  maxArchiveBytes: number;
  maxRequestBytes: number;
  queueAllowanceMs: number;
  /** How many invocations a function, and a user, may have waiting to run. */
  queueLimits: AdmissionLimits;
  /** What a function gets when its config names no limit. */
  defaultLimits: FunctionLimits;
  /** What a function's config may ask for at most. */
  maxLimits: FunctionLimits;
  deletionGraceDays: number;
  /** Per-user limits on functions, stored archives, deploys per hour and min_instances. */
  quotas: UserQuotas;
  /** The platform secret API-key secrets are derived from. */
  signingSecret: string;
  /** Injectable so that tests can look past grace periods and signature windows. */
  now: () => Date;
}
