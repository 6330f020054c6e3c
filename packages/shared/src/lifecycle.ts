import type { Logger } from 'pino';
import { ConfigError } from './config.js';

type Cleanup = () => Promise<unknown> | unknown;

/**
 * Graceful shutdown for a process: on SIGTERM/SIGINT run every cleanup (stop taking work, finish
 * what is in flight, close connections), each on its own so one failure does not skip the rest;
 * past the deadline, or on a second signal, exit at once.
 */
export function handleShutdown(logger: Logger, cleanups: Array<[string, Cleanup]>, deadlineMs = 30_000): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, deadlineMs }, 'draining');
    const timer = setTimeout(() => {
      logger.error('drain deadline passed: exiting');
      process.exit(1);
    }, deadlineMs);
    timer.unref();
    for (const [name, cleanup] of cleanups) {
      try {
        await cleanup();
      } catch (err) {
        logger.error({ err, step: name }, 'shutdown step failed');
      }
    }
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** Starts a process; a configuration error stops it with a readable message instead of a stack trace. */
export function runMain(service: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
    } else {
      process.stderr.write(`${service}: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(1);
  });
}
