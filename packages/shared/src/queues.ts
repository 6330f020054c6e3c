import { z } from 'zod';
import { isErrorCode, type ErrorCode } from './errors.js';

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
} as const;

/** Job scheduler ids on the maintenance queue. */
export const MAINTENANCE_JOBS = {
  reapDeletions: 'reap-deletions',
} as const;

/**
 * Redis sorted set (member: function id, score: when it was deleted) of functions deleted for
 * good. Each container host removes their images at its next sweep, however long it was away.
 */
export function deletedFunctionsKey(prefix: string): string {
  return `${prefix}:deleted-functions`;
}

export const buildJobSchema = z.object({
  deploymentId: z.string().uuid(),
  functionId: z.string().uuid(),
  version: z.number().int().positive(),
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
});
export type CloudRequestPayload = z.infer<typeof cloudRequestSchema>;

export const invokeJobSchema = z.object({
  invocationId: z.string().uuid(),
  functionId: z.string().uuid(),
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
  status: z.enum(['succeeded', 'failed', 'timed_out']),
  response: z
    .object({ statusCode: z.number().int(), headers: stringMap, body: z.string() })
    .optional(),
  error: z.object({ code: errorCode, message: z.string() }).optional(),
  logs: z.array(logEntrySchema),
  startedAt: z.string(),
  durationMs: z.number(),
  runnerId: z.string(),
});
export type InvokeResult = z.infer<typeof invokeResultSchema>;

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
} as const;
