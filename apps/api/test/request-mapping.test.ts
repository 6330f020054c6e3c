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

test('bodies: JSON (incl. +json types) is parsed, anything else is text, broken JSON is a 400', () => {
  assert.deepEqual(decodeBody('application/json; charset=utf-8', Buffer.from('[1,2]')), [1, 2]);
  assert.deepEqual(decodeBody('application/merge-patch+json', Buffer.from('{"a":1}')), { a: 1 });
  assert.equal(decodeBody('text/plain', Buffer.from('{"a":1}')), '{"a":1}');
  assert.equal(decodeBody(undefined, Buffer.from('hi')), 'hi');
  assert.throws(() => decodeBody('application/json', Buffer.from('{nope')), (err: WharfError) => err.code === 'VALIDATION_FAILED');
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
