export * from './config.js';
export * from './errors.js';
export * from './lifecycle.js';
export * from './logger.js';
export * from './queues.js';
export * from './redis.js';
export * from './sandbox.js';
export * from './status.js';
