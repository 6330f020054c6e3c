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
  /**
   * `RUNTIME_API_ADDR` of custom runtimes: inside the container (which has only loopback), a relay
   * in the image serves the API here and forwards to the socket.
   */
  relayAddress: '127.0.0.1:9001',
} as const;

/** The `isolated-files` contract: files in the program's working directory, one set per invocation. */
export const ISOLATED_FILES = {
  /** Written before `run` starts: the event (a SandboxRequest). */
  input: 'input.json',
  /** On success: the response (see `resultFromOutput`). */
  output: 'output.json',
  /** On failure: `{code, message}`. */
  error: 'error.json',
  /** Read line by line into the invocation's logs. */
  log: 'out.log',
  /** Created last; its absence when `run` exits means it crashed. */
  done: 'done',
} as const;

/**
 * The response a custom or isolated-files program gave: an object with a `statusCode` is taken as
 * `{statusCode, headers, body, isBase64Encoded}`; any other JSON is a 200 JSON body; anything else
 * a 200 body of `contentType`.
 */
export function resultFromOutput(text: string, contentType = 'text/plain; charset=utf-8'): SandboxResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { statusCode: 200, headers: { 'content-type': contentType }, body: text };
  }
  if (parsed && typeof parsed === 'object' && 'statusCode' in parsed) {
    const shaped = parsed as { statusCode: unknown; headers?: unknown; body?: unknown; isBase64Encoded?: unknown };
    if (Number.isInteger(shaped.statusCode)) {
      const headers = shaped.headers && typeof shaped.headers === 'object' ? Object.fromEntries(Object.entries(shaped.headers).map(([k, v]) => [k.toLowerCase(), String(v)])) : {};
      const body = typeof shaped.body === 'string' ? shaped.body : shaped.body === undefined ? '' : JSON.stringify(shaped.body);
      return { statusCode: shaped.statusCode as number, headers, body, ...(shaped.isBase64Encoded === true ? { isBase64Encoded: true } : {}) };
    }
  }
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: text };
}

/** The failure a custom or isolated-files program reported: FUNCTION_ERROR "type: message". */
export function resultFromError(type: string, message: string): SandboxResult {
  const error = { code: 'FUNCTION_ERROR' as const, message: `${type}: ${message}` };
  return { statusCode: 500, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error }), error };
}

/** What the Node runtime posts for one invocation: its result and what it logged. */
export interface WarmResponse extends SandboxResult {
  logs: LogEntry[];
}
