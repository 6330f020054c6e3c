import { once } from 'node:events';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import type Docker from 'dockerode';
import { LABELS, SANDBOX_FILES, SANDBOX_MOUNT, SANDBOX_USER, type FunctionLimits, type InvokeJob, type RunnerEnv } from '@wharf/shared';
import type { EngineSignals } from './engine-watch.js';
import { createContainer } from './images.js';

/** What every container on a host gets alike, whatever the function asked for. */
export interface HostLimits {
  pids: number;
  /** Open files per process. */
  nofile: number;
  /** Largest file a function may write (RLIMIT_FSIZE): bounds the outputs and /tmp per file. */
  fileBytes: number;
  /** Size of the container's writable /tmp (a tmpfs, so it costs memory, not disk). */
  tmpMb: number;
  /** What the engine keeps of the container's stdout and stderr. */
  consoleBytes: number;
}

export function hostLimitsFrom(env: RunnerEnv): HostLimits {
  return {
    pids: env.WHARF_FUNCTION_PIDS,
    nofile: env.WHARF_FUNCTION_NOFILE,
    // One byte over the bigger output cap: an output past its cap is still seen as too large, and nothing much bigger can be written.
    fileBytes: Math.max(env.WHARF_MAX_RESULT_BYTES, env.WHARF_MAX_LOG_BYTES) + 1,
    tmpMb: env.WHARF_FUNCTION_TMP_MB,
    consoleBytes: env.WHARF_MAX_CONSOLE_BYTES,
  };
}

/** A function's limits plus the host's. */
export type ContainerLimits = FunctionLimits & HostLimits;

/** What every function container is told about itself (the runtime API's environment, less the API's address). */
export function runtimeEnv(job: InvokeJob, limits: ContainerLimits, logBytes: number): Record<string, string> {
  return {
    RUNTIME_FUNC_NAME: job.functionName,
    RUNTIME_FUNC_VERSION: String(job.version),
    RUNTIME_HANDLER: job.handler ?? '',
    RUNTIME_TIMEOUT: String(limits.timeoutMs),
    RUNTIME_MEMORY: String(limits.memoryMb),
    RUNTIME_CPU: String(limits.cpus),
    RUNTIME_CODE_ROOT: '/app',
    RUNTIME_LOG_LIMIT: String(logBytes),
  };
}

export interface ContainerRunSpec {
  name: string;
  image: string;
  hostDir: string;
  labels: Record<string, string>;
  limits: ContainerLimits;
  /** Bind result.json and the logs writable (a one-shot container); a warm instance answers over its socket instead. */
  outputs?: boolean;
  env?: Record<string, string>;
}

export interface ContainerOutcome {
  exitCode: number | null;
  timedOut: boolean;
  oomKilled: boolean;
  /** Killed because the invocation was cancelled. */
  cancelled: boolean;
  durationMs: number;
  /** The tail of what the process wrote to stderr, for diagnosing crashes. */
  stderrTail: string;
}

/** Everything that keeps untrusted code in its box. */
export function containerOptions(spec: ContainerRunSpec): Docker.ContainerCreateOptions {
  const memoryBytes = spec.limits.memoryMb * 1024 * 1024;
  // The folder is read-only to the function except its two outputs: it cannot fill the host's
  // disk with files of its own, and cannot swap an output for a symlink (a mount point cannot be replaced).
  const output = (name: string) => `${path.join(spec.hostDir, name)}:${SANDBOX_MOUNT}/${name}:rw`;
  return {
    name: spec.name,
    Image: spec.image,
    Labels: { [LABELS.managed]: 'true', ...spec.labels },
    ...(spec.env ? { Env: Object.entries(spec.env).map(([name, value]) => `${name}=${value}`) } : {}),
    User: `${SANDBOX_USER.uid}:${SANDBOX_USER.gid}`,
    WorkingDir: SANDBOX_MOUNT,
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      // A real init as PID 1 reaps the zombies a function's children leave, and forwards signals.
      Init: true,
      Memory: memoryBytes,
      MemorySwap: memoryBytes,
      NanoCpus: Math.round(spec.limits.cpus * 1e9),
      PidsLimit: spec.limits.pids,
      Ulimits: [
        { Name: 'nofile', Soft: spec.limits.nofile, Hard: spec.limits.nofile },
        { Name: 'fsize', Soft: spec.limits.fileBytes, Hard: spec.limits.fileBytes },
      ],
      LogConfig: { Type: 'json-file', Config: { 'max-size': String(spec.limits.consoleBytes), 'max-file': '1' } },
      Binds: [`${spec.hostDir}:${SANDBOX_MOUNT}:ro`, ...(spec.outputs === false ? [] : [output(SANDBOX_FILES.result), output(SANDBOX_FILES.logs)])],
      Tmpfs: { '/tmp': `rw,noexec,nosuid,nodev,size=${spec.limits.tmpMb}m` },
      AutoRemove: false,
    },
  };
}

