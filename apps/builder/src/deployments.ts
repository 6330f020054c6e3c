import type { Pool } from '@wharf/db';
import type { ErrorCode, FunctionRuntime } from '@wharf/shared';

export interface DeploymentToBuild {
  id: string;
  functionId: string;
  version: number;
  status: string;
  archive: Buffer;
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
 * the newest others. Their archives stay, so a rollback rebuilds them. Returns the
 * retired image tags (the guarded update makes two builders retire each at most once).
 */
export async function retireOldImages(pool: Pool, functionId: string, keep: number): Promise<string[]> {
  const { rows } = await pool.query<{ image_tag: string }>(
    `WITH ranked AS (
       SELECT d.id, row_number() OVER (ORDER BY d.version DESC) AS rank
       FROM deployments d JOIN functions f ON f.id = d.function_id
       WHERE d.function_id = $1 AND d.status = 'succeeded' AND d.image_tag IS NOT NULL
         AND d.version <> COALESCE(f.active_version, 0)
     ),
     old AS (SELECT d.id, d.image_tag FROM deployments d JOIN ranked r ON r.id = d.id WHERE r.rank >= $2)
     UPDATE deployments d SET image_tag = NULL FROM old WHERE d.id = old.id AND d.image_tag IS NOT NULL
     RETURNING old.image_tag`,
    [functionId, keep],
  );
  return rows.map((row) => row.image_tag);
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
