import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type Docker from 'dockerode';
import {
  LABELS,
  RUNTIME_API,
  SANDBOX_FILES,
  SANDBOX_MOUNT,
  coerceError,
  formatEnvConfig,
  logEntrySchema,
  type InvokeJob,
  type InvokeResult,
  type Logger,
  type SandboxRequest,
} from '@wharf/shared';
import { z } from 'zod';
import { containerOptions, readStderrTail, removeContainer, runtimeEnv, type ContainerLimits, type ContainerOutcome } from './container-runner.js';
import { interpretOutcome, safeJson, type Collected, type OutputCaps } from './invoke-processor.js';
import type { EngineWatch } from './engine-watch.js';
import { createContainer } from './images.js';
import { chownSandbox } from './sandbox-dir.js';
import type { WarmSlots } from './warm-slots.js';

export interface WarmDeps {
  docker: Docker;
  logger: Logger;
  runnerId: string;
  functionsDir: string;
  caps: OutputCaps;
  idleMs: number;
  maxInstances: number;
  /** Every container name starts with this, so that a runner restarting under the same id removes them. */
  namePrefix: string;
  engine: Pick<EngineWatch, 'watch'>;
  /** Where the free slots of live instances are advertised, for the API to route warm calls here. */
  slots: Pick<WarmSlots, 'adjust'>;
  /** The runner's slots not taken: no more instance slots than these are advertised. */
  freeRunnerSlots: () => number;
}

/** How one invocation on an instance ended. Only the first two leave the instance fit for another. */
type Ending =
  | { kind: 'response'; body: string }
  | { kind: 'error'; body: string }
  | { kind: 'too-large' }
  | { kind: 'exited'; exitCode: number | null; oomKilled: boolean; stderrTail: string }
  | { kind: 'timeout' }
  | { kind: 'cancelled' }
  /** The engine stopped answering for the container (restarting under the runner): not the function's doing. */
  | { kind: 'engine-lost'; message: string };

const warmResponseSchema = z.object({
  statusCode: z.number(),
  headers: z.record(z.string(), z.unknown()).optional(),
  body: z.unknown(),
  isBase64Encoded: z.boolean().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  logs: z.array(z.unknown()).optional(),
});
const runtimeErrorSchema = z.object({ errorType: z.string().optional(), errorMessage: z.string().optional(), logs: z.array(z.unknown()).optional() });

function warmInstanceName(prefix: string): string {
  return `${prefix}w${randomBytes(6).toString('hex')}`;
}

/** Unix socket paths are limited to 107 bytes; the runner refuses a functions folder too deep for its instances' sockets. */
export function warmSocketPathFits(functionsDir: string, namePrefix: string): boolean {
  return Buffer.byteLength(path.join(functionsDir, warmInstanceName(namePrefix), RUNTIME_API.socket)) <= 107;
}

/** One invocation handed to an instance, until it ends. */
interface InFlight {
  settle: (ending: Ending) => void;
  /** Not yet handed to the runtime (no long-poll was waiting). */
  event?: { body: string; deadline: number };
}

/**
 * One live container of one function version, with the runtime API it pulls invocations from:
 * an HTTP server on a Unix socket in the instance's folder (mounted read-only at /work; the
 * container has no network). Up to `concurrency` invocations at once.
 */
class Instance {
  readonly name: string;
  readonly dir: string;
  retiring = false;
  dead = false;
  /** Its runtime took its first invocation: slots free now can be advertised. */
  up = false;
  /** Free slots of this instance currently advertised (see `WarmSlots`). */
  advertised = 0;
  lastUsed = Date.now();
  /** Resolves once the runtime asked for its first invocation; to an ending if it never will. */
  started?: Promise<Ending | undefined>;
  private readonly inFlight = new Map<string, InFlight>();
  /** Invocations counted before their `run` (the one that starts the instance is counted while it starts). */
  private reserved = 0;
  private container?: Docker.Container;
  private engine?: ReturnType<EngineWatch['watch']>;
  private server?: http.Server;
  private readonly polls: http.ServerResponse[] = [];
  private ready!: () => void;
  private readonly readyOnce = new Promise<void>((resolve) => (this.ready = resolve));
  /** Set once the container has exited: an invocation handed over afterwards ends with it at once. */
  private exitEnding?: Ending;

