import type { PoolClient } from '@wharf/db';
import { WharfError } from '@wharf/shared';

/** Per-user limits (`WHARF_USER_MAX_*`); every check runs under the user's quota lock. */
export interface UserQuotas {
  maxFunctions: number;
  maxArchiveBytes: number;
  maxDeploysPerHour: number;
  maxMinInstances: number;
}

/** The first key of the two-key advisory locks: keeps quota locks apart from any other use of hashtext keys. */
const QUOTA_LOCK_SPACE = 0x71756f74;

/**
 * Serialises, per user, every check-then-write a quota guards (a new function, a deployment, a
 * `min_instances` change), so that two parallel requests never both take the last free slot.
 * Held until the transaction ends. Two users whose ids hash alike only wait on each other.
 */
export async function lockUserQuotas(client: PoolClient, userId: string): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, [QUOTA_LOCK_SPACE, userId]);
}

/** Refuses a new function past WHARF_USER_MAX_FUNCTIONS (functions pending deletion count until deleted for good). */
export async function checkFunctionQuota(client: PoolClient, userId: string, quotas: UserQuotas): Promise<void> {
  const { rows } = await client.query<{ live: number; pending: number }>(
    `SELECT COUNT(*)::int AS live, COUNT(*) FILTER (WHERE status = 'pending_deletion')::int AS pending
     FROM functions WHERE user_id = $1 AND status <> 'deleted'`,
    [userId],
  );
  const { live, pending } = rows[0];
  if (live >= quotas.maxFunctions) {
    const pendingNote = pending > 0 ? ` (${pending} pending deletion: they count until deleted for good)` : '';
    throw new WharfError('FUNCTION_QUOTA_EXCEEDED', `you have ${live} functions${pendingNote}; WHARF_USER_MAX_FUNCTIONS allows ${quotas.maxFunctions}`);
  }
}

/**
 * Refuses a deployment whose archive would take the user's stored archives past
 * WHARF_USER_MAX_ARCHIVE_BYTES (403), or that would be one too many in the last hour (429,
 * with the seconds until the oldest deployment in the window leaves it). Storage first: it will
 * not pass by waiting.
 */
export async function checkDeployQuotas(client: PoolClient, userId: string, archiveBytes: number, quotas: UserQuotas): Promise<void> {
  const stored = await client.query<{ bytes: string; archives: number }>(
    `SELECT COALESCE(SUM(d.archive_bytes), 0)::bigint AS bytes, COUNT(*)::int AS archives
     FROM deployments d JOIN functions f ON f.id = d.function_id
     WHERE f.user_id = $1 AND f.status <> 'deleted' AND d.archive_dropped_at IS NULL`,
    [userId],
  );
  const bytes = Number(stored.rows[0].bytes);
  if (bytes + archiveBytes > quotas.maxArchiveBytes) {
    throw new WharfError(
      'STORAGE_QUOTA_EXCEEDED',
      `you store ${formatBytes(bytes)} of archives (${stored.rows[0].archives} versions); this one (${formatBytes(archiveBytes)}) would make ${formatBytes(bytes + archiveBytes)}; ` +
        `WHARF_USER_MAX_ARCHIVE_BYTES allows ${formatBytes(quotas.maxArchiveBytes)}. Failed builds' archives are dropped after their retention, ` +
        `unpinned old versions' once past WHARF_KEEP_VERSIONS; unpin versions or delete functions to free space`,
    );
  }

  // The deployment whose leaving the window frees a slot: the oldest, or a later one if the limit was lowered.
  const recent = await client.query<{ total: string; retry_after: number }>(
    `SELECT total, CEIL(EXTRACT(EPOCH FROM (created_at + interval '1 hour' - now())))::int AS retry_after
     FROM (
       SELECT d.created_at, COUNT(*) OVER () AS total, row_number() OVER (ORDER BY d.created_at) AS n
       FROM deployments d JOIN functions f ON f.id = d.function_id
       WHERE f.user_id = $1 AND f.status <> 'deleted' AND d.created_at > now() - interval '1 hour'
     ) recent
     WHERE n = GREATEST(total - $2 + 1, 1)`,
    [userId, quotas.maxDeploysPerHour],
  );
  const total = Number(recent.rows[0]?.total ?? 0);
  if (total >= quotas.maxDeploysPerHour) {
    const retryAfter = Math.max(1, recent.rows[0].retry_after);
    throw new WharfError(
      'DEPLOY_RATE_EXCEEDED',
      `you have made ${total} deployments in the last hour; WHARF_USER_MAX_DEPLOYS_PER_HOUR allows ${quotas.maxDeploysPerHour}; the next one is possible in ${retryAfter} s`,
      { retryAfterSeconds: retryAfter },
    );
  }
}

/**
 * Refuses raising a function's `min_instances` when the sum over the user's live functions would
 * pass WHARF_USER_MAX_MIN_INSTANCES. Lowering is always allowed, even while over the limit (it was
 * lowered after the instances were set).
 */
export async function checkMinInstancesQuota(client: PoolClient, userId: string, functionId: string, minInstances: number, quotas: UserQuotas): Promise<void> {
  const { rows } = await client.query<{ others: number; current: number }>(
    `SELECT COALESCE(SUM(min_instances) FILTER (WHERE id <> $2), 0)::int AS others,
            COALESCE(SUM(min_instances) FILTER (WHERE id = $2), 0)::int AS current
     FROM functions WHERE user_id = $1 AND status <> 'deleted'`,
    [userId, functionId],
  );
  const { others, current } = rows[0];
  if (minInstances > current && others + minInstances > quotas.maxMinInstances) {
    throw new WharfError(
      'MIN_INSTANCES_QUOTA_EXCEEDED',
      `your functions have ${others + current} min_instances (${others} on your other functions); min_instances ${minInstances} here would make ${others + minInstances}; WHARF_USER_MAX_MIN_INSTANCES allows ${quotas.maxMinInstances}`,
    );
  }
}

function formatBytes(bytes: number): string {
  const mib = 1024 * 1024;
  return bytes < mib ? `${bytes} bytes` : `${(bytes / mib).toFixed(1)} MiB (${bytes} bytes)`;
}
