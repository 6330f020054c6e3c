/** Where a process's CPU time went, from the .cpuprofile files `node --cpu-prof` wrote. */
import fs from 'node:fs/promises';
import path from 'node:path';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

/** A package name for code in node_modules, `node` for Node's own, else the file under the repository. */
function owner(url: string): string {
  if (!url) return '(native)';
  if (url.startsWith('node:')) return 'node';
  const inModules = url.split('/node_modules/').at(-1)!;
  if (inModules !== url) return inModules.startsWith('@') ? inModules.split('/').slice(0, 2).join('/') : inModules.split('/')[0];
  return url.replace(/^file:\/\/.*?\/(apps|packages)\//, '$1/');
}

/** Milliseconds of self time per owner (idle included as "(idle)"). */
function selfTimes(profile: CpuProfile): Map<string, number> {
  const byNode = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMs = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = byNode.get(id)!.callFrame;
    const key = frame.functionName.startsWith('(') ? frame.functionName : owner(frame.url);
    selfMs.set(key, (selfMs.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return selfMs;
}

/**
 * One table per process folder under `dir` (`--cpu-prof-dir=<dir>/<app>`), of its busiest thread:
 * the main one (tsx's loader thread writes a profile of its own).
 */
export async function summarizeProfiles(dir: string, top = 12): Promise<void> {
  for (const app of await fs.readdir(dir).catch(() => [])) {
    const files = (await fs.readdir(path.join(dir, app))).filter((f) => f.endsWith('.cpuprofile'));
    const threads = await Promise.all(
      files.map(async (f) => {
        const selfMs = selfTimes(JSON.parse(await fs.readFile(path.join(dir, app, f), 'utf8')) as CpuProfile);
        const total = [...selfMs.values()].reduce((a, b) => a + b, 0);
        return { selfMs, total, busy: total - (selfMs.get('(idle)') ?? 0) };
      }),
    );
    const main = threads.sort((a, b) => b.busy - a.busy)[0];
    if (!main) continue;
    console.log(`\n${app}: ${(main.total / 1000).toFixed(1)} s profiled, ${(main.busy / 1000).toFixed(1)} s busy; self time by owner:`);
    const rows = [...main.selfMs].filter(([key]) => key !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top);
    console.table(Object.fromEntries(rows.map(([key, ms]) => [key, { ms: Math.round(ms), shareOfBusy: `${((ms / main.busy) * 100).toFixed(1)}%` }])));
  }
}
