import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export type Stats = ReturnType<typeof stats>;

export function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return { runs: sorted.length, median, p90: at(0.9), p99: at(0.99), min: sorted[0], max: sorted.at(-1)! };
}

export async function time(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

/** Prints the table and writes bench/results/<name>.json with the machine and date. */
export async function report(name: string, rows: Record<string, Stats>, extra: Record<string, unknown> = {}): Promise<void> {
  console.log(`\n${os.cpus().length} cores, ${new Date().toISOString()}\n`);
  console.table(Object.fromEntries(Object.entries(rows).map(([k, s]) => [k, Object.fromEntries(Object.entries(s).map(([m, v]) => [m, Math.round(v * 10) / 10]))])));
  const out = path.join(import.meta.dirname, 'results', `${name}.json`);
  await fs.mkdir(path.dirname(out), { recursive: true });
  await fs.writeFile(out, JSON.stringify({ date: new Date().toISOString(), cores: os.cpus().length, unit: 'ms', rows, ...extra }, null, 2));
  console.log(`written ${path.relative(process.cwd(), out)}`);
}
