import { Router } from 'express';
import { z } from 'zod';
import type { Pool } from '@wharf/db';
import { WharfError } from '@wharf/shared';
import { getInvocation } from './invocations-store.js';

export function invocationsRoutes(pool: Pool): Router {
  const router = Router();
  router.get('/:id', async (req, res) => {
    const id = req.params.id;
    const row = z.string().uuid().safeParse(id).success ? await getInvocation(pool, res.locals.userId, id) : undefined;
    if (!row) throw new WharfError('INVOCATION_NOT_FOUND', `no invocation ${id}`);
    res.json({
      id: row.id,
      function_id: row.function_id,
      version: row.version,
      status: row.status,
      response: row.response ?? undefined,
      error: row.error_code ? { code: row.error_code, message: row.error_message } : undefined,
      logs: row.logs,
      queued_at: row.queued_at,
      started_at: row.started_at,
      finished_at: row.finished_at,
      duration_ms: row.duration_ms,
    });
  });
  return router;
}
