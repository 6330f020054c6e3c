import { z } from 'zod';
import { isErrorCode, type ErrorCode } from './errors.js';
import { FUNCTION_MODES, FUNCTION_RUNTIMES } from './status.js';

/**
 * The job catalog: every queue Wharf uses, its payload and result schema, and how it retries.
 * Payloads are validated when enqueued and again when processed. They change only by adding
 * optional fields; a breaking change gets a new queue name.
 */
export const QUEUE_NAMES = {
  build: 'build',
  invoke: 'invoke',
  /** Platform housekeeping on a schedule (the deletion reaper): one job per tick, whatever the number of API processes. */
  maintenance: 'maintenance',
  /** Deliveries of finished invocations to their `callback_url`, retried with backoff. */
  webhook: 'webhook',
} as const;

/** Job scheduler ids on the maintenance queue. */
export const MAINTENANCE_JOBS = {
  reapDeletions: 'reap-deletions',
  /** Finishes records whose outcome nobody heard, re-enqueues invocations Redis lost. */
  reconcileInvocations: 'reconcile-invocations',
  /** Deletes invocation records past their retention, and expired idempotency keys. */
  pruneInvocations: 'prune-invocations',
} as const;

/** Pub/sub channel on which the API asks whichever runner holds an invocation to kill its container. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:invocation-cancellations`;
}

/**
 * Pub/sub channel on which the API and the builders announce that a function changed (a new
 * active version, a rollback, a config change, a deletion): every runner retires that
 * function's warm instances at once.
 */
export function retireChannel(prefix: string): string {
  return `${prefix}:warm-retirements`;
}

/**
 * A runner's own invoke queue: the API sends it invocations of a function it has a warm instance
 * of with a free slot (see `warmSlotsKey`). Everything else goes to the shared `invoke` queue.
 */
export function runnerQueueName(runnerId: string): string {
  return `${QUEUE_NAMES.invoke}-on-${runnerId}`;
}

/**
 * Redis set of the runners whose own queue may hold jobs. A runner adds itself when it starts; a
 * live runner that finds one whose heartbeat has expired hands its jobs back to the shared queue,
 * then removes it.
 */
export function runnerQueuesKey(prefix: string): string {
  return `${prefix}:runner-queues`;
}

/**
 * Redis list of free warm slots of one function version: one entry (a runner id) per free
 * invocation slot of a live instance, the most recently freed first. The API takes one entry
 * when it admits an invocation (in the same script) and sends the job to that runner's queue.
 */
export function warmSlotsKey(prefix: string, functionId: string, version: number): string {
  return `${prefix}:warm-slots:${functionId}:${version}`;
}

/** Redis set of the warm-slot lists a runner has entries in: it (or a peer, once it died) takes them back from there. */
export function runnerWarmSlotListsKey(prefix: string, runnerId: string): string {
  return `${prefix}:runner-warm-slots:${runnerId}`;
}

/** Redis set of the runners that have advertised themselves; each one's heartbeat is under `runnerKey`. */
export function runnersKey(prefix: string): string {
  return `${prefix}:runners`;
}

/** A runner's heartbeat (JSON, `RunnerHeartbeat`), expiring after three missed beats. */
export function runnerKey(prefix: string, runnerId: string): string {
  return `${prefix}:runner:${runnerId}`;
}

export const runnerHeartbeatSchema = z.object({
  id: z.string(),
  /** The machine the runner process is on, and the engine its containers run on. */
  host: z.string(),
  engine: z.string(),
  slots: z.number().int(),
  /** Invocations running now. */
  running: z.number().int(),
  warmInstances: z.number().int(),
  /** Warm-mode invocations since the runner started that found a live instance (hits), and that had to start one (misses). */
  warmHits: z.number().int().default(0),
  warmMisses: z.number().int().default(0),
  startedAt: z.string(),
  seenAt: z.string(),
});
export type RunnerHeartbeat = z.infer<typeof runnerHeartbeatSchema>;

/** Job name on the invoke queue of a job that only starts a warm instance (`min_instances`); it has no invocation record. */
export const PREWARM_JOB = 'prewarm';

/**
 * Set when an invocation is cancelled, so that a runner picking its job up later (the queue
 * removal can lose a race with a worker) skips it instead of running it.
 */
export function cancelledInvocationKey(prefix: string, invocationId: string): string {
  return `${prefix}:cancelled:${invocationId}`;
}
export const CANCELLED_KEY_TTL_SECONDS = 24 * 3600;

/**
 * Redis sorted set (member: function id, score: when it was deleted) of functions deleted for
 * good. Each container host removes their images at its next sweep, however long it was away.
 */
export function deletedFunctionsKey(prefix: string): string {
  return `${prefix}:deleted-functions`;
}

/**
 * Redis sorted set (member: image tag, score: when it was pruned) of images of old versions that
 * `WHARF_KEEP_VERSIONS` retired. Each container host removes them at its next sweep; a rebuild
 * of that version (a rollback to it) takes its tag off the set first.
 */
export function prunedImagesKey(prefix: string): string {
  return `${prefix}:pruned-images`;
}

