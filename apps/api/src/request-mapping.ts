import { validateHeaderName, validateHeaderValue } from 'node:http';
import type { Request } from 'express';
import type { CloudRequestPayload } from '@wharf/shared';

/** Headers that carry the caller's credentials to Wharf; a function never sees them. */
const PRIVATE_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

/** Headers the function may not set on its response: Node and the HTTP connection own them. */
const RESERVED_RESPONSE_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade']);

export function toCloudRequest(req: Request, path = '/'): CloudRequestPayload {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || PRIVATE_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.query)) {
    query[name] = Array.isArray(value) ? value.map(String).join(',') : String(value);
  }
  // express.json leaves {} when there is no body; a body-less request should read as undefined.
  const hasBody = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding') !== undefined;
  return { method: req.method, path, headers, query, body: hasBody ? req.body : undefined };
}

/** The function's headers that may go on the wire: not connection-level, and well-formed (no CR/LF smuggling). */
export function responseHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name, value]) => !RESERVED_RESPONSE_HEADERS.has(name.toLowerCase()) && isValidHeader(name, value)),
  );
}

function isValidHeader(name: string, value: string): boolean {
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}
