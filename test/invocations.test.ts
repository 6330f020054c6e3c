import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { WharfApiError, type WharfClient } from '@wharf/client';
import { createPool } from '@wharf/db';
import { createLogger } from '@wharf/shared';
import { SIGNING_HEADERS, signRequest, signedHeaders } from '@wharf/shared/signing';
import { pruneInvocations } from '../apps/api/src/invocations-store.js';
import { packFixture } from './helpers/fixtures.js';
import { LABELS } from '@wharf/shared';
import { startStack, type Stack } from './helpers/stack.js';

const TIMEOUT_MS = 3000;
const MB = 1024 * 1024;

interface Invocation {
  id: string;
  status: string;
  attempts: number;
  response?: { statusCode: number; body: string };
  error?: { code: string; message: string };
  logs: Array<{ message: string }>;
  logs_truncated: boolean;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('invocation plane: trigger URLs, async invocations, durable records, isolation', () => {
  let stack: Stack;
  let client: WharfClient;
  const fns: Record<string, string> = {};

  async function deploy(name: string, fixture = name): Promise<string> {
    const fn = await client.initFunction(name);
    const { version } = await client.deploy(fn.id, await packFixture(fixture));
    const deployment = await client.waitForDeployment(fn.id, version);
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    return fn.id;
  }

  const invocation = (id: string) => client.getInvocation<Invocation>(id);
  const containersOf = async (functionId: string) => (await stack.leftoverContainers()).filter((c) => c.Labels[LABELS.functionId] === functionId);
  const finished = (id: string) => client.waitForInvocation<Invocation>(id, { timeoutMs: 30_000 });
  const running = (id: string) => until(`${id} to run`, async () => ((await invocation(id)).status === 'running' ? true : undefined));
  const fn = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}/fn/${path}`, init);
  const bearer = () => ({ authorization: `Bearer ${client.token}` });

  before(async () => {
    stack = await startStack({
      env: {
        WHARF_FUNCTION_TIMEOUT_MS: String(TIMEOUT_MS),
        WHARF_QUEUE_ALLOWANCE_MS: '1000',
        WHARF_RUNNER_SLOTS: '2',
        WHARF_RECONCILE_INTERVAL_MS: '300',
        WHARF_RECONCILE_AFTER_MS: '1000',
        WHARF_RUNNER_LOCK_MS: '2000',
      },
    });
    client = stack.client();
    await client.register(`invocations-${stack.id}@example.test`, 'correct horse battery');
    for (const name of ['echo-bytes', 'probe', 'slow', 'hostile']) fns[name] = await deploy(name);
    // Long enough to be caught running, queued behind, or cancelled. Isolated: these tests follow
    // one container per invocation (warm instances' cancellation and loss are in warm.test.ts).
    await client.updateConfig(fns.slow, { timeout_ms: 15_000, mode: 'isolated' });
    fns['hostile-warm'] = await deploy('hostile-warm', 'hostile');
  });

  after(async () => {
    await stack?.stop();
  });

  test('/fn/<name>/<path>: method, path, query, headers and JSON or text body reach the function', async () => {
    const get = await fn('echo-bytes/orders/42?describe=1&x=y', { headers: { ...bearer(), 'x-trace': 't1' } });
    assert.equal(get.status, 200);
    const seen = (await get.json()) as Record<string, any>;
    assert.equal(seen.method, 'GET');
    assert.equal(seen.path, '/orders/42');
    assert.deepEqual(seen.query, { describe: '1', x: 'y' });
    assert.equal(seen.headers['x-trace'], 't1');
    assert.equal(seen.headers.authorization, undefined);
    assert.equal(seen.body, undefined);

    const post = await fn('echo-bytes?describe=1', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: '{"n":[1,2]}' });
    const posted = (await post.json()) as Record<string, any>;
    assert.equal(posted.method, 'POST');
    assert.equal(posted.path, '/');
    assert.deepEqual(posted.body, { n: [1, 2] });
    assert.equal(posted.isBase64Encoded, false);

    const put = await fn('echo-bytes/notes?describe=1', { method: 'PUT', headers: { ...bearer(), 'content-type': 'text/plain' }, body: 'some words' });
    assert.deepEqual([(await put.json() as any).method, ((await fn('echo-bytes?describe=1', { method: 'DELETE', headers: bearer() })).status)], ['PUT', 200]);
  });

  test('binary bodies go in as base64 and come back as the same bytes', async () => {
    const bytes = randomBytes(64 * 1024);
    const res = await fn('echo-bytes/upload', { method: 'POST', headers: { ...bearer(), 'content-type': 'image/png' }, body: bytes });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.equal(res.headers.get('x-was-base64'), 'true');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes), 'the bytes came back unchanged');
  });

  test('/fn auth: a token, a signed API key, or nothing once the function is public; public names are unique', async () => {
    assert.equal((await fn('echo-bytes')).status, 401);
    assert.equal((await fn('no-such-function', { headers: bearer() })).status, 404);

    const key = await client.createApiKey(fns['echo-bytes']);
    const target = '/fn/echo-bytes/signed?describe=1';
    const signed = await fetch(`${stack.baseUrl}${target}`, { headers: signedHeaders({ keyId: key.key_id, secret: key.secret }, 'GET', target, new Uint8Array()) });
    assert.equal(signed.status, 200);
    assert.equal(((await signed.json()) as any).path, '/signed');
    const tampered = await fetch(`${stack.baseUrl}/fn/echo-bytes/other?describe=1`, { headers: signedHeaders({ keyId: key.key_id, secret: key.secret }, 'GET', target, new Uint8Array()) });
    assert.equal(((await tampered.json()) as any).error.code, 'INVALID_SIGNATURE');

    const made = await client.updateConfig(fns['echo-bytes'], { public: true });
    assert.equal(made.public, true);
    const open = await fn('echo-bytes/hello?describe=1');
    assert.equal(open.status, 200);
    assert.equal(((await open.json()) as any).path, '/hello');

    const other = stack.client();
    await other.register(`public-${stack.id}@example.test`, 'another password');
    const twin = await other.initFunction('echo-bytes');
    await assert.rejects(other.updateConfig(twin.id, { public: true }), (err: WharfApiError) => err.status === 409 && err.code === 'PUBLIC_NAME_TAKEN');
    await client.updateConfig(fns['echo-bytes'], { public: false });
    assert.equal((await fn('echo-bytes')).status, 401);
  });

  test('async invoke answers 202 at once; polling shows it finish with its response, logs and attempts', async () => {
    const accepted = await client.invokeAsync(fns.probe, { body: { hello: 'async' } });
    assert.equal(accepted.status, 'queued');
    assert.equal(accepted.status_url, `/api/invocations/${accepted.invocation_id}`);
    const done = await finished(accepted.invocation_id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.attempts, 1);
    assert.equal(done.response?.statusCode, 201);
    assert.deepEqual(JSON.parse(done.response!.body).request.body, { hello: 'async' });
    assert.equal(done.logs[0].message, 'probing');
    assert.ok(done.started_at && done.finished_at && done.duration_ms !== null);
    await assert.rejects(client.getInvocation('00000000-0000-4000-8000-000000000000'), (err: WharfApiError) => err.code === 'INVOCATION_NOT_FOUND');
  });

  test('the same Idempotency-Key returns the first invocation and never runs it twice', async () => {
    const key = `order-${stack.id}`;
    const first = await client.invokeAsync(fns.probe, { idempotencyKey: key });
    const again = await fetch(`${stack.baseUrl}/api/functions/${fns.probe}/invoke-async`, { method: 'POST', headers: { ...bearer(), 'idempotency-key': key } });
    assert.equal(again.status, 202);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(((await again.json()) as any).invocation_id, first.invocation_id);
    await finished(first.invocation_id);
    const third = await client.invokeAsync(fns.probe, { idempotencyKey: key });
    assert.equal(third.invocation_id, first.invocation_id);
    assert.equal(third.status, 'succeeded');
    // Keys are per function.
    assert.notEqual((await client.invokeAsync(fns['echo-bytes'], { idempotencyKey: key })).invocation_id, first.invocation_id);
  });

  test('cancelling a queued invocation means it never runs; cancelling a running one kills its container', async () => {
    // Both runner slots busy, so the third waits in the queue.
    const busy = await Promise.all([1, 2].map(() => client.invokeAsync(fns.slow, { query: { ms: '2500' } })));
    await Promise.all(busy.map((b) => running(b.invocation_id)));
    const queued = await client.invokeAsync(fns.probe);
    const cancelled = await client.cancelInvocation<Invocation>(queued.invocation_id);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.error?.code, 'INVOCATION_CANCELLED');
    await Promise.all(busy.map((b) => finished(b.invocation_id)));
    await sleep(500);
    const after = await invocation(queued.invocation_id);
    assert.equal(after.status, 'cancelled');
    assert.equal(after.started_at, null, 'it never started');
    assert.equal(after.attempts, 0);

    const long = await client.invokeAsync(fns.slow, { query: { ms: '10000' } });
    await running(long.invocation_id);
    const started = Date.now();
    assert.equal((await client.cancelInvocation<Invocation>(long.invocation_id)).status, 'cancelled');
    await until('the container to be killed', async () => ((await containersOf(fns.slow)).length === 0 ? true : undefined), 5000);
    assert.ok(Date.now() - started < 5000, 'killed well before its 10 s sleep ended');
    await sleep(300);
    assert.equal((await invocation(long.invocation_id)).status, 'cancelled', 'what the runner reported afterwards did not replace it');

    await assert.rejects(client.cancelInvocation(long.invocation_id), (err: WharfApiError) => err.status === 409 && err.code === 'INVOCATION_FINISHED');
  });

  test('callback_url receives the final record, retried after a failure, signed with the function key', async () => {
    const key = await client.createApiKey(fns.probe);
    const deliveries: Array<{ path: string; headers: http.IncomingHttpHeaders; body: Buffer }> = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        deliveries.push({ path: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
        // The first delivery fails: the second, after backoff, must come.
        res.writeHead(deliveries.length === 1 ? 503 : 204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const callbackUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/wharf?src=test`;
      const accepted = await client.invokeAsync(fns.probe, { callbackUrl, query: { callback_url: 'the header wins' } });
      await until('two deliveries', async () => (deliveries.length >= 2 ? true : undefined), 15_000);
      const [, second] = deliveries;
      assert.equal(second.path, '/hooks/wharf?src=test');
      assert.equal(second.headers['x-wharf-delivery-attempt'], '2');
      const record = JSON.parse(second.body.toString()) as Invocation;
      assert.equal(record.id, accepted.invocation_id);
      assert.equal(record.status, 'succeeded');
      assert.equal(second.headers[SIGNING_HEADERS.keyId], key.key_id);
      const expected = signRequest(key.secret, String(second.headers[SIGNING_HEADERS.timestamp]), 'POST', second.path, second.body);
      assert.equal(second.headers[SIGNING_HEADERS.signature], expected);
      await sleep(300);
      assert.equal(deliveries.length, 2, 'a delivered callback is not sent again');
    } finally {
      server.close();
      await client.revokeApiKey(fns.probe, key.key_id);
    }
    for (const url of ['ftp://127.0.0.1/x', 'not a url']) {
      const bad = await fetch(`${stack.baseUrl}/api/functions/${fns.probe}/invoke-async?callback_url=${encodeURIComponent(url)}`, { method: 'POST', headers: bearer() });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as any).error.code, 'VALIDATION_FAILED');
    }
  });

  test('a synchronous caller gets 504 past its deadline; the record still receives the outcome', async () => {
    // Both slots busy for longer than probe's 3 s limit plus the 1 s queueing allowance.
    const busy = await Promise.all([1, 2].map(() => client.invokeAsync(fns.slow, { query: { ms: '5000' } })));
    await Promise.all(busy.map((b) => running(b.invocation_id)));
    const res = await client.invoke(fns.probe);
    assert.equal(res.status, 504);
    assert.equal(res.json<any>().error.code, 'FUNCTION_TIMEOUT');
    const id = res.headers.get('x-wharf-invocation-id')!;
    const done = await finished(id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
  });

  test('an API killed while async invocations run loses none of them', async () => {
    const inFlight = await Promise.all([1, 2].map(() => client.invokeAsync(fns.slow, { query: { ms: '2000' } })));
    const queuedBehind = await client.invokeAsync(fns.probe);
    await Promise.all(inFlight.map((b) => running(b.invocation_id)));
    await stack.stopProcess('api', 'SIGKILL');
    await sleep(3000); // they finish while no API process is listening
    await stack.startProcess('api');
    for (const { invocation_id } of [...inFlight, queuedBehind]) {
      const done = await finished(invocation_id);
      assert.equal(done.status, 'succeeded', JSON.stringify(done));
    }
  });

  test('a runner killed mid-invocation: its successor removes what it left, and the invocation runs again', async () => {
    const accepted = await client.invokeAsync(fns.slow, { query: { ms: '3000' } });
    const firstRun = (c: { Names: string[] }) => c.Names.some((name) => name.endsWith(`${accepted.invocation_id}-1`));
    // Its record turns `running` just before the container exists: wait for the container itself.
    await until('the first container', async () => ((await stack.leftoverContainers()).some(firstRun) ? true : undefined));
    await stack.stopProcess('runner', 'SIGKILL');
    assert.equal((await stack.leftoverContainers()).filter(firstRun).length, 1, 'the killed runner left its container running');
    await stack.startProcess('runner');
    assert.deepEqual((await stack.leftoverContainers()).filter(firstRun), [], 'removed before the new runner took work');
    const done = await finished(accepted.invocation_id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.attempts, 2);
  });

  test('a job Redis lost is enqueued again by the reconciler and runs once', async () => {
    await stack.stopProcess('runner', 'SIGTERM');
    const accepted = await client.invokeAsync(fns.probe);
    const redis = new Redis(stack.redisUrl);
    try {
      const prefix = `${stack.queuePrefix}:invoke`;
      assert.equal(await redis.lrem(`${prefix}:wait`, 0, accepted.invocation_id), 1);
      await redis.del(`${prefix}:${accepted.invocation_id}`);
    } finally {
      redis.disconnect();
    }
    await stack.startProcess('runner');
    const done = await finished(accepted.invocation_id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.attempts, 1);
    assert.match(await fs.readFile(path.join(stack.logDir, 'api.log'), 'utf8'), /enqueued it again/);
  });

  for (const mode of ['isolated', 'warm'] as const) {
    test(`${mode}: each hostile function ends with its code, and leaves no container or folder behind`, async () => {
      const hostile = mode === 'isolated' ? fns.hostile : fns['hostile-warm'];
      await client.updateConfig(hostile, { mode });
      await hostileChecks(hostile, mode);
    });
  }

  /** The sandbox's limits, attack by attack. Warm: one instance takes them all, and the fork bomb's children outlive its call, so it goes last. */
  async function hostileChecks(hostile: string, mode: 'isolated' | 'warm') {
    const attack = (name: string) => client.invoke(hostile, { query: { try: name } });
    if (mode === 'isolated') {
      const bomb = await attack('fork-bomb');
      assert.equal(bomb.status, 200, bomb.body);
      assert.equal(bomb.json<any>().refused, 'EAGAIN', 'the PID limit refused more processes');
    }

    const stdout = await attack('stdout');
    assert.equal(stdout.status, 200, stdout.body);

    const tmp = await attack('fill-tmp');
    assert.equal(tmp.status, 200, tmp.body);
    assert.equal(tmp.json<any>().refused, 'ENOSPC');
    assert.ok(tmp.json<any>().writtenMb <= 16);

    const symlink = await attack('symlink-result');
    assert.equal(symlink.status, 200, symlink.body);
    const tries = symlink.json<Record<string, string>>();
    assert.match(tries.unlink, mode === 'isolated' ? /^(EROFS|EBUSY)$/ : /^(EROFS|ENOENT)$/);
    assert.match(tries.rename, mode === 'isolated' ? /^(EROFS|EBUSY)$/ : /^(EROFS|ENOENT)$/);
    assert.equal(tries.symlinkBeside, 'EROFS');
    assert.doesNotMatch(symlink.body, /root:/);

    const big = await attack('big-result');
    assert.equal(big.status, 502);
    assert.equal(big.json<any>().error.code, 'RESULT_TOO_LARGE');

    const logs = await attack('big-logs');
    assert.equal(logs.status, 200, logs.body);
    const record = await invocation(logs.headers.get('x-wharf-invocation-id')!);
    assert.equal(record.logs_truncated, true);
    assert.ok(record.logs.length > 100 && record.logs.length < 3 * 1024, `${record.logs.length} entries kept`);

    if (mode === 'warm') {
      // On a fresh instance (a config change retires the old one: /tmp is still full), whose
      // memory the bomb's idle children then use up: refused by the PID limit, or the instance is
      // killed for memory and discarded; the next call gets a fresh one either way.
      await client.updateConfig(hostile, { memory_mb: 256 });
      const bomb = await attack('fork-bomb');
      if (bomb.status === 200) assert.equal(bomb.json<any>().refused, 'EAGAIN', 'the PID limit refused more processes');
      else assert.equal(bomb.json<any>().error.code, 'FUNCTION_OOM', bomb.body);
      assert.equal((await attack('stdout')).status, 200);
      // A config change retires the function's instances at once, children and all.
      await client.updateConfig(hostile, { mode: 'isolated' });
      await until('the warm instance to stop', async () => ((await containersOf(hostile)).length === 0 ? true : undefined), 10_000);
    }
    assert.deepEqual(await containersOf(hostile), []);
    const functionsDir = path.join(stack.logDir, 'functions');
    // Only the folders of the other functions' live warm instances remain.
    const live = new Set((await stack.leftoverContainers()).flatMap((c) => c.Names.map((name) => name.slice(1))));
    const leftovers = (await fs.readdir(functionsDir, { recursive: true })).filter((entry) => path.basename(entry).startsWith('wharf-') && !live.has(path.basename(entry)));
    assert.deepEqual(leftovers, []);
  }

  test('an oversized request is refused with 413 before it is run or recorded', async () => {
    const before = (await client.listInvocations(fns['echo-bytes'])).count;
    const res = await fn('echo-bytes', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/octet-stream' }, body: Buffer.alloc(7 * MB) });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as any).error.code, 'PAYLOAD_TOO_LARGE');
    assert.equal((await client.listInvocations(fns['echo-bytes'])).count, before);
  });

  test('invocations list by status in pages; logs since a time; records past retention are pruned', async () => {
    const since = new Date().toISOString();
    await sleep(20);
    const res = await client.invoke(fns.probe);
    const newest = res.headers.get('x-wharf-invocation-id')!;
    const cancelledOnes = await client.listInvocations(fns.probe, { status: 'cancelled' });
    assert.ok(cancelledOnes.count >= 1);
    assert.ok(cancelledOnes.invocations.every((i) => i.status === 'cancelled'));
    const page = await client.listInvocations(fns.probe, { per_page: 2, page: 1 });
    assert.equal(page.invocations.length, 2);
    assert.equal(page.invocations[0].id, newest);
    await assert.rejects(client.listInvocations(fns.probe, { status: 'exploded' }), (err: WharfApiError) => err.status === 400);

    const logs = await client.logs(fns.probe, { since });
    assert.deepEqual(logs.invocations.map((i) => i.invocation_id), [newest]);
    await assert.rejects(client.logs(fns.probe, { since: 'yesterday-ish' }), (err: WharfApiError) => err.status === 400);

    const pool = createPool(stack.databaseUrl, createLogger('test', 'silent'));
    try {
      await pool.query(`UPDATE invocations SET finished_at = now() - interval '73 hours' WHERE id = $1`, [newest]);
      assert.ok((await pruneInvocations(pool, 72, 24)) >= 1);
      await assert.rejects(invocation(newest), (err: WharfApiError) => err.code === 'INVOCATION_NOT_FOUND');
      assert.ok((await client.listInvocations(fns.probe)).count > 0, 'younger records stay');
    } finally {
      await pool.end();
    }
  });
});
