import type Docker from 'dockerode';
import type { Logger } from '@wharf/shared';

/**
 * Tells whoever waits on the Docker engine that it went away. When dockerd dies, requests whose
 * response has begun (a container's `wait`) neither end nor fail, so the runner keeps one event
 * stream open to the engine: its closing is the news. Each waiter then fails its work as a
 * retryable runner error instead of waiting for a time limit; the watch reconnects once the
 * engine is back.
 */
export class EngineWatch {
  private readonly waiters = new Set<(reason: string) => void>();
  private stream?: NodeJS.ReadableStream & { destroy(): void };
  private stopped = false;

  private constructor(
    private readonly docker: Docker,
    private readonly logger: Logger,
  ) {}

  static async start(docker: Docker, logger: Logger): Promise<EngineWatch> {
    const watch = new EngineWatch(docker, logger);
    await watch.connect();
    return watch;
  }

  /** Resolves with a reason if the engine is lost before `release`. */
  watch(): { lost: Promise<string>; release: () => void } {
    let waiter!: (reason: string) => void;
    const lost = new Promise<string>((resolve) => (waiter = resolve));
    this.waiters.add(waiter);
    return { lost, release: () => this.waiters.delete(waiter) };
  }

  stop(): void {
    this.stopped = true;
    this.stream?.destroy();
  }

  private async connect(): Promise<void> {
    // Daemon events are rare: the stream stays quiet until the engine goes away.
    const stream = (await this.docker.getEvents({ filters: { type: ['daemon'] } })) as EngineWatch['stream'] & NodeJS.EventEmitter;
    this.stream = stream;
    let ended = false;
    const lost = (reason: string) => {
      if (ended) return;
      ended = true;
      this.lost(reason);
    };
    stream.once('end', () => lost('the engine closed its connection'));
    stream.once('close', () => lost('the engine closed its connection'));
    stream.once('error', (err: Error) => lost(err.message));
    stream.resume();
  }

  private lost(reason: string): void {
    if (this.stopped) return;
    this.logger.warn({ reason, waiting: this.waiters.size }, 'the Docker engine went away');
    for (const waiter of this.waiters) waiter(reason);
    this.waiters.clear();
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.connect();
        this.logger.info('the Docker engine is back');
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }
}
