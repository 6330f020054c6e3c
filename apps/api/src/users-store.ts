import { LRUCache } from 'lru-cache';
import type { Pool } from '@wharf/db';
import { hashToken, newToken } from './passwords.js';

export async function createUser(pool: Pool, email: string, passwordHash: string): Promise<string | undefined> {
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO users (email, password_hash) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING RETURNING id`,
    [email, passwordHash],
  );
  return rows[0]?.id;
}

export async function findUserByEmail(pool: Pool, email: string) {
  const { rows } = await pool.query<{ id: string; password_hash: string }>(
    `SELECT id, password_hash FROM users WHERE email = $1`,
    [email],
  );
  return rows[0];
}

export async function issueToken(pool: Pool, userId: string): Promise<string> {
  const token = newToken();
  await pool.query(`INSERT INTO api_tokens (token_hash, user_id) VALUES ($1, $2)`, [hashToken(token), userId]);
  return token;
}

/**
 * A token is never reassigned, so whose it is can be remembered: every authenticated call (each
 * synchronous invoke among them) then saves a PostgreSQL round trip. Bounded in count; the TTL
 * would let a revocation, were there one, take effect within a minute. Unknown tokens are not kept.
 */
const tokenOwners = new LRUCache<string, string>({ max: 10_000, ttl: 60_000 });

export async function userIdForToken(pool: Pool, token: string): Promise<string | undefined> {
  const tokenHash = hashToken(token);
  const known = tokenOwners.get(tokenHash);
  if (known) return known;
  const { rows } = await pool.query<{ user_id: string }>(`SELECT user_id FROM api_tokens WHERE token_hash = $1`, [tokenHash]);
  const userId: string | undefined = rows[0]?.user_id;
  if (userId) tokenOwners.set(tokenHash, userId);
  return userId;
}
