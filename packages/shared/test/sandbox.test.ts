import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resultFromError, resultFromOutput } from '../src/sandbox.js';

test('a program output with a statusCode is the response itself; headers lower-cased, an object body serialised', () => {
  assert.deepEqual(resultFromOutput('{"statusCode":201,"headers":{"X-A":1},"body":{"ok":true}}'), {
    statusCode: 201,
    headers: { 'x-a': '1' },
    body: '{"ok":true}',
  });
  assert.deepEqual(resultFromOutput('{"statusCode":200,"body":"aGk=","isBase64Encoded":true}'), {
    statusCode: 200,
    headers: {},
    body: 'aGk=',
    isBase64Encoded: true,
  });
});

test('other JSON is a 200 JSON body; anything else a 200 body of the given type', () => {
  assert.deepEqual(resultFromOutput('{"statusCode":"nope","a":1}'), { statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{"statusCode":"nope","a":1}' });
  assert.deepEqual(resultFromOutput('[1,2]'), { statusCode: 200, headers: { 'content-type': 'application/json' }, body: '[1,2]' });
  assert.deepEqual(resultFromOutput('plain words', 'text/csv'), { statusCode: 200, headers: { 'content-type': 'text/csv' }, body: 'plain words' });
  assert.equal(resultFromOutput('').headers['content-type'], 'text/plain; charset=utf-8');
});

test('a reported failure is FUNCTION_ERROR "type: message"', () => {
  const result = resultFromError('EchoError', 'asked to fail');
  assert.equal(result.statusCode, 500);
  assert.deepEqual(result.error, { code: 'FUNCTION_ERROR', message: 'EchoError: asked to fail' });
  assert.deepEqual(JSON.parse(result.body), { error: result.error });
});
