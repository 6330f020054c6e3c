import { Router } from 'express';
import { z } from 'zod';
import { CANCELLED_KEY_TTL_SECONDS, INVOCATION_STATUSES, WharfError, cancelChannel, cancelledInvocationKey } from '@wharf/shared';
import type { ApiDeps } from './deps.js';
import { ownFunction, pageSchema, uuid } from './function-access.js';
import { getInvocation, listInvocations, type InvocationRow } from './invocations-store.js';

/** The invocation record as the API shows it (and as callbacks receive it). */
export function invocationBody(row: InvocationRow) {
  return {
    id: row.id,
    function_id: row.function_id,
    version: row.version,
    status: row.status,
    response: row.response ?? undefined,
    error: row.error_code ? { code: row.error_code, message: row.error_message } : undefined,
    logs: row.logs,
    logs_truncated: row.logs_truncated,
    queued_at: row.queued_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    duration_ms: row.duration_ms,
    attempts: row.attempts,
    /** Which runner ran it last (null until one reported it). */
    runner_id: row.runner_id,
  };
}

/** `/api/invocations/:id`: read one, or cancel it. */
export function invocationsRoutes(deps: ApiDeps): Router {
  const router = Router();
  const { pool } = deps;

  async function ownInvocation(userId: string, id: string): Promise<InvocationRow> {
    await deps.waiter.recorded();
    const row = uuid.safeParse(id).success ? await getInvocation(pool, userId, id) : undefined;
    if (!row) throw new WharfError('INVOCATION_NOT_FOUND', `no invocation ${id}`);
    return row;
  }

  router.get('/:id', async (req, res) => {
    res.json(invocationBody(await ownInvocation(res.locals.userId, req.params.id)));
  });

  /**
   * Cancels a queued invocation (its job is removed, or skipped by whichever runner takes it) or a
   * running one (its runner kills the container). The record turns `cancelled` first, so that
   * whatever the runner reports afterwards cannot replace it.
   */
  router.delete('/:id', async (req, res) => {
    const row = await ownInvocation(res.locals.userId, req.params.id);
    const cancelled = await deps.records.ended(row.id, 'cancelled', 'INVOCATION_CANCELLED', 'cancelled by the caller');
    if (!cancelled) {
      const now = await ownInvocation(res.locals.userId, row.id);
      throw new WharfError('INVOCATION_FINISHED', `invocation ${row.id} has already finished (${now.status})`);
    }
    await deps.redis.set(cancelledInvocationKey(deps.queuePrefix, row.id), '1', 'EX', CANCELLED_KEY_TTL_SECONDS);
    await deps.redis.publish(cancelChannel(deps.queuePrefix), row.id);
    // A job a runner holds is locked and stays; that runner skips or kills it. A routed job may have been handed back to the shared queue.
    const queues = [deps.invokeQueue, ...(row.routed_to ? [await deps.runnerQueues.queueFor(row.routed_to)] : [])];
    await Promise.all(queues.map((queue) => queue.remove(row.id).catch(() => 0)));
    deps.logger.info({ invocationId: row.id, functionId: row.function_id, was: row.status }, 'invocation cancelled');
    res.json(invocationBody(cancelled));
  });

  return router;
}

/** `/api/functions/:id/invocations`: a function's invocations, newest first, optionally of one status. */
export function functionInvocationsRoutes(deps: ApiDeps): Router {
  const router = Router();
  const querySchema = pageSchema.extend({ status: z.enum(INVOCATION_STATUSES).optional() });
  router.get('/:id/invocations', async (req, res) => {
    const fn = await ownFunction(deps, res, req.params.id);
    const { status, page, per_page: perPage } = querySchema.parse(req.query);
    await deps.waiter.recorded();
    const { rows, total } = await listInvocations(deps.pool, fn.id, status, page, perPage);
    const totalPages = Math.ceil(total / perPage);
    res.json({
      function_uuid: fn.id,
      function_name: fn.name,
      page,
      per_page: perPage,
      count: total,
      total_pages: totalPages,
      has_next: page < totalPages,
      // A summary each: the response and logs are one GET /api/invocations/:id away.
      invocations: rows.map((row) => {
        const { response: _response, logs: _logs, ...summary } = invocationBody(row);
        return summary;
      }),
    });
  });
  return router;
}
