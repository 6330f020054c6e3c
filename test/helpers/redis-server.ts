/**
 * A Redis of the test's own, on a free loopback port, with the platform's settings
 * (infra/redis.conf: AOF fsynced every second, noeviction), so that a test may stop, kill and
 * restart it without touching the Redis everything else shares.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './stack.js';

const CONF = path.resolve(import.meta.dirname, '../../infra/redis.conf');

export interface TestRedis {
  url: string;
  port: number;
  /** SIGTERM (Redis writes its AOF and exits) or SIGKILL (a crash: up to a second of writes may be lost). */
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it for good and removes its data. */
  remove(): Promise<void>;
}

/** `alsoBind`: addresses besides loopback it listens on (a test network namespace's link to this machine). */
export async function startTestRedis(options: { alsoBind?: string[] } = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'wharf-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async () => {
    const bind = ['127.0.0.1', ...(options.alsoBind ?? [])];
    // Reached from a namespace the test made, on a link nothing else can use: no password to protect it with.
    const exposed = options.alsoBind?.length ? ['--protected-mode', 'no'] : [];
    child = spawn('redis-server', [CONF, '--port', String(port), '--dir', dir, '--bind', ...bind, ...exposed], { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
      probe.on('error', () => {});
      try {
        await probe.connect();
        // AOF loading answers LOADING errors until the data is back.
        if ((await probe.ping()) === 'PONG') return;
      } catch {
        if (Date.now() > deadline) throw new Error(`redis on port ${port} did not start`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      } finally {
        probe.disconnect();
      }
    }
  };
  const stop = async (signal: 'SIGTERM' | 'SIGKILL') => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await exited;
  };
  await start();
  return {
    url,
    port,
    stop,
    start,
    remove: async () => {
      await stop('SIGKILL');
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
