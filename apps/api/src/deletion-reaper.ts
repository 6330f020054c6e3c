import { transaction, type Pool } from '@wharf/db';
import { deletedFunctionsKey, type Logger } from '@wharf/shared';
import type { Redis } from 'ioredis';

/** How long a deleted function stays listed for container hosts to sweep its images. */
const SWEEP_MEMORY_MS = 30 * 24 * 3600 * 1000;

export interface ReaperDeps {
  pool: Pool;
  redis: Redis;
  queuePrefix: string;
  logger: Logger;
}

/**
 * Deletes for good every function whose grace period ended by `now` (injected, so a test can
 * look days ahead): its deployments and stored archives, invocations and API keys go; the
 * function row stays as a `deleted` tombstone. Images go when each host next sweeps.
 * Safe to run twice at once: each deletion is claimed by a conditional update.
 */
export async function reapDueDeletions(deps: ReaperDeps, now: Date): Promise<string[]> {
  const { pool, logger } = deps;
  const due = await pool.query<{ id: string; function_id: string }>(
    `SELECT id, function_id FROM function_deletions WHERE state = 'pending' AND deletion_date <= $1 ORDER BY deletion_date LIMIT 500`,
    [now],
  );
  const reaped: string[] = [];
  for (const { id, function_id: functionId } of due.rows) {
    const claimed = await transaction(pool, async (client) => {
      const claim = await client.query(
        `UPDATE function_deletions SET state = 'completed', finished_at = now() WHERE id = $1 AND state = 'pending'`,
        [id],
      );
      if (claim.rowCount !== 1) return false;
      await client.query(`DELETE FROM invocations WHERE function_id = $1`, [functionId]);
      await client.query(`DELETE FROM deployments WHERE function_id = $1`, [functionId]);
      await client.query(`DELETE FROM function_api_keys WHERE function_id = $1`, [functionId]);
      await client.query(
        `UPDATE functions SET status = 'deleted', active_version = NULL, env = '{}', deleted_at = $2, updated_at = now() WHERE id = $1`,
        [functionId, now],
      );
      return true;
    });
    if (claimed) {
      reaped.push(functionId);
      logger.info({ functionId, deletionId: id }, 'function deleted for good');
    }
  }
  await publishDeletedFunctions(deps, now);
  return reaped;
}

/**
 * Lists recently deleted functions in Redis for the image sweepers. Every run republishes them
 * all (ZADD is idempotent), so a Redis write lost after the database commit is repaired next run.
 */
async function publishDeletedFunctions({ pool, redis, queuePrefix }: ReaperDeps, now: Date): Promise<void> {
  const since = new Date(now.getTime() - SWEEP_MEMORY_MS);
  const { rows } = await pool.query<{ id: string; deleted_at: Date }>(
    `SELECT id, deleted_at FROM functions WHERE status = 'deleted' AND deleted_at >= $1`,
    [since],
  );
  const key = deletedFunctionsKey(queuePrefix);
  if (rows.length > 0) await redis.zadd(key, ...rows.flatMap((r) => [r.deleted_at.getTime(), r.id]));
  await redis.zremrangebyscore(key, '-inf', since.getTime());
}
