import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SANDBOX_FILES, formatEnvConfig, parseLogLines, type LogEntry, type SandboxRequest } from '@wharf/shared';
import { CloudFunction, CloudResponse, type CloudRequest, type FunctionContext } from '../src/index.js';
import { invokeFunction, runFunction } from '../src/runtime.js';

const request: SandboxRequest = {
  method: 'POST',
  path: '/',
  headers: { 'content-type': 'application/json' },
  query: { name: 'Ada' },
  body: { n: 2 },
  invocationId: 'inv-1',
  deadline: Date.now() + 5000,
};

class Doubler extends CloudFunction {
  async handle(req: CloudRequest, ctx: FunctionContext) {
    ctx.logger.info('doubling', { n: (req.body as { n: number }).n });
    return CloudResponse.json({ doubled: (req.body as { n: number }).n * 2, who: req.query.name, env: ctx.env.GREETING, id: ctx.invocationId });
  }
}

test('CloudResponse helpers set status, content type and body', () => {
  assert.deepEqual({ ...CloudResponse.json({ a: 1 }, 201) }, { statusCode: 201, headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
  assert.equal(CloudResponse.text('hi').headers['content-type'], 'text/plain; charset=utf-8');
  assert.deepEqual({ ...CloudResponse.status(204) }, { statusCode: 204, headers: {}, body: '' });
  assert.equal(CloudResponse.text('x').withHeader('X-Trace', '1').headers['x-trace'], '1');
});

test('invokeFunction runs handle with the request, variables and a logger', async () => {
  const logs: LogEntry[] = [];
  const result = await invokeFunction(Doubler, request, { GREETING: 'hi' }, logs);
  assert.equal(result.statusCode, 200);
  assert.deepEqual(JSON.parse(result.body), { doubled: 4, who: 'Ada', env: 'hi', id: 'inv-1' });
  assert.equal(logs.length, 1);
  assert.equal(logs[0].message, 'doubling');
  assert.deepEqual(logs[0].data, { n: 2 });
});

test('an exception becomes a 500 FUNCTION_ERROR result, and is logged', async () => {
  class Broken extends CloudFunction {
    handle(): CloudResponse {
      throw new TypeError('no such thing');
    }
  }
  const logs: LogEntry[] = [];
  const result = await invokeFunction(Broken, request, {}, logs);
  assert.equal(result.statusCode, 500);
  assert.deepEqual(result.error, { code: 'FUNCTION_ERROR', message: 'no such thing' });
  assert.deepEqual(JSON.parse(result.body), { error: { code: 'FUNCTION_ERROR', message: 'no such thing' } });
  assert.equal(logs.at(-1)?.level, 'error');
});

test('returning something other than a CloudResponse is a function error', async () => {
  class Sloppy extends CloudFunction {
    handle() {
      return { statusCode: 200 } as unknown as CloudResponse;
    }
  }
  const result = await invokeFunction(Sloppy, request, {}, []);
  assert.match(result.error?.message ?? '', /must return a CloudResponse/);
});

test('runFunction reads request.json and .env.config, writes result.json and its logs', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-sdk-test-'));
  try {
    await fs.writeFile(path.join(dir, SANDBOX_FILES.request), JSON.stringify(request));
    await fs.writeFile(path.join(dir, SANDBOX_FILES.envConfig), formatEnvConfig({ GREETING: 'ahoy' }));
    await runFunction(Doubler, dir);
    const result = JSON.parse(await fs.readFile(path.join(dir, SANDBOX_FILES.result), 'utf8'));
    assert.equal(JSON.parse(result.body).env, 'ahoy');
    const logs = parseLogLines(await fs.readFile(path.join(dir, SANDBOX_FILES.logs), 'utf8')) as Array<{ message: string }>;
    assert.equal(logs[0].message, 'doubling');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