export const buildJobSchema = z.object({
  deploymentId: z.string().uuid(),
  functionId: z.string().uuid(),
  version: z.number().int().positive(),
  /** A rebuild for a rollback: the version becomes the active one once built, even if it is older. */
  activate: z.boolean().optional(),
});
export type BuildJob = z.infer<typeof buildJobSchema>;

const errorCode = z.custom<ErrorCode>(isErrorCode, 'unknown error code');

export const buildResultSchema = z.object({
  status: z.enum(['succeeded', 'failed']),
  imageTag: z.string().optional(),
  error: z.object({ code: errorCode, message: z.string() }).optional(),
});
export type BuildResult = z.infer<typeof buildResultSchema>;

const stringMap = z.record(z.string(), z.string());

export const cloudRequestSchema = z.object({
  method: z.string(),
  path: z.string(),
  headers: stringMap,
  query: stringMap,
  body: z.unknown().optional(),
  /** The body is a base64 string of bytes that are neither JSON nor text. */
  isBase64Encoded: z.boolean().optional(),
});
export type CloudRequestPayload = z.infer<typeof cloudRequestSchema>;

export const invokeJobSchema = z.object({
  invocationId: z.string().uuid(),
  functionId: z.string().uuid(),
  /** The function's owner: whose queue bound the invocation counts against until it starts. */
  ownerId: z.string().uuid().optional(),
  functionName: z.string(),
  version: z.number().int().positive(),
  image: z.string().min(1),
  request: cloudRequestSchema,
  /** The deployment's own variables; platform variables are added by the runner. */
  env: stringMap,
  /** The function's limits as the API resolved them; a runner clamps them to its own maxima. */
  timeoutMs: z.number().int().positive(),
  memoryMb: z.number().int().positive(),
  cpus: z.number().positive(),
  /** `warm`: served by a live instance of the version, kept between invocations; `isolated` (absent: the jobs of older APIs): a fresh container each time. */
  mode: z.enum(FUNCTION_MODES).optional(),
  /** What the image runs (absent: `node`). */
  runtime: z.enum(FUNCTION_RUNTIMES).optional(),
  /** `RUNTIME_HANDLER` inside the container: the class (node), `bootstrap` or `run`. */
  handler: z.string().optional(),
  /** Warm mode: invocations one instance takes at once (absent: 1). */
  concurrency: z.number().int().positive().optional(),
  /** Warm mode: instances this runner keeps of the function even when idle (absent: 0). */
  minInstances: z.number().int().min(0).optional(),
  /** Runs this invocation had before its job was re-enqueued (Redis lost the first job). */
  priorAttempts: z.number().int().min(0).optional(),
});
export type InvokeJob = z.infer<typeof invokeJobSchema>;

/** A function's resource limits as an invoke job carries them: the API's defaults and maxima, a runner's ceilings. */
export type FunctionLimits = Pick<InvokeJob, 'timeoutMs' | 'memoryMb' | 'cpus'>;

export const logEntrySchema = z.object({
  level: z.enum(['debug', 'info', 'warn', 'error']),
  message: z.string(),
  timestamp: z.string(),
  data: z.unknown().optional(),
});

export const invokeResultSchema = z.object({
  status: z.enum(['succeeded', 'failed', 'timed_out', 'cancelled']),
  response: z
    .object({ statusCode: z.number().int(), headers: stringMap, body: z.string(), isBase64Encoded: z.boolean().optional() })
    .optional(),
  error: z.object({ code: errorCode, message: z.string() }).optional(),
  logs: z.array(logEntrySchema),
  /** The function logged more than the cap; `logs` holds the first entries. */
  logsTruncated: z.boolean().optional(),
  /** Which run of the invocation this was, counting from 1. */
  attempt: z.number().int().positive(),
  startedAt: z.string(),
  durationMs: z.number(),
  runnerId: z.string(),
});
export type InvokeResult = z.infer<typeof invokeResultSchema>;

/**
 * Which run of a job this is, counting from 1. BullMQ counts failed runs in `attemptsMade` and
 * every start in `attemptsStarted`; a job whose worker died (stalled) was started but did not fail.
 */
export function attemptNumber(job: { attemptsStarted: number; attemptsMade: number }): number {
  return Math.max(job.attemptsStarted, job.attemptsMade + 1);
}

/** What a runner reports (as job progress) when it starts running an invocation. */
export const invocationStartedSchema = z.object({
  attempt: z.number().int().positive(),
  runnerId: z.string(),
});
export type InvocationStarted = z.infer<typeof invocationStartedSchema>;

export const webhookJobSchema = z.object({
  invocationId: z.string().uuid(),
  url: z.string().url(),
});
export type WebhookJob = z.infer<typeof webhookJobSchema>;

/** Retry policy per queue. Invocations are not retried on a function's own failure, only on a lost runner. */
export const JOB_OPTIONS = {
  build: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: 24 * 3600, count: 1000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  },
  invoke: {
    attempts: 2,
    backoff: { type: 'fixed', delay: 200 },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 24 * 3600 },
  },
  /** About 1, 2, 4, 8, 16, 32 s between tries: a receiver down for a minute still gets its call. */
  webhook: {
    attempts: 7,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  },
} as const;
