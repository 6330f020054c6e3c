import fs from 'node:fs/promises';
import type Docker from 'dockerode';
import type { Job } from 'bullmq';
import {
  LABELS,
  coerceError,
  PREWARM_JOB,
  SANDBOX_FILES,
  attemptNumber,
  invokeJobSchema,
  logEntrySchema,
  parseLogLines,
  type FunctionLimits,
  type InvocationStarted,
  type InvokeJob,
  type InvokeResult,
  type Logger,
  type SandboxResult,
} from '@wharf/shared';
import { runContainer, runtimeEnv, type ContainerLimits, type ContainerOutcome, type HostLimits } from './container-runner.js';
import type { Cancellations } from './cancellations.js';
import type { EngineWatch } from './engine-watch.js';
import { prepareSandboxDir, readSandboxFile } from './sandbox-dir.js';
import type { WarmPool } from './warm-pool.js';

export interface InvokeDeps {
  docker: Docker;
  logger: Logger;
  runnerId: string;
  functionsDir: string;
  /** This host's ceilings: a job's limits (the function's config) are clamped to them. */
  maxima: FunctionLimits;
  hostLimits: HostLimits;
  caps: OutputCaps;
  cancellations: Pick<Cancellations, 'isCancelled' | 'watch' | 'release'>;
  warm: Pick<WarmPool, 'invoke' | 'prewarm'>;
  releaseAdmission: (job: InvokeJob) => Promise<void>;
  engine: Pick<EngineWatch, 'watch'>;
}

export interface OutputCaps {
  /** A bigger result is RESULT_TOO_LARGE, never read whole. */
  resultBytes: number;
  /** Logs past this are dropped and the invocation marked `logsTruncated`. */
  logBytes: number;
}

/** Every container (and sandbox folder) a runner creates starts with this, so its successor can find them. */
export function containerNamePrefix(runnerId: string): string {
  return `wharf-${runnerId}-`;
}

export function containerNameFor(runnerId: string, invocationId: string, attempt: number): string {
  return `${containerNamePrefix(runnerId)}${invocationId}-${attempt}`;
}

/** Which run this is, across re-enqueues of the invocation: BullMQ counts the current job's starts. */
export function attemptOf(job: Pick<Job<InvokeJob>, 'attemptsStarted' | 'attemptsMade'>, data: InvokeJob): number {
  return (data.priorAttempts ?? 0) + attemptNumber(job);
}

/**
 * An invocation is reported running (its record then says so, with this run's attempt and runner)
 * once it has run this long: most warm invocations end sooner, and their outcome carries the same
 * facts, so they cost no progress event and no extra write.
 */
export const RUNNING_REPORT_DELAY_MS = 50;

export function createInvokeProcessor(deps: InvokeDeps) {
  return async function processInvoke(job: Job<InvokeJob, InvokeResult>): Promise<InvokeResult> {
    const data = invokeJobSchema.parse(job.data);
    const log = deps.logger.child({ invocationId: data.invocationId, functionId: data.functionId, version: data.version });
    const limits = limitsFor(data, deps.maxima, deps.hostLimits);
    const attempt = attemptOf(job, data);
    const startedAt = new Date();
    const env = {
      ...data.env,
      WHARF_RESTRICTED: 'true',
      FUNCTION_TIMEOUT_MS: String(limits.timeoutMs),
      FUNCTION_MAX_MEMORY_MB: String(limits.memoryMb),
      SHARED_PATH: '/work',
    };
    const finish = (collected: Collected, durationMs: number): InvokeResult => ({
      ...collected,
      attempt,
      startedAt: startedAt.toISOString(),
      durationMs,
      runnerId: deps.runnerId,
    });

    if (job.name === PREWARM_JOB) {
      await deps.warm.prewarm(data, limits, env, log);
      return finish({ status: 'succeeded', logs: [] }, Date.now() - startedAt.getTime());
    }

    // Watch before checking, so that a cancellation arriving in between is not missed.
    const signal = deps.cancellations.watch(data.invocationId);
    const started: InvocationStarted = { attempt, runnerId: deps.runnerId };
    const reportRunning = setTimeout(() => {
      job.updateProgress(started).catch((err) => log.warn({ err: coerceError(err) }, 'could not report the invocation running'));
    }, RUNNING_REPORT_DELAY_MS);
    try {
      // Started: the invocation stops counting against its function's and owner's queue bounds.
      const [cancelled] = await Promise.all([deps.cancellations.isCancelled(data.invocationId), deps.releaseAdmission(data)]);
      if (cancelled) {
        log.info('cancelled before it started: not running it');
        return finish(CANCELLED, 0);
      }

      const request = { ...data.request, invocationId: data.invocationId, deadline: startedAt.getTime() + limits.timeoutMs };
      const runtime = data.runtime ?? 'node';
      // A custom runtime only speaks the runtime API: in isolated mode, or when every slot is busy, it gets an instance of its own.
      if (data.mode === 'warm' || runtime === 'custom') {
        const warm =
          (data.mode === 'warm' ? await deps.warm.invoke(data, limits, env, request, signal, log) : undefined) ??
          (runtime === 'custom' ? await deps.warm.invoke(data, limits, env, request, signal, log, { singleUse: true }) : undefined);
        if (warm) {
          log.info({ status: warm.collected.status, code: warm.collected.error?.code, durationMs: warm.durationMs, attempt, mode: data.mode, runtime }, 'invocation finished');
          return finish(warm.collected, warm.durationMs);
        }
        log.info('every warm instance slot is busy: running this one isolated');
      }

      const containerName = containerNameFor(deps.runnerId, data.invocationId, attempt);
      const dir = await prepareSandboxDir({
        functionsDir: deps.functionsDir,
        functionId: data.functionId,
        version: data.version,
        containerName,
        request,
        env,
      });
      const engine = deps.engine.watch();
      try {
        const outcome = await runContainer(
          deps.docker,
          {
            name: containerName,
            image: data.image,
            hostDir: dir,
            limits,
            env: runtimeEnv(data, limits, deps.caps.logBytes),
            labels: {
              [LABELS.functionId]: data.functionId,
              [LABELS.version]: String(data.version),
              [LABELS.invocationId]: data.invocationId,
              [LABELS.runnerId]: deps.runnerId,
            },
          },
          signal,
          engine,
        );
        const result = await collectResult(dir, outcome, deps.caps);
        log.info({ status: result.status, code: result.error?.code, durationMs: outcome.durationMs, exitCode: outcome.exitCode, attempt }, 'invocation finished');
        return finish(result, outcome.durationMs);
      } finally {
        engine.release();
        await fs.rm(dir, { recursive: true, force: true });
      }
    } finally {
      clearTimeout(reportRunning);
      deps.cancellations.release(data.invocationId);
    }
  };
}