/**
 * Runs one container to completion, to its time limit or until `signal` aborts (a cancellation),
 * then removes it whatever happened. Throws only when the engine itself fails or stops the
 * container (retryable); a function's own failure is an outcome.
 */
export async function runContainer(docker: Docker, spec: ContainerRunSpec, signal?: AbortSignal, engine?: EngineSignals): Promise<ContainerOutcome> {
  const container = await createContainer(docker, containerOptions(spec));
  try {
    const started = Date.now();
    await container.start();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<'timeout' | 'cancelled'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), spec.limits.timeoutMs);
      onAbort = () => resolve('cancelled');
      if (signal?.aborted) onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    const exited = container.wait() as Promise<{ StatusCode: number }>;
    // A `wait` outlives a dead engine without ever ending: the engine watch says when it is gone.
    const lost = (engine?.lost ?? new Promise<never>(() => {})).then((reason) => ({ lost: reason }));
    const first = await Promise.race([exited, stopped, lost]);
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    if (typeof first === 'object' && 'lost' in first) {
      exited.catch(() => {});
      throw new Error(`the Docker engine went away while the function ran: ${first.lost}`);
    }
    const durationMs = Date.now() - started;
    if (first === 'timeout' || first === 'cancelled') {
      await container.kill({ signal: 'SIGKILL' }).catch(() => {});
      exited.catch(() => {});
      return { exitCode: null, timedOut: first === 'timeout', cancelled: first === 'cancelled', oomKilled: false, durationMs, stderrTail: '' };
    }
    if (await engine?.stoppedByEngine(container.id, first.StatusCode)) {
      throw new Error('the Docker engine stopped the container while the function ran (it is stopping or restarting)');
    }
    const state = (await container.inspect()).State;
    const stderrTail = first.StatusCode === 0 ? '' : await readStderrTail(docker, container);
    return { exitCode: first.StatusCode, timedOut: false, cancelled: false, oomKilled: state.OOMKilled, durationMs, stderrTail };
  } finally {
    await removeContainer(docker, container);
  }
}

export async function readStderrTail(docker: Docker, container: Docker.Container): Promise<string> {
  const raw = (await container.logs({ stdout: false, stderr: true, follow: false, tail: 20 })) as unknown as Buffer;
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  const source = Readable.from([raw]);
  const ended = once(source, 'end');
  docker.modem.demuxStream(source, sink, sink);
  await ended;
  return Buffer.concat(chunks).toString('utf8').slice(-2000);
}

/** Containers the engine could not remove when asked (it was down or restarting), by id. */
const unremoved = new Map<string, Docker>();
let retrying: NodeJS.Timeout | undefined;
const RETRY_MS = 2000;

/**
 * Removes a container the runner is done with. If the engine cannot be reached (restarting under
 * the runner), the removal is tried again every couple of seconds until the engine takes it, so
 * that an engine restart leaves no container behind.
 */
export async function removeContainer(docker: Docker, container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return;
    unremoved.set(container.id, docker);
    retrying ??= setInterval(() => void retryRemovals(), RETRY_MS).unref();
  }
}

async function retryRemovals(): Promise<void> {
  for (const [id, docker] of unremoved) {
    try {
      await docker.getContainer(id).remove({ force: true, v: true });
      unremoved.delete(id);
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) unremoved.delete(id);
    }
  }
  if (unremoved.size === 0) {
    clearInterval(retrying);
    retrying = undefined;
  }
}
