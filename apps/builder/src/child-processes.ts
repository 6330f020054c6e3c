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
 * The builder's child processes (npm, the analysis processes). Each runs
 * - under a parent-death signal, so that it dies the moment the builder does, SIGKILL included
 *   (a killed builder's npm went on writing into the folder its successor was clearing);
 * - as the leader of a process group of its own, so that ending it ends what it started;
 * - recorded in a file, so that a successor under the same builder id ends any process of those
 *   groups still alive before it touches their folders.
 */
export class ChildProcesses {
  private readonly live = new Map<number, { child: ChildProcess; record: Recorded }>();

  private constructor(
    private readonly recordFile: string,
    private readonly logger: Logger,
  ) {}

  /** Ends what a predecessor recorded in `recordFile`, then records this process's children there. */
  static async open(recordFile: string, logger: Logger): Promise<ChildProcesses> {
    const ended = await endRecorded(recordFile);
    if (ended > 0) logger.info({ ended }, "ended child processes a predecessor left running");
    await fs.promises.mkdir(path.dirname(recordFile), { recursive: true });
    await fs.promises.writeFile(recordFile, '');
    return new ChildProcesses(recordFile, logger);
  }

  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', command, ...args]] : [command, [...args]];
    const child = spawn(file, argv, { ...options, detached: true });
    const pid = child.pid;
    if (pid === undefined) return child; // failed to start: 'error' follows, nothing to record
    const record = { pgid: pid, startTicks: startTicksOf(pid) ?? 0 };
    this.live.set(pid, { child, record });
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
      child.once('error', reject);
      child.once('close', (code, signal) => {
        options.signal?.removeEventListener('abort', onAbort);
        resolve({ code, signal, stdout: Buffer.concat(collected.stdout).toString('utf8'), stderr: Buffer.concat(collected.stderr).toString('utf8') });
      });
    });
  }

  /** Kills every child's group now (shutdown). */
  killAll(): void {
    for (const pid of this.live.keys()) killGroup(pid);
  }

  private save(): void {
    const lines = [...this.live.values()].map(({ record }) => `${record.pgid} ${record.startTicks}\n`).join('');
    try {
      fs.writeFileSync(this.recordFile, lines);
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
  const text = await fs.promises.readFile(recordFile, 'utf8').catch(() => '');
  const groups: Recorded[] = text
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ').map(Number))
    .filter(([pgid, ticks]) => Number.isInteger(pgid) && pgid > 1 && Number.isInteger(ticks))
    .map(([pgid, startTicks]) => ({ pgid, startTicks }));
  if (groups.length === 0) return 0;
  let ended = 0;
  for (let round = 0; round < 50; round++) {
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
 * Live processes in one of the groups, started no earlier than its leader was: a group id is a
 * pid, and a pid reused since by an unrelated process must not be killed.
 */
function processesIn(groups: Recorded[]): number[] {
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  // A recorded group id may since have become this very process's pid, or its group's.
  const own = readStat(process.pid)?.pgid;
  const found: number[] = [];
  for (const name of pids) {
    if (Number(name) === process.pid) continue;
    const stat = readStat(Number(name));
    if (!stat || stat.state === 'Z' || stat.pgid === own) continue;
    if (groups.some((group) => group.pgid === stat.pgid && stat.startTicks >= group.startTicks)) found.push(Number(name));
  }
  return found;
}

function startTicksOf(pid: number): number | undefined {
  return readStat(pid)?.startTicks;
}

function readStat(pid: number): { state: string; pgid: number; startTicks: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], pgid: Number(fields[2]), startTicks: Number(fields[19]) };
  } catch {
    return undefined;
  }
}
