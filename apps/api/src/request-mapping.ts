import { validateHeaderName, validateHeaderValue } from 'node:http';
import type { Request } from 'express';
import { WharfError, type CloudRequestPayload } from '@wharf/shared';

/** Headers that carry the caller's credentials, or instructions, to Wharf; a function never sees them. */
const PRIVATE_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization', 'x-wharf-api-key', 'x-wharf-callback-url']);

/** Query parameters that are instructions to Wharf rather than input to the function. */
const PRIVATE_QUERY = new Set(['callback_url']);

/** Headers the function may not set on its response: Node and the HTTP connection own them. */
const RESERVED_RESPONSE_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade']);

const JSON_TYPE = /^application\/([\w.+-]+\+)?json\b/i;
const TEXT_TYPE = /^(text\/|application\/([\w.+-]+\+)?xml\b|application\/(x-www-form-urlencoded|javascript|graphql)\b)/i;

/** `body` is the raw request body; `path` is what follows the function in its URL. */
export function toCloudRequest(req: Request, body: Buffer, path = '/'): CloudRequestPayload {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || PRIVATE_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.query)) {
    if (PRIVATE_QUERY.has(name)) continue;
    query[name] = Array.isArray(value) ? value.map(String).join(',') : String(value);
  }
  return { method: req.method, path, headers, query, ...decodeBody(req.get('content-type'), body) };
}

/**
 * JSON is parsed when the content type says so; text types (and untyped bytes that are valid
 * UTF-8) pass as text; anything else — images, octet streams — as base64, flagged as such.
 */
export function decodeBody(contentType: string | undefined, body: Buffer): Pick<CloudRequestPayload, 'body' | 'isBase64Encoded'> {
  if (body.length === 0) return { body: undefined, isBase64Encoded: false };
  const type = contentType ?? '';
  if (JSON_TYPE.test(type)) {
    try {
      return { body: JSON.parse(body.toString('utf8')), isBase64Encoded: false };
    } catch (err) {
      throw new WharfError('VALIDATION_FAILED', `the body is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (TEXT_TYPE.test(type) || (!type && isUtf8(body))) return { body: body.toString('utf8'), isBase64Encoded: false };
  return { body: body.toString('base64'), isBase64Encoded: true };
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** The function's headers that may go on the wire: not connection-level, and well-formed (no CR/LF smuggling). */
export function responseHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name, value]) => !RESERVED_RESPONSE_HEADERS.has(name.toLowerCase()) && isValidHeader(name, value)),
  );
}

/** A function's response body as it goes on the wire: bytes when it answered with bytes. */
export function responseBody(response: { body: string; isBase64Encoded?: boolean }): string | Buffer {
  return response.isBase64Encoded ? Buffer.from(response.body, 'base64') : response.body;
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
