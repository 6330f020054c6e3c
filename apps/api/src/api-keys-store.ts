import { randomBytes } from 'node:crypto';
import type { Pool } from '@wharf/db';
import { sha256Hex } from '@wharf/shared/signing';
import { deriveKeySecret, newKeyId } from './signing.js';

export interface ApiKeyRow {
  id: string;
  function_id: string;
  secret_hash: string;
  created_at: Date;
  last_used_at: Date | null;
}

/**
 * The platform's signing secret: the configured one, or one generated at first start and kept
 * in the database so that every API process derives the same key secrets.
 */
export async function loadSigningSecret(pool: Pool, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  await pool.query(`INSERT INTO platform_secrets (name, value) VALUES ('signing', $1) ON CONFLICT (name) DO NOTHING`, [
    randomBytes(32).toString('base64url'),
  ]);
  const { rows } = await pool.query<{ value: string }>(`SELECT value FROM platform_secrets WHERE name = 'signing'`);
  return rows[0].value;
}

/** Creates a key; its secret is returned here once and only its hash is stored. */
export async function createApiKey(pool: Pool, signingSecret: string, functionId: string): Promise<{ key: ApiKeyRow; secret: string }> {
  const keyId = newKeyId();
  const secret = deriveKeySecret(signingSecret, keyId);
  const { rows } = await pool.query<ApiKeyRow>(
    `INSERT INTO function_api_keys (id, function_id, secret_hash) VALUES ($1, $2, $3) RETURNING *`,
    [keyId, functionId, sha256Hex(secret)],
  );
  return { key: rows[0], secret };
}

export async function listApiKeys(pool: Pool, functionId: string): Promise<ApiKeyRow[]> {
  const { rows } = await pool.query<ApiKeyRow>(`SELECT * FROM function_api_keys WHERE function_id = $1 ORDER BY created_at`, [functionId]);
  return rows;
}

export async function revokeApiKey(pool: Pool, functionId: string, keyId: string): Promise<boolean> {
  const { rowCount } = await pool.query(`DELETE FROM function_api_keys WHERE id = $1 AND function_id = $2`, [keyId, functionId]);
  return rowCount === 1;
}

export async function findApiKey(pool: Pool, keyId: string): Promise<ApiKeyRow | undefined> {
  const { rows } = await pool.query<ApiKeyRow>(`SELECT * FROM function_api_keys WHERE id = $1`, [keyId]);
  return rows[0];
}

export async function touchApiKey(pool: Pool, keyId: string): Promise<void> {
  await pool.query(`UPDATE function_api_keys SET last_used_at = now() WHERE id = $1`, [keyId]);
}

/** The key a function's outgoing callbacks are signed with: its newest. */
export async function newestApiKey(pool: Pool, functionId: string): Promise<ApiKeyRow | undefined> {
  const { rows } = await pool.query<ApiKeyRow>(`SELECT * FROM function_api_keys WHERE function_id = $1 ORDER BY created_at DESC LIMIT 1`, [functionId]);
  return rows[0];
}
