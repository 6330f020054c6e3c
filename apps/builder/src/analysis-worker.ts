/**
 * Runs in a child process of the builder: the analysis and the type-check can take seconds and
 * gigabytes on a large (or hostile) project. Here they neither block the builder's event loop
 * (its BullMQ lock renewals) nor outlive their time limit (the process is killed), and the memory
 * they took goes back to the system when the process is recycled.
 */
import { WharfError } from '@wharf/shared';
import { analyseSources, type FunctionClassInfo } from './analysis.js';
import { readProjectFiles, readSources } from './archive.js';
import { bundleFunction, type BundleDependencies } from './bundle.js';
import { typeCheck } from './typecheck.js';

/** The folder the archive was extracted to: the sources are read here, never in the builder's own process. */
export type AnalysisRequest =
  | { kind: 'analysis'; sourceDir: string }
  | { kind: 'typecheck'; sourceDir: string; nodeModules?: string }
  | { kind: 'bundle'; sourceDir: string; fn: FunctionClassInfo; dependencies?: BundleDependencies };

export type AnalysisReply = ({ ok: true; value: unknown } | { ok: false; code?: string; message: string; stack?: string }) & {
  /** The process's resident memory after the task: the pool recycles a process that grew too big. */
  rss: number;
  /** This process cannot take another task (its bundler died). */
  recycle?: boolean;
};

/** What a task threw, as the owner should read it: the sources' fault is a WharfError, never retried. */
function asWharfError(err: unknown, request: AnalysisRequest): WharfError | undefined {
  if (err instanceof WharfError) return err;
  if (err instanceof RangeError && /call stack/i.test(err.message)) {
    return new WharfError('SOURCE_TOO_COMPLEX', `the ${request.kind} step could not process the sources: they nest too deeply (${err.message})`);
  }
  return undefined;
}

async function perform(request: AnalysisRequest): Promise<unknown> {
  if (request.kind === 'bundle') return bundleFunction(request.sourceDir, request.fn, await readProjectFiles(request.sourceDir), request.dependencies);
  const files = await readSources(request.sourceDir);
  return request.kind === 'analysis' ? analyseSources(files) : typeCheck({ files, nodeModules: request.nodeModules });
}

if (!process.send) throw new Error('analysis-worker runs as a child process of the builder, with an IPC channel');
// The builder is gone (its channel closed): nothing will read the answer.
process.on('disconnect', () => process.exit(0));

process.on('message', async (request: AnalysisRequest) => {
  let reply: AnalysisReply;
  try {
    const value = await perform(request);
    reply = { ok: true, value: value ?? null, rss: process.memoryUsage.rss() };
  } catch (err) {
    // The stack is for the builder's own log; the message is what the build log shows.
    const rss = process.memoryUsage.rss();
    const known = asWharfError(err, request);
    reply = known ? { ok: false, code: known.code, message: known.message, rss } : { ok: false, message: (err as Error)?.message ?? String(err), stack: (err as Error)?.stack, rss };
    // After a stack overflow (esbuild's own process is gone for good once it died) this worker is done.
    if (known?.code === 'SOURCE_TOO_COMPLEX') reply.recycle = true;
  }
  process.send!(reply);
});
