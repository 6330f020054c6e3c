import type { Pool } from '@wharf/db';
import type { DeploymentStatus, FunctionStatus } from '@wharf/shared';

export interface FunctionRow {
  id: string;
  user_id: string;
  name: string;
  status: FunctionStatus;
  active_version: number | null;
  created_at: Date;
  updated_at: Date;
}

export interface DeploymentRow {
  id: string;
  function_id: string;
  version: number;
  status: DeploymentStatus;
  image_tag: string | null;
  env: Record<string, string>;
  archive_sha256: string;
  error_code: string | null;
  error_message: string | null;
  created_at: Date;
  finished_at: Date | null;
}

const DEPLOYMENT_COLUMNS = `id, function_id, version, status, image_tag, env, archive_sha256, error_code, error_message, created_at, finished_at`;

/** Creates the function, or returns the caller's existing one of that name (`created: false`). */
export async function initFunction(pool: Pool, userId: string, name: string): Promise<{ fn: FunctionRow; created: boolean }> {
  const inserted = await pool.query<FunctionRow>(
    `INSERT INTO functions (user_id, name) VALUES ($1, $2) ON CONFLICT (user_id, name) DO NOTHING RETURNING *`,
    [userId, name],
  );
  if (inserted.rows[0]) return { fn: inserted.rows[0], created: true };
  const existing = await pool.query<FunctionRow>(`SELECT * FROM functions WHERE user_id = $1 AND name = $2`, [userId, name]);
  return { fn: existing.rows[0], created: false };
}

/** Functions are visible only to their owner; another user's id reads as unknown. */
export async function getFunction(pool: Pool, userId: string, functionId: string): Promise<FunctionRow | undefined> {
  const { rows } = await pool.query<FunctionRow>(`SELECT * FROM functions WHERE id = $1 AND user_id = $2`, [functionId, userId]);
  return rows[0];
}

export async function getDeployment(pool: Pool, functionId: string, version: number): Promise<DeploymentRow | undefined> {
  const { rows } = await pool.query<DeploymentRow>(
    `SELECT ${DEPLOYMENT_COLUMNS} FROM deployments WHERE function_id = $1 AND version = $2`,
    [functionId, version],
  );
  return rows[0];
}

/**
 * Records a new version (numbers never reused, failed builds included) and moves the function to
 * `building`. The function row is locked so that two concurrent deploys get distinct versions.
 */
export async function createDeployment(
  pool: Pool,
  functionId: string,
  archive: Buffer,
  archiveSha256: string,
  env: Record<string, string>,
): Promise<DeploymentRow> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SELECT 1 FROM functions WHERE id = $1 FOR UPDATE`, [functionId]);
    const { rows } = await client.query<DeploymentRow>(
      `INSERT INTO deployments (function_id, version, archive, archive_sha256, env)
       SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4 FROM deployments WHERE function_id = $1
       RETURNING ${DEPLOYMENT_COLUMNS}`,
      [functionId, archive, archiveSha256, JSON.stringify(env)],
    );
    await client.query(`UPDATE functions SET status = 'building', updated_at = now() WHERE id = $1`, [functionId]);
    await client.query('COMMIT');
    return rows[0];
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** Undoes a deployment whose build job could not be enqueued, so a refused request changes nothing. */
export async function discardDeployment(pool: Pool, deployment: DeploymentRow, previousStatus: FunctionStatus): Promise<void> {
  await pool.query(
    `WITH gone AS (DELETE FROM deployments WHERE id = $1 RETURNING function_id)
     UPDATE functions SET status = $2 FROM gone WHERE functions.id = gone.function_id`,
    [deployment.id, previousStatus],
  );
}
