import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WharfError, isErrorCode } from '@wharf/shared';
import type { FunctionClassInfo } from './analysis.js';
import type { AnalysisReply, AnalysisRequest } from './analysis-worker.js';
import type { BundleDependencies } from './bundle.js';
import type { ChildProcesses } from './child-processes.js';
import { buildTimeout, type BuildStep } from './time-limits.js';

/** The worker's module next to this one, with this one's extension (.ts under tsx, .js when compiled). */
const WORKER_PATH = fileURLToPath(new URL(`./analysis-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));
/** A worker's V8 heap: a project that needs more fails its build (BUILD_OUT_OF_MEMORY) instead of the host. */
export const WORKER_HEAP_MB = 2048;
/** A TypeScript worker needs the tsx loader the builder itself runs under. */
const WORKER_ARGS = WORKER_PATH.endsWith('.ts') ? ['--import', import.meta.resolve('tsx'), WORKER_PATH] : [WORKER_PATH];

/**
 * Past this resident size after a task, a worker is replaced: a huge project's syntax trees and
 * caches would otherwise stay in memory for good. (A warm worker holds TypeScript's libraries and
 * Node's types, about 150–250 MB.)
 */
export const RECYCLE_RSS_BYTES = 512 * 1024 * 1024;

/** A small function type-checked at warm-up, so that a worker has parsed TypeScript's libraries and Node's types before its first build. */
const WARM_UP_DIR = fileURLToPath(new URL('../warm-up', import.meta.url));

interface Task {
  request: AnalysisRequest;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  /** Run on a new worker (a replacement being warmed up), not an idle one. */
  fresh?: boolean;
}

export interface AnalysisPoolOptions {
  /** Workers, and so tasks at once. */
  size: number;
  /** Time limits: the analysis and the type-check (each), and the bundle. */
  analysisTimeoutMs: number;
  bundleTimeoutMs: number;
  /** npm's and the workers' keeper in the builder (a plain spawn in tests). */
  children?: Pick<ChildProcesses, 'spawn'>;
  recycleRssBytes?: number;
  heapMb?: number;
}

/**
 * A few child processes that handle what the archive's sources feed — the analysis, the
 * type-check and the bundle — one task each at a time, so that nothing a hostile project does to
 * TypeScript or esbuild (a stack overflow, a crash, gigabytes of syntax trees) happens in the
 * builder's own process. A worker keeps TypeScript's parsed libraries between tasks, so only the
 * first check pays for them. A task past its time limit gets BUILD_TIMEOUT and its worker is
 * killed; a worker that grew past RECYCLE_RSS_BYTES, or whose bundler died, is replaced. A
 * replacement is started and warmed up at once.
 */
export class AnalysisPool {
  private readonly idle: ChildProcess[] = [];
  private readonly queue: Task[] = [];
  private readonly busy = new Set<ChildProcess>();
  private closed = false;
  private readonly options: Required<AnalysisPoolOptions>;

  constructor(options: AnalysisPoolOptions) {
    this.options = { children: { spawn }, recycleRssBytes: RECYCLE_RSS_BYTES, heapMb: WORKER_HEAP_MB, ...options };
  }

  /** Analyses the sources extracted to `sourceDir`. */
  analyse(sourceDir: string): Promise<FunctionClassInfo> {
    return this.submit({ request: { kind: 'analysis', sourceDir } }) as Promise<FunctionClassInfo>;
  }

  /** Type-checks the sources extracted to `sourceDir` against `nodeModules`, the installed dependencies. */
  typeCheck(sourceDir: string, nodeModules?: string): Promise<void> {
    return this.submit({ request: { kind: 'typecheck', sourceDir, nodeModules } }) as Promise<void>;
  }

  /** Bundles the function extracted to `sourceDir` (see bundle.ts); resolves with the bundle's text. */
  bundle(sourceDir: string, fn: FunctionClassInfo, dependencies?: BundleDependencies): Promise<string> {
    return this.submit({ request: { kind: 'bundle', sourceDir, fn, dependencies } }) as Promise<string>;
  }

  /**
   * Starts every worker and has it type-check a small function, so that TypeScript's libraries
   * and Node's types are parsed before the first real build rather than during it.
   */
  async warmUp(): Promise<void> {
    await Promise.all(Array.from({ length: this.options.size }, () => this.submit({ request: { kind: 'typecheck', sourceDir: WARM_UP_DIR }, fresh: true })));
  }

  /** Process ids of the workers, for whoever measures their memory. */
  pids(): number[] {
    return [...this.idle, ...this.busy].flatMap((worker) => worker.pid ?? []);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const task of this.queue.splice(0)) task.reject(new Error('the analysis pool is closing'));
    await Promise.all([...this.idle.splice(0), ...this.busy].map(stop));
  }

  private submit(task: Omit<Task, 'resolve' | 'reject'>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...task, resolve, reject });
      this.next();
    });
  }

  private start(): ChildProcess {
    const worker = this.options.children.spawn(process.execPath, [`--max-old-space-size=${this.options.heapMb}`, ...WORKER_ARGS], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    // An IPC write to a worker that just died fails with EPIPE on the worker's 'error': the task's own handlers report it.
    worker.on('error', () => {});
    // One that dies while idle (the kernel's OOM killer, say) is not handed the next task.
    worker.once('exit', () => {
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
    });
    return worker;
  }

  private next(): void {
    if (this.closed || this.busy.size >= this.options.size) return;
    const task = this.queue.shift();
    if (!task) return;
    const worker = task.fresh && this.idle.length + this.busy.size < this.options.size ? this.start() : (this.idle.pop() ?? this.start());
    this.busy.add(worker);
    const step: BuildStep = task.request.kind;
    const timeoutMs = step === 'bundle' ? this.options.bundleTimeoutMs : this.options.analysisTimeoutMs;
    let settled = false;
    const finish = (keep: boolean, outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
      this.busy.delete(worker);
      if (keep && !this.closed) this.idle.push(worker);
      else {
        void stop(worker);
        // A replacement, warmed up now rather than during the next build (unless warming up is what failed).
        if (!this.closed && !task.fresh) this.submit({ request: { kind: 'typecheck', sourceDir: WARM_UP_DIR }, fresh: true }).catch(() => {});
      }
      outcome();
      this.next();
    };
    // A worker just warmed up is at its idle size, whatever the bound says.
    const onMessage = (reply: AnalysisReply) =>
      finish(task.fresh || (!reply.recycle && reply.rss < this.options.recycleRssBytes), () => {
        if (reply.ok) task.resolve(reply.value ?? undefined);
        else task.reject(reply.code && isErrorCode(reply.code) ? new WharfError(reply.code, reply.message) : Object.assign(new Error(reply.message), { stack: reply.stack }));
      });
    const onError = (err: Error) => finish(false, () => task.reject(err));
    // V8 aborts a process whose heap is full: the project is too big to check, and retrying cannot help.
    const onExit = (code: number | null, signal: string | null) =>
      finish(false, () =>
        task.reject(
          signal === 'SIGABRT' || code === 134
            ? new WharfError('BUILD_OUT_OF_MEMORY', `the ${step} step ran out of memory (${this.options.heapMb} MB)`)
            : new Error(`the ${step} process exited (${signal ?? `code ${code}`})`),
        ),
      );
    const timer = setTimeout(() => finish(false, () => task.reject(buildTimeout(step, timeoutMs))), timeoutMs);
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    worker.send(task.request);
  }
}

/** Kills a worker and waits for it to be gone. */
function stop(worker: ChildProcess): Promise<void> {
  if (worker.exitCode !== null || worker.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    worker.once('exit', () => resolve());
    worker.kill('SIGKILL');
  });
}
