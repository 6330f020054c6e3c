import type { Pool } from '@wharf/db';
import type { ErrorCode } from '@wharf/shared';

export interface DeploymentToBuild {
  id: string;
  functionId: string;
  version: number;
  status: string;
  archive: Buffer;
  archiveSha256: string;
}

export async function loadDeployment(pool: Pool, deploymentId: string): Promise<DeploymentToBuild | undefined> {
  const { rows } = await pool.query(
    `SELECT id, function_id, version, status, archive, archive_sha256 FROM deployments WHERE id = $1`,
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
  };
}

/** A function waiting to be deleted (or deleted) keeps that status whatever its builds do. */
const KEEP_STATUS = `f.status IN ('pending_deletion', 'deleted')`;

/**
 * Only a deployment still `building` moves on, so a build job delivered twice records one outcome.
 * A newer version already serving (deployed, or rolled back to) is never replaced by an older one finishing late.
 */
export async function markDeploymentSucceeded(pool: Pool, deploymentId: string, imageTag: string): Promise<boolean> {
  const { rowCount } = await pool.query(
    `WITH done AS (
       UPDATE deployments SET status = 'succeeded', image_tag = $2, finished_at = now()
       WHERE id = $1 AND status = 'building'
       RETURNING function_id, version
     )
     UPDATE functions f SET
       status = CASE WHEN ${KEEP_STATUS} THEN f.status ELSE 'active' END,
       active_version = GREATEST(COALESCE(f.active_version, 0), done.version),
       updated_at = now()
     FROM done WHERE f.id = done.function_id`,
    [deploymentId, imageTag],
  );
  return rowCount === 1;
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
