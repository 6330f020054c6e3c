import { transaction, type Pool, type PoolClient } from '@wharf/db';
import type { DeletionReason, DeploymentStatus, FunctionConfigPatch, FunctionMode, FunctionRuntime, FunctionStatus } from '@wharf/shared';
import { checkDeployQuotas, checkFunctionQuota, checkMinInstancesQuota, lockUserQuotas, type UserQuotas } from './quotas.js';

export interface FunctionRow {
  id: string;
  user_id: string;
  name: string;
  status: FunctionStatus;
  active_version: number | null;
  skip_signing: boolean;
  /** Reachable at /fn/<name> without credentials. */
  public: boolean;
  mode: FunctionMode;
  concurrency: number;
  min_instances: number;
  timeout_ms: number | null;
  memory_mb: number | null;
  cpus: number | null;
  env: Record<string, string>;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  /** The newest deployment's version, whatever its outcome (null before the first deploy). */
  latest_version: number | null;
}

export interface DeploymentRow {
  id: string;
  function_id: string;
  version: number;
  status: DeploymentStatus;
  image_tag: string | null;
  env: Record<string, string>;
  /** Asked for at deploy, or (once built) what the builder found. */
  runtime: FunctionRuntime | null;
  handler: string | null;
  archive_sha256: string;
  /** What was uploaded, known after the archive is dropped. */
  archive_bytes: number;
  /** Set when the archive was dropped (a failed build past its retention, a version past WHARF_KEEP_VERSIONS). */
  archive_dropped_at: Date | null;
  /** Kept past WHARF_KEEP_VERSIONS by its owner's choice. */
  pinned: boolean;
  error_code: string | null;
  error_message: string | null;
  created_at: Date;
  finished_at: Date | null;
}

/** All an invoke job takes from the deployment it runs. */
export type ServingDeployment = Pick<DeploymentRow, 'version' | 'image_tag' | 'env' | 'runtime' | 'handler'>;

/** A function with its active version's deployment (null before one succeeded), as the invocation plane reads it. */
export interface InvocableFunction extends FunctionRow {
  serving: ServingDeployment | null;
}

export type InvocableLookup = { id: string; userId?: string } | { userId: string; name: string } | { publicName: string };

export interface DeletionRow {
  id: string;
  function_id: string;
  reason: DeletionReason;
  deletion_date: Date;
  scheduled_at: Date;
}

export interface PendingDeletionRow extends DeletionRow {
  function_name: string;
  function_status: FunctionStatus;
  active_version: number | null;
  image_tag: string | null;
}

const FUNCTION_COLUMNS = `f.*, (SELECT MAX(version) FROM deployments d WHERE d.function_id = f.id) AS latest_version`;
const FUNCTION_SELECT = `SELECT ${FUNCTION_COLUMNS} FROM functions f`;
const SERVING_DEPLOYMENT = `(SELECT json_build_object('version', d.version, 'image_tag', d.image_tag, 'env', d.env, 'runtime', d.runtime, 'handler', d.handler)
  FROM deployments d WHERE d.function_id = f.id AND d.version = f.active_version) AS serving`;
const DEPLOYMENT_COLUMNS = `id, function_id, version, status, image_tag, env, runtime, handler, archive_sha256, archive_bytes, archive_dropped_at, pinned, error_code, error_message, created_at, finished_at`;
const DELETION_COLUMNS = `id, function_id, reason, deletion_date, scheduled_at`;
const LIVE = `f.status <> 'deleted'`;

/**
 * The status a function has when nothing is pending against it: a build in flight, else the
 * serving version, else what its deployments say. Used when a deletion is cancelled.
 */
const DERIVED_STATUS = `CASE
  WHEN EXISTS (SELECT 1 FROM deployments d WHERE d.function_id = f.id AND d.status = 'building') THEN 'building'
  WHEN f.active_version IS NOT NULL THEN 'active'
  WHEN EXISTS (SELECT 1 FROM deployments d WHERE d.function_id = f.id) THEN 'failed'
  ELSE 'init' END`;

