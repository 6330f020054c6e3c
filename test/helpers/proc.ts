/** Reading processes from /proc, for tests about what a process leaves running and the memory it holds. */
import fs from 'node:fs';

interface ProcStat {
  pid: number;
  ppid: number;
  rssBytes: number;
}

function allProcesses(): ProcStat[] {
  const page = 4096;
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => {
      try {
        const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        // Fields after the command name: state (3), ppid (4) … rss in pages (24).
        return [{ pid: Number(name), ppid: Number(fields[1]), rssBytes: Number(fields[21]) * page }];
      } catch {
        return [];
      }
    });
}

/** A process and all its descendants. */
function tree(root: number, all = allProcesses()): ProcStat[] {
  const inTree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const proc of all) {
      if (!inTree.has(proc.pid) && inTree.has(proc.ppid)) {
        inTree.add(proc.pid);
        grew = true;
      }
    }
  }
  return all.filter((proc) => inTree.has(proc.pid));
}

/** Resident bytes of a process and all its descendants. */
export function treeRss(root: number): number {
  return tree(root).reduce((sum, proc) => sum + proc.rssBytes, 0);
}

/** The ids of a process's descendants. */
export function descendants(root: number): number[] {
  return tree(root)
    .map((proc) => proc.pid)
    .filter((pid) => pid !== root);
}

/** Whether the process exists and has not exited (a zombie waiting to be reaped has). */
export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Processes whose command line contains `text`. */
export function processesMentioning(text: string): Array<{ pid: number; cmdline: string }> {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
    .flatMap((name) => {
      try {
        const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
        return cmdline.includes(text) ? [{ pid: Number(name), cmdline }] : [];
      } catch {
        return [];
      }
    });
}
