import type { Pool, PoolClient } from '@wharf/db';
import type { CloudRequestPayload, ErrorCode, InvocationStarted, InvocationStatus, InvokeResult, LogEntry } from '@wharf/shared';

export interface InvocationRow {
  id: string;
  function_id: string;
  version: number;
  status: InvocationStatus;
  request: CloudRequestPayload | null;
  response: InvokeResult['response'] | null;
  error_code: ErrorCode | null;
  error_message: string | null;
  logs: LogEntry[];
  logs_truncated: boolean;
  attempts: number;
  runner_id: string | null;
  routed_to: string | null;
  callback_url: string | null;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
  duration_ms: number | null;
}

/** What every conditional update matches: an invocation that has no final state yet. */
const IN_FLIGHT = `status IN ('queued', 'running')`;

export async function insertInvocation(
  db: Pool | PoolClient,
  invocation: { id: string; functionId: string; version: number; request: CloudRequestPayload; callbackUrl?: string; routedTo?: string },
): Promise<void> {
  await db.query(`INSERT INTO invocations (id, function_id, version, request, callback_url, routed_to) VALUES ($1, $2, $3, $4, $5, $6)`, [
    invocation.id,
    invocation.functionId,
    invocation.version,
    JSON.stringify(invocation.request),
    invocation.callbackUrl ?? null,
    invocation.routedTo ?? null,
  ]);
}

/**
 * Claims an idempotency key for a new invocation, or returns the invocation that holds it. A key
 * older than the window is taken over. Concurrent claims of one key serialise on its primary key.
 */
export async function claimIdempotencyKey(client: PoolClient, functionId: string, key: string, invocationId: string, windowHours: number): Promise<string | undefined> {
  const claimed = await client.query(
    `INSERT INTO invocation_idempotency_keys (function_id, key, invocation_id) VALUES ($1, $2, $3)
     ON CONFLICT (function_id, key) DO UPDATE SET invocation_id = EXCLUDED.invocation_id, created_at = now()
       WHERE invocation_idempotency_keys.created_at < now() - make_interval(hours => $4)
     RETURNING invocation_id`,
    [functionId, key, invocationId, windowHours],
  );
  if (claimed.rowCount) return undefined;
  const { rows } = await client.query(`SELECT invocation_id FROM invocation_idempotency_keys WHERE function_id = $1 AND key = $2`, [functionId, key]);
  return rows[0]?.invocation_id;
}

/** Undoes an invocation whose job could not be enqueued, so a refused request leaves no record. */
export async function deleteInvocation(pool: Pool, id: string): Promise<void> {
  await pool.query(`DELETE FROM invocations WHERE id = $1`, [id]);
}

export async function markInvocationRunning(pool: Pool, id: string, started: InvocationStarted): Promise<void> {
  await pool.query(
    `UPDATE invocations SET status = 'running', started_at = now(), attempts = GREATEST(attempts, $2), runner_id = $3, updated_at = now()
     WHERE id = $1 AND ${IN_FLIGHT}`,
    [id, started.attempt, started.runnerId],
  );
}

/**
 * Records the final state, once: every API process hears every completion, and the reconciler
 * may find it too, so the status guard lets only the first write through. Returns the row when
 * this call was the one that finished it.
 */
export async function finishInvocation(pool: Pool, id: string, result: InvokeResult): Promise<InvocationRow | undefined> {
  const { rows } = await pool.query(
    `UPDATE invocations SET
       status = $2, response = $3, error_code = $4, error_message = $5, logs = $6, logs_truncated = $7, runner_id = $8,
       started_at = $9, duration_ms = $10, attempts = GREATEST(attempts, $11), finished_at = now(), updated_at = now()
     WHERE id = $1 AND ${IN_FLIGHT}
     RETURNING *`,
    [
      id,
      result.status,
      result.response ? JSON.stringify(result.response) : null,
      result.error?.code ?? null,
      result.error?.message ?? null,
      JSON.stringify(result.logs),
      result.logsTruncated === true,
      result.runnerId,
      result.startedAt,
      Math.round(result.durationMs),
      result.attempt,
    ],
  );
  return rows[0];
}

