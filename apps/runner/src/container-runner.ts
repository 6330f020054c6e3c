import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import type Docker from 'dockerode';
import { LABELS, SANDBOX_MOUNT, SANDBOX_USER, type FunctionLimits } from '@wharf/shared';

/** A function's limits plus the ones each host sets for every container alike. */
export interface ContainerLimits extends FunctionLimits {
  pids: number;
}

export interface ContainerRunSpec {
  name: string;
  image: string;
  hostDir: string;
  labels: Record<string, string>;
  limits: ContainerLimits;
}

export interface ContainerOutcome {
  exitCode: number | null;
  timedOut: boolean;
  oomKilled: boolean;
  durationMs: number;
  /** The tail of what the process wrote to stderr, for diagnosing crashes. */
  stderrTail: string;
}

/** Everything that keeps untrusted code in its box. */
export function containerOptions(spec: ContainerRunSpec): Docker.ContainerCreateOptions {
  const memoryBytes = spec.limits.memoryMb * 1024 * 1024;
  return {
    name: spec.name,
    Image: spec.image,
    Labels: { [LABELS.managed]: 'true', ...spec.labels },
    User: `${SANDBOX_USER.uid}:${SANDBOX_USER.gid}`,
    WorkingDir: SANDBOX_MOUNT,
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Memory: memoryBytes,
      MemorySwap: memoryBytes,
      NanoCpus: Math.round(spec.limits.cpus * 1e9),
      PidsLimit: spec.limits.pids,
      Binds: [`${spec.hostDir}:${SANDBOX_MOUNT}:rw`],
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
      AutoRemove: false,
    },
  };
}

/**
 * Runs one container to completion or to its time limit, then removes it whatever happened.
 * Throws only when the engine itself fails (retryable); a function's own failure is an outcome.
 */
export async function runContainer(docker: Docker, spec: ContainerRunSpec): Promise<ContainerOutcome> {
  const container = await docker.createContainer(containerOptions(spec));
  try {
    const started = Date.now();
    await container.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), spec.limits.timeoutMs);
    });
    const exited = container.wait() as Promise<{ StatusCode: number }>;
    const first = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    const durationMs = Date.now() - started;
    if (first === 'timeout') {
      await container.kill({ signal: 'SIGKILL' }).catch(() => {});
      exited.catch(() => {});
      return { exitCode: null, timedOut: true, oomKilled: false, durationMs, stderrTail: '' };
    }
    const state = (await container.inspect()).State;
    const stderrTail = first.StatusCode === 0 ? '' : await readStderrTail(docker, container);
    return { exitCode: first.StatusCode, timedOut: false, oomKilled: state.OOMKilled, durationMs, stderrTail };
  } finally {
    await container.remove({ force: true, v: true }).catch(() => {});
  }
}

async function readStderrTail(docker: Docker, container: Docker.Container): Promise<string> {
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
