import pg from 'pg';
import type { Logger } from '@wharf/shared';

export type Pool = pg.Pool;

export function createPool(connectionString: string, logger: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: 10 });
  // An idle client that loses its server emits 'error' on the pool; unhandled, it would kill the process.
  pool.on('error', (err) => logger.warn({ err }, 'idle PostgreSQL client failed'));
  return pool;
}
