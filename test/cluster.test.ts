import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { WharfClient } from '@wharf/client';
import { Redis } from 'ioredis';
import { LABELS, warmSlotsKey } from '@wharf/shared';
import { packExample, packFixture } from './helpers/fixtures.js';
import { startStack, type Stack } from './helpers/stack.js';
import { createNetNamespace, type NetNamespace } from './helpers/netns.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';

/** infra/hosts.sh starts these: a registry on loopback and engines 2 and 3 beside the main one. */
const REGISTRY = process.env.WHARF_TEST_REGISTRY ?? '127.0.0.1:5055';
const HOST_ENGINES = ['unix:///run/wharf-hosts/h2.sock', 'unix:///run/wharf-hosts/h3.sock'];
const HEARTBEAT_MS = 300;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Invocation {
  status: string;
  attempts: number;
  runner_id: string | null;
}

describe('several container hosts: images through a registry, runners advertised in Redis', () => {
  let stack: Stack;
  let client: WharfClient;
  let helloId: string;
  let imageTag: string;

  before(async () => {
    stack = await startStack({
      registry: REGISTRY,
      // A dead runner's jobs go back to the queue after the lock expires: 2 s here.
      // KEEP_VERSIONS 1: a new version retires the previous one's image, from the registry too.
      env: { WHARF_HEARTBEAT_MS: String(HEARTBEAT_MS), WHARF_RUNNER_SLOTS: '2', WHARF_RUNNER_LOCK_MS: '2000', WHARF_KEEP_VERSIONS: '1' },
      runners: [{}, ...HOST_ENGINES.map((dockerHost) => ({ dockerHost }))],
    });
    client = stack.client();
    await client.register(`cluster-${stack.id}@example.test`, 'correct horse battery');
    const fn = await client.initFunction('hello');
    helloId = fn.id;
    const { version } = await client.deploy(fn.id, await packExample('hello'));
    const deployment = await client.waitForDeployment(fn.id, version);
    assert.equal(deployment.status, 'succeeded');
    imageTag = deployment.image_tag!;
  });

  after(async () => {
    await stack?.stop();
  });

  test('GET /api/cluster lists every runner with its host, engine, slots and load', async () => {
    const cluster = await client.cluster();
    assert.deepEqual(
      cluster.runners.map((runner) => runner.id),
      [...stack.runnerIds].sort(),
    );
    const engines = Object.fromEntries(cluster.runners.map((runner) => [runner.id, runner.engine]));
    assert.equal(engines[stack.runnerIds[1]], HOST_ENGINES[0]);
    assert.equal(engines[stack.runnerIds[2]], HOST_ENGINES[1]);
    for (const runner of cluster.runners) {
      assert.equal(runner.slots, 2);
      assert.ok(Date.now() - Date.parse(runner.seen_at) < HEARTBEAT_MS * 3, `${runner.id} seen recently`);
    }
    assert.deepEqual({ runners: cluster.totals.runners, slots: cluster.totals.slots }, { runners: 3, slots: 6 });
  });

  test('the builder pushes to the registry; runners on other engines pull the image on first use', async () => {
    assert.ok(imageTag.startsWith(`${REGISTRY}/wharf-fn-${helloId}:v1`), imageTag);
    const tags = await (await fetch(`http://${REGISTRY}/v2/wharf-fn-${helloId}/tags/list`)).json();
    assert.deepEqual(tags, { name: `wharf-fn-${helloId}`, tags: ['v1'] });
    for (const engine of stack.engines.slice(1)) {
      await assert.rejects(engine.getImage(imageTag).inspect(), /no such image/i, 'not on the other hosts before any call');
    }

    // Isolated calls, more at once than one runner has slots: the queue spreads them over the hosts.
    await client.updateConfig(helloId, { mode: 'isolated' });
    const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => client.invokeAsync(helloId, { query: { name: `n${i}` } }).then((a) => a.invocation_id)));
    const records = await Promise.all(ids.map((id) => client.waitForInvocation<{ status: string; runner_id: string; response: { body: string } }>(id, { pollMs: 100 })));
    records.forEach((record, i) => {
      assert.equal(record.status, 'succeeded');
      assert.equal(JSON.parse(record.response.body).message, `Hello n${i}`);
    });
    const servedBy = new Set(records.map((record) => record.runner_id));
    assert.ok(servedBy.size >= 2, `served by ${[...servedBy].join(', ')}`);
    for (const [i, runnerId] of stack.runnerIds.entries()) {
      if (servedBy.has(runnerId)) await stack.engines[i].getImage(imageTag).inspect(); // pulled and kept
    }
    assert.deepEqual(await stack.leftoverContainers(), []);
  });

  test('a retired version leaves the registry as well as the engines', async () => {
    const { version } = await client.deploy(helloId, await packExample('hello'));
    assert.equal((await client.waitForDeployment(helloId, version)).status, 'succeeded');
    const tags = await (await fetch(`http://${REGISTRY}/v2/wharf-fn-${helloId}/tags/list`)).json();
    assert.deepEqual(tags, { name: `wharf-fn-${helloId}`, tags: [`v${version}`] });
    assert.equal((await client.invoke(helloId, { query: { name: 'again' } })).json<{ message: string }>().message, 'Hello again');
  });

  test('a runner killed mid-invocation: the job returns to the queue and completes on another host; the dead runner\'s container is reaped when it restarts', async () => {
    const fn = await client.initFunction('counter');
    const { version } = await client.deploy(fn.id, await packFixture('counter'));
    assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
    await client.updateConfig(fn.id, { mode: 'isolated', timeout_ms: 10_000 });

    const { invocation_id: id } = await client.invokeAsync(fn.id, { query: { sleep: '4000' } });
    let first: Invocation | undefined;
    const deadline = Date.now() + 20_000;
    while (!(first = await client.getInvocation<Invocation>(id)).runner_id) {
      assert.ok(Date.now() < deadline, 'it never started');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const victim = stack.runnerIds.indexOf(first.runner_id!);
    const app = victim === 0 ? 'runner' : (`runner-${victim + 1}` as const);
    // Its host may still be pulling the image: kill the runner once the function runs.
    const containerOf = () => stack.engines[victim].listContainers({ filters: { label: [`wharf.invocation-id=${id}`], status: ['running'] } });
    while ((await containerOf()).length === 0) {
      assert.ok(Date.now() < deadline, 'its container never ran');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await stack.stopProcess(app, 'SIGKILL');
    assert.equal((await containerOf()).length, 1, 'its container outlives it');

    const done = await client.waitForInvocation<Invocation>(id, { timeoutMs: 30_000, pollMs: 100 });
    assert.equal(done.status, 'succeeded');
    assert.equal(done.attempts, 2, 'run again once');
    assert.notEqual(done.runner_id, first.runner_id, 'by another runner');

    await stack.startProcess(app);
    assert.deepEqual(await stack.leftoverContainers(), [], 'the restarted runner removed what it left');
    const running = await client.listInvocations(fn.id, { status: 'running' });
    assert.equal(running.count, 0);
  });

  interface Counted {
    calls: number;
    instance: string;
  }
  let sticky: { id: string; version: number };
  let stickyRunner: string;

  const counted = async (options: { query?: Record<string, string> } = {}) => {
    const res = await client.invoke(sticky.id, options);
    assert.equal(res.status, 200, res.body);
    return { ...res.json<Counted>(), invocationId: res.headers.get('x-wharf-invocation-id')! };
  };
  const warmStats = async () => (await client.cluster()).totals;
  /** The heartbeats carry the counters: wait until they show at least what is expected. */
  const statsReach = async (hits: number, misses: number) => {
    const deadline = Date.now() + HEARTBEAT_MS * 5;
    let totals = await warmStats();
    while ((totals.warm_hits < hits || totals.warm_misses < misses) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_MS / 2));
      totals = await warmStats();
    }
    return totals;
  };

  test('warm affinity: calls of a function go to the runner where it is warm while that instance is free; busy, any runner takes them', async () => {
    const fn = await client.initFunction('sticky');
    const { version } = await client.deploy(fn.id, await packFixture('counter'));
    assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
    sticky = { id: fn.id, version };
    const before = await warmStats();

    // Sequential calls: with one shared queue the three runners would take turns (each starting
    // an instance of its own); routed, every call after the first lands on the first one's instance.
    const first = await counted();
    assert.equal(first.calls, 1);
    for (let call = 2; call <= 10; call++) {
      const next = await counted();
      assert.deepEqual({ calls: next.calls, instance: next.instance }, { calls: call, instance: first.instance }, `call ${call} went to the warm instance`);
    }
    stickyRunner = (await client.getInvocation<Invocation>(first.invocationId)).runner_id!;
    const totals = await statsReach(before.warm_hits + 9, before.warm_misses + 1);
    assert.deepEqual({ hits: totals.warm_hits - before.warm_hits, misses: totals.warm_misses - before.warm_misses }, { hits: 9, misses: 1 });

    // Its one slot busy, a call does not wait for it: another instance (on any runner) serves it.
    const slow = counted({ query: { sleep: '2000' } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    const meanwhile = await counted();
    assert.ok(Date.now() - started < 1500, `answered in ${Date.now() - started} ms, not after the busy one`);
    assert.notEqual(meanwhile.instance, first.instance);
    assert.equal((await slow).instance, first.instance);
  });

  test('a runner killed with a call routed to it: a peer hands the call back to the shared queue and another runner runs it', async () => {
    assert.ok(sticky && stickyRunner, 'after the affinity test');
    // Its instance is idle: its slot is on the list, and stays there when the runner dies without a word.
    const victim = stack.runnerIds.indexOf(stickyRunner);
    const app = victim === 0 ? 'runner' : (`runner-${victim + 1}` as const);
    await stack.stopProcess(app, 'SIGKILL');
    // Within three beats its heartbeat still stands, so the API sends the call to its queue.
    const { invocation_id: id } = await client.invokeAsync(sticky.id);
    const done = await client.waitForInvocation<Invocation>(id, { timeoutMs: 20_000, pollMs: 100 });
    assert.equal(done.status, 'succeeded');
    assert.notEqual(done.runner_id, stickyRunner);
    const logs = (await Promise.all(['runner', 'runner-2', 'runner-3'].map((name) => readFileSync(path.join(stack.logDir, `${name}.log`), 'utf8')))).join('');
    assert.ok(
      logs.split('\n').some((line) => line.includes(id) && line.includes('handed back to the shared queue')),
      'a peer handed the routed call back',
    );
    await stack.startProcess(app);
    const left = (await stack.leftoverContainers()).filter((container) => container.Labels[LABELS.runnerId] === stickyRunner);
    assert.deepEqual(left, [], 'the restarted runner removed its dead instance');
  });

  test('a runner stopped with SIGTERM takes its free warm slots back first: no call is routed to it afterwards', async () => {
    const redis = new Redis(stack.redisUrl);
    try {
      const first = await counted();
      const holder = (await client.getInvocation<Invocation>(first.invocationId)).runner_id!;
      const slots = () => redis.lrange(warmSlotsKey(stack.queuePrefix, sticky.id, sticky.version), 0, -1);
      const deadline = Date.now() + 2000;
      while (!(await slots()).includes(holder)) {
        assert.ok(Date.now() < deadline, 'the free slot was never advertised');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const victim = stack.runnerIds.indexOf(holder);
      const app = victim === 0 ? 'runner' : (`runner-${victim + 1}` as const);
      assert.equal(await stack.stopProcess(app, 'SIGTERM'), 0);
      assert.ok(!(await slots()).includes(holder), 'its slots are gone from the list');
      const next = await counted();
      assert.notEqual((await client.getInvocation<Invocation>(next.invocationId)).runner_id, holder);
      await stack.startProcess(app);
    } finally {
      await redis.quit();
    }
  });

  test('a runner that stops leaves the cluster list; a runner that comes back rejoins it', async () => {
    await stack.stopProcess('runner-3', 'SIGTERM');
    const after = await client.cluster();
    assert.deepEqual(after.runners.map((r) => r.id), stack.runnerIds.slice(0, 2).sort());
    await stack.startProcess('runner-3');
    assert.equal((await client.cluster()).totals.runners, 3);

    // A killed runner cannot say goodbye: it drops out once three beats are missed.
    await stack.stopProcess('runner-3', 'SIGKILL');
    const deadline = Date.now() + HEARTBEAT_MS * 3 + 2000;
    while ((await client.cluster()).totals.runners !== 2) {
      assert.ok(Date.now() < deadline, 'the killed runner is still listed');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
});

describe('a Docker engine restarted under its runner', () => {
  let stack: Stack;
  let client: WharfClient;
  const engine = HOST_ENGINES[0];
  const pidFile = '/run/wharf-hosts/h2.pid';

  before(async () => {
    stack = await startStack({ registry: REGISTRY, env: { WHARF_RUNNER_LOCK_MS: '2000' }, runners: [{ dockerHost: engine }] });
    client = stack.client();
    await client.register(`engine-${stack.id}@example.test`, 'correct horse battery');
  });

  after(async () => {
    await stack?.stop();
  });

  for (const [mode, signal] of [['isolated', 'SIGKILL'], ['warm', 'SIGKILL'], ['isolated', 'SIGTERM'], ['warm', 'SIGTERM']] as const) {
    test(`${mode}, engine ${signal === 'SIGKILL' ? 'killed' : 'stopped'} (${signal}): the invocation in flight fails with a retryable code (or is retried); no container is left; the next call runs`, async () => {
      const fn = await client.initFunction(`counter-${mode}`);
      const { version } = await client.deploy(fn.id, await packFixture('counter'));
      assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
      await client.updateConfig(fn.id, { mode, timeout_ms: 10_000 });
      assert.equal((await client.invoke(fn.id)).status, 200, 'the image is on the host');

      const { invocation_id: id } = await client.invokeAsync(fn.id, { query: { sleep: '3000' } });
      const deadline = Date.now() + 10_000;
      const inContainer = async () =>
        mode === 'warm' || (await stack.engines[0].listContainers({ filters: { label: [`wharf.invocation-id=${id}`], status: ['running'] } })).length === 1;
      while ((await client.getInvocation<Invocation>(id)).status !== 'running' || !(await inContainer())) {
        assert.ok(Date.now() < deadline, 'it never ran');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // A crash of the engine, or a stop (it stops its containers first); started again as infra/hosts.sh starts it, once it is gone.
      const pid = Number(readFileSync(pidFile, 'utf8'));
      process.kill(pid, signal);
      while (alive(pid)) await new Promise((resolve) => setTimeout(resolve, 20));
      execFileSync('bash', [path.join(import.meta.dirname, '..', 'infra', 'hosts.sh')], { stdio: 'ignore' });

      const done = await client.waitForInvocation<Invocation & { error?: { code: string } }>(id, { timeoutMs: 30_000, pollMs: 100 });
      assert.ok(done.status === 'succeeded' || done.error?.code === 'RUNNER_ERROR', JSON.stringify(done));
      const leftovers = async () => (await stack.leftoverContainers()).filter((c) => c.Labels['wharf.function-id'] === fn.id && c.State !== 'running');
      const cleared = Date.now() + 15_000;
      while ((await leftovers()).length > 0) {
        assert.ok(Date.now() < cleared, 'a container was left behind');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const next = await client.invoke(fn.id);
      assert.equal(next.status, 200, next.body);
      assert.equal(stack.alive('runner'), true);
    });
  }
});

describe('a runner in a network namespace of its own, as on another machine', () => {
  let ns: NetNamespace;
  let redis: TestRedis;
  let stack: Stack;
  let client: WharfClient;

  before(async () => {
    ns = createNetNamespace();
    redis = await startTestRedis({ alsoBind: [ns.hostAddress] });
    stack = await startStack({
      registry: REGISTRY,
      env: { REDIS_URL: redis.url },
      // It reaches Redis over its link to this machine, and its engine through the engine's socket; nothing else.
      runners: [{ dockerHost: HOST_ENGINES[1], netns: ns.name, env: { REDIS_URL: `redis://${ns.hostAddress}:${redis.port}` } }],
    });
    client = stack.client();
    await client.register(`netns-${stack.id}@example.test`, 'correct horse battery');
  });

  after(async () => {
    await stack?.stop();
    await redis?.remove();
    ns?.remove();
  });

  test("it shares no loopback with the rest and needs none: Redis over its link, images from the registry, both modes run", async () => {
    // Inside, 127.0.0.1 is the namespace's own: the Redis every other process uses is not there.
    const probe = `require('net').connect(${redis.port}, '127.0.0.1').on('connect', () => process.exit(0)).on('error', (e) => { console.log(e.code); process.exit(1); })`;
    const inside = spawnSync('ip', ['netns', 'exec', ns.name, process.execPath, '-e', probe], { encoding: 'utf8' });
    assert.equal(inside.status, 1);
    assert.match(inside.stdout, /ECONNREFUSED/);

    const fn = await client.initFunction('hello');
    const { version } = await client.deploy(fn.id, await packExample('hello'));
    assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
    for (const mode of ['warm', 'isolated'] as const) {
      await client.updateConfig(fn.id, { mode });
      const res = await client.invoke(fn.id, { query: { name: mode } });
      assert.equal(res.status, 200, res.body);
      assert.equal(res.json<{ message: string }>().message, `Hello ${mode}`);
      const record = await client.getInvocation<Invocation>(res.headers.get('x-wharf-invocation-id')!);
      assert.equal(record.runner_id, stack.runnerId);
    }
    assert.deepEqual((await client.cluster()).runners.map((runner) => runner.id), [stack.runnerId]);
  });
});
