import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { FunctionLimits } from './queues.js';

/** Configuration is read once at start-up; a bad value stops the process with a message naming the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();

const common = {
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /** Lets several Wharf installations (or test runs) share one Redis without seeing each other's jobs. */
  WHARF_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+$/).default('wharf'),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
};

/** Worker processes answer `GET /health` on this port (for orchestrators' probes); unset, they open no port. */
const health = {
  WHARF_HEALTH_PORT: port.optional(),
};

const database = {
  DATABASE_URL: z.string().url().default('postgres://wharf:wharf@127.0.0.1:5432/wharf'),
};

/** What a function gets unless its own config (`PATCH /api/functions/:id/config`) says otherwise. */
const functionDefaults = {
  WHARF_FUNCTION_TIMEOUT_MS: positiveInt.default(5000),
  WHARF_FUNCTION_MEMORY_MB: positiveInt.min(16).default(128),
  WHARF_FUNCTION_CPUS: z.coerce.number().positive().max(64).default(0.5),
};

/** The most any function may ask for. The API refuses more; a runner never grants more, whatever a job says. */
const functionMaxima = {
  WHARF_MAX_TIMEOUT_MS: positiveInt.default(300_000),
  WHARF_MAX_MEMORY_MB: positiveInt.min(16).default(2048),
  WHARF_MAX_CPUS: z.coerce.number().positive().max(64).default(2),
};

type FunctionMaximaEnv = { [K in keyof typeof functionMaxima]: number };

/** The `WHARF_MAX_*` settings as limits: what the API lets a function ask for, and what a runner grants at most. */
export function functionMaximaFrom(env: FunctionMaximaEnv): FunctionLimits {
  return { timeoutMs: env.WHARF_MAX_TIMEOUT_MS, memoryMb: env.WHARF_MAX_MEMORY_MB, cpus: env.WHARF_MAX_CPUS };
}

/** How often a container host removes images of functions deleted for good. */
const imageSweep = {
  WHARF_IMAGE_SWEEP_INTERVAL_MS: positiveInt.default(60_000),
};

export const apiEnvSchema = z
  .object({
    ...common,
    ...database,
    ...functionDefaults,
    ...functionMaxima,
    WHARF_API_HOST: z.string().default('127.0.0.1'),
    WHARF_API_PORT: port.default(8080),
    WHARF_MAX_ARCHIVE_BYTES: positiveInt.default(50 * 1024 * 1024),
    WHARF_MAX_REQUEST_BYTES: positiveInt.default(6 * 1024 * 1024),
    /** Time an invocation may spend queued before a synchronous caller gives up on it. */
    WHARF_QUEUE_ALLOWANCE_MS: positiveInt.default(10_000),
    /** Days between `DELETE /api/functions/:id` and the function being removed for good. */
    WHARF_DELETION_GRACE_DAYS: z.coerce.number().min(0).max(365).default(7),
    /** How often the deletion reaper looks for functions whose grace period is over. */
    WHARF_DELETION_REAPER_INTERVAL_MS: positiveInt.default(10 * 60_000),
    /**
     * Master secret from which API-key secrets are derived (so that only their hashes are stored).
     * Unset: one is generated at first start and kept in the database, shared by every API process.
     */
    WHARF_SIGNING_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    /** Finished invocation records are kept at least this long, then pruned. */
    WHARF_INVOCATION_RETENTION_HOURS: positiveInt.default(72),
    /** How often retention runs: invocation records, and failed builds' archives, past their retention go. */
    WHARF_PRUNE_INTERVAL_MS: positiveInt.default(3600_000),
    /** How often the reconciler looks for invocations left behind (outcome unheard, job lost)… */
    WHARF_RECONCILE_INTERVAL_MS: positiveInt.default(10_000),
    /** …among those whose record has not changed for this long. */
    WHARF_RECONCILE_AFTER_MS: positiveInt.default(30_000),
    /** Invocations of one function accepted and not yet started, at most; past it, 429 TOO_MANY_REQUESTS. */
    WHARF_MAX_QUEUED_PER_FUNCTION: positiveInt.default(1000),
    /** The same bound across all of one user's functions. */
    WHARF_MAX_QUEUED_PER_USER: positiveInt.default(5000),
    /** How long a callback receiver has to answer before the delivery is retried. */
    WHARF_CALLBACK_TIMEOUT_MS: positiveInt.default(10_000),
    /**
     * `affinity`: a warm-mode invocation goes to a runner with a free slot on a live instance of
     * its version when there is one; `any`: every invocation goes to the shared queue.
     */
    WHARF_WARM_ROUTING: z.enum(['affinity', 'any']).default('affinity'),
    /** Live functions (pending deletion included) one user may have; each holds a name, keys and records. */
    WHARF_USER_MAX_FUNCTIONS: positiveInt.default(100),
    /** Archive bytes one user may keep stored: five 49 MB junk uploads once grew the database from 58 MB to 312 MB. */
    WHARF_USER_MAX_ARCHIVE_BYTES: positiveInt.default(512 * 1024 * 1024),
    /** Deployments one user may start in a rolling hour: each takes a builder and stores an archive. */
    WHARF_USER_MAX_DEPLOYS_PER_HOUR: positiveInt.default(60),
    /** `min_instances` summed over one user's functions: each is a container kept running on every runner. */
    WHARF_USER_MAX_MIN_INSTANCES: z.coerce.number().int().min(0).default(8),
    /**
     * A failed build's archive is dropped this long after it finished (its record and build log
     * stay), at the next retention tick (WHARF_PRUNE_INTERVAL_MS). Decimals allowed: 0.5 is 30 s.
     */
    WHARF_FAILED_ARCHIVE_RETENTION_MINUTES: z.coerce.number().min(0).default(60),
  })
  .superRefine((env, ctx) => {
    const pairs = [
      ['WHARF_FUNCTION_TIMEOUT_MS', 'WHARF_MAX_TIMEOUT_MS'],
      ['WHARF_FUNCTION_MEMORY_MB', 'WHARF_MAX_MEMORY_MB'],
      ['WHARF_FUNCTION_CPUS', 'WHARF_MAX_CPUS'],
    ] as const;
    for (const [value, max] of pairs) {
      if (env[value] > env[max]) ctx.addIssue({ code: 'custom', path: [value], message: `must not exceed ${max} (${env[max]})` });
    }
  });
