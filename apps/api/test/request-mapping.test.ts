import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Request } from 'express';
import { WharfError } from '@wharf/shared';
import { decodeBody, responseHeaders, toCloudRequest } from '../src/request-mapping.js';

function fakeRequest(fields: { headers: Record<string, string | string[]>; query?: Record<string, unknown>; body?: unknown }): Request {
  return {
    method: 'POST',
    headers: fields.headers,
    query: fields.query ?? {},
    body: fields.body,
    get: (name: string) => fields.headers[name.toLowerCase()],
  } as unknown as Request;
}

test('the caller\'s credentials never reach the function; repeated values are joined', () => {
  const mapped = toCloudRequest(
    fakeRequest({
      headers: {
        authorization: 'Bearer secret',
        cookie: 'session=1',
        'x-wharf-api-key': 'wsk_secret',
        'x-trace': 'abc',
        'x-multi': ['a', 'b'],
        'content-type': 'application/json',
      },
      query: { tag: ['x', 'y'], q: 'z' },
    }),
    Buffer.from('{"ok":true}'),
  );
  assert.equal(mapped.headers.authorization, undefined);
  assert.equal(mapped.headers.cookie, undefined);
  assert.equal(mapped.headers['x-wharf-api-key'], undefined);
  assert.equal(mapped.headers['x-trace'], 'abc');
  assert.equal(mapped.headers['x-multi'], 'a, b');
  assert.deepEqual(mapped.query, { tag: 'x,y', q: 'z' });
  assert.deepEqual(mapped.body, { ok: true });
  assert.equal(mapped.path, '/');
});

test('a request without a body reads as an undefined body, not {}', () => {
  assert.equal(toCloudRequest(fakeRequest({ headers: {} }), Buffer.alloc(0)).body, undefined);
});

test('bodies: JSON (incl. +json types) is parsed, text types are text, bytes are base64, broken JSON is a 400', () => {
  const text = (body: unknown) => ({ body, isBase64Encoded: false });
  assert.deepEqual(decodeBody('application/json; charset=utf-8', Buffer.from('[1,2]')), text([1, 2]));
  assert.deepEqual(decodeBody('application/merge-patch+json', Buffer.from('{"a":1}')), text({ a: 1 }));
  assert.deepEqual(decodeBody('text/plain', Buffer.from('{"a":1}')), text('{"a":1}'));
  assert.deepEqual(decodeBody('application/x-www-form-urlencoded', Buffer.from('a=1')), text('a=1'));
  assert.deepEqual(decodeBody('application/soap+xml', Buffer.from('<a/>')), text('<a/>'));
  assert.deepEqual(decodeBody(undefined, Buffer.from('hi')), text('hi'));
  const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe]);
  assert.deepEqual(decodeBody('application/octet-stream', bytes), { body: bytes.toString('base64'), isBase64Encoded: true });
  assert.deepEqual(decodeBody('image/png', Buffer.from('looks like text')), { body: Buffer.from('looks like text').toString('base64'), isBase64Encoded: true });
  assert.deepEqual(decodeBody(undefined, bytes), { body: bytes.toString('base64'), isBase64Encoded: true });
  assert.throws(() => decodeBody('application/json', Buffer.from('{nope')), (err: WharfError) => err.code === 'VALIDATION_FAILED');
});

test('Wharf\'s own instructions (callback_url) are not passed to the function', () => {
  const mapped = toCloudRequest(
    fakeRequest({ headers: { 'x-wharf-callback-url': 'http://127.0.0.1:1/cb' }, query: { callback_url: 'http://127.0.0.1:1/cb', keep: '1' } }),
    Buffer.alloc(0),
  );
  assert.deepEqual(mapped.query, { keep: '1' });
  assert.equal(mapped.headers['x-wharf-callback-url'], undefined);
});

test('connection-level and malformed response headers are dropped', () => {
  assert.deepEqual(
    responseHeaders({
      'content-type': 'text/plain',
      'Content-Length': '999',
      'transfer-encoding': 'chunked',
      'x-split': 'a\r\nset-cookie: injected=1',
      'bad name': 'x',
      'x-fine': 'yes',
    }),
    { 'content-type': 'text/plain', 'x-fine': 'yes' },
  );
});
