/**
 * The contract between the runner and the code inside a function container: a folder mounted
 * as the container's working directory, holding these files. Kept free of dependencies because
 * the SDK runtime that reads it is bundled into every function image.
 */
export const SANDBOX_FILES = {
  request: 'request.json',
  envConfig: '.env.config',
  logs: 'logs.json',
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
  invocationId: string;
  /** Epoch milliseconds after which the runner kills the container. */
  deadline: number;
}

/** What the function's runtime writes to result.json. `error` is set when the handler threw. */
export interface SandboxResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
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
