import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { WharfApiError, type WharfClient } from '@wharf/client';
import { InvocationChecker } from './helpers/checker.js';
import { packFixture } from './helpers/fixtures.js';
import { startTestRedis, type TestRedis } from './helpers/redis-server.js';
import { startStack, type App, type Stack } from './helpers/stack.js';

const PER_FUNCTION = 8;
const PER_USER = 12;
const SLOTS = 2;

/**
 * Faults that must lose nothing. The stack runs on a Redis of the test's own (the platform's
 * settings: AOF every second, noeviction), so that it can be stopped, killed and restarted.
 */
describe('faults: bounded queues, Redis down or restarted, PostgreSQL restarted — nothing accepted is lost', () => {
  let redis: TestRedis;
  let stack: Stack;
  let client: WharfClient;
  let counterId: string;
  let otherId: string;

  const apps: App[] = ['api', 'builder', 'runner'];
  const allAlive = () => apps.every((app) => stack.alive(app));

  async function deploy(name: string): Promise<string> {
    const fn = await client.initFunction(name);
    const { version } = await client.deploy(fn.id, await packFixture('counter'));
    assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
    return fn.id;
  }

  /** Accepted async invocations go to the checker; refusals are returned. */
  async function burst(checker: InvocationChecker, functionId: string, count: number, sleepMs: number): Promise<WharfApiError[]> {
    const outcomes = await Promise.all(
      Array.from({ length: count }, () => client.invokeAsync(functionId, { query: { sleep: String(sleepMs) } }).then((accepted) => checker.accepted(accepted.invocation_id), (err: unknown) => err)),
    );
    return outcomes.filter((outcome): outcome is WharfApiError => outcome instanceof WharfApiError);
  }

  /** The API takes calls again (its Redis connection retries with a backoff of up to 2 s). */
  async function serving(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((await client.invoke(counterId)).status !== 200) {
      assert.ok(Date.now() < deadline, 'the API did not take calls again');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  before(async () => {
    redis = await startTestRedis();
    stack = await startStack({
      env: {
        REDIS_URL: redis.url,
        WHARF_RUNNER_SLOTS: String(SLOTS),
        WHARF_MAX_QUEUED_PER_FUNCTION: String(PER_FUNCTION),
        WHARF_MAX_QUEUED_PER_USER: String(PER_USER),
        // The reconciler looks often, so that what Redis lost comes back within the test.
        WHARF_RECONCILE_INTERVAL_MS: '500',
        WHARF_RECONCILE_AFTER_MS: '3000',
      },
    });
    client = stack.client();
    await client.register(`faults-${stack.id}@example.test`, 'correct horse battery');
    counterId = await deploy('counter');
    otherId = await deploy('other');
  });

  after(async () => {
    await stack?.stop();
    await redis?.remove();
  });

  test('a burst of 10× capacity: 429 TOO_MANY_REQUESTS past each bound, nothing half-written, every accepted one runs once', async () => {
    const checker = new InvocationChecker();
    const before = (await client.listInvocations(counterId)).count;
    const refused = await burst(checker, counterId, 10 * (PER_FUNCTION + SLOTS), 400);
    assert.ok(refused.length > 0, 'some were refused');
    for (const err of refused) {
      assert.equal(err.status, 429);
      assert.equal(err.code, 'TOO_MANY_REQUESTS');
      assert.match(err.message, /function counter already has 8 invocations waiting to run/);
    }
    // Waiting ones are bounded; at most the runner's slots were started while the burst arrived.
    assert.ok(checker.count <= PER_FUNCTION + SLOTS, `${checker.count} accepted`);
    assert.equal((await client.listInvocations(counterId)).count - before, checker.count, 'a refused call leaves no record');
    const report = await checker.check(client);
    assert.deepEqual(report.lost, []);
    assert.deepEqual(report.statuses, { succeeded: checker.count });
    assert.equal(report.extraRuns, 0);

    // Once they have run, the function takes calls again.
    assert.equal((await client.invoke(counterId)).status, 200);
  });

  test('the per-user bound counts all of a user\'s functions together', async () => {
    const checker = new InvocationChecker();
    const [one, two] = await Promise.all([burst(checker, counterId, 20, 400), burst(checker, otherId, 20, 400)]);
    const refused = [...one, ...two];
    assert.ok(refused.some((err) => /your functions already have 12 invocations waiting/.test(err.message)), 'the user bound refused some');
    assert.ok(checker.count <= PER_USER + SLOTS, `${checker.count} accepted`);
    const report = await checker.check(client);
    assert.deepEqual(report.lost, []);
    assert.deepEqual(report.statuses, { succeeded: checker.count });
  });

  test('SIGTERM drains: an API answers the synchronous call in flight, a builder finishes its build, then each exits 0', async () => {
    const inFlight = client.invoke(counterId, { query: { sleep: '1500' } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const apiExit = stack.stopProcess('api', 'SIGTERM');
    const answered = await inFlight;
    assert.equal(answered.status, 200, answered.body);
    assert.equal(await apiExit, 0);
    await stack.startProcess('api');

    const { version } = await client.deploy(otherId, await packFixture('counter'));
    const log = async () => (await client.buildLog(otherId, version)).log;
    while (!/analysis/.test(await log())) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(await stack.stopProcess('builder', 'SIGTERM'), 0);
    const deployment = await client.waitForDeployment(otherId, version, { timeoutMs: 5000 });
    assert.equal(deployment.status, 'succeeded', 'finished by the builder that was told to stop');
    assert.match(await log(), /attempt 1\)[\s\S]*is active/);
    assert.doesNotMatch(await log(), /attempt 2/);
    await stack.startProcess('builder');
    assert.ok(allAlive());
  });

  test('Redis down when a request arrives: 503 QUEUE_UNAVAILABLE at once, nothing written', async () => {
    const before = (await client.listInvocations(counterId)).count;
    await redis.stop('SIGTERM');
    try {
      for (const call of [() => client.invokeAsync(counterId), async () => { const res = await client.invoke(counterId); throw new WharfApiError(res.status, res.json<any>().error.code, ''); }]) {
        const started = Date.now();
        await assert.rejects(call(), (err: WharfApiError) => err.status === 503 && err.code === 'QUEUE_UNAVAILABLE');
        assert.ok(Date.now() - started < 2000, `answered in ${Date.now() - started} ms`);
      }
      assert.equal((await client.listInvocations(counterId)).count, before, 'no record written');
    } finally {
      await redis.start();
    }
    assert.ok(allAlive(), 'no process died with Redis');
    await serving();
  });

  test('Redis killed and restarted mid-run: workers and the API carry on; every accepted invocation ends once', async () => {
    const checker = new InvocationChecker();
    assert.deepEqual(await burst(checker, counterId, 6, 1500), []);
    // Let some start; then a crash, which may lose the last second of writes.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.stop('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await redis.start();
    await serving();

    const report = await checker.check(client, 90_000);
    assert.deepEqual(report.lost, []);
    assert.equal(report.completed, 6);
    assert.deepEqual(report.statuses, { succeeded: 6 }, JSON.stringify(report));
    assert.ok(allAlive(), 'no process restarted');
  });

  test('PostgreSQL restarted mid-run: processes survive, and the outcomes are written once it is back', async () => {
    const checker = new InvocationChecker();
    assert.deepEqual(await burst(checker, counterId, 4, 1500), []);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const cluster = execFileSync('pg_lsclusters', ['-h']).toString().trim().split('\n')[0].split(/\s+/);
    execFileSync('pg_ctlcluster', [cluster[0], cluster[1], 'restart', '-m', 'fast']);

    const report = await checker.check(client, 90_000);
    assert.deepEqual(report.lost, []);
    assert.deepEqual(report.statuses, { succeeded: 4 }, JSON.stringify(report));
    assert.ok(allAlive(), 'no process died with PostgreSQL');
    assert.equal((await client.invoke(counterId)).status, 200);
  });
});