/** Ends an invocation without a function result: its job failed for good, it was cancelled, or it cannot run any more. */
export async function endInvocation(pool: Pool, id: string, status: 'failed' | 'cancelled', code: ErrorCode, message: string): Promise<InvocationRow | undefined> {
  const { rows } = await pool.query(
    `UPDATE invocations SET status = $2, error_code = $3, error_message = $4, finished_at = now(), updated_at = now()
     WHERE id = $1 AND ${IN_FLIGHT}
     RETURNING *`,
    [id, status, code, message],
  );
  return rows[0];
}

/** After a re-enqueue: the record is queued again and its clock restarts. */
export async function requeuedInvocation(pool: Pool, id: string): Promise<void> {
  await pool.query(`UPDATE invocations SET status = 'queued', routed_to = NULL, updated_at = now() WHERE id = $1 AND ${IN_FLIGHT}`, [id]);
}

export async function getInvocation(pool: Pool, userId: string, id: string): Promise<InvocationRow | undefined> {
  const { rows } = await pool.query(
    `SELECT i.* FROM invocations i JOIN functions f ON f.id = i.function_id WHERE i.id = $1 AND f.user_id = $2`,
    [id, userId],
  );
  return rows[0];
}

export async function getInvocationById(pool: Pool, id: string): Promise<InvocationRow | undefined> {
  const { rows } = await pool.query(`SELECT * FROM invocations WHERE id = $1`, [id]);
  return rows[0];
}

/** Invocations without a final state whose record has not changed for `quietMs`, oldest first. */
export async function quietInFlightInvocations(pool: Pool, quietMs: number, limit: number): Promise<InvocationRow[]> {
  const { rows } = await pool.query(
    `SELECT * FROM invocations WHERE ${IN_FLIGHT} AND updated_at < now() - make_interval(secs => $1::double precision / 1000)
     ORDER BY updated_at LIMIT $2`,
    [quietMs, limit],
  );
  return rows;
}

export async function listInvocations(pool: Pool, functionId: string, status: InvocationStatus | undefined, page: number, perPage: number) {
  const where = status ? `function_id = $1 AND status = $2` : `function_id = $1`;
  const params: unknown[] = status ? [functionId, status] : [functionId];
  const [list, count] = await Promise.all([
    pool.query<InvocationRow>(
      `SELECT * FROM invocations WHERE ${where} ORDER BY queued_at DESC, id LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, perPage, (page - 1) * perPage],
    ),
    pool.query<{ total: string }>(`SELECT count(*) AS total FROM invocations WHERE ${where}`, params),
  ]);
  return { rows: list.rows, total: Number(count.rows[0].total) };
}

/** The newest invocations of a function (queued after `since`, when given) with what they logged, newest first. */
export async function recentLogs(pool: Pool, functionId: string, limit: number, since?: Date) {
  const { rows } = await pool.query<InvocationRow>(
    `SELECT * FROM invocations WHERE function_id = $1 AND ($3::timestamptz IS NULL OR queued_at > $3)
     ORDER BY queued_at DESC LIMIT $2`,
    [functionId, limit, since ?? null],
  );
  return rows.map((row) => ({
    invocation_id: row.id,
    version: row.version,
    status: row.status,
    ...(row.error_code ? { error: { code: row.error_code, message: row.error_message } } : {}),
    logs: row.logs,
    logs_truncated: row.logs_truncated,
    queued_at: row.queued_at,
    finished_at: row.finished_at,
    duration_ms: row.duration_ms,
  }));
}

/** Deletes finished invocations past retention and idempotency keys past their window. */
export async function pruneInvocations(pool: Pool, retentionHours: number, idempotencyWindowHours: number): Promise<number> {
  const pruned = await pool.query(`DELETE FROM invocations WHERE finished_at < now() - make_interval(hours => $1)`, [retentionHours]);
  await pool.query(`DELETE FROM invocation_idempotency_keys WHERE created_at < now() - make_interval(hours => $1)`, [idempotencyWindowHours]);
  return pruned.rowCount ?? 0;
}
