export { createPool, type Pool } from './pool.js';
export { migrate, MIGRATIONS_DIR } from './migrate.js';
