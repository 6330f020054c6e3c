import type { Redis } from 'ioredis';

/**
 * Bounded queues: how many invocations a function, and a user, may have accepted and not yet
 * started. Each bound is a Redis sorted set of invocation ids (scored by acceptance time): the
 * API admits an invocation into both or neither, atomically; the runner that picks its job up
 * removes it. Entries older than `STALE_MS` (a job that was never picked up: lost with a Redis
 * failure, or its function deleted) no longer count.
 */
export interface AdmissionLimits {
  perFunction: number;
  perUser: number;
}

const STALE_MS = 3600_000;

function queuedKey(prefix: string, scope: 'function' | 'user', id: string): string {
  return `${prefix}:queued:${scope}:${id}`;
}

// KEYS: the function's set, the user's set. ARGV: function limit, user limit, invocation id, now, stale before.
const ADMIT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 'function' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 'user' end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 'admitted'`;

export interface QueuedInvocation {
  invocationId: string;
  functionId: string;
  ownerId?: string;
}

/** Counts the invocation against its function's and its owner's queue; which bound is full, if one is. */
export async function admitInvocation(redis: Redis, prefix: string, invocation: Required<QueuedInvocation>, limits: AdmissionLimits): Promise<'admitted' | 'function' | 'user'> {
  const now = Date.now();
  return (await redis.eval(
    ADMIT,
    2,
    queuedKey(prefix, 'function', invocation.functionId),
    queuedKey(prefix, 'user', invocation.ownerId),
    limits.perFunction,
    limits.perUser,
    invocation.invocationId,
    now,
    now - STALE_MS,
  )) as 'admitted' | 'function' | 'user';
}

/** The invocation has started (or will never be queued): it no longer counts. Idempotent. */
export async function releaseAdmission(redis: Redis, prefix: string, invocation: QueuedInvocation): Promise<void> {
  const pipeline = redis.pipeline().zrem(queuedKey(prefix, 'function', invocation.functionId), invocation.invocationId);
  if (invocation.ownerId) pipeline.zrem(queuedKey(prefix, 'user', invocation.ownerId), invocation.invocationId);
  await pipeline.exec();
}
