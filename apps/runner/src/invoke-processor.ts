import fs from 'node:fs/promises';
import type Docker from 'dockerode';
import type { Job } from 'bullmq';
import {
  LABELS,
  SANDBOX_FILES,
  invokeJobSchema,
  logEntrySchema,
  type FunctionLimits,
  type InvokeJob,
  type InvokeResult,
  type Logger,
  type SandboxResult,
} from '@wharf/shared';
import { z } from 'zod';
import { runContainer, type ContainerLimits, type ContainerOutcome } from './container-runner.js';
import { OutputTooLargeError, prepareSandboxDir, readSandboxFile } from './sandbox-dir.js';

export interface InvokeDeps {
  docker: Docker;
  logger: Logger;
  runnerId: string;
  functionsDir: string;
  /** This host's ceilings: a job's limits (the function's config) are clamped to them. */
  maxima: ContainerLimits;
  maxOutputBytes: number;
}

/** Every container (and sandbox folder) a runner creates starts with this, so its successor can find them. */
export function containerNamePrefix(runnerId: string): string {
  return `wharf-${runnerId}-`;
}

export function containerNameFor(runnerId: string, invocationId: string, attempt: number): string {
  return `${containerNamePrefix(runnerId)}${invocationId}-${attempt}`;
}

export function createInvokeProcessor(deps: InvokeDeps) {
  return async function processInvoke(job: Job<InvokeJob, InvokeResult>): Promise<InvokeResult> {
    const data = invokeJobSchema.parse(job.data);
    const log = deps.logger.child({ invocationId: data.invocationId, functionId: data.functionId, version: data.version });
    const limits = limitsFor(data, deps.maxima);
    const startedAt = new Date();
    const containerName = containerNameFor(deps.runnerId, data.invocationId, job.attemptsMade);
    const dir = await prepareSandboxDir({
      functionsDir: deps.functionsDir,
      functionId: data.functionId,
      version: data.version,
      containerName,
      request: { ...data.request, invocationId: data.invocationId, deadline: startedAt.getTime() + limits.timeoutMs },
      env: {
        ...data.env,
        WHARF_RESTRICTED: 'true',
        FUNCTION_TIMEOUT_MS: String(limits.timeoutMs),
        FUNCTION_MAX_MEMORY_MB: String(limits.memoryMb),
        SHARED_PATH: '/work',
      },
    });
    try {
      const outcome = await runContainer(deps.docker, {
        name: containerName,
        image: data.image,
        hostDir: dir,
        limits,
        labels: {
          [LABELS.functionId]: data.functionId,
          [LABELS.version]: String(data.version),
          [LABELS.invocationId]: data.invocationId,
          [LABELS.runnerId]: deps.runnerId,
        },
      });
      const result = await collectResult(dir, outcome, deps.maxOutputBytes);
      log.info({ status: result.status, durationMs: outcome.durationMs, exitCode: outcome.exitCode }, 'invocation finished');
      return { ...result, startedAt: startedAt.toISOString(), durationMs: outcome.durationMs, runnerId: deps.runnerId };
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  };
}

export function limitsFor(job: FunctionLimits, maxima: ContainerLimits): ContainerLimits {
  return {
    timeoutMs: Math.min(job.timeoutMs, maxima.timeoutMs),
    memoryMb: Math.min(job.memoryMb, maxima.memoryMb),
    cpus: Math.min(job.cpus, maxima.cpus),
    pids: maxima.pids,
  };
}

type Collected = Pick<InvokeResult, 'status' | 'response' | 'error' | 'logs'>;

const logsSchema = z.array(logEntrySchema);

/** Turns what the container left behind into the invocation's outcome. */
export async function collectResult(dir: string, outcome: ContainerOutcome, maxBytes: number): Promise<Collected> {
  let logs: InvokeResult['logs'] = [];
  let resultText: string;
  try {
    const parsedLogs = logsSchema.safeParse(safeJson(await readSandboxFile(dir, SANDBOX_FILES.logs, maxBytes)));
    if (parsedLogs.success) logs = parsedLogs.data;
    resultText = await readSandboxFile(dir, SANDBOX_FILES.result, maxBytes);
  } catch (err) {
    if (!(err instanceof OutputTooLargeError)) throw err;
    return { status: 'failed', logs, error: { code: 'FUNCTION_CRASHED', message: err.message } };
  }

  if (outcome.timedOut) {
    return { status: 'timed_out', logs, error: { code: 'FUNCTION_TIMEOUT', message: 'the function did not finish within its time limit' } };
  }
  if (outcome.oomKilled) {
    return { status: 'failed', logs, error: { code: 'FUNCTION_OUT_OF_MEMORY', message: 'the function exceeded its memory limit' } };
  }
  const result = safeJson(resultText) as SandboxResult | undefined;
  if (!result || !Number.isInteger(result.statusCode) || result.statusCode < 100 || result.statusCode > 599) {
    const detail = outcome.stderrTail.trim() ? `: ${outcome.stderrTail.trim()}` : '';
    return {
      status: 'failed',
      logs,
      error: { code: 'FUNCTION_CRASHED', message: `the function exited with code ${outcome.exitCode} without a result${detail}` },
    };
  }
  const response = { statusCode: result.statusCode, headers: stringMap(result.headers), body: String(result.body ?? '') };
  if (result.error) {
    return { status: 'failed', logs, response, error: { code: 'FUNCTION_ERROR', message: String(result.error.message) } };
  }
  return { status: 'succeeded', logs, response };
}

function safeJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

function stringMap(value: unknown): Record<string, string> {
  if (!value || typeof value !== 'object') return {};
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toLowerCase(), String(v)]));
}
