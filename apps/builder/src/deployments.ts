import { transaction, type Pool } from '@wharf/db';
import type { ErrorCode, FunctionRuntime } from '@wharf/shared';

export interface DeploymentToBuild {
  id: string;
  functionId: string;
  version: number;
  status: string;
  /**
   * Null once retention dropped it (a failed build past WHARF_FAILED_ARCHIVE_RETENTION_MINUTES, a
   * version past WHARF_KEEP_VERSIONS that was not pinned): such a deployment cannot be built.
   */
  archive: Buffer | null;
  archiveSha256: string;
  /** Asked for at deploy; null: chosen from the archive. */
  runtime: FunctionRuntime | null;
}

export async function loadDeployment(pool: Pool, deploymentId: string): Promise<DeploymentToBuild | undefined> {
  const { rows } = await pool.query(
    `SELECT id, function_id, version, status, archive, archive_sha256, runtime FROM deployments WHERE id = $1`,
    [deploymentId],
  );
  const row = rows[0];
  return row && {
    id: row.id,
    functionId: row.function_id,
    version: row.version,
    status: row.status,
    archive: row.archive,
    archiveSha256: row.archive_sha256,
    runtime: row.runtime,
  };
}

/** A function waiting to be deleted (or deleted) keeps that status whatever its builds do. */
const KEEP_STATUS = `f.status IN ('pending_deletion', 'deleted')`;

/**
 * Only a deployment still `building` moves on, so a build job delivered twice records one outcome.
 * A newer version already serving (deployed, or rolled back to) is never replaced by an older one finishing late.
 */
export async function markDeploymentSucceeded(
  pool: Pool,
  deploymentId: string,
  built: { imageTag: string; runtime: FunctionRuntime; handler: string },
  activate = false,
): Promise<boolean> {
  const { rowCount } = await pool.query(
    `WITH done AS (
       UPDATE deployments SET status = 'succeeded', image_tag = $2, runtime = $4, handler = $5, finished_at = now()
       WHERE id = $1 AND status = 'building'
       RETURNING function_id, version
     )
     UPDATE functions f SET
       status = CASE WHEN ${KEEP_STATUS} THEN f.status ELSE 'active' END,
       active_version = CASE WHEN $3 THEN done.version ELSE GREATEST(COALESCE(f.active_version, 0), done.version) END,
       updated_at = now()
     FROM done WHERE f.id = done.function_id`,
    [deploymentId, built.imageTag, activate, built.runtime, built.handler],
  );
  return rowCount === 1;
}

/**
 * Retires the images of a function's older versions, keeping `keep` of them: the active one and
 * the newest others. A version without an image (retired now or before) loses its archive too,
 * unless it is pinned (a rollback rebuilds it from the archive) or active. Returns the retired
 * image tags (the guarded updates make two builders retire each at most once).
 */
export async function retireOldImages(pool: Pool, functionId: string, keep: number): Promise<string[]> {
  return transaction(pool, async (client) => {
    // The function row first, as a rollback and a rebuild take it: the active version holds until this commits.
    const fn = await client.query<{ active_version: number | null }>(`SELECT active_version FROM functions WHERE id = $1 FOR UPDATE`, [functionId]);
    if (fn.rows.length === 0) return [];
    const active = fn.rows[0].active_version ?? 0;
    const { rows } = await client.query<{ image_tag: string }>(
      `WITH ranked AS (
         SELECT id, image_tag, row_number() OVER (ORDER BY version DESC) AS rank
         FROM deployments
         WHERE function_id = $1 AND status = 'succeeded' AND image_tag IS NOT NULL AND version <> $3
       )
       UPDATE deployments d SET image_tag = NULL FROM ranked r
       WHERE d.id = r.id AND r.rank >= $2 AND d.image_tag IS NOT NULL
       RETURNING r.image_tag`,
      [functionId, keep, active],
    );
    // Guarded on `pinned`: a pin racing this update waits for the row, and one of the two wins.
    await client.query(
      `UPDATE deployments SET archive = NULL, archive_dropped_at = now()
       WHERE function_id = $1 AND status = 'succeeded' AND image_tag IS NULL AND version <> $2
         AND NOT pinned AND archive_dropped_at IS NULL`,
      [functionId, active],
    );
    return rows.map((row) => row.image_tag);
  });
}

/** A failed redeploy leaves the previous version serving; a first deploy that fails leaves the function `failed`. */
export async function markDeploymentFailed(pool: Pool, deploymentId: string, code: ErrorCode, message: string): Promise<boolean> {
  const { rowCount } = await pool.query(
    `WITH done AS (
       UPDATE deployments SET status = 'failed', error_code = $2, error_message = $3, finished_at = now()
       WHERE id = $1 AND status = 'building'
       RETURNING function_id
     )
     UPDATE functions f SET
       status = CASE WHEN ${KEEP_STATUS} THEN f.status WHEN f.active_version IS NULL THEN 'failed' ELSE 'active' END,
       updated_at = now()
     FROM done WHERE f.id = done.function_id`,
    [deploymentId, code, message],
  );
  return rowCount === 1;
}

/** Appends lines to the deployment's build log (kept whatever the outcome, read at …/deployments/:version/logs). */
export async function appendBuildLog(pool: Pool, deploymentId: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await pool.query(`UPDATE deployments SET build_log = build_log || $2 WHERE id = $1`, [deploymentId, lines.map((line) => `${line}\n`).join('')]);
}