  constructor(
    private readonly deps: WarmDeps,
    readonly job: InvokeJob,
    readonly key: string,
    readonly singleUse: boolean,
  ) {
    this.name = warmInstanceName(deps.namePrefix);
    // Directly under the functions folder: the socket's path must stay within the 107 bytes Unix sockets allow.
    this.dir = path.join(deps.functionsDir, this.name);
  }

  get functionId(): string {
    return this.job.functionId;
  }

  get concurrency(): number {
    return this.singleUse ? 1 : this.job.concurrency ?? 1;
  }

  get load(): number {
    return this.inFlight.size + this.reserved;
  }

  /** Counts an invocation against this instance before it is handed over. */
  reserve(): void {
    this.reserved += 1;
    this.lastUsed = Date.now();
  }

  fits(key: string): boolean {
    return this.key === key && !this.singleUse && !this.dead && !this.retiring && this.load < this.concurrency;
  }

  /** Starts the container and waits for its runtime's first request; an exit, or no request within the time limit, is the ending. */
  start(limits: ContainerLimits, env: Record<string, string>): Promise<Ending | undefined> {
    this.started ??= this.boot(limits, env);
    return this.started;
  }

  private async boot(limits: ContainerLimits, env: Record<string, string>): Promise<Ending | undefined> {
    const { job } = this;
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const envFile = path.join(this.dir, SANDBOX_FILES.envConfig);
    await fs.writeFile(envFile, formatEnvConfig(env), { mode: 0o600 });
    const socket = path.join(this.dir, RUNTIME_API.socket);
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(socket, resolve));
    await chownSandbox(this.dir, [envFile, socket]);

