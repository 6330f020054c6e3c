import { validateHeaderName, validateHeaderValue } from 'node:http';
import type { Request } from 'express';
import { WharfError, type CloudRequestPayload } from '@wharf/shared';

/** Headers that carry the caller's credentials to Wharf; a function never sees them. */
const PRIVATE_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization', 'x-wharf-api-key']);

/** Headers the function may not set on its response: Node and the HTTP connection own them. */
const RESERVED_RESPONSE_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade']);

/** `body` is the raw request body; JSON is parsed when the content type says so, anything else passes as text. */
export function toCloudRequest(req: Request, body: Buffer, path = '/'): CloudRequestPayload {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || PRIVATE_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.query)) {
    query[name] = Array.isArray(value) ? value.map(String).join(',') : String(value);
  }
  return { method: req.method, path, headers, query, body: decodeBody(req.get('content-type'), body) };
}

export function decodeBody(contentType: string | undefined, body: Buffer): unknown {
  if (body.length === 0) return undefined;
  const text = body.toString('utf8');
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(contentType ?? '')) return text;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new WharfError('VALIDATION_FAILED', `the body is not valid JSON: ${(err as Error).message}`);
  }
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
