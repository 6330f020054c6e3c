/**
 * What routes of several files need to find the caller's function and parse ids and pages: kept
 * apart from any route file, so that no module imports one.
 */
import type { Response } from 'express';
import { z } from 'zod';
import { WharfError } from '@wharf/shared';
import type { ApiDeps } from './deps.js';
import { getFunction, type FunctionRow } from './functions-store.js';

export const uuid = z.string().uuid('must be a UUID');

/** `?page=&per_page=` of every paged list. */
export const pageSchema = z.object({
  page: z.coerce.number().int().min(1).default(1),
  per_page: z.coerce.number().int().min(1).max(100).default(20),
});

/** The caller's function, or 404 whether it does not exist or belongs to someone else. */
export async function ownFunction(deps: Pick<ApiDeps, 'pool'>, res: Response, id: string, options: { includeDeleted?: boolean } = {}): Promise<FunctionRow> {
  const fn = uuid.safeParse(id).success ? await getFunction(deps.pool, res.locals.userId, id) : undefined;
  if (!fn || (fn.status === 'deleted' && !options.includeDeleted)) throw new WharfError('FUNCTION_NOT_FOUND', `no function ${id}`);
  return fn;
}

export function refusePendingDeletion(fn: FunctionRow): void {
  if (fn.status === 'pending_deletion') {
    throw new WharfError('FUNCTION_PENDING_DELETION', `function ${fn.name} is scheduled for deletion; cancel it with POST /api/functions/${fn.id}/cancel-deletion`);
  }
}
