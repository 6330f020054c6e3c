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
import { containerOptions, readStderrTail, type ContainerLimits, type ContainerOutcome } from './container-runner.js';
import { interpretOutcome, safeJson, type Collected, type OutputCaps } from './invoke-processor.js';
import { chownSandbox } from './sandbox-dir.js';

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
}

/** How one invocation on an instance ended. Only the first two leave the instance fit for another. */
type Ending =
  | { kind: 'response'; body: string }
  | { kind: 'error'; body: string }
  | { kind: 'too-large' }
  | { kind: 'exited'; exitCode: number | null; oomKilled: boolean; stderrTail: string }
  | { kind: 'timeout' }
  | { kind: 'cancelled' };

const warmResponseSchema = z.object({
  statusCode: z.number(),
  headers: z.record(z.string(), z.unknown()).optional(),
  body: z.unknown(),
  isBase64Encoded: z.boolean().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  logs: z.array(z.unknown()).optional(),
});
const runtimeErrorSchema = z.object({ errorType: z.string().optional(), errorMessage: z.string().optional() });

function warmInstanceName(prefix: string): string {
  return `${prefix}w${randomBytes(6).toString('hex')}`;
}

/** Unix socket paths are limited to 107 bytes; the runner refuses a functions folder too deep for its instances' sockets. */
export function warmSocketPathFits(functionsDir: string, namePrefix: string): boolean {
  return Buffer.byteLength(path.join(functionsDir, warmInstanceName(namePrefix), RUNTIME_API.socket)) <= 107;
}

/**
 * One live container of one function version, with the runtime API it pulls invocations from:
 * an HTTP server on a Unix socket in the instance's folder (mounted read-only at /work; the
 * container has no network). One invocation at a time.
 */
class Instance {
  readonly name: string;
  readonly dir: string;
  busy = true;
  retiring = false;
  dead = false;
  lastUsed = Date.now();
  private container?: Docker.Container;
  private server?: http.Server;
  private poll?: http.ServerResponse;
  private next?: { id: string; event: string; deadline: number };
  private current?: { id: string; settle: (ending: Ending) => void };
  private ready!: () => void;
  private readonly readyOnce = new Promise<void>((resolve) => (this.ready = resolve));
  private exited?: Promise<Extract<Ending, { kind: 'exited' }>>;
  /** Set once the container has exited: an invocation handed over afterwards ends with it at once. */
  private exitEnding?: Ending;

  constructor(
    private readonly deps: WarmDeps,
    readonly functionId: string,
    readonly version: number,
    readonly key: string,
  ) {
    this.name = warmInstanceName(deps.namePrefix);
    // Directly under the functions folder: the socket's path must stay within the 107 bytes Unix sockets allow.
    this.dir = path.join(deps.functionsDir, this.name);
  }

  /** Starts the container and waits for its runtime's first request; an exit, or no request within the time limit, is the ending. */
  async start(job: InvokeJob, limits: ContainerLimits, env: Record<string, string>): Promise<Ending | undefined> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const envFile = path.join(this.dir, SANDBOX_FILES.envConfig);
    await fs.writeFile(envFile, formatEnvConfig(env), { mode: 0o600 });
    const socket = path.join(this.dir, RUNTIME_API.socket);
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(socket, resolve));
    await chownSandbox(this.dir, [envFile, socket]);

    this.container = await this.deps.docker.createContainer(
      containerOptions({
        name: this.name,
        image: job.image,
        hostDir: this.dir,
        limits,
        outputs: false,
        env: {
          RUNTIME_API_SOCKET: `${SANDBOX_MOUNT}/${RUNTIME_API.socket}`,
          RUNTIME_FUNC_NAME: job.functionName,
          RUNTIME_FUNC_VERSION: String(job.version),
          RUNTIME_TIMEOUT: String(limits.timeoutMs),
          RUNTIME_MEMORY: String(limits.memoryMb),
          RUNTIME_CPU: String(limits.cpus),
          RUNTIME_CODE_ROOT: '/app',
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
    this.exited = (container.wait() as Promise<{ StatusCode: number }>).then(
      async ({ StatusCode }) => {
        this.dead = true;
        const state = await container.inspect().catch(() => undefined);
        const stderrTail = StatusCode === 0 ? '' : await readStderrTail(this.deps.docker, container).catch(() => '');
        return { kind: 'exited' as const, exitCode: StatusCode, oomKilled: state?.State.OOMKilled ?? false, stderrTail };
      },
      () => ({ kind: 'exited' as const, exitCode: null, oomKilled: false, stderrTail: '' }),
    );
    void this.exited.then((ending) => {
      this.exitEnding = ending;
      this.current?.settle(ending);
    });
    let timer: NodeJS.Timeout | undefined;
    const tooSlow = new Promise<Ending>((resolve) => (timer = setTimeout(() => resolve({ kind: 'timeout' }), limits.timeoutMs)));
    return Promise.race([this.readyOnce.then(() => undefined), this.exited, tooSlow]).finally(() => clearTimeout(timer));
  }

  /** Hands one invocation to the runtime and waits for how it ends, within `timeoutMs`. */
  run(id: string, request: SandboxRequest, timeoutMs: number, signal?: AbortSignal): Promise<Ending> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => settle({ kind: 'cancelled' });
      const settle = (ending: Ending) => {
        if (this.current?.id !== id) return;
        this.current = undefined;
        this.next = undefined;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(ending);
      };
      this.current = { id, settle };
      if (this.exitEnding) return settle(this.exitEnding);
      timer = setTimeout(() => settle({ kind: 'timeout' }), timeoutMs);
      if (signal?.aborted) return settle({ kind: 'cancelled' });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.next = { id, event: JSON.stringify(request), deadline: request.deadline };
      if (this.poll) this.deliver(this.poll);
    });
  }

  async destroy(): Promise<void> {
    this.dead = true;
    this.poll?.destroy();
    this.server?.close();
    this.server?.closeAllConnections();
    await this.container?.remove({ force: true, v: true }).catch(() => {});
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === RUNTIME_API.next) {
      this.ready();
      if (this.next && this.current) this.deliver(res);
      else this.poll = res;
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
        if (this.current?.id === id) this.current.settle({ kind: 'too-large' });
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) return;
      if (this.current?.id !== id) {
        res.writeHead(409).end();
        return;
      }
      res.writeHead(202).end();
      this.current.settle({ kind: ending, body: Buffer.concat(chunks).toString('utf8') });
    });
  }

  private deliver(res: http.ServerResponse): void {
    const next = this.next!;
    this.poll = undefined;
    res.writeHead(200, {
      'content-type': 'application/json',
      [RUNTIME_API.requestIdHeader]: next.id,
      [RUNTIME_API.wharfRequestIdHeader]: next.id,
      [RUNTIME_API.deadlineHeader]: String(next.deadline),
      [RUNTIME_API.invokeTypeHeader]: 'RequestResponse',
    });
    res.end(next.event);
  }
}

