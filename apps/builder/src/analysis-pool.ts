import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { WharfError, isErrorCode } from '@wharf/shared';
import type { FunctionClassInfo } from './analysis.js';
import type { AnalysisReply, AnalysisRequest } from './analysis-worker.js';

/** The worker's module next to this one, with this one's extension (.ts under tsx, .js when compiled). */
const WORKER_URL = new URL(`./analysis-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url);

function startWorker(): Worker {
  if (WORKER_URL.pathname.endsWith('.js')) return new Worker(WORKER_URL);
  // A worker thread does not inherit the tsx loader of the process: register it before loading the worker's TypeScript.
  const bootstrap = `(async () => {
    const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))});
    register();
    await import(${JSON.stringify(WORKER_URL.href)});
  })();`;
  return new Worker(bootstrap, { eval: true });
}

interface Task {
  request: AnalysisRequest;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * A few worker threads for analysis and type-checking, one task each at a time. A thread keeps
 * TypeScript's parsed libraries between tasks, so only the first check pays for them. A task past
 * its time limit gets ANALYSIS_TIMEOUT and its thread is terminated (a new one starts on demand).
 */
export class AnalysisPool {
  private readonly idle: Worker[] = [];
  private readonly queue: Task[] = [];
  private running = 0;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly timeoutMs: number,
  ) {}

  analyse(files: ReadonlyMap<string, string>): Promise<FunctionClassInfo> {
    return this.submit({ kind: 'analyse', files: [...files] }) as Promise<FunctionClassInfo>;
  }

  typeCheck(files: ReadonlyMap<string, string>, nodeModules?: string): Promise<void> {
    return this.submit({ kind: 'typecheck', files: [...files], nodeModules }) as Promise<void>;
  }

  /**
   * Starts every thread and has it type-check a small function, so that TypeScript's libraries
   * and Node's types are parsed before the first real build rather than during it.
   */
  async warmUp(): Promise<void> {
    const sample = new Map([
      ['index.ts', `import fs from 'node:fs';\nimport { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\n@cloudFunction\nexport class Warm extends CloudFunction {\n  handle() { return CloudResponse.json(fs.existsSync('/')); }\n}\n`],
    ]);
    await Promise.all(Array.from({ length: this.size }, () => this.typeCheck(sample)));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.idle.splice(0).map((worker) => worker.terminate()));
  }

  private submit(request: AnalysisRequest): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.closed || this.running >= this.size) return;
    const task = this.queue.shift();
    if (!task) return;
    this.running++;
    const worker = this.idle.pop() ?? startWorker();
    let settled = false;
    const finish = (keep: boolean, outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
      if (keep && !this.closed) this.idle.push(worker);
      else void worker.terminate();
      this.running--;
      outcome();
      this.next();
    };
    const onMessage = (reply: AnalysisReply) =>
      finish(true, () => {
        if (reply.ok) task.resolve(reply.value ?? undefined);
        else task.reject(reply.code && isErrorCode(reply.code) ? new WharfError(reply.code, reply.message) : new Error(reply.message));
      });
    const onError = (err: Error) => finish(false, () => task.reject(err));
    const onExit = (code: number) => finish(false, () => task.reject(new Error(`the analysis thread exited with code ${code}`)));
    const timer = setTimeout(
      () => finish(false, () => task.reject(new WharfError('ANALYSIS_TIMEOUT', `the analysis did not finish within ${this.timeoutMs} ms`))),
      this.timeoutMs,
    );
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    worker.postMessage(task.request);
  }
}
