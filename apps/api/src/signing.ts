import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SIGNATURE_MAX_AGE_SECONDS, SIGNING_HEADERS, sha256Hex, signRequest } from '@wharf/shared/signing';

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/** Checks a signature in constant time; `nowSeconds` is injectable so tests need not wait. */
export function verifySignature(options: {
  secret: string;
  timestamp: string | undefined;
  signature: string | undefined;
  method: string;
  path: string;
  body: Buffer;
  nowSeconds: number;
}): SignatureCheck {
  const { timestamp, signature } = options;
  if (!timestamp || !signature) return { ok: false, reason: `send ${SIGNING_HEADERS.timestamp} and ${SIGNING_HEADERS.signature}` };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: `${SIGNING_HEADERS.timestamp} must be Unix seconds` };
  if (Math.abs(options.nowSeconds - Number(timestamp)) > SIGNATURE_MAX_AGE_SECONDS) {
    return { ok: false, reason: `the timestamp is more than ${SIGNATURE_MAX_AGE_SECONDS} s from the server's clock` };
  }
  const expected = Buffer.from(signRequest(options.secret, timestamp, options.method, options.path, options.body), 'hex');
  const given = /^[0-9a-f]{64}$/i.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'the signature does not match' };
  return { ok: true };
}

/** Key ids are public (they travel in a header); secrets are derived from them and never stored. */
export function newKeyId(): string {
  return `wk_${randomBytes(12).toString('hex')}`;
}

/**
 * A key's secret is an HMAC of its id under the platform's signing secret: the database holds only
 * its hash, yet the API can recompute it to check a signature.
 */
export function deriveKeySecret(signingSecret: string, keyId: string): string {
  return `wsk_${createHmac('sha256', signingSecret).update(`api-key:${keyId}`).digest('base64url')}`;
}

/** Constant-time equality for strings of any length (both are hashed to the same size first). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(Buffer.from(sha256Hex(a), 'hex'), Buffer.from(sha256Hex(b), 'hex'));
}
