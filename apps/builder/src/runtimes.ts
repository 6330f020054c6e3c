import fs from 'node:fs/promises';
import path from 'node:path';
import { WharfError, type FunctionRuntime } from '@wharf/shared';
import type { FunctionClassInfo } from './analysis.js';

/** The executable each program runtime starts, at the archive's root. */
export const RUNTIME_ENTRIES = { custom: 'bootstrap', 'isolated-files': 'run' } as const;

export type ProgramRuntime = keyof typeof RUNTIME_ENTRIES;

export type RuntimeChoice =
  | { runtime: 'node'; fn: FunctionClassInfo; handler: string }
  | { runtime: ProgramRuntime; handler: (typeof RUNTIME_ENTRIES)[ProgramRuntime] };

/** Analysis failures that only say "this is not a Node function", after which an entry executable may decide. */
const NOT_A_NODE_FUNCTION = new Set(['NO_SOURCE_FILES', 'NO_FUNCTION_CLASS']);

/**
 * Which runtime an archive gets: the one asked for at deploy, or from the archive: a
 * `@cloudFunction` class → node; else a root `bootstrap` → custom; else a root `run` →
 * isolated-files. A class wins over an entry file (a `run` helper script beside the class is not an entry).
 */
export async function chooseRuntime(
  sourceDir: string,
  requested: FunctionRuntime | null,
  analyse: () => Promise<FunctionClassInfo>,
): Promise<RuntimeChoice> {
  const hasEntry = async (runtime: ProgramRuntime) => (await fs.stat(path.join(sourceDir, RUNTIME_ENTRIES[runtime])).catch(() => undefined))?.isFile() === true;
  const program = (runtime: ProgramRuntime): RuntimeChoice => ({ runtime, handler: RUNTIME_ENTRIES[runtime] });

  if (requested && requested !== 'node') {
    if (!(await hasEntry(requested))) {
      throw new WharfError('RUNTIME_ENTRY_MISSING', `the ${requested} runtime runs an executable "${RUNTIME_ENTRIES[requested]}" at the archive's root; the archive has none`);
    }
    return program(requested);
  }
  try {
    const fn = await analyse();
    return { runtime: 'node', fn, handler: `${fn.file}#${fn.className}` };
  } catch (err) {
    if (requested === 'node' || !(err instanceof WharfError) || !NOT_A_NODE_FUNCTION.has(err.code)) throw err;
    for (const runtime of ['custom', 'isolated-files'] as const) {
      if (await hasEntry(runtime)) return program(runtime);
    }
    throw new WharfError(err.code, `${err.message}; or, for another language, an executable "bootstrap" (custom runtime) or "run" (isolated-files) at the archive's root`);
  }
}
