import type Docker from 'dockerode';
import type { Logger } from '@wharf/shared';

/** What the engine watch tells a run: the engine went away (`lost`), or it stopped the container itself. */
export interface EngineSignals {
  lost: Promise<string>;
  stoppedByEngine: (containerId: string, exitCode: number) => Promise<boolean>;
}

/** Exit codes of a process ended by SIGTERM and by SIGKILL: what the engine sends the containers it stops. */
const STOP_EXIT_CODES = new Set([128 + 15, 128 + 9]);
/** How long a container's exit may be reported ahead of the stop event that explains it (two connections, no common order). */
const STOP_EVENT_GRACE_MS = 250;
const REMEMBER_STOPS_MS = 60_000;

/**
 * Tells whoever waits on the Docker engine that it went away. When dockerd dies, requests whose
 * response has begun (a container's `wait`) neither end nor fail, so the runner keeps one event
 * stream open to the engine: its closing is the news. Each waiter then fails its work as a
 * retryable runner error instead of waiting for a time limit; the watch reconnects once the
 * engine is back. The same stream carries the engine's SIGTERMs to containers (a stopping engine
 * stops them first, as does `docker stop`): a container that exits of one did not fail on its own.
 */
export class EngineWatch {
  private readonly waiters = new Set<(reason: string) => void>();
  /** Containers the engine sent SIGTERM to (the runner itself only ever sends SIGKILL). */
  private readonly stopped = new Set<string>();
  private readonly stopWaiters = new Map<string, () => void>();
  private stream?: NodeJS.ReadableStream & { destroy(): void };
  private closed = false;

  private constructor(
    private readonly docker: Docker,
    private readonly logger: Logger,
  ) {}

  static async start(docker: Docker, logger: Logger): Promise<EngineWatch> {
    const watch = new EngineWatch(docker, logger);
    await watch.connect();
    return watch;
  }

  /** What one run on the engine needs to hear from it: `lost` resolves with a reason if the engine goes before `release`. */
  watch(): EngineSignals & { release: () => void } {
    let waiter!: (reason: string) => void;
    const lost = new Promise<string>((resolve) => (waiter = resolve));
    this.waiters.add(waiter);
    return { lost, stoppedByEngine: (containerId, exitCode) => this.stoppedByEngine(containerId, exitCode), release: () => this.waiters.delete(waiter) };
  }

  /**
   * Whether the engine, not the function, ended this container: it sent it SIGTERM. An exit code
   * a stop gives waits a moment for the event, which may come after the exit.
   */
  private async stoppedByEngine(containerId: string, exitCode: number): Promise<boolean> {
    if (this.stopped.has(containerId)) return true;
    if (!STOP_EXIT_CODES.has(exitCode)) return false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, STOP_EVENT_GRACE_MS);
      this.stopWaiters.set(containerId, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.stopWaiters.delete(containerId);
    return this.stopped.has(containerId);
  }

  stop(): void {
    this.closed = true;
    this.stream?.destroy();
  }

  private async connect(): Promise<void> {
    // Kills are rare: the stream stays quiet but for them until the engine goes away.
    const stream = (await this.docker.getEvents({ filters: { type: ['container'], event: ['kill'] } })) as EngineWatch['stream'] & NodeJS.EventEmitter;
    this.stream = stream;
    let partial = '';
    stream.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.sawKill(line);
    });
    let ended = false;
    const lost = (reason: string) => {
      if (ended) return;
      ended = true;
      this.lost(reason);
    };
    stream.once('end', () => lost('the engine closed its connection'));
    stream.once('close', () => lost('the engine closed its connection'));
    stream.once('error', (err: Error) => lost(err.message));
  }

  private sawKill(line: string): void {
    let event: { Actor?: { ID?: string; Attributes?: { signal?: string } } };
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    const id = event.Actor?.ID;
    if (!id || event.Actor?.Attributes?.signal !== '15') return;
    this.stopped.add(id);
    setTimeout(() => this.stopped.delete(id), REMEMBER_STOPS_MS).unref();
    this.stopWaiters.get(id)?.();
  }

  private lost(reason: string): void {
    if (this.closed) return;
    this.logger.warn({ reason, waiting: this.waiters.size }, 'the Docker engine went away');
    for (const waiter of this.waiters) waiter(reason);
    this.waiters.clear();
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    while (!this.closed) {
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
