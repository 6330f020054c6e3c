import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WharfApiError, type WharfClient } from '@wharf/client';
import { LABELS } from '@wharf/shared';
import { packExample, packFixture } from './helpers/fixtures.js';
import { startStack, type Stack } from './helpers/stack.js';

const TIMEOUT_MS = 3000;

/** Deploys an archive and waits for the build to end (active or failed). */
async function deployAndWait(client: WharfClient, name: string, archive: Buffer, env?: Record<string, string>) {
  const fn = await client.initFunction(name);
  const accepted = await client.deploy(fn.id, archive, { env });
  assert.equal(accepted.status, 'building');
  const deployment = await client.waitForDeployment(fn.id, accepted.version);
  return { fn, deployment };
}

describe('walking skeleton: deploy and invoke through real Redis, PostgreSQL and Docker', () => {
  let stack: Stack;
  let client: WharfClient;

  before(async () => {
    stack = await startStack({ env: { WHARF_FUNCTION_TIMEOUT_MS: String(TIMEOUT_MS) } });
    client = stack.client();
    await client.register(`e2e-${stack.id}@example.test`, 'correct horse battery');
  });

  after(async () => {
    await stack?.stop();
  });

  test('health is open; every other API route wants a token', async () => {
    assert.equal((await fetch(`${stack.baseUrl}/health`)).status, 200);
    const anonymous = stack.client();
    await assert.rejects(anonymous.initFunction('nope'), (err: WharfApiError) => err.status === 401 && err.code === 'UNAUTHENTICATED');
    anonymous.token = 'wharf_not-a-real-token';
    await assert.rejects(anonymous.getFunction('00000000-0000-4000-8000-000000000000'), (err: WharfApiError) => err.status === 401);
    const res = await fetch(`${stack.baseUrl}/api/functions/00000000-0000-4000-8000-000000000000/invoke`, { method: 'POST' });
    assert.equal(res.status, 401);
    assert.deepEqual(Object.keys((await res.json()).error).sort(), ['code', 'message']);
  });

  test('register refuses a taken email; login returns a working token', async () => {
    const email = `login-${stack.id}@example.test`;
    await stack.client().register(email, 'a long password');
    await assert.rejects(stack.client().register(email, 'another password'), (err: WharfApiError) => err.code === 'EMAIL_TAKEN');
    await assert.rejects(stack.client().login(email, 'wrong password!'), (err: WharfApiError) => err.code === 'INVALID_CREDENTIALS');
    const other = stack.client();
    await other.login(email, 'a long password');
    assert.equal((await other.initFunction('mine')).status, 'init');
  });

  test('init creates a function once; the same name again says already_exists', async () => {
    const first = await client.initFunction('twice');
    assert.equal(first.status, 'init');
    assert.equal(first.already_exists, undefined);
    const second = await client.initFunction('twice');
    assert.equal(second.already_exists, true);
    assert.equal(second.id, first.id);
    await assert.rejects(client.initFunction('Not Valid'), (err: WharfApiError) => err.status === 400 && err.code === 'INVALID_NAME');
  });

  test('examples/hello deploys, becomes active, answers, and its log is recorded', async () => {
    const { fn, deployment } = await deployAndWait(client, 'hello', await packExample('hello'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    assert.equal(deployment.image_tag, `wharf-fn-${fn.id}:v1`);
    const info = await client.getFunction(fn.id);
    assert.equal(info.status, 'active');
    assert.equal(info.active_version, 1);

    const res = await client.invoke(fn.id);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { message: 'Hello world' });
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.ok(Number(res.headers.get('x-wharf-duration-ms')) > 0);

    const named = await client.invoke(fn.id, { query: { name: 'Ada' } });
    assert.deepEqual(named.json(), { message: 'Hello Ada' });

    const invocationId = named.headers.get('x-wharf-invocation-id')!;
    const record = await client.getInvocation<{ status: string; version: number; duration_ms: number; logs: Array<{ level: string; message: string; data?: unknown; timestamp: string }> }>(invocationId);
    assert.equal(record.status, 'succeeded');
    assert.equal(record.version, 1);
    assert.ok(record.duration_ms > 0);
    assert.equal(record.logs.length, 1);
    assert.equal(record.logs[0].level, 'info');
    assert.equal(record.logs[0].message, 'greeting');
    assert.deepEqual(record.logs[0].data, { name: 'Ada' });
    assert.ok(!Number.isNaN(Date.parse(record.logs[0].timestamp)));
  });

  test('a redeploy serves the new version; a failed redeploy leaves the previous one serving', async () => {
    const fn = await client.initFunction('redeployed');
    const v1 = await deployAndWait(client, 'redeployed', await packExample('hello'));
    assert.equal(v1.deployment.version, 1);
    const v2 = await deployAndWait(client, 'redeployed', await packFixture('probe'), { GREETING: 'v2' });
    assert.equal(v2.deployment.version, 2);
    assert.equal(v2.deployment.status, 'succeeded');
    assert.equal((await client.getFunction(fn.id)).active_version, 2);
    assert.equal((await client.invoke(fn.id)).json<{ env: { GREETING: string } }>().env.GREETING, 'v2');

    const v3 = await deployAndWait(client, 'redeployed', await packFixture('syntax-error'));
    assert.equal(v3.deployment.version, 3);
    assert.equal(v3.deployment.status, 'failed');
    assert.equal(v3.deployment.error?.code, 'TYPECHECK_FAILED');
    assert.match(v3.deployment.error?.message ?? '', /index\.ts:6/);
    const after = await client.getFunction(fn.id);
    assert.equal(after.status, 'active');
    assert.equal(after.active_version, 2);
    assert.equal((await client.invoke(fn.id)).status, 201);
  });

  test('an archive without a @cloudFunction class fails its deployment with that reason', async () => {
    const { fn, deployment } = await deployAndWait(client, 'no-class', await packFixture('no-function-class'));
    assert.equal(deployment.status, 'failed');
    assert.equal(deployment.error?.code, 'NO_FUNCTION_CLASS');
    assert.match(deployment.error?.message ?? '', /@cloudFunction/);
    assert.equal((await client.getFunction(fn.id)).status, 'failed');
    const res = await client.invoke(fn.id);
    assert.equal(res.status, 409);
    assert.equal(res.json<{ error: { code: string } }>().error.code, 'NOT_DEPLOYED');
  });

  test('a function that throws answers 500 FUNCTION_ERROR and keeps its logs', async () => {
    const { fn, deployment } = await deployAndWait(client, 'thrower', await packFixture('throws'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    const res = await client.invoke(fn.id);
    assert.equal(res.status, 500);
    const body = res.json<{ error: { code: string; message: string } }>();
    assert.equal(body.error.code, 'FUNCTION_ERROR');
    assert.match(body.error.message, /boom/);
    const record = await client.getInvocation<{ status: string; logs: Array<{ message: string }> }>(res.headers.get('x-wharf-invocation-id')!);
    assert.equal(record.status, 'failed');
    assert.deepEqual(record.logs.map((l) => l.message), ['about to fail', 'function threw']);
  });

  test('a function that never returns answers 504 within its timeout and leaves no container', async () => {
    const { fn, deployment } = await deployAndWait(client, 'spinner', await packFixture('infinite-loop'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    const started = Date.now();
    const res = await client.invoke(fn.id);
    const elapsed = Date.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.json<{ error: { code: string } }>().error.code, 'FUNCTION_TIMEOUT');
    assert.ok(elapsed >= TIMEOUT_MS, `answered after ${elapsed} ms, before the ${TIMEOUT_MS} ms limit`);
    assert.ok(elapsed < TIMEOUT_MS + 5000, `answered after ${elapsed} ms`);
    const record = await client.getInvocation<{ status: string }>(res.headers.get('x-wharf-invocation-id')!);
    assert.equal(record.status, 'timed_out');
    // Warm (the default): the instance that overran is discarded, never reused.
    assert.deepEqual((await stack.leftoverContainers()).filter((c) => c.Labels[LABELS.functionId] === fn.id), []);
  });

  test('a function that outgrows its memory limit is killed and answers 502 FUNCTION_OOM', async () => {
    const { fn, deployment } = await deployAndWait(client, 'hog', await packFixture('memory-hog'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    const res = await client.invoke(fn.id);
    assert.equal(res.status, 502, res.body);
    assert.equal(res.json<{ error: { code: string } }>().error.code, 'FUNCTION_OOM');
  });

  test('the function gets the request and its variables, inside a sandbox it cannot leave', async () => {
    const { fn, deployment } = await deployAndWait(client, 'probe', await packFixture('probe'), { GREETING: 'ahoy' });
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    const res = await client.invoke(fn.id, { body: { answer: 42 }, query: { q: 'x' }, headers: { 'x-custom': 'kept' } });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-probe'), 'yes');
    const seen = res.json<Record<string, any>>();
    assert.equal(seen.request.method, 'POST');
    assert.deepEqual(seen.request.body, { answer: 42 });
    assert.deepEqual(seen.request.query, { q: 'x' });
    assert.equal(seen.request.headers['x-custom'], 'kept');
    assert.equal(seen.request.headers.authorization, undefined, 'the caller\'s token must not reach the function');
    assert.deepEqual(seen.env, { GREETING: 'ahoy', WHARF_RESTRICTED: 'true', FUNCTION_TIMEOUT_MS: String(TIMEOUT_MS) });
    assert.equal(seen.uid, 10001);
    assert.equal(seen.cwd, '/work');
    assert.equal(seen.deadlineInFuture, true);
    assert.equal(seen.writeRoot, 'EROFS');
    assert.equal(seen.writeWorkDir, 'EROFS', 'the shared folder is read-only but for the two outputs');
    assert.equal(seen.writeTmp, 'ok');
    assert.deepEqual(seen.networkInterfaces, ['lo']);
    assert.match(seen.dnsLookup, /^(EAI_AGAIN|ENOTFOUND|ECONNREFUSED|ENETUNREACH)$/);
    assert.equal(seen.pid1, '/sbin/docker-init', 'an init reaps what the function leaves behind');
    assert.equal(seen.limits['Max open files'], '1024');
    assert.equal(seen.limits['Max file size'], String(6 * 1024 * 1024 + 1));

    const text = await client.invoke(fn.id, { body: 'plain words' });
    assert.equal(text.json<Record<string, any>>().request.body, 'plain words');
  });

  test('bad requests get a 4xx with a stable code and change nothing', async () => {
    const unknown = await client.invoke('00000000-0000-4000-8000-000000000000');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json<{ error: { code: string } }>().error.code, 'FUNCTION_NOT_FOUND');

    const fn = await client.initFunction('undeployed');
    const notDeployed = await client.invoke(fn.id);
    assert.equal(notDeployed.status, 409);
    assert.equal(notDeployed.json<{ error: { code: string } }>().error.code, 'NOT_DEPLOYED');

    await assert.rejects(client.deploy(fn.id, Buffer.from('not a tarball')), (err: WharfApiError) => err.code === 'ARCHIVE_INVALID');
    await assert.rejects(client.deploy(fn.id, await packExample('hello'), { env: { WHARF_RESTRICTED: 'false' } }), (err: WharfApiError) => err.code === 'VALIDATION_FAILED');
    const form = new FormData();
    form.set('function_id', fn.id);
    await assert.rejects(client.request('POST', '/api/functions/deploy', form), (err: WharfApiError) => err.code === 'ARCHIVE_MISSING');
    const after = await client.getFunction(fn.id);
    assert.equal(after.status, 'init');
    assert.equal(after.active_version, null);
    await assert.rejects(client.getDeployment(fn.id, 1), (err: WharfApiError) => err.code === 'DEPLOYMENT_NOT_FOUND');
  });

  test('a runner told to stop finishes the invocation it is running, then exits cleanly', async () => {
    const { fn, deployment } = await deployAndWait(client, 'slow', await packFixture('slow'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    const inFlight = client.invoke(fn.id, { query: { ms: '1500' } });
    const deadline = Date.now() + 10_000;
    while (!(await stack.leftoverContainers()).some((c) => c.Labels[LABELS.functionId] === fn.id)) {
      assert.ok(Date.now() < deadline, 'the invocation never started');
      await new Promise((r) => setTimeout(r, 25));
    }
    const exitCode = stack.stopProcess('runner', 'SIGTERM');
    const res = await inFlight;
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json(), { sleptMs: 1500 });
    assert.equal(await exitCode, 0);

    await stack.startProcess('runner');
    const again = await client.invoke(fn.id, { query: { ms: '1' } });
    assert.equal(again.status, 200);
  });

  test('no function container is left behind: none of an invocation, and warm instances stop with their runner', async () => {
    assert.deepEqual((await stack.leftoverContainers()).filter((c) => c.Labels[LABELS.invocationId]), []);
    assert.equal(await stack.stopProcess('runner', 'SIGTERM'), 0);
    assert.deepEqual(await stack.leftoverContainers(), []);
  });
});