export function limitsFor(job: FunctionLimits, maxima: FunctionLimits, host: HostLimits): ContainerLimits {
  return {
    timeoutMs: Math.min(job.timeoutMs, maxima.timeoutMs),
    memoryMb: Math.min(job.memoryMb, maxima.memoryMb),
    cpus: Math.min(job.cpus, maxima.cpus),
    ...host,
  };
}

/** What an invocation produced, before the runner adds when, where and which attempt. */
export type Collected = Pick<InvokeResult, 'status' | 'response' | 'error' | 'logs' | 'logsTruncated'>;

const CANCELLED: Collected = { status: 'cancelled', logs: [], error: { code: 'INVOCATION_CANCELLED', message: 'the invocation was cancelled' } };

/** Turns what the container left behind into the invocation's outcome. */
export async function collectResult(dir: string, outcome: ContainerOutcome, caps: OutputCaps): Promise<Collected> {
  const logsFile = await readSandboxFile(dir, SANDBOX_FILES.logs, caps.logBytes);
  const logs = parseLogLines(logsFile.text).flatMap((entry) => {
    const parsed = logEntrySchema.safeParse(entry);
    return parsed.success ? [parsed.data] : [];
  });
  // Read only when nothing else decided the outcome.
  const readResult = () => readSandboxFile(dir, SANDBOX_FILES.result, caps.resultBytes);
  const interpreted = await interpretOutcome(outcome, readResult, caps);
  return { ...interpreted, logs, ...(logsFile.size > caps.logBytes ? { logsTruncated: true } : {}) };
}

/**
 * An outcome from how the container ended and the result it produced: the same rules for a fresh
 * container (result file) and a warm instance (result posted to the runtime API).
 */
export async function interpretOutcome(
  outcome: ContainerOutcome,
  readResult: () => Promise<{ text: string; size: number }>,
  caps: Pick<OutputCaps, 'resultBytes'>,
): Promise<Omit<Collected, 'logs' | 'logsTruncated'>> {
  if (outcome.cancelled) return { status: CANCELLED.status, error: CANCELLED.error };
  if (outcome.timedOut) return { status: 'timed_out', error: { code: 'FUNCTION_TIMEOUT', message: 'the function did not finish within its time limit' } };
  if (outcome.oomKilled) return { status: 'failed', error: { code: 'FUNCTION_OOM', message: 'the function exceeded its memory limit' } };
  const resultFile = await readResult();
  if (resultFile.size > caps.resultBytes) {
    return { status: 'failed', error: { code: 'RESULT_TOO_LARGE', message: `the function's result is larger than ${caps.resultBytes} bytes` } };
  }
  const result = safeJson(resultFile.text) as SandboxResult | undefined;
  if (!result || !Number.isInteger(result.statusCode) || result.statusCode < 100 || result.statusCode > 599) {
    const detail = outcome.stderrTail.trim() ? `: ${outcome.stderrTail.trim()}` : '';
    return { status: 'failed', error: { code: 'FUNCTION_CRASHED', message: `the function exited with code ${outcome.exitCode} without a result${detail}` } };
  }
  const response = {
    statusCode: result.statusCode,
    headers: stringMap(result.headers),
    body: String(result.body ?? ''),
    ...(result.isBase64Encoded === true ? { isBase64Encoded: true } : {}),
  };
  if (result.error) return { status: 'failed', response, error: { code: 'FUNCTION_ERROR', message: String(result.error.message) } };
  return { status: 'succeeded', response };
}

export function safeJson(text: string): unknown {
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