/**
 * Creates the function, or returns the caller's existing one of that name (`created: false`).
 * A new one must fit WHARF_USER_MAX_FUNCTIONS: checked and inserted under the user's quota lock.
 */
export async function initFunction(pool: Pool, userId: string, name: string, skipSigning: boolean, quotas: UserQuotas): Promise<{ fn: FunctionRow; created: boolean }> {
  return transaction(pool, async (client) => {
    await lockUserQuotas(client, userId);
    const existing = await getFunctionByName(client, userId, name);
    if (existing) return { fn: existing, created: false };
    await checkFunctionQuota(client, userId, quotas);
    await client.query(`INSERT INTO functions (user_id, name, skip_signing) VALUES ($1, $2, $3)`, [userId, name, skipSigning]);
    return { fn: (await getFunctionByName(client, userId, name))!, created: true };
  });
}

/** Functions are visible only to their owner; another user's id reads as unknown. Deleted ones are included. */
export async function getFunction(pool: Pool, userId: string, functionId: string): Promise<FunctionRow | undefined> {
  const { rows } = await pool.query<FunctionRow>(`${FUNCTION_SELECT} WHERE f.id = $1 AND f.user_id = $2`, [functionId, userId]);
  return rows[0];
}

/** For callers authenticated by a function's API key rather than as its owner. */
export async function getFunctionById(pool: Pool, functionId: string): Promise<FunctionRow | undefined> {
  const { rows } = await pool.query<FunctionRow>(`${FUNCTION_SELECT} WHERE f.id = $1`, [functionId]);
  return rows[0];
}

/** The caller's live function of that name. */
export async function getFunctionByName(db: Pool | PoolClient, userId: string, name: string): Promise<FunctionRow | undefined> {
  const { rows } = await db.query<FunctionRow>(`${FUNCTION_SELECT} WHERE f.user_id = $1 AND f.name = $2 AND ${LIVE}`, [userId, name]);
  return rows[0];
}

/**
 * The function an invocation addresses, with what it runs, in one round trip (every synchronous
 * invoke pays for this lookup). By id (the owner's, or any when a key already named it), by the
 * owner's name, or by public name (unique across users); deleted functions are found by id only.
 */
export async function findInvocable(pool: Pool, lookup: InvocableLookup): Promise<InvocableFunction | undefined> {
  const [where, params] =
    'id' in lookup
      ? lookup.userId === undefined
        ? [`f.id = $1`, [lookup.id]]
        : [`f.id = $1 AND f.user_id = $2`, [lookup.id, lookup.userId]]
      : 'name' in lookup
        ? [`f.user_id = $1 AND f.name = $2 AND ${LIVE}`, [lookup.userId, lookup.name]]
        : [`f.name = $1 AND f.public AND ${LIVE}`, [lookup.publicName]];
  const { rows } = await pool.query<InvocableFunction>(`SELECT ${FUNCTION_COLUMNS}, ${SERVING_DEPLOYMENT} FROM functions f WHERE ${where}`, params);
  return rows[0];
}

export async function listFunctions(pool: Pool, userId: string): Promise<FunctionRow[]> {
  const { rows } = await pool.query<FunctionRow>(`${FUNCTION_SELECT} WHERE f.user_id = $1 AND ${LIVE} ORDER BY f.name`, [userId]);
  return rows;
}

export async function getBuildLog(pool: Pool, deploymentId: string): Promise<string> {
  const { rows } = await pool.query<{ build_log: string }>(`SELECT build_log FROM deployments WHERE id = $1`, [deploymentId]);
  return rows[0]?.build_log ?? '';
}

