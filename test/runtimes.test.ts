import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { packFunction, type WharfClient } from '@wharf/client';
import { LABELS, type FunctionRuntime } from '@wharf/shared';
import { exampleDir, fixtureDir } from './helpers/fixtures.js';
import { startStack, type Stack } from './helpers/stack.js';

interface Invocation {
  status: string;
  logs: Array<{ level: string; message: string }>;
}

describe('runtimes: custom programs on the runtime API, and isolated-files', () => {
  let stack: Stack;
  let client: WharfClient;

  async function deploy(name: string, dir: string, options: { runtime?: FunctionRuntime; env?: Record<string, string> } = {}) {
    const fn = await client.initFunction(name);
    const { version } = await client.deploy(fn.id, await packFunction(dir), options);
    return { id: fn.id, deployment: await client.waitForDeployment(fn.id, version) };
  }
  const recordOf = (res: { headers: Headers }) => client.getInvocation<Invocation>(res.headers.get('x-wharf-invocation-id')!);
  const messages = async (res: { headers: Headers }) => (await recordOf(res)).logs.map((entry) => entry.message);
  const containersOf = async (functionId: string) => (await stack.leftoverContainers()).filter((c) => c.Labels[LABELS.functionId] === functionId);

  before(async () => {
    stack = await startStack();
    client = stack.client();
    await client.register(`runtimes-${stack.id}@example.test`, 'correct horse battery');
  });

  after(async () => {
    await stack?.stop();
  });

  test('custom shell bootstrap: found in the archive, echoes the event, its output is the logs, /error is FUNCTION_ERROR', async () => {
    const { id, deployment } = await deploy('custom-shell', exampleDir('custom-shell'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    assert.equal(deployment.runtime, 'custom');
    assert.equal(deployment.handler, 'bootstrap');

    const res = await client.invoke(id, { body: { hello: 'world' }, query: { a: '1' } });
    assert.equal(res.status, 200, res.body);
    const event = res.json<Record<string, any>>();
    assert.deepEqual([event.method, event.body, event.query], ['POST', { hello: 'world' }, { a: '1' }]);
    const invocationId = res.headers.get('x-wharf-invocation-id')!;
    assert.equal(event.invocationId, invocationId);
    assert.ok((await messages(res)).includes(`handling ${invocationId}`), 'the line the program printed is in the invocation logs');

    const failed = await client.invoke(id, { query: { fail: '1' } });
    assert.equal(failed.status, 500, failed.body);
    assert.deepEqual(failed.json<any>().error, { code: 'FUNCTION_ERROR', message: 'EchoError: asked to fail' });
    assert.equal((await client.invoke(id, { body: 'again' })).status, 200, 'an error posted leaves the instance fit');
    assert.equal((await containersOf(id)).length, 1, 'warm: one instance served the three calls');

    await client.updateConfig(id, { mode: 'isolated' });
    const isolated = await client.invoke(id, { body: 'alone' });
    assert.equal(isolated.status, 200, isolated.body);
    assert.equal(isolated.json<any>().body, 'alone');
    assert.deepEqual(await containersOf(id), [], 'isolated: the instance served one call and went');
  });

  test('custom runtime: RUNTIME_* variables, request headers and the deployment variables reach the program', async () => {
    const { id, deployment } = await deploy('custom-env', fixtureDir('custom-env'), { env: { GREETING: 'hi' } });
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    await client.updateConfig(id, { timeout_ms: 4000, memory_mb: 96 });
    const before = Date.now();
    const res = await client.invoke(id);
    assert.equal(res.status, 200, res.body);
    const seen = res.json<Record<string, string>>();
    const invocationId = res.headers.get('x-wharf-invocation-id')!;
    assert.equal(seen.requestId, invocationId);
    assert.equal(seen.wharfRequestId, invocationId);
    assert.equal(seen.invokeType, 'RequestResponse');
    assert.ok(Number(seen.deadline) >= before + 4000 - 1000 && Number(seen.deadline) <= Date.now() + 4000, `deadline ${seen.deadline}`);
    assert.deepEqual(
      [seen.name, seen.version, seen.handler, seen.timeout, seen.memory, seen.codeRoot, seen.apiAddr, seen.greeting],
      ['custom-env', '1', 'bootstrap', '4000', '96', '/app', '127.0.0.1:9001', 'hi'],
    );
    assert.ok(Number(seen.cpu) > 0);
  });

  test('custom runtime: a compiled static binary as bootstrap', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-custom-c-'));
    try {
      await fs.copyFile(path.join(exampleDir('custom-c'), 'bootstrap.c'), path.join(dir, 'bootstrap.c'));
      await promisify(execFile)('cc', ['-static', '-O2', '-o', path.join(dir, 'bootstrap'), path.join(dir, 'bootstrap.c')]);
      const { id, deployment } = await deploy('custom-c', dir);
      assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
      assert.equal(deployment.runtime, 'custom');
      const res = await client.invoke(id, { body: { n: 1 } });
      assert.equal(res.status, 200, res.body);
      const answer = res.json<{ language: string; eventBytes: number }>();
      assert.equal(answer.language, 'c');
      assert.ok(answer.eventBytes > 20, `${answer.eventBytes} bytes of event`);
      assert.ok((await messages(res)).some((line) => line.startsWith(`handling ${res.headers.get('x-wharf-invocation-id')}`)));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  test('isolated-files: run reads input.json; output.json answers, out.log is the logs, error.json fails, no done is a crash', async () => {
    const { id, deployment } = await deploy('files', exampleDir('isolated-files'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    assert.equal(deployment.runtime, 'isolated-files');

    const res = await client.invoke(id, { body: { question: 6 * 7 } });
    assert.equal(res.status, 200, res.body);
    const answer = res.json<{ runtime: string; input: Record<string, any> }>();
    assert.equal(answer.runtime, 'isolated-files');
    assert.deepEqual(answer.input.body, { question: 42 });
    const logged = await messages(res);
    assert.match(logged[0], /^got \d+ bytes$/);
    assert.equal(logged[1], 'done');
    assert.deepEqual(await containersOf(id), [], 'a fresh container per call, removed');

    const failed = await client.invoke(id, { query: { fail: '1' } });
    assert.equal(failed.status, 500, failed.body);
    assert.deepEqual(failed.json<any>().error, { code: 'FUNCTION_ERROR', message: 'Refused: asked to fail' });

    const crashing = await deploy('files-no-done', fixtureDir('files-no-done'));
    assert.equal(crashing.deployment.status, 'succeeded', JSON.stringify(crashing.deployment.error));
    const crashed = await client.invoke(crashing.id);
    assert.equal(crashed.status, 502, crashed.body);
    assert.equal(crashed.json<any>().error.code, 'FUNCTION_CRASHED');
    assert.match(crashed.json<any>().error.message, /without creating done/);
  });

  test('a runtime named at deploy must find its entry: RUNTIME_ENTRY_MISSING otherwise', async () => {
    const wrong = await deploy('hello-as-custom', exampleDir('hello'), { runtime: 'custom' });
    assert.equal(wrong.deployment.status, 'failed');
    assert.equal(wrong.deployment.error?.code, 'RUNTIME_ENTRY_MISSING');
    const notNode = await deploy('shell-as-node', exampleDir('custom-shell'), { runtime: 'node' });
    assert.equal(notNode.deployment.status, 'failed');
    assert.equal(notNode.deployment.error?.code, 'NO_SOURCE_FILES');
    const asked = await deploy('shell-as-custom', exampleDir('custom-shell'), { runtime: 'custom' });
    assert.equal(asked.deployment.status, 'succeeded', JSON.stringify(asked.deployment.error));
  });
});