/**
 * Live instances per function version on this runner. An invocation takes an idle instance of
 * its version and settings (image, variables, limits: the instance key) or starts one; an
 * instance that crashed, timed out, overflowed or was cancelled is discarded, never reused.
 * Instances of the same function with another key (a new deployment, a rollback, a config
 * change) are retired when the function is next invoked here; idle ones stop after `idleMs`.
 */
export class WarmPool {
  private readonly instances = new Set<Instance>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly deps: WarmDeps) {
    this.sweeper = setInterval(() => this.stopIdle(), Math.min(deps.idleMs, 30_000));
    this.sweeper.unref();
  }

  /** Runs the invocation on a warm instance; undefined when every instance slot is busy (run it isolated instead). */
  async invoke(job: InvokeJob, limits: ContainerLimits, env: Record<string, string>, request: SandboxRequest, signal: AbortSignal | undefined, log: Logger): Promise<{ collected: Collected; durationMs: number } | undefined> {
    const key = createHash('sha256').update(JSON.stringify({ image: job.image, env, limits })).digest('hex');
    for (const other of this.instances) {
      if (other.dead && !other.busy) {
        await this.discard(other, 'exited while idle');
      } else if (other.functionId === job.functionId && other.key !== key) {
        other.retiring = true;
        if (!other.busy) await this.discard(other, 'retired: the function changed');
      }
    }
    let instance = [...this.instances].find((candidate) => candidate.key === key && !candidate.busy && !candidate.dead && !candidate.retiring);
    const started = Date.now();
    if (instance) {
      instance.busy = true;
    } else {
      if (this.instances.size >= this.deps.maxInstances && !(await this.evictIdle())) return undefined;
      instance = new Instance(this.deps, job.functionId, job.version, key);
      this.instances.add(instance);
      log.info({ instance: instance.name }, 'starting a warm instance');
      let failed: Ending | undefined;
      try {
        failed = await instance.start(job, limits, env);
      } catch (err) {
        await this.discard(instance, 'could not start');
        throw coerceError(err);
      }
      if (failed) {
        await this.discard(instance, 'exited before it was ready');
        return { collected: await this.collect(failed), durationMs: Date.now() - started };
      }
    }
    const ending = await instance.run(job.invocationId, request, limits.timeoutMs, signal);
    const durationMs = Date.now() - started;
    const collected = await this.collect(ending);
    if ((ending.kind === 'response' || ending.kind === 'error') && !instance.retiring && !instance.dead) {
      instance.busy = false;
      instance.lastUsed = Date.now();
    } else {
      await this.discard(instance, ending.kind);
    }
    return { collected, durationMs };
  }

  get size(): number {
    return this.instances.size;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.instances].map((instance) => this.discard(instance, 'runner stopping')));
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
      case 'too-large':
        return { logs: [], status: 'failed', error: { code: 'RESULT_TOO_LARGE', message: `the function's result is larger than ${caps.resultBytes} bytes` } };
      case 'error': {
        const posted = runtimeErrorSchema.safeParse(safeJson(ending.body));
        const type = posted.success ? posted.data.errorType ?? 'Error' : 'Error';
        const message = posted.success ? posted.data.errorMessage ?? '' : 'the runtime posted a malformed error';
        return { logs: [], status: 'failed', error: { code: 'FUNCTION_ERROR', message: `${type}: ${message}` } };
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

  private async evictIdle(): Promise<boolean> {
    const idle = [...this.instances].filter((instance) => !instance.busy).sort((a, b) => a.lastUsed - b.lastUsed)[0];
    if (!idle) return false;
    await this.discard(idle, 'evicted: the runner is at WHARF_WARM_MAX_INSTANCES');
    return true;
  }

  private async stopIdle(): Promise<void> {
    const cutoff = Date.now() - this.deps.idleMs;
    for (const instance of this.instances) {
      if (!instance.busy && instance.lastUsed < cutoff) await this.discard(instance, 'idle');
    }
  }

  private async discard(instance: Instance, reason: string): Promise<void> {
    if (!this.instances.delete(instance)) return;
    this.deps.logger.info({ instance: instance.name, functionId: instance.functionId, version: instance.version, reason }, 'warm instance stopped');
    await instance.destroy();
  }
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