export async function getDeployment(pool: Pool, functionId: string, version: number): Promise<DeploymentRow | undefined> {
  const { rows } = await pool.query<DeploymentRow>(
    `SELECT ${DEPLOYMENT_COLUMNS} FROM deployments WHERE function_id = $1 AND version = $2`,
    [functionId, version],
  );
  return rows[0];
}

/** One page of a function's deployments, newest first, and how many there are in all. */
export async function listDeployments(pool: Pool, functionId: string, page: number, perPage: number): Promise<{ rows: DeploymentRow[]; total: number }> {
  const [list, count] = await Promise.all([
    pool.query<DeploymentRow>(
      `SELECT ${DEPLOYMENT_COLUMNS} FROM deployments WHERE function_id = $1 ORDER BY version DESC LIMIT $2 OFFSET $3`,
      [functionId, perPage, (page - 1) * perPage],
    ),
    pool.query<{ total: number }>(`SELECT COUNT(*)::int AS total FROM deployments WHERE function_id = $1`, [functionId]),
  ]);
  return { rows: list.rows, total: count.rows[0].total };
}

/**
 * Records a new version (numbers never reused, failed builds included) and moves the function to
 * `building`. The owner's stored archives and deployments of the last hour must leave room for it
 * (checked under the user's quota lock, so parallel deploys cannot both take the last slot; a
 * refused one writes nothing). The function row is locked so that two concurrent deploys get
 * distinct versions.
 */
export async function createDeployment(
  pool: Pool,
  fn: Pick<FunctionRow, 'id' | 'user_id'>,
  archive: Buffer,
  archiveSha256: string,
  env: Record<string, string>,
  runtime: FunctionRuntime | undefined,
  quotas: UserQuotas,
): Promise<DeploymentRow> {
  return transaction(pool, async (client) => {
    await lockUserQuotas(client, fn.user_id);
    await checkDeployQuotas(client, fn.user_id, archive.length, quotas);
    await client.query(`SELECT 1 FROM functions WHERE id = $1 FOR UPDATE`, [fn.id]);
    const { rows } = await client.query<DeploymentRow>(
      `INSERT INTO deployments (function_id, version, archive, archive_bytes, archive_sha256, env, runtime)
       SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6 FROM deployments WHERE function_id = $1
       RETURNING ${DEPLOYMENT_COLUMNS}`,
      [fn.id, archive, archive.length, archiveSha256, JSON.stringify(env), runtime ?? null],
    );
    await client.query(`UPDATE functions SET status = 'building', updated_at = now() WHERE id = $1`, [fn.id]);
    return rows[0];
  });
}

/** Undoes a deployment whose build job could not be enqueued, so a refused request changes nothing. */
export async function discardDeployment(pool: Pool, deployment: DeploymentRow, previousStatus: FunctionStatus): Promise<void> {
  await pool.query(
    `WITH gone AS (DELETE FROM deployments WHERE id = $1 RETURNING function_id)
     UPDATE functions SET status = $2 FROM gone WHERE functions.id = gone.function_id`,
    [deployment.id, previousStatus],
  );
}

/**
 * The function row is locked first wherever a statement decides from its active version and a
 * deployment's image or archive (here, and the builder's retirement of old versions), so that a
 * retirement and a rollback never decide from each other's half-done state, and take their locks
 * in the same order.
 */
async function lockFunction(client: PoolClient, functionId: string): Promise<void> {
  await client.query(`SELECT 1 FROM functions WHERE id = $1 FOR UPDATE`, [functionId]);
}

/**
 * Makes a successful build whose image is still there the serving one. Guarded in the statement
 * itself, so a concurrent deletion, a deployment that is not a successful build, or an image
 * retired meanwhile leaves everything as it was.
 */
