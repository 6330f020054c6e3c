/**
 * `init → building → active`; a first build that fails leaves `failed`. Deletion is two steps:
 * `pending_deletion` (cancellable, nothing removed) then `deleted` (a tombstone; everything gone).
 */
export const FUNCTION_STATUSES = ['init', 'building', 'active', 'failed', 'pending_deletion', 'deleted'] as const;
export type FunctionStatus = (typeof FUNCTION_STATUSES)[number];

/** A deployment is one build of one archive. Which succeeded build serves is the function's `active_version`. */
export const DEPLOYMENT_STATUSES = ['building', 'succeeded', 'failed'] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];

export const INVOCATION_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled'] as const;
export type InvocationStatus = (typeof INVOCATION_STATUSES)[number];
/** An invocation in one of these states has its one final outcome and never changes again. */
export const FINAL_INVOCATION_STATUSES = ['succeeded', 'failed', 'timed_out', 'cancelled'] as const;

export const DELETION_REASONS = ['user_requested'] as const;
export type DeletionReason = (typeof DELETION_REASONS)[number];

/**
 * How a function's invocations run: live instances reused (`warm`, the default), or a fresh
 * container each (`isolated`: what to pick for code you do not trust to leave nothing behind).
 */
export const FUNCTION_MODES = ['isolated', 'warm'] as const;
export type FunctionMode = (typeof FUNCTION_MODES)[number];

/**
 * What runs inside a function's container, chosen from the archive at build time or at deploy:
 * `node` (a `@cloudFunction` class), `custom` (an executable `bootstrap` looping on the runtime
 * API), `isolated-files` (an executable `run` reading input.json, writing output.json).
 */
export const FUNCTION_RUNTIMES = ['node', 'custom', 'isolated-files'] as const;
export type FunctionRuntime = (typeof FUNCTION_RUNTIMES)[number];

/** Bounds of the per-function warm settings. */
export const WARM_SETTINGS = {
  /** Invocations one instance takes at once. */
  maxConcurrency: 32,
  /** Instances kept warm per function on each runner that has run it. */
  maxMinInstances: 8,
} as const;

/** The body of `PATCH /api/functions/:id/config`: only the fields present change; `null` returns a limit to the platform default. */
export interface FunctionConfigPatch {
  timeout_ms?: number | null;
  memory_mb?: number | null;
  cpus?: number | null;
  env?: Record<string, string>;
  skip_signing?: boolean;
  /** Callable at /fn/<name> by anyone, without credentials. */
  public?: boolean;
  mode?: FunctionMode;
  /** Invocations one warm instance takes at once (default 1). */
  concurrency?: number;
  /** Warm instances kept even when idle (default 0). */
  min_instances?: number;
}

/** Function names become part of URLs, image tags and folder names. */
export const FUNCTION_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;

/** The image of one version; under the registry's name when there is one, so that any host can pull it. */
export function imageTagFor(functionId: string, version: number, registry?: string): string {
  return `${registry ? `${registry}/` : ''}wharf-fn-${functionId}:v${version}`;
}

/** Container labels: how the runner and the tests find what Wharf started. */
export const LABELS = {
  managed: 'wharf.managed',
  functionId: 'wharf.function-id',
  version: 'wharf.version',
  invocationId: 'wharf.invocation-id',
  runnerId: 'wharf.runner-id',
  deploymentId: 'wharf.deployment-id',
  archiveSha256: 'wharf.archive-sha256',
  builderId: 'wharf.builder-id',
  sdkVersion: 'wharf.sdk-version',
} as const;

/** The uid:gid functions run as inside their container; the base image has a passwd entry for it. */
export const SANDBOX_USER = { uid: 10001, gid: 10001 } as const;