    this.container = await createContainer(
      this.deps.docker,
      containerOptions({
        name: this.name,
        image: job.image,
        hostDir: this.dir,
        limits,
        outputs: false,
        env: {
          ...runtimeEnv(job, limits, this.deps.caps.logBytes),
          RUNTIME_API_SOCKET: `${SANDBOX_MOUNT}/${RUNTIME_API.socket}`,
          RUNTIME_CONCURRENCY: String(this.concurrency),
          ...(job.runtime === 'custom' ? { RUNTIME_API_ADDR: RUNTIME_API.relayAddress } : {}),
        },
        labels: {
          [LABELS.functionId]: job.functionId,
          [LABELS.version]: String(job.version),
          [LABELS.runnerId]: this.deps.runnerId,
        },
      }),
    );
    await this.container.start();
    const container = this.container;
    // A `wait` outlives a dead engine without ever ending: the engine watch says when it is gone.
    const engine = (this.engine = this.deps.engine.watch());
    const exited: Promise<Ending> = Promise.race([
      (container.wait() as Promise<{ StatusCode: number }>).then(
        async ({ StatusCode }): Promise<Ending> => {
          this.dead = true;
          if (await engine.stoppedByEngine(container.id, StatusCode)) return { kind: 'engine-lost', message: 'the engine stopped the instance (it is stopping or restarting)' };
          const state = await container.inspect().catch(() => undefined);
          const stderrTail = StatusCode === 0 ? '' : await readStderrTail(this.deps.docker, container).catch(() => '');
          return { kind: 'exited' as const, exitCode: StatusCode, oomKilled: state?.State.OOMKilled ?? false, stderrTail };
        },
        (err: unknown) => ({ kind: 'engine-lost' as const, message: coerceError(err).message }),
      ),
      engine.lost.then((message) => ({ kind: 'engine-lost' as const, message })),
    ]);
    void exited.then((ending) => {
      this.dead = true;
      this.exitEnding = ending;
      for (const inFlight of [...this.inFlight.values()]) inFlight.settle(ending);
    });
    let timer: NodeJS.Timeout | undefined;
    const tooSlow = new Promise<Ending>((resolve) => (timer = setTimeout(() => resolve({ kind: 'timeout' }), limits.timeoutMs)));
    return Promise.race([this.readyOnce.then(() => undefined), exited, tooSlow]).finally(() => clearTimeout(timer));
  }

  /** Hands one (reserved) invocation to the runtime and waits for how it ends, within `timeoutMs`. */
  run(id: string, request: SandboxRequest, timeoutMs: number, signal?: AbortSignal): Promise<Ending> {
    this.reserved -= 1;
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => settle({ kind: 'cancelled' });
      const settle = (ending: Ending) => {
        if (this.inFlight.get(id) !== inFlight) return;
        this.inFlight.delete(id);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.lastUsed = Date.now();
        resolve(ending);
      };
      const inFlight: InFlight = { settle, event: { body: JSON.stringify(request), deadline: request.deadline } };
      this.inFlight.set(id, inFlight);
      if (this.exitEnding) return settle(this.exitEnding);
      timer = setTimeout(() => settle({ kind: 'timeout' }), timeoutMs);
      if (signal?.aborted) return settle({ kind: 'cancelled' });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.deliver();
    });
  }

  async destroy(): Promise<void> {
    this.dead = true;
    this.engine?.release();
    for (const poll of this.polls.splice(0)) poll.destroy();
    this.server?.close();
    this.server?.closeAllConnections();
    if (this.container) await removeContainer(this.deps.docker, this.container);
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === RUNTIME_API.next) {
      this.ready();
      this.polls.push(res);
      res.on('close', () => {
        const at = this.polls.indexOf(res);
        if (at >= 0) this.polls.splice(at, 1);
      });
      this.deliver();
      return;
    }
    const ending = url.startsWith(RUNTIME_API.responsePrefix) ? 'response' : url.startsWith(RUNTIME_API.errorPrefix) ? 'error' : undefined;
    if (req.method !== 'POST' || !ending) {
      res.writeHead(404).end();
      return;
    }
    const id = decodeURIComponent(url.slice((ending === 'response' ? RUNTIME_API.responsePrefix : RUNTIME_API.errorPrefix).length));
    // The result and the logs, each at their cap, plus room for the envelope.
    const limit = this.deps.caps.resultBytes + this.deps.caps.logBytes + 64 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        this.inFlight.get(id)?.settle({ kind: 'too-large' });
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) return;
      const inFlight = this.inFlight.get(id);
      if (!inFlight || inFlight.event) {
        res.writeHead(409).end();
        return;
      }
      res.writeHead(202).end();
      inFlight.settle({ kind: ending, body: Buffer.concat(chunks).toString('utf8') });
    });
  }

  /** Pairs waiting long-polls with invocations not yet handed over. */
  private deliver(): void {
    for (const [id, inFlight] of this.inFlight) {
      if (!inFlight.event) continue;
      const poll = this.polls.shift();
      if (!poll) return;
      const { body, deadline } = inFlight.event;
      inFlight.event = undefined;
      poll.writeHead(200, {
        'content-type': 'application/json',
        [RUNTIME_API.requestIdHeader]: id,
        [RUNTIME_API.wharfRequestIdHeader]: id,
        [RUNTIME_API.deadlineHeader]: String(deadline),
        [RUNTIME_API.invokeTypeHeader]: 'RequestResponse',
      });
      poll.end(body);
    }
  }
}

export interface WarmRun {
  /** Run once on a fresh instance, then discard it: `isolated` mode for runtimes that only speak the runtime API. */
  singleUse?: boolean;
}