export async function rollbackTo(pool: Pool, functionId: string, version: number): Promise<FunctionRow | undefined> {
  const rowCount = await transaction(pool, async (client) => {
    await lockFunction(client, functionId);
    const updated = await client.query(
      `UPDATE functions f SET
         active_version = d.version,
         status = CASE WHEN f.status = 'building' THEN f.status ELSE 'active' END,
         updated_at = now()
       FROM deployments d
       WHERE f.id = $1 AND d.function_id = f.id AND d.version = $2 AND d.status = 'succeeded' AND d.image_tag IS NOT NULL
         AND f.status NOT IN ('pending_deletion', 'deleted')`,
      [functionId, version],
    );
    return updated.rowCount;
  });
  return rowCount === 1 ? getFunctionById(pool, functionId) : undefined;
}

/**
 * A successful version whose image was retired, and whose archive is still stored, goes back to
 * `building`; false if it is not in that state.
 */
export async function startRebuild(pool: Pool, deployment: Pick<DeploymentRow, 'id' | 'function_id'>): Promise<boolean> {
  return transaction(pool, async (client) => {
    await lockFunction(client, deployment.function_id);
    const { rowCount } = await client.query(
      `WITH rebuilt AS (
         UPDATE deployments SET status = 'building', finished_at = NULL
         WHERE id = $1 AND status = 'succeeded' AND image_tag IS NULL AND archive_dropped_at IS NULL
         RETURNING function_id
       )
       UPDATE functions f SET status = CASE WHEN f.status IN ('pending_deletion', 'deleted') THEN f.status ELSE 'building' END, updated_at = now()
       FROM rebuilt WHERE f.id = rebuilt.function_id`,
      [deployment.id],
    );
    return rowCount === 1;
  });
}

/** Undoes `startRebuild` when its build could not be enqueued. */
export async function abandonRebuild(pool: Pool, deploymentId: string, functionId: string): Promise<void> {
  await transaction(pool, async (client) => {
    await lockFunction(client, functionId);
    await client.query(`UPDATE deployments SET status = 'succeeded', finished_at = now() WHERE id = $1 AND status = 'building'`, [deploymentId]);
    await client.query(`UPDATE functions f SET status = ${DERIVED_STATUS}, updated_at = now() WHERE f.id = $1 AND f.status NOT IN ('pending_deletion', 'deleted')`, [functionId]);
  });
}

const CONFIG_COLUMNS = ['timeout_ms', 'memory_mb', 'cpus', 'env', 'skip_signing', 'public', 'mode', 'concurrency', 'min_instances'] as const;

/**
 * Sets only the fields present; `null` returns a limit to the platform default. A new
 * `min_instances` must fit WHARF_USER_MAX_MIN_INSTANCES, checked and written under the user's
 * quota lock (parallel changes to several functions cannot pass it together).
 */
export async function updateFunctionConfig(pool: Pool, fn: Pick<FunctionRow, 'id' | 'user_id'>, patch: FunctionConfigPatch, quotas: UserQuotas): Promise<FunctionRow> {
  // Column names come from this fixed list, never from the request.
  const columns = CONFIG_COLUMNS.filter((name) => patch[name] !== undefined);
  if (columns.length > 0) {
    const sets = columns.map((name, i) => `${name} = $${i + 2}`);
    const values = columns.map((name) => (name === 'env' ? JSON.stringify(patch.env) : patch[name]));
    await transaction(pool, async (client) => {
      if (patch.min_instances !== undefined) {
        await lockUserQuotas(client, fn.user_id);
        await checkMinInstancesQuota(client, fn.user_id, fn.id, patch.min_instances, quotas);
      }
      await client.query(`UPDATE functions SET ${sets.join(', ')}, updated_at = now() WHERE id = $1`, [fn.id, ...values]);
    });
  }
  return (await getFunctionById(pool, fn.id))!;
}

/**
 * Pins or unpins a version: a pinned one keeps its archive past WHARF_KEEP_VERSIONS. Only a
 * successful build whose archive is still stored can be pinned, guarded in the statement (the
 * builder drops archives with a guarded update too, so exactly one of the two wins); undefined
 * when the guard refused.
 */