export type ApiEnv = z.infer<typeof apiEnvSchema>;

export const builderEnvSchema = z.object({
  ...common,
  ...health,
  ...database,
  ...imageSweep,
  WHARF_BASE_IMAGE: z.string().min(1).default('wharf/runtime-node:20'),
  WHARF_BUILD_DIR: z.string().default(path.join(os.tmpdir(), 'wharf-builds')),
  WHARF_BUILDER_CONCURRENCY: positiveInt.default(1),
  WHARF_BUILDER_ID: z.string().min(1).default(os.hostname()),
  /** Installed npm dependency trees, one per lock-file hash, reused by later builds. */
  WHARF_BUILDER_CACHE_DIR: z.string().default(path.join(os.tmpdir(), 'wharf-build-cache')),
  WHARF_NPM_REGISTRY: z.string().url().default('https://registry.npmjs.org/'),
  /** Time limits of the build steps: past one, the deployment fails with BUILD_TIMEOUT naming the step. */
  WHARF_INSTALL_TIMEOUT_MS: positiveInt.default(120_000),
  WHARF_BUNDLE_TIMEOUT_MS: positiveInt.default(60_000),
  /** Building the image, and pushing it to WHARF_REGISTRY when set (each). */
  WHARF_IMAGE_TIMEOUT_MS: positiveInt.default(300_000),
  /**
   * Images kept per function: the active version's and the newest others'; older ones are removed,
   * and so are their archives unless pinned (a rollback rebuilds a pinned one from its archive).
   */
  WHARF_KEEP_VERSIONS: positiveInt.default(10),
  /** Limit on analysing, and on type-checking, one function (in a child process, killed past it). */
  WHARF_ANALYSIS_TIMEOUT_MS: positiveInt.default(30_000),
  /** How long a builder's hold on a build lasts without renewal: a dead builder's build is retried about this long after. */
  WHARF_BUILDER_LOCK_MS: positiveInt.min(1000).default(60_000),
  /**
   * Where images go so that runners on other hosts can pull them (`host:port[/path]`, e.g.
   * `127.0.0.1:5055`); unset, images stay on this engine (one container host).
   */
  WHARF_REGISTRY: z
    .string()
    .regex(/^[A-Za-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*$/, 'must be host[:port][/path], without a scheme')
    .optional(),
});
export type BuilderEnv = z.infer<typeof builderEnvSchema>;

export const runnerEnvSchema = z.object({
  ...common,
  ...health,
  ...functionMaxima,
  ...imageSweep,
  WHARF_FUNCTIONS_DIR: z.string().default(path.join(os.tmpdir(), 'wharf-functions')),
  WHARF_RUNNER_ID: z.string().regex(/^[A-Za-z0-9_.-]+$/).default(os.hostname()),
  /** Invocations this runner runs at once: its host's capacity (default two per CPU). */
  WHARF_RUNNER_SLOTS: positiveInt.default(Math.max(2, 2 * os.cpus().length)),
  /** How often a runner advertises itself (id, host, slots, load) in Redis; it is forgotten after three missed beats. */
  WHARF_HEARTBEAT_MS: positiveInt.min(100).default(5000),
  /**
   * How long a runner's hold on a job lasts without renewal: when a runner dies, its invocations
   * are handed to another runner about this long after.
   */
  WHARF_RUNNER_LOCK_MS: positiveInt.min(1000).default(30_000),
  WHARF_FUNCTION_PIDS: positiveInt.default(64),
  WHARF_FUNCTION_NOFILE: positiveInt.default(1024),
  /** Size of each container's /tmp (tmpfs). */
  WHARF_FUNCTION_TMP_MB: positiveInt.default(16),
  /** Cap on result.json; a bigger result is RESULT_TOO_LARGE, never read whole. */
  WHARF_MAX_RESULT_BYTES: positiveInt.default(6 * 1024 * 1024),
  /** Cap on what a function logs through its logger; the rest is dropped and the invocation marked `logsTruncated`. */
  WHARF_MAX_LOG_BYTES: positiveInt.default(1024 * 1024),
  /** What the engine keeps of a container's stdout/stderr (only its tail is read, for crash reports). */
  WHARF_MAX_CONSOLE_BYTES: positiveInt.default(1024 * 1024),
  /** A warm instance idle this long is stopped. */
  WHARF_WARM_IDLE_MS: positiveInt.default(5 * 60_000),
  /** Warm instances this runner keeps at most (all functions together); past it, the least recently used idle one goes. */
  WHARF_WARM_MAX_INSTANCES: positiveInt.default(8),
});
export type RunnerEnv = z.infer<typeof runnerEnvSchema>;

export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.join('.');
    return `${name}=${JSON.stringify(env[name] ?? null)}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
}
