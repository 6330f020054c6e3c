import { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { Pool } from '@wharf/db';
import { WharfError } from '@wharf/shared';
import { hashPassword, verifyPassword } from './passwords.js';
import { createUser, findUserByEmail, issueToken, userIdForToken } from './users-store.js';

const credentialsSchema = z.object({
  email: z.string().trim().toLowerCase().email(),
  password: z.string().min(8, 'must be at least 8 characters').max(1024),
});

export function authRoutes(pool: Pool): Router {
  const router = Router();
  router.post('/register', async (req, res) => {
    const { email, password } = credentialsSchema.parse(req.body);
    const userId = await createUser(pool, email, await hashPassword(password));
    if (!userId) throw new WharfError('EMAIL_TAKEN', `an account for ${email} already exists`);
    res.status(201).json({ token: await issueToken(pool, userId) });
  });
  router.post('/login', async (req, res) => {
    const { email, password } = credentialsSchema.parse(req.body);
    const user = await findUserByEmail(pool, email);
    if (!user || !(await verifyPassword(password, user.password_hash))) {
      throw new WharfError('INVALID_CREDENTIALS', 'wrong email or password');
    }
    res.json({ token: await issueToken(pool, user.id) });
  });
  return router;
}

export function hasBearerToken(req: Request): boolean {
  return bearerToken(req) !== undefined;
}

function bearerToken(req: Request): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
}

/** Puts the caller's user id in `res.locals.userId`, or throws 401. */
export async function authenticateUser(pool: Pool, req: Request, res: Response): Promise<void> {
  const token = bearerToken(req);
  const userId = token ? await userIdForToken(pool, token) : undefined;
  if (!userId) throw new WharfError('UNAUTHENTICATED', 'send a valid token as "Authorization: Bearer <token>"');
  res.locals.userId = userId;
}

export function requireAuth(pool: Pool): RequestHandler {
  return async (req, res, next) => {
    await authenticateUser(pool, req, res);
    next();
  };
}