export async function setPinned(pool: Pool, deploymentId: string, pinned: boolean): Promise<DeploymentRow | undefined> {
  const { rows } = await pool.query<DeploymentRow>(
    pinned
      ? `UPDATE deployments SET pinned = true WHERE id = $1 AND status = 'succeeded' AND archive_dropped_at IS NULL RETURNING ${DEPLOYMENT_COLUMNS}`
      : `UPDATE deployments SET pinned = false WHERE id = $1 RETURNING ${DEPLOYMENT_COLUMNS}`,
    [deploymentId],
  );
  return rows[0];
}

/**
 * Drops the archives of failed builds that finished more than `retentionMinutes` ago; their
 * records and build logs stay. A pinned version (one that built before, and whose rebuild failed)
 * keeps its archive. Returns how many were dropped.
 */
export async function dropFailedArchives(pool: Pool, retentionMinutes: number): Promise<number> {
  const { rowCount } = await pool.query(
    `UPDATE deployments SET archive = NULL, archive_dropped_at = now()
     WHERE status = 'failed' AND archive_dropped_at IS NULL AND NOT pinned
       AND finished_at < now() - make_interval(secs => $1)`,
    [retentionMinutes * 60],
  );
  return rowCount ?? 0;
}

/** Moves the function to `pending_deletion`; scheduling twice keeps the first schedule. */
export async function scheduleDeletion(pool: Pool, functionId: string, reason: DeletionReason, deletionDate: Date): Promise<DeletionRow | undefined> {
  return transaction(pool, async (client) => {
    const fn = await client.query(`SELECT status FROM functions WHERE id = $1 FOR UPDATE`, [functionId]);
    if (fn.rows[0]?.status === 'deleted') return undefined;
    await client.query(
      `INSERT INTO function_deletions (function_id, reason, deletion_date) VALUES ($1, $2, $3)
       ON CONFLICT (function_id) WHERE state = 'pending' DO NOTHING`,
      [functionId, reason, deletionDate],
    );
    await client.query(`UPDATE functions SET status = 'pending_deletion', updated_at = now() WHERE id = $1`, [functionId]);
    return pendingDeletionOf(client, functionId);
  });
}

export async function pendingDeletionOf(db: Pool | PoolClient, functionId: string): Promise<DeletionRow | undefined> {
  const { rows } = await db.query<DeletionRow>(
    `SELECT ${DELETION_COLUMNS} FROM function_deletions WHERE function_id = $1 AND state = 'pending'`,
    [functionId],
  );
  return rows[0];
}

/** Returns the function to the status it would have had without the deletion; false if none was pending. */
export async function cancelDeletion(pool: Pool, functionId: string): Promise<FunctionRow | undefined> {
  const cancelled = await transaction(pool, async (client) => {
    const { rowCount } = await client.query(
      `UPDATE function_deletions SET state = 'cancelled', finished_at = now() WHERE function_id = $1 AND state = 'pending'`,
      [functionId],
    );
    if (rowCount !== 1) return false;
    await client.query(`UPDATE functions f SET status = ${DERIVED_STATUS}, updated_at = now() WHERE f.id = $1`, [functionId]);
    return true;
  });
  return cancelled ? getFunctionById(pool, functionId) : undefined;
}

export async function listPendingDeletions(pool: Pool, userId: string): Promise<PendingDeletionRow[]> {
  const { rows } = await pool.query<PendingDeletionRow>(
    `SELECT x.id, x.function_id, x.reason, x.deletion_date, x.scheduled_at,
            f.name AS function_name, f.status AS function_status, f.active_version, d.image_tag
     FROM function_deletions x
     JOIN functions f ON f.id = x.function_id
     LEFT JOIN deployments d ON d.function_id = f.id AND d.version = f.active_version
     WHERE f.user_id = $1 AND x.state = 'pending'
     ORDER BY x.deletion_date`,
    [userId],
  );
  return rows;
}