/**
 * Live instances per function version on this runner. An invocation takes an instance of its
 * version and settings (image, variables, limits: the instance key) with a free slot, or starts
 * one; an instance that crashed, timed out, overflowed or was cancelled is discarded, never
 * reused. When a function changes (announced by the API or a builder, or seen at its next
 * invocation here) its other instances are retired; idle ones stop after `idleMs`, except the
 * function's `minInstances`. The free slots of live instances are advertised (`WarmSlots`), so
 * that the API sends further invocations of the version here.
 */
export class WarmPool {
  private readonly instances = new Set<Instance>();
  private readonly sweeper: NodeJS.Timeout;
  /** Warm-mode invocations that found a live instance, and that had to start one. */
  hits = 0;
  misses = 0;

  constructor(private readonly deps: WarmDeps) {
    this.sweeper = setInterval(() => void this.stopIdle(), Math.min(deps.idleMs, 30_000));
    this.sweeper.unref();
  }

  /** Runs the invocation on an instance; undefined when every instance slot is busy (run it another way). */
  async invoke(job: InvokeJob, limits: ContainerLimits, env: Record<string, string>, request: SandboxRequest, signal: AbortSignal | undefined, log: Logger, options: WarmRun = {}): Promise<{ collected: Collected; durationMs: number } | undefined> {
    const key = instanceKey(job, limits, env);
    await this.retireOthers(job.functionId, key);
    const started = Date.now();
    let instance = options.singleUse ? undefined : this.pick(key);
    if (instance) this.hits++;
    else {
      instance = options.singleUse ? this.add(job, key, true) : await this.addWithin(job, key);
      if (!instance) return undefined;
      if (!instance.singleUse) this.misses++;
      log.info({ instance: instance.name, singleUse: instance.singleUse }, 'starting an instance');
    }
    instance.reserve();
    this.rebalance();
    let failed: Ending | undefined;
    try {
      failed = await instance.start(limits, env);
    } catch (err) {
      await this.discard(instance, 'could not start');
      throw coerceError(err);
    }
    if (failed) {
      await this.discard(instance, 'exited before it was ready');
      return { collected: await this.collect(failed), durationMs: Date.now() - started };
    }
    this.up(instance);
    const ending = await instance.run(job.invocationId, request, limits.timeoutMs, signal);
    const durationMs = Date.now() - started;
    const fit = ending.kind === 'response' || ending.kind === 'error';
    if (!fit || instance.singleUse || instance.dead || (instance.retiring && instance.load === 0)) {
      await this.discard(instance, fit ? (instance.singleUse ? 'single use' : RETIRED) : ending.kind);
    } else {
      this.rebalance();
    }
    return { collected: await this.collect(ending), durationMs };
  }

  /** Starts an instance ahead of invocations (`min_instances`), unless this runner has enough of them. */
  async prewarm(job: InvokeJob, limits: ContainerLimits, env: Record<string, string>, log: Logger): Promise<void> {
    const key = instanceKey(job, limits, env);
    await this.retireOthers(job.functionId, key);
    const live = [...this.instances].filter((instance) => instance.key === key && !instance.dead && !instance.retiring).length;
    if (live >= (job.minInstances ?? 0)) return;
    const instance = await this.addWithin(job, key);
    if (!instance) return;
    log.info({ instance: instance.name }, 'starting an instance ahead of invocations (min_instances)');
    const failed = await instance.start(limits, env).catch((err) => ({ kind: 'exited' as const, exitCode: null, oomKilled: false, stderrTail: String(err) }));
    if (failed) await this.discard(instance, 'exited before it was ready');
    else this.up(instance);
  }

  /** The function changed: its instances take no new invocation; idle ones stop now, busy ones when their invocations end. */
  async retireFunction(functionId: string): Promise<void> {
    for (const instance of [...this.instances]) {
      if (instance.functionId === functionId) await this.retire(instance);
    }
  }

