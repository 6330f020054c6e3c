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

export async function userIdForToken(pool: Pool, token: string): Promise<string | undefined> {
  const { rows } = await pool.query<{ user_id: string }>(`SELECT user_id FROM api_tokens WHERE token_hash = $1`, [hashToken(token)]);
  return rows[0]?.user_id;
}
