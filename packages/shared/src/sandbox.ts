/**
 * The contract between the runner and the code inside a function container: a folder mounted
 * as the container's working directory, holding these files. Kept free of dependencies because
 * the SDK runtime that reads it is bundled into every function image.
 */
export const SANDBOX_FILES = {
  request: 'request.json',
  envConfig: '.env.config',
  /** One JSON log entry per line, so that a reader capped at N bytes still parses what it read. */
  logs: 'logs.ndjson',
  result: 'result.json',
} as const;

/** Where the runner mounts the per-invocation folder inside the container. */
export const SANDBOX_MOUNT = '/work';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogEntry {
  level: LogLevel;
  message: string;
  timestamp: string;
  data?: unknown;
}

export interface SandboxRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  query: Record<string, string>;
  body?: unknown;
  /** `body` is base64 of binary bytes. */
  isBase64Encoded?: boolean;
  invocationId: string;
  /** Epoch milliseconds after which the runner kills the container. */
  deadline: number;
}

/** What the function's runtime writes to result.json. `error` is set when the handler threw. */
export interface SandboxResult {
  statusCode: number;
  headers: Record<string, string>;
  /** Text, or base64 when `isBase64Encoded` (the function answered with bytes). */
  body: string;
  isBase64Encoded?: boolean;
  error?: { code: 'FUNCTION_ERROR'; message: string };
}

/** Serialises a `.env.config` file: one KEY=value a line, values JSON-quoted so newlines survive. */
export function formatEnvConfig(vars: Record<string, string>): string {
  return Object.entries(vars)
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join('\n') + '\n';
}

export function parseEnvConfig(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const raw = line.slice(eq + 1);
    let value: string;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    vars[line.slice(0, eq)] = String(value);
  }
  return vars;
}

/** Serialises log entries as the logs file holds them: one JSON object a line. */
export function formatLogLines(entries: LogEntry[]): string {
  return entries.map((entry) => JSON.stringify(entry) + '\n').join('');
}

/** Parses a logs file, skipping lines that are not JSON (a cut-off last line, or junk the function wrote). */
export function parseLogLines(text: string): unknown[] {
  const entries: unknown[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      entries.push(JSON.parse(line));
    } catch {
      // not an entry
    }
  }
  return entries;
}

/**
 * The runtime API a warm instance pulls invocations from: an HTTP server the runner serves on a
 * Unix socket inside the instance's folder (the container has no network).
 */
export const RUNTIME_API = {
  /** The socket's name in the instance folder, mounted at SANDBOX_MOUNT. */
  socket: 'runtime.sock',
  /** Long-polls the next invocation: the body is a SandboxRequest. */
  next: '/v1/runtime/invocation/request',
  /** Completes one: the body is a WarmResponse. */
  responsePrefix: '/v1/runtime/invocation/response/',
  /** Fails one: the body is `{errorType, errorMessage}`. */
  errorPrefix: '/v1/runtime/invocation/error/',
  requestIdHeader: 'x-cff-request-id',
  wharfRequestIdHeader: 'x-wharf-request-id',
  deadlineHeader: 'x-wharf-deadline-ms',
  invokeTypeHeader: 'x-wharf-invoke-type',
} as const;

/** What the Node runtime posts for one invocation: its result and what it logged. */
export interface WarmResponse extends SandboxResult {
  logs: LogEntry[];
}
