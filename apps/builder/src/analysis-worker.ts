/**
 * Runs in a worker thread: the analysis and the type-check can take seconds on a large (or
 * hostile) project, and must neither block the builder's event loop (its BullMQ lock renewals)
 * nor outlive their time limit (the thread is terminated).
 */
import { parentPort } from 'node:worker_threads';
import { WharfError } from '@wharf/shared';
import { analyseSources } from './analysis.js';
import { typeCheck } from './typecheck.js';

export type AnalysisRequest =
  | { kind: 'analyse'; files: Array<[string, string]> }
  | { kind: 'typecheck'; files: Array<[string, string]>; nodeModules?: string };

export type AnalysisReply =
  | { ok: true; value: unknown }
  | { ok: false; code?: string; message: string };

parentPort?.on('message', (request: AnalysisRequest) => {
  const files = new Map(request.files);
  try {
    const value = request.kind === 'analyse' ? analyseSources(files) : typeCheck({ files, nodeModules: request.nodeModules });
    parentPort!.postMessage({ ok: true, value: value ?? null } satisfies AnalysisReply);
  } catch (err) {
    const reply: AnalysisReply = err instanceof WharfError ? { ok: false, code: err.code, message: err.message } : { ok: false, message: (err as Error)?.stack ?? String(err) };
    parentPort!.postMessage(reply);
  }
});
