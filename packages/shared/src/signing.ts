import { createHash, createHmac } from 'node:crypto';

/**
 * The request-signing contract shared by the API (which checks) and the client and CLI (which sign).
 * Dependency-free, so that anything can import `@wharf/shared/signing`.
 */
export const SIGNING_HEADERS = {
  keyId: 'x-wharf-key-id',
  timestamp: 'x-wharf-timestamp',
  signature: 'x-wharf-signature',
  /** For functions that skip signing: the key's secret itself. */
  apiKey: 'x-wharf-api-key',
} as const;

/** A signature older (or further in the future) than this is refused, so a captured request cannot be replayed later. */
export const SIGNATURE_MAX_AGE_SECONDS = 5 * 60;

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What the client signs: `<timestamp>.<METHOD>.<path as sent, query included>.<sha256 hex of the raw body>`. */
export function canonicalRequest(timestamp: string, method: string, path: string, body: Uint8Array): string {
  return `${timestamp}.${method.toUpperCase()}.${path}.${sha256Hex(body)}`;
}

export function signRequest(secret: string, timestamp: string, method: string, path: string, body: Uint8Array): string {
  return createHmac('sha256', secret).update(canonicalRequest(timestamp, method, path, body)).digest('hex');
}

/** The three headers of a signed request, stamped with the current time unless told otherwise. */
export function signedHeaders(
  key: { keyId: string; secret: string },
  method: string,
  path: string,
  body: Uint8Array,
  nowSeconds = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const timestamp = String(nowSeconds);
  return {
    [SIGNING_HEADERS.keyId]: key.keyId,
    [SIGNING_HEADERS.timestamp]: timestamp,
    [SIGNING_HEADERS.signature]: signRequest(key.secret, timestamp, method, path, body),
  };
}
