import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '@wharf/shared';

/** `setpriv` (util-linux) sets the parent-death signal before it execs the command. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((candidate) => fs.existsSync(candidate));

export interface RunOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  maxBytes: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Recorded {
  pgid: number;
  /** The leader's start time in clock ticks since boot (/proc/<pid>/stat field 22): a reused pid is not ours. */
  startTicks: number;
}

/**
 * Where recorded pids mean anything: this boot, this pid namespace. A record from another boot
 * (the pids wrapped around since) or another namespace (a build folder shared across hosts) is
 * ignored, never acted on.
 */
function pidScope(): string | undefined {
  try {
    const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const namespace = fs.readlinkSync('/proc/self/ns/pid');
    return `${boot} ${namespace}`;
  } catch {
    return undefined;
  }
}

/**
 * The builder's child processes (npm, the analysis processes). Each runs
 * - under a parent-death signal, so that it dies the moment the builder does, SIGKILL included
 *   (a killed builder's npm went on writing into the folder its successor was clearing);
 * - as the leader of a process group of its own, so that ending it ends what it started;
 * - recorded in a file, so that a successor under the same builder id ends any process of those
 *   groups still alive before it touches their folders.
 */
export class ChildProcesses {
  private readonly live = new Map<number, { child: ChildProcess; record?: Recorded }>();
  private readonly scope = pidScope();

  private constructor(
    private readonly recordFile: string,
    private readonly logger: Logger,
  ) {}

  /** Ends what a predecessor recorded in `recordFile`, then records this process's children there. */
  static async open(recordFile: string, logger: Logger): Promise<ChildProcesses> {
    if (!SETPRIV) logger.warn('setpriv (util-linux) is not installed: child processes will outlive a builder killed with SIGKILL until its successor starts');
    const ended = await endRecorded(recordFile);
    if (ended > 0) logger.info({ ended }, 'ended child processes a predecessor left running');
    await fs.promises.mkdir(path.dirname(recordFile), { recursive: true });
    const children = new ChildProcesses(recordFile, logger);
    children.save();
    return children;
  }

  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', command, ...args]] : [command, [...args]];
    const child = spawn(file, argv, { ...options, detached: true });
    const pid = child.pid;
    if (pid === undefined) return child; // failed to start: 'error' follows, nothing to record
    const startTicks = readStat(pid)?.startTicks;
    // A leader whose start time is unknown could not be told from a stranger later: not recorded.
    this.live.set(pid, { child, record: startTicks ? { pgid: pid, startTicks } : undefined });
    this.save();
    child.once('exit', () => {
      // Whatever the leader started dies with it.
      killGroup(pid);
      this.live.delete(pid);
      this.save();
    });
    return child;
  }

  /**
   * Runs a command to its end and collects its output (at most `maxBytes` of each stream, the
   * rest dropped). When `signal` aborts, the command's group is killed.
   */
  run(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
      const collected = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      for (const name of ['stdout', 'stderr'] as const) {
        let kept = 0;
        child[name]!.on('data', (chunk: Buffer) => {
          if (kept >= options.maxBytes) return;
          collected[name].push(chunk.subarray(0, options.maxBytes - kept));
          kept += chunk.length;
        });
      }
      const onAbort = () => child.pid !== undefined && killGroup(child.pid);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      // A process that left the group (setsid) may hold the pipes open: once the command has
      // exited, its output gets a second to arrive, then the pipes are closed.
      child.once('exit', () =>
        setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
        }, 1000).unref(),
      );
      child.once('error', reject);
      child.once('close', (code, signal) => {
        options.signal?.removeEventListener('abort', onAbort);
        resolve({ code, signal, stdout: Buffer.concat(collected.stdout).toString('utf8'), stderr: Buffer.concat(collected.stderr).toString('utf8') });
      });
    });
  }

  /** Kills every child's group, waits (briefly) for the children to exit, and leaves an empty record. */
  async killAll(): Promise<void> {
    const exits = [...this.live.values()].map(
      ({ child }) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()))),
    );
    for (const pid of this.live.keys()) killGroup(pid);
    await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    this.live.clear();
    this.save();
  }

  private save(): void {
    const records = [...this.live.values()].flatMap(({ record }) => (record ? [`${record.pgid} ${record.startTicks}\n`] : []));
    try {
      fs.writeFileSync(this.recordFile, this.scope ? `${this.scope}\n${records.join('')}` : '');
    } catch (err) {
      this.logger.warn({ err }, 'could not record the child processes');
    }
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}

/** Kills every process still in a recorded group and waits (briefly) until they are gone. */
async function endRecorded(recordFile: string): Promise<number> {
  const [scope, ...lines] = (await fs.promises.readFile(recordFile, 'utf8').catch(() => '')).split('\n');
  if (!scope || scope !== pidScope()) return 0;
  const groups: Recorded[] = lines
    .filter(Boolean)
    .map((line) => line.split(' ').map(Number))
    .filter(([pgid, ticks]) => Number.isInteger(pgid) && pgid > 1 && Number.isInteger(ticks) && ticks > 0)
    .map(([pgid, startTicks]) => ({ pgid, startTicks }));
  let ended = 0;
  for (let round = 0; round < 50 && groups.length > 0; round++) {
    const members = processesIn(groups);
    if (members.length === 0) break;
    for (const pid of members) {
      try {
        process.kill(pid, 'SIGKILL');
        if (round === 0) ended++;
      } catch {
        // gone meanwhile
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return ended;
}

/**
 * Live processes of the recorded groups. A group id is its leader's pid, and the kernel does not
 * hand out a pid still in use as a group id: while members of the group live, its id is ours.
 * When a process with that pid lives, it must be the leader recorded (same start time); else the
 * group died out and the pid went to a stranger, whose group is left alone.
 */
function processesIn(groups: Recorded[]): number[] {
  let pids: number[];
  try {
    pids = fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
  } catch {
    return [];
  }
  // Zombies count as leaders (their pid is still taken), not as processes to kill.
  const stats = new Map(pids.flatMap((pid) => (pid === process.pid ? [] : [[pid, readStat(pid)] as const])).filter(([, stat]) => stat) as Array<[number, ProcStat]>);
  // Never this process's own group, whatever a record says.
  const own = readStat(process.pid)?.pgid;
  const ours = groups.filter((group) => group.pgid !== own && (!stats.has(group.pgid) || stats.get(group.pgid)!.startTicks === group.startTicks));
  return [...stats].filter(([, stat]) => stat.state !== 'Z' && ours.some((group) => group.pgid === stat.pgid && stat.startTicks >= group.startTicks)).map(([pid]) => pid);
}

interface ProcStat {
  state: string;
  pgid: number;
  startTicks: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], pgid: Number(fields[2]), startTicks: Number(fields[19]) };
  } catch {
    return undefined;
  }
}
