import type { Pool } from '@wharf/db';
import type { InvokeResult } from '@wharf/shared';

export async function insertQueuedInvocation(pool: Pool, id: string, functionId: string, version: number): Promise<void> {
  await pool.query(`INSERT INTO invocations (id, function_id, version) VALUES ($1, $2, $3)`, [id, functionId, version]);
}

/** Undoes an invocation whose job could not be enqueued, so a refused request leaves no record. */
export async function deleteInvocation(pool: Pool, id: string): Promise<void> {
  await pool.query(`DELETE FROM invocations WHERE id = $1`, [id]);
}

export async function markInvocationRunning(pool: Pool, id: string): Promise<void> {
  await pool.query(`UPDATE invocations SET status = 'running', started_at = now() WHERE id = $1 AND status = 'queued'`, [id]);
}

/**
 * Records the final state. Every API process hears every completion, so this runs once per
 * process; the status guard makes the first write the only one.
 */
export async function finishInvocation(pool: Pool, id: string, result: InvokeResult): Promise<void> {
  await pool.query(
    `UPDATE invocations SET
       status = $2, response = $3, error_code = $4, error_message = $5, logs = $6, runner_id = $7,
       started_at = $8, duration_ms = $9, finished_at = now()
     WHERE id = $1 AND status IN ('queued', 'running')`,
    [
      id,
      result.status,
      result.response ? JSON.stringify(result.response) : null,
      result.error?.code ?? null,
      result.error?.message ?? null,
      JSON.stringify(result.logs),
      result.runnerId,
      result.startedAt,
      Math.round(result.durationMs),
    ],
  );
}

/** The job itself failed (its runner could not run it, after retries): no function result exists. */
export async function failInvocation(pool: Pool, id: string, code: string, message: string): Promise<void> {
  await pool.query(
    `UPDATE invocations SET status = 'failed', error_code = $2, error_message = $3, finished_at = now()
     WHERE id = $1 AND status IN ('queued', 'running')`,
    [id, code, message],
  );
}

export async function getInvocation(pool: Pool, userId: string, id: string) {
  const { rows } = await pool.query(
    `SELECT i.* FROM invocations i JOIN functions f ON f.id = i.function_id WHERE i.id = $1 AND f.user_id = $2`,
    [id, userId],
  );
  return rows[0];
}

/** The newest invocations of a function with what they logged, newest first. */
export async function recentLogs(pool: Pool, functionId: string, limit: number) {
  const { rows } = await pool.query(
    `SELECT id, version, status, logs, error_code, error_message, queued_at, finished_at, duration_ms
     FROM invocations WHERE function_id = $1 ORDER BY queued_at DESC LIMIT $2`,
    [functionId, limit],
  );
  return rows.map((row) => ({
    invocation_id: row.id,
    version: row.version,
    status: row.status,
    ...(row.error_code ? { error: { code: row.error_code, message: row.error_message } } : {}),
    logs: row.logs,
    queued_at: row.queued_at,
    finished_at: row.finished_at,
    duration_ms: row.duration_ms,
  }));
}