  get size(): number {
    return this.instances.size;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.instances].map((instance) => this.discard(instance, 'runner stopping')));
  }

  private add(job: InvokeJob, key: string, singleUse: boolean): Instance {
    const instance = new Instance(this.deps, job, key, singleUse);
    this.instances.add(instance);
    return instance;
  }

  /** The least loaded instance of this key with a free slot. */
  private pick(key: string): Instance | undefined {
    let best: Instance | undefined;
    for (const instance of this.instances) {
      if (instance.fits(key) && (!best || instance.load < best.load)) best = instance;
    }
    return best;
  }

  /** Instances that exited while idle go; those of the same function with another key retire. */
  private async retireOthers(functionId: string, key: string): Promise<void> {
    for (const other of [...this.instances]) {
      if (other.dead && other.load === 0) {
        await this.discard(other, 'exited while idle');
      } else if (other.functionId === functionId && other.key !== key) {
        await this.retire(other);
      }
    }
  }

  /** Takes no new invocation; goes now if idle, else when its last invocation ends. */
  private async retire(instance: Instance): Promise<void> {
    instance.retiring = true;
    this.rebalance();
    if (instance.load === 0) await this.discard(instance, RETIRED);
  }

  private async collect(ending: Ending): Promise<Collected> {
    const { caps } = this.deps;
    const noResult = async () => ({ text: '', size: 0 });
    const outcome: ContainerOutcome = { exitCode: null, timedOut: false, oomKilled: false, cancelled: false, durationMs: 0, stderrTail: '' };
    switch (ending.kind) {
      case 'timeout':
        return { logs: [], ...(await interpretOutcome({ ...outcome, timedOut: true }, noResult, caps)) };
      case 'cancelled':
        return { logs: [], ...(await interpretOutcome({ ...outcome, cancelled: true }, noResult, caps)) };
      case 'exited':
        return { logs: [], ...(await interpretOutcome({ ...outcome, ...ending }, noResult, caps)) };
      case 'engine-lost':
        // The job fails and BullMQ tries it again: a retryable error, not the function's outcome.
        throw new Error(`the Docker engine lost the instance: ${ending.message}`);
      case 'too-large':
        return { logs: [], status: 'failed', error: { code: 'RESULT_TOO_LARGE', message: `the function's result is larger than ${caps.resultBytes} bytes` } };
      case 'error': {
        const posted = runtimeErrorSchema.safeParse(safeJson(ending.body));
        const type = posted.success ? posted.data.errorType ?? 'Error' : 'Error';
        const message = posted.success ? posted.data.errorMessage ?? '' : 'the runtime posted a malformed error';
        const { logs, truncated } = capLogs(posted.success ? posted.data.logs ?? [] : [], caps.logBytes);
        return { logs, ...(truncated ? { logsTruncated: true } : {}), status: 'failed', error: { code: 'FUNCTION_ERROR', message: `${type}: ${message}` } };
      }
      case 'response': {
        const posted = warmResponseSchema.safeParse(safeJson(ending.body));
        if (!posted.success) return { logs: [], ...(await interpretOutcome({ ...outcome, exitCode: 0 }, noResult, caps)) };
        const { logs: rawLogs = [], ...result } = posted.data;
        const resultText = JSON.stringify(result);
        const { logs, truncated } = capLogs(rawLogs, caps.logBytes);
        const interpreted = await interpretOutcome({ ...outcome, exitCode: 0 }, async () => ({ text: resultText, size: Buffer.byteLength(resultText) }), caps);
        return { ...interpreted, logs, ...(truncated ? { logsTruncated: true } : {}) };
      }
    }
  }

  /** A new instance within `maxInstances`, evicting idle ones; none when every instance is busy. */
  private async addWithin(job: InvokeJob, key: string): Promise<Instance | undefined> {
    // Checked again after each eviction (another invocation may have taken the room meanwhile), and added in the same turn as the last check.
    while (this.instances.size >= this.deps.maxInstances) {
      if (!(await this.evictIdle())) return undefined;
    }
    return this.add(job, key, false);
  }

  private async evictIdle(): Promise<boolean> {
    const idle = [...this.instances].filter((instance) => instance.load === 0).sort((a, b) => a.lastUsed - b.lastUsed)[0];
    if (!idle) return false;
    await this.discard(idle, 'evicted: the runner is at WHARF_WARM_MAX_INSTANCES');
    return true;
  }

  /** Idle past `idleMs` stops, keeping per function the most recently used `minInstances`. */
  private async stopIdle(): Promise<void> {
    const cutoff = Date.now() - this.deps.idleMs;
    const kept = new Map<string, number>();
    const newestFirst = [...this.instances].sort((a, b) => b.lastUsed - a.lastUsed);
    for (const instance of newestFirst) {
      if (instance.load > 0 || instance.dead || instance.retiring) continue;
      const keep = (kept.get(instance.key) ?? 0) < (instance.job.minInstances ?? 0);
      if (keep) kept.set(instance.key, (kept.get(instance.key) ?? 0) + 1);
      else if (instance.lastUsed < cutoff) await this.discard(instance, 'idle');
    }
  }

  /**
   * Brings the advertised free slots to what this runner can take: the free slots of instances
   * that are up, reusable, neither dead nor retiring, most recently used first, no more in all
   * than the runner's free slots. Called whenever an instance or the runner's load changes.
   */
  rebalance(): void {
    let budget = this.deps.freeRunnerSlots();
    for (const instance of [...this.instances].sort((a, b) => b.lastUsed - a.lastUsed)) {
      const usable = instance.up && !instance.dead && !instance.retiring && !instance.singleUse;
      const free = usable ? Math.min(budget, Math.max(0, instance.concurrency - instance.load)) : 0;
      budget -= free;
      this.advertise(instance, free);
    }
  }

  /**
   * The API took one of this version's advertised slots to send an invocation here: that entry is
   * off the list already. It is counted against an instance of the version that had one.
   */
  routedSlotTaken(functionId: string, version: number): void {
    const holder = [...this.instances].find((instance) => instance.functionId === functionId && instance.job.version === version && instance.advertised > 0);
    if (holder) holder.advertised -= 1;
  }

  private up(instance: Instance): void {
    instance.up = true;
    this.rebalance();
  }

  private advertise(instance: Instance, free: number): void {
    if (free === instance.advertised) return;
    this.deps.slots.adjust(instance.functionId, instance.job.version, free - instance.advertised);
    instance.advertised = free;
  }

  private async discard(instance: Instance, reason: string): Promise<void> {
    if (!this.instances.delete(instance)) return;
    this.advertise(instance, 0);
    this.rebalance();
    this.deps.logger.info({ instance: instance.name, functionId: instance.functionId, version: instance.job.version, reason }, 'warm instance stopped');
    await instance.destroy();
  }
}

const RETIRED = 'retired: the function changed';

function instanceKey(job: InvokeJob, limits: ContainerLimits, env: Record<string, string>): string {
  return createHash('sha256').update(JSON.stringify({ image: job.image, env, limits, concurrency: job.concurrency ?? 1 })).digest('hex');
}

/** Whole log entries, in order, up to `limit` bytes of JSON. */
function capLogs(raw: unknown[], limit: number): { logs: InvokeResult['logs']; truncated: boolean } {
  const logs: InvokeResult['logs'] = [];
  let size = 0;
  for (const entry of raw) {
    const parsed = logEntrySchema.safeParse(entry);
    if (!parsed.success) continue;
    size += Buffer.byteLength(JSON.stringify(parsed.data)) + 1;
    if (size > limit) return { logs, truncated: true };
    logs.push(parsed.data);
  }
  return { logs, truncated: false };
}
