export { createPool, transaction, type Pool, type PoolClient } from './pool.js';
export { migrate, MIGRATIONS_DIR } from './migrate.js';
