import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { WharfClient } from '@wharf/client';
import { LABELS } from '@wharf/shared';
import { packFixture } from './helpers/fixtures.js';
import { startStack, type Stack } from './helpers/stack.js';

const TIMEOUT_MS = 3000;
const IDLE_MS = 1500;

interface Count {
  calls: number;
  instance: string;
  version: string | null;
}

describe('warm instances: reused between invocations, discarded when unfit, retired when the function changes', () => {
  let stack: Stack;
  let client: WharfClient;
  let counterId: string;

  async function deploy(name: string, fixture = name): Promise<string> {
    const fn = await client.initFunction(name);
    const { version } = await client.deploy(fn.id, await packFixture(fixture));
    assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
    await client.updateConfig(fn.id, { mode: 'warm' });
    return fn.id;
  }

  const count = async (query: Record<string, string> = {}) => {
    const res = await client.invoke(counterId, { query });
    assert.equal(res.status, 200, res.body);
    return res.json<Count>();
  };
  const containersOf = async (functionId: string) =>
    (await stack.leftoverContainers()).filter((c) => c.Labels[LABELS.functionId] === functionId);
  const until = async (what: string, probe: () => Promise<boolean>, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  before(async () => {
    stack = await startStack({ env: { WHARF_FUNCTION_TIMEOUT_MS: String(TIMEOUT_MS), WHARF_WARM_IDLE_MS: String(IDLE_MS) } });
    client = stack.client();
    await client.register(`warm-${stack.id}@example.test`, 'correct horse battery');
    counterId = await deploy('counter');
  });

  after(async () => {
    await stack?.stop();
  });

  test('one instance serves consecutive calls: module state and the constructed class survive', async () => {
    const first = await count();
    const second = await count();
    assert.equal(second.instance, first.instance);
    assert.equal(second.calls, first.calls + 1);
    assert.equal((await containersOf(counterId)).length, 1);
  });

  test('a thrown error is FUNCTION_ERROR and keeps the instance; a crash or a timeout discards it', async () => {
    const before = await count();
    const threw = await client.invoke(counterId, { query: { throw: '1' } });
    assert.equal(threw.status, 500);
    assert.equal(threw.json<any>().error.code, 'FUNCTION_ERROR');
    assert.equal((await count()).instance, before.instance, 'still the same instance');

    const crashed = await client.invoke(counterId, { query: { crash: '1' } });
    assert.equal(crashed.status, 502);
    assert.equal(crashed.json<any>().error.code, 'FUNCTION_CRASHED');
    const afterCrash = await count();
    assert.notEqual(afterCrash.instance, before.instance);
    assert.equal(afterCrash.calls, 1);

    const slow = await client.invoke(counterId, { query: { sleep: String(TIMEOUT_MS + 2000) } });
    assert.equal(slow.status, 504);
    assert.equal(slow.json<any>().error.code, 'FUNCTION_TIMEOUT');
    const afterTimeout = await count();
    assert.notEqual(afterTimeout.instance, afterCrash.instance);
    assert.equal(afterTimeout.calls, 1);
    await until('one container', async () => (await containersOf(counterId)).length === 1);
  });

  test('a new deployment, a rollback and a config change each retire the old instance at once, before any call', async () => {
    const v1 = await count();
    const { version } = await client.deploy(counterId, await packFixture('counter'));
    assert.equal((await client.waitForDeployment(counterId, version)).status, 'succeeded');
    await until('the old version\'s instance to go, with no call', async () => (await containersOf(counterId)).length === 0);
    const v2 = await count();
    assert.equal(v2.version, String(version));
    assert.notEqual(v2.instance, v1.instance);
    assert.equal(v2.calls, 1);

    await client.rollback(counterId, version - 1);
    await until('the rolled-back-from instance to go, with no call', async () => (await containersOf(counterId)).length === 0);
    const rolledBack = await count();
    assert.equal(rolledBack.version, String(version - 1));
    assert.notEqual(rolledBack.instance, v2.instance);

    await client.updateConfig(counterId, { memory_mb: 192 });
    await until('the reconfigured instance to go, with no call', async () => (await containersOf(counterId)).length === 0);
    const reconfigured = await count();
    assert.notEqual(reconfigured.instance, rolledBack.instance);
    assert.equal((await containersOf(counterId)).length, 1);

    await client.updateConfig(counterId, { mode: 'isolated' });
    const isolated = [await count(), await count()];
    assert.deepEqual(isolated.map((c) => c.calls), [1, 1], 'isolated: a fresh process each call');
    await client.updateConfig(counterId, { mode: 'warm' });
  });

  test('concurrency 2: one instance takes two invocations at once', async () => {
    await client.updateConfig(counterId, { concurrency: 2 });
    const both = await Promise.all([count({ sleep: '1500' }), count({ sleep: '1500' })]);
    assert.equal(both[0].instance, both[1].instance, 'the second call joined the first one\'s instance');
    // The counter is read after the sleep: both saw 2 only if both were inside handle() together.
    assert.deepEqual(both.map((c) => c.calls), [2, 2], 'the two calls overlapped');
    assert.equal((await containersOf(counterId)).length, 1);
    await client.updateConfig(counterId, { concurrency: 1 });
  });

  test('min_instances: started ahead of any call, kept past the idle time, started again for a new version, stopped once it is 0 again', async () => {
    await until('no instance', async () => (await containersOf(counterId)).length === 0, 10_000);
    await client.updateConfig(counterId, { min_instances: 1 });
    await until('a reserved instance, with no call', async () => (await containersOf(counterId)).length === 1);
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 3));
    assert.equal((await containersOf(counterId)).length, 1, 'kept though idle');
    const served = await count();
    assert.equal(served.calls, 1, 'the reserved instance served the first call');

    const { version } = await client.deploy(counterId, await packFixture('counter'));
    assert.equal((await client.waitForDeployment(counterId, version)).status, 'succeeded');
    await until('the new version reserved, with no call', async () => {
      const containers = await containersOf(counterId);
      return containers.length === 1 && containers[0].Labels[LABELS.version] === String(version);
    });
    assert.equal((await count()).calls, 1, 'the new version\'s reserved instance served its first call');
    await client.updateConfig(counterId, { min_instances: 0 });
  });

  test('an idle instance is stopped after WHARF_WARM_IDLE_MS', async () => {
    await count();
    assert.equal((await containersOf(counterId)).length, 1);
    await until('the idle instance to stop', async () => (await containersOf(counterId)).length === 0, IDLE_MS + 10_000);
  });

  test('the sandbox holds in warm mode too', async () => {
    const probeId = await deploy('probe');
    const res = await client.invoke(probeId, { body: { answer: 42 }, headers: { 'x-custom': 'kept' } });
    assert.equal(res.status, 201, res.body);
    const seen = res.json<Record<string, any>>();
    assert.deepEqual(seen.request.body, { answer: 42 });
    assert.equal(seen.request.headers.authorization, undefined);
    assert.equal(seen.uid, 10001);
    assert.equal(seen.writeRoot, 'EROFS');
    assert.equal(seen.writeWorkDir, 'EROFS');
    assert.equal(seen.writeTmp, 'ok');
    assert.deepEqual(seen.networkInterfaces, ['lo']);
    assert.match(seen.dnsLookup, /^(EAI_AGAIN|ENOTFOUND|ECONNREFUSED|ENETUNREACH)$/);
    assert.equal(seen.pid1, '/sbin/docker-init');
    assert.equal(seen.limits['Max open files'], '1024');

    const hogId = await deploy('memory-hog');
    const hog = await client.invoke(hogId);
    assert.equal(hog.status, 502);
    assert.equal(hog.json<any>().error.code, 'FUNCTION_OOM');
    await until('the killed instance to be removed', async () => (await containersOf(hogId)).length === 0);
  });

  test('cancelling a running warm invocation kills its instance', async () => {
    const accepted = await client.invokeAsync(counterId, { query: { sleep: '2500' } });
    await until('it to run', async () => (await client.getInvocation<{ status: string }>(accepted.invocation_id)).status === 'running');
    assert.equal((await client.cancelInvocation<{ status: string }>(accepted.invocation_id)).status, 'cancelled');
    await until('its instance to go', async () => (await containersOf(counterId)).length === 0, 5000);
    assert.equal((await count()).calls, 1, 'the next call starts a fresh instance');
  });
});
