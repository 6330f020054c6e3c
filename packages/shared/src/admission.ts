import type { Redis } from 'ioredis';
import { runnerKey } from './queues.js';

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

// KEYS: the function's set, the user's set, and (warm mode) the version's free warm slots.
// ARGV: function limit, user limit, invocation id, now, stale before, runner heartbeat key prefix.
// A slot whose runner's heartbeat expired is dropped; at most 16 are looked at. (The heartbeat
// keys are read without being declared in KEYS: one Redis, not a Redis Cluster.)
const ADMIT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return {'function'} end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return {'user'} end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
if KEYS[3] then
  for _ = 1, 16 do
    local runner = redis.call('LPOP', KEYS[3])
    if not runner then break end
    if redis.call('EXISTS', ARGV[6] .. runner) == 1 then return {'admitted', runner} end
  end
end
return {'admitted'}`;

export interface QueuedInvocation {
  invocationId: string;
  functionId: string;
  ownerId?: string;
}

/** Where an admitted invocation goes: to a runner holding a free slot of a warm instance of its version, or (no `runnerId`) to any runner. */
export type Admission = { admitted: true; runnerId?: string } | { admitted: false; full: 'function' | 'user' };

/**
 * Counts the invocation against its function's and its owner's queue, and — given `warmSlots`,
 * the key of its version's free warm slots — takes one of them. Which bound is full, if one is.
 */
export async function admitInvocation(
  redis: Redis,
  prefix: string,
  invocation: Required<QueuedInvocation>,
  limits: AdmissionLimits,
  warmSlots?: string,
): Promise<Admission> {
  const now = Date.now();
  const keys = [queuedKey(prefix, 'function', invocation.functionId), queuedKey(prefix, 'user', invocation.ownerId), ...(warmSlots ? [warmSlots] : [])];
  const [verdict, runnerId] = (await redis.eval(ADMIT, keys.length, ...keys, limits.perFunction, limits.perUser, invocation.invocationId, now, now - STALE_MS, runnerKey(prefix, ''))) as [string, string?];
  if (verdict === 'function' || verdict === 'user') return { admitted: false, full: verdict };
  return runnerId ? { admitted: true, runnerId } : { admitted: true };
}

/** The invocation has started (or will never be queued): it no longer counts. Idempotent. */
export async function releaseAdmission(redis: Redis, prefix: string, invocation: QueuedInvocation): Promise<void> {
  const pipeline = redis.pipeline().zrem(queuedKey(prefix, 'function', invocation.functionId), invocation.invocationId);
  if (invocation.ownerId) pipeline.zrem(queuedKey(prefix, 'user', invocation.ownerId), invocation.invocationId);
  await pipeline.exec();
}
