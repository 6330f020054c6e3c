import type { LogEntry, LogLevel } from '@wharf/shared/sandbox';

export type { LogEntry, LogLevel };

export interface CloudRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  query: Record<string, string>;
  /**
   * Parsed JSON when the request's content type is JSON; text for text types (and untyped UTF-8);
   * otherwise the bytes as a base64 string, with `isBase64Encoded` set. `bodyBytes()` decodes either.
   */
  body: unknown;
  isBase64Encoded: boolean;
}

/** The request body as bytes, whichever way it arrived. */
export function bodyBytes(request: Pick<CloudRequest, 'body' | 'isBase64Encoded'>): Buffer {
  if (request.body === undefined || request.body === null) return Buffer.alloc(0);
  if (request.isBase64Encoded) return Buffer.from(String(request.body), 'base64');
  return Buffer.from(typeof request.body === 'string' ? request.body : JSON.stringify(request.body), 'utf8');
}

export interface FunctionLogger {
  debug(message: string, data?: unknown): void;
  info(message: string, data?: unknown): void;
  warn(message: string, data?: unknown): void;
  error(message: string, data?: unknown): void;
}

export interface FunctionContext {
  /** The deployment's variables, plus the platform's (`WHARF_RESTRICTED`, `FUNCTION_TIMEOUT_MS`, …). */
  env: Readonly<Record<string, string>>;
  logger: FunctionLogger;
  invocationId: string;
  /** Epoch milliseconds at which the platform stops the function. */
  deadline: number;
}

export class CloudResponse {
  constructor(
    public statusCode = 200,
    public headers: Record<string, string> = {},
    /** Text, or bytes for a binary response. */
    public body: string | Uint8Array = '',
  ) {}

  static json(data: unknown, statusCode = 200, headers: Record<string, string> = {}): CloudResponse {
    return new CloudResponse(statusCode, { 'content-type': 'application/json', ...headers }, JSON.stringify(data));
  }

  static text(text: string, statusCode = 200, headers: Record<string, string> = {}): CloudResponse {
    return new CloudResponse(statusCode, { 'content-type': 'text/plain; charset=utf-8', ...headers }, text);
  }

  static binary(bytes: Uint8Array, contentType = 'application/octet-stream', statusCode = 200, headers: Record<string, string> = {}): CloudResponse {
    return new CloudResponse(statusCode, { 'content-type': contentType, ...headers }, bytes);
  }

  static status(statusCode: number, body = ''): CloudResponse {
    return new CloudResponse(statusCode, {}, body);
  }

  withHeader(name: string, value: string): this {
    this.headers[name.toLowerCase()] = value;
    return this;
  }
}

export abstract class CloudFunction {
  abstract handle(request: CloudRequest, context: FunctionContext): Promise<CloudResponse> | CloudResponse;
}

type FunctionClass = abstract new (...args: never[]) => CloudFunction;

let registered: (new () => CloudFunction) | undefined;

/**
 * Marks the class Wharf runs. Works as a standard (TC39) decorator and as a legacy
 * `experimentalDecorators` one, so a user's tsconfig choice does not matter. The class need not
 * be exported: the decorator hands it to the runtime.
 */
export function cloudFunction<T extends FunctionClass>(target: T, _context?: unknown): void {
  registered = target as unknown as new () => CloudFunction;
}

/** The class the last `@cloudFunction` marked, once the function's modules have been loaded. */
export function registeredFunctionClass(): (new () => CloudFunction) | undefined {
  return registered;
}

/** A logger that keeps its entries, so the runtime can hand them to the platform. */
export function createFunctionLogger(entries: LogEntry[], now: () => Date = () => new Date()): FunctionLogger {
  const log = (level: LogLevel) => (message: string, data?: unknown) => {
    const entry: LogEntry = { level, message: String(message), timestamp: now().toISOString() };
    if (data !== undefined) entry.data = data;
    entries.push(entry);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}
