import { WharfError } from '@wharf/shared';

/** The steps of a build, each with a time limit of its own; BUILD_TIMEOUT names the one that ran out. */
export type BuildStep = 'archive' | 'analysis' | 'install' | 'typecheck' | 'bundle' | 'image' | 'push';

export function buildTimeout(step: BuildStep, ms: number): WharfError {
  return new WharfError('BUILD_TIMEOUT', `the ${step} step did not finish within ${ms} ms`);
}

/**
 * Runs `work` under a time limit. Past it, the signal aborts (the work stops what it started: a
 * child process, an engine request) and the call rejects with BUILD_TIMEOUT naming the step,
 * whether or not the work has noticed yet.
 */
export async function withTimeLimit<T>(step: BuildStep, ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = buildTimeout(step, ms);
      controller.abort(err);
      reject(err);
    }, ms);
  });
  const running = work(controller.signal);
  // The work's own rejection after the limit (aborted) is not news: BUILD_TIMEOUT is.
  running.catch(() => {});
  try {
    return await Promise.race([running, expired]);
  } finally {
    clearTimeout(timer);
  }
}
