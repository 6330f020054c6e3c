import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { test } from 'node:test';
import { canonicalRequest, signedHeaders, signRequest } from '@wharf/shared/signing';
import { deriveKeySecret, newKeyId, secretsEqual, verifySignature } from '../src/signing.js';

const secret = 'wsk_test-secret';
const body = Buffer.from('{"hello":"world"}');
const now = 1_800_000_000;

function check(overrides: Partial<Parameters<typeof verifySignature>[0]> = {}) {
  const timestamp = String(now);
  return verifySignature({
    secret,
    timestamp,
    signature: signRequest(secret, timestamp, 'POST', '/api/functions/x/invoke?a=1', body),
    method: 'POST',
    path: '/api/functions/x/invoke?a=1',
    body,
    nowSeconds: now,
    ...overrides,
  });
}

test('the canonical string is timestamp.METHOD.path.sha256(body), signed with HMAC-SHA256 (what the README tells curl users)', () => {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  assert.equal(canonicalRequest('123', 'post', '/p?q=1', body), `123.POST./p?q=1.${bodyHash}`);
  assert.equal(signRequest(secret, '123', 'POST', '/p?q=1', body), createHmac('sha256', secret).update(`123.POST./p?q=1.${bodyHash}`).digest('hex'));
});

test('a correct signature passes; the client helper produces one', () => {
  assert.deepEqual(check(), { ok: true });
  const headers = signedHeaders({ keyId: 'wk_1', secret }, 'POST', '/api/functions/x/invoke?a=1', body, now - 10);
  assert.equal(headers['x-wharf-key-id'], 'wk_1');
  assert.deepEqual(check({ timestamp: headers['x-wharf-timestamp'], signature: headers['x-wharf-signature'] }), { ok: true });
});

test('anything changed after signing is refused: body, path, query, method, secret', () => {
  assert.equal(check({ body: Buffer.from('{"hello":"there"}') }).ok, false);
  assert.equal(check({ path: '/api/functions/y/invoke?a=1' }).ok, false);
  assert.equal(check({ path: '/api/functions/x/invoke?a=2' }).ok, false);
  assert.equal(check({ method: 'PUT' }).ok, false);
  assert.equal(check({ secret: 'wsk_other' }).ok, false);
});

test('missing, malformed, stale or future timestamps and signatures are refused', () => {
  assert.match(String((check({ signature: undefined }) as { reason: string }).reason), /x-wharf-signature/);
  assert.equal(check({ timestamp: undefined }).ok, false);
  assert.equal(check({ timestamp: 'yesterday' }).ok, false);
  assert.equal(check({ signature: 'not-hex' }).ok, false);
  assert.equal(check({ signature: 'ab'.repeat(31) }).ok, false);
  assert.equal(check({ nowSeconds: now + 301 }).ok, false, 'older than 5 minutes');
  assert.equal(check({ nowSeconds: now - 301 }).ok, false, 'more than 5 minutes ahead');
  assert.equal(check({ nowSeconds: now + 299 }).ok, true, 'within the window');
});

test('key secrets derive from the platform secret and the key id only', () => {
  const id = newKeyId();
  assert.match(id, /^wk_[0-9a-f]{24}$/);
  assert.equal(deriveKeySecret('platform', id), deriveKeySecret('platform', id));
  assert.notEqual(deriveKeySecret('platform', id), deriveKeySecret('platform', newKeyId()));
  assert.notEqual(deriveKeySecret('platform', id), deriveKeySecret('other platform', id));
  assert.ok(secretsEqual('a', 'a'));
  assert.ok(!secretsEqual('a', 'ab'));
});
