/**
 * Runs in a child process of the builder: the analysis and the type-check can take seconds and
 * gigabytes on a large (or hostile) project. Here they neither block the builder's event loop
 * (its BullMQ lock renewals) nor outlive their time limit (the process is killed), and the memory
 * they took goes back to the system when the process is recycled.
 */
import { WharfError } from '@wharf/shared';
import { analyseSources } from './analysis.js';
import { readSources } from './archive.js';
import { typeCheck } from './typecheck.js';

/** The folder the archive was extracted to: the sources are read here, never in the builder's own process. */
export type AnalysisRequest = { kind: 'analyse'; sourceDir: string } | { kind: 'typecheck'; sourceDir: string; nodeModules?: string };

export type AnalysisReply = ({ ok: true; value: unknown } | { ok: false; code?: string; message: string }) & {
  /** The process's resident memory after the task: the pool recycles a process that grew too big. */
  rss: number;
};

if (!process.send) throw new Error('analysis-worker runs as a child process of the builder, with an IPC channel');
// The builder is gone (its channel closed): nothing will read the answer.
process.on('disconnect', () => process.exit(0));

process.on('message', async (request: AnalysisRequest) => {
  let reply: AnalysisReply;
  try {
    const files = await readSources(request.sourceDir);
    const value = request.kind === 'analyse' ? analyseSources(files) : typeCheck({ files, nodeModules: request.nodeModules });
    reply = { ok: true, value: value ?? null, rss: process.memoryUsage.rss() };
  } catch (err) {
    reply = err instanceof WharfError ? { ok: false, code: err.code, message: err.message, rss: process.memoryUsage.rss() } : { ok: false, message: (err as Error)?.stack ?? String(err), rss: process.memoryUsage.rss() };
  }
  process.send!(reply);
});
