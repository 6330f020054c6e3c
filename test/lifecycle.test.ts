import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { WharfApiError, type WharfClient } from '@wharf/client';
import { createPool } from '@wharf/db';
import { MAINTENANCE_JOBS, createLogger } from '@wharf/shared';
import { signedHeaders } from '@wharf/shared/signing';
import { reapDueDeletions } from '../apps/api/src/deletion-reaper.js';
import { maintenanceSchedulers } from '../apps/api/src/maintenance.js';
import { packFixture } from './helpers/fixtures.js';
import { startStack, type Stack } from './helpers/stack.js';

const DAY_MS = 24 * 3600 * 1000;

type ProbeBody = { env: Record<string, string | undefined>; request: { headers: Record<string, string>; body: unknown } };

const rejectsWith = (status: number, code: string) => (err: unknown) => {
  assert.ok(err instanceof WharfApiError, String(err));
  assert.equal(err.code, code, err.message);
  assert.equal(err.status, status);
  return true;
};

/** Deploys the probe fixture with GREETING set, so that each version answers differently. */
async function deployProbe(client: WharfClient, functionId: string, greeting: string) {
  const accepted = await client.deploy(functionId, await packFixture('probe'), { env: { GREETING: greeting } });
  return client.waitForDeployment(functionId, accepted.version);
}

async function greetingOf(client: WharfClient, functionId: string): Promise<string | undefined> {
  const res = await client.invoke(functionId);
  assert.equal(res.status, 201, res.body);
  return res.json<ProbeBody>().env.GREETING;
}

describe('control plane: lifecycle, deletion, API keys and signing', () => {
  let stack: Stack;
  let client: WharfClient;
  let other: WharfClient;
  let db: pg.Client;
  let probeId: string;

  before(async () => {
    stack = await startStack({ env: { WHARF_IMAGE_SWEEP_INTERVAL_MS: '300', WHARF_DELETION_REAPER_INTERVAL_MS: '300', WHARF_MAX_TIMEOUT_MS: '60000' } });
    client = stack.client();
    await client.register(`owner-${stack.id}@example.test`, 'correct horse battery');
    other = stack.client();
    await other.register(`other-${stack.id}@example.test`, 'correct horse battery');
    db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    probeId = (await client.initFunction('probe')).id;
  });

  after(async () => {
    await db?.end();
    await stack?.stop();
  });

  test('init answers 201 for a new name and 200 already_exists after; names are unique per user, not globally', async () => {
    const created = await client.request<Record<string, unknown>>('POST', '/api/functions/init', { name: 'greeter', skip_signing: true });
    assert.equal(created.message, 'Function initialized successfully');
    assert.equal(created.name, 'greeter');
    assert.equal(created.status, 'init');
    assert.equal(created.skip_signing, true);
    assert.ok(created.id && created.created_at);

    const again = await client.request<Record<string, unknown>>('POST', '/api/functions/init', { name: 'greeter' });
    assert.equal(again.message, 'Function already exists');
    assert.equal(again.already_exists, true);
    assert.equal(again.id, created.id);
    assert.equal(again.deployment_version, null);

    const theirs = await other.initFunction('greeter');
    assert.equal(theirs.already_exists, undefined);
    assert.notEqual(theirs.id, created.id);

    await assert.rejects(client.request('POST', '/api/functions/init', { name: 'x', skip_signing: 'yes' }), rejectsWith(400, 'VALIDATION_FAILED'));
    const names = (await client.listFunctions()).map((f) => f.name);
    assert.deepEqual(names, ['greeter', 'probe']);
    assert.deepEqual((await other.listFunctions()).map((f) => f.name), ['greeter']);
  });

  test('versions count up through failures, list newest first in pages, and a failed redeploy leaves the previous version serving', async () => {
    assert.equal((await deployProbe(client, probeId, 'one')).status, 'succeeded');
    assert.equal((await deployProbe(client, probeId, 'two')).status, 'succeeded');
    const broken = await client.deploy(probeId, await packFixture('no-function-class'));
    const failed = await client.waitForDeployment(probeId, broken.version);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.version, 3);
    assert.equal(failed.error?.code, 'NO_FUNCTION_CLASS');

    const fn = await client.getFunction(probeId);
    assert.equal(fn.status, 'active');
    assert.equal(fn.active_version, 2);
    assert.equal(fn.latest_version, 3);
    assert.equal(await greetingOf(client, probeId), 'two');

    const all = await client.listDeployments(probeId);
    assert.equal(all.function_uuid, probeId);
    assert.equal(all.function_name, 'probe');
    assert.equal(all.function_status, 'active');
    assert.deepEqual([all.page, all.per_page, all.count, all.total_pages, all.has_next], [1, 20, 3, 1, false]);
    assert.deepEqual(all.deployments.map((d) => [d.version, d.status, d.is_active]), [[3, 'failed', false], [2, 'succeeded', true], [1, 'succeeded', false]]);
    assert.equal(all.deployments[0].error?.code, 'NO_FUNCTION_CLASS');
    assert.equal(all.deployments[1].error, undefined);
    assert.equal(all.deployments[1].image_tag, `wharf-fn-${probeId}:v2`);
    assert.ok(all.deployments[1].deployed_at);
    assert.equal(all.deployments[0].deployed_at, null);

    const first = await client.listDeployments(probeId, { perPage: 2 });
    assert.deepEqual([first.total_pages, first.has_next, first.deployments.map((d) => d.version)], [2, true, [3, 2]]);
    const second = await client.listDeployments(probeId, { page: 2, perPage: 2 });
    assert.deepEqual([second.has_next, second.deployments.map((d) => d.version)], [false, [1]]);

    for (const query of ['per_page=0', 'per_page=101', 'page=0', 'page=abc']) {
      await assert.rejects(client.request('GET', `/api/functions/${probeId}/deployments?${query}`), rejectsWith(400, 'VALIDATION_FAILED'));
    }
  });

  test('rollback switches what the next invocation runs; only a successful build may serve', async () => {
    const rolled = await client.rollback(probeId, 1);
    assert.equal(rolled.function.active_version, 1);
    assert.equal(rolled.previous_version, 2);
    assert.equal(await greetingOf(client, probeId), 'one');
    const page = await client.listDeployments(probeId);
    assert.deepEqual(page.deployments.filter((d) => d.is_active).map((d) => d.version), [1]);

    await assert.rejects(client.rollback(probeId, 3), rejectsWith(409, 'VERSION_NOT_DEPLOYABLE'));
    await assert.rejects(client.rollback(probeId, 99), rejectsWith(404, 'DEPLOYMENT_NOT_FOUND'));
    await assert.rejects(client.request('POST', `/api/functions/${probeId}/rollback`, { version: 'two' }), rejectsWith(400, 'VALIDATION_FAILED'));
    assert.equal((await client.getFunction(probeId)).active_version, 1, 'refused rollbacks change nothing');

    await client.rollback(probeId, 2);
    assert.equal(await greetingOf(client, probeId), 'two');
  });

  test('per-function config applies from the next call, within the platform maxima', async () => {
    for (const bad of [{ timeout_ms: 60_001 }, { memory_mb: 4096 }, { memory_mb: 8 }, { cpus: 64 }, { timeout_ms: 1.5 }, { env: { WHARF_X: '1' } }, { colour: 'red' }, { mode: 'lukewarm' }, { concurrency: 0 }, { concurrency: 33 }, { min_instances: -1 }, { min_instances: 9 }]) {
      await assert.rejects(client.updateConfig(probeId, bad as never), rejectsWith(400, 'VALIDATION_FAILED'), JSON.stringify(bad));
    }
    assert.deepEqual((await client.getFunction(probeId)).config, { mode: 'warm', concurrency: 1, min_instances: 0, timeout_ms: null, memory_mb: null, cpus: null, env_keys: [] });

    const updated = await client.updateConfig(probeId, { timeout_ms: 2500, memory_mb: 192, cpus: 0.25, env: { GREETING: 'configured' } });
    assert.deepEqual(updated.config, { mode: 'warm', concurrency: 1, min_instances: 0, timeout_ms: 2500, memory_mb: 192, cpus: 0.25, env_keys: ['GREETING'] });
    const res = await client.invoke(probeId);
    const env = res.json<ProbeBody>().env;
    assert.equal(env.GREETING, 'configured', 'function-level variables win over the deployment\'s');
    assert.equal(env.FUNCTION_TIMEOUT_MS, '2500');

    const reset = await client.updateConfig(probeId, { timeout_ms: null, memory_mb: null, cpus: null, env: {} });
    assert.deepEqual(reset.config, { mode: 'warm', concurrency: 1, min_instances: 0, timeout_ms: null, memory_mb: null, cpus: null, env_keys: [] });
    assert.equal(await greetingOf(client, probeId), 'two');
  });

  test('another user reads every one of my functions as not found, never forbidden', async () => {
    const archive = await packFixture('probe');
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['get', () => other.getFunction(probeId)],
      ['deployments', () => other.listDeployments(probeId)],
      ['deployment', () => other.getDeployment(probeId, 1)],
      ['rollback', () => other.rollback(probeId, 1)],
      ['config', () => other.updateConfig(probeId, { timeout_ms: 1000 })],
      ['delete', () => other.deleteFunction(probeId)],
      ['deletion-status', () => other.deletionStatus(probeId)],
      ['cancel-deletion', () => other.cancelDeletion(probeId)],
      ['create key', () => other.createApiKey(probeId)],
      ['list keys', () => other.listApiKeys(probeId)],
      ['logs', () => other.logs(probeId)],
      ['deploy', () => other.deploy(probeId, archive)],
    ];
    for (const [what, attempt] of attempts) await assert.rejects(attempt(), rejectsWith(404, 'FUNCTION_NOT_FOUND'), what);
    const invoke = await other.invoke(probeId);
    assert.equal(invoke.status, 404);
    assert.equal((await other.pendingDeletions()).count, 0);
    assert.equal((await client.getFunction(probeId)).active_version, 2, 'nothing changed');
  });

  test('a deletion is scheduled with a grace period, refuses invocations, keeps everything, and can be cancelled', async () => {
    const before = Date.now();
    const scheduled = await client.deleteFunction(probeId);
    assert.equal(scheduled.status, 'pending_deletion');
    assert.equal(scheduled.deletion_info.reason, 'user_requested');
    assert.equal(scheduled.deletion_info.days_remaining, 7);
    const due = Date.parse(scheduled.deletion_info.deletion_date);
    assert.ok(due >= before + 7 * DAY_MS && due <= Date.now() + 7 * DAY_MS);

    const again = await client.deleteFunction(probeId);
    assert.equal(again.deletion_info.id, scheduled.deletion_info.id, 'deleting twice keeps the first schedule');

    const refused = await client.invoke(probeId);
    assert.equal(refused.status, 410);
    assert.equal(refused.json<{ error: { code: string } }>().error.code, 'FUNCTION_PENDING_DELETION');
    await assert.rejects(client.deploy(probeId, await packFixture('probe')), rejectsWith(410, 'FUNCTION_PENDING_DELETION'));
    await assert.rejects(client.rollback(probeId, 1), rejectsWith(410, 'FUNCTION_PENDING_DELETION'));
    const kept = await client.getFunction(probeId);
    assert.equal(kept.status, 'pending_deletion');
    assert.equal(kept.active_version, 2);
    assert.equal((await client.listDeployments(probeId)).count, 3);

    const pending = await client.pendingDeletions();
    assert.equal(pending.count, 1);
    const entry = pending.pending_deletions[0];
    assert.deepEqual(
      [entry.function_uuid, entry.function_name, entry.function_status, entry.image_tag, entry.reason, entry.days_remaining],
      [probeId, 'probe', 'pending_deletion', `wharf-fn-${probeId}:v2`, 'user_requested', 7],
    );
    assert.ok(entry.id && entry.scheduled_at && entry.deletion_date);

    const status = await client.deletionStatus(probeId);
    assert.equal(status.has_pending_deletion, true);
    assert.equal(status.deletion_info?.id, scheduled.deletion_info.id);

    const cancelled = await client.cancelDeletion(probeId);
    assert.deepEqual(cancelled.function, { uuid: probeId, name: 'probe', status: 'active' });
    assert.equal(cancelled.success, true);
    await assert.rejects(client.cancelDeletion(probeId), rejectsWith(409, 'NO_PENDING_DELETION'));
    assert.equal((await client.deletionStatus(probeId)).has_pending_deletion, false);
    assert.equal((await client.pendingDeletions()).count, 0);
    assert.equal(await greetingOf(client, probeId), 'two');
  });

  test('the reaper (a repeatable job) deletes for good only after the grace period: records, archives, keys, images; the name is free again', async () => {
    const doomed = await client.initFunction('doomed');
    assert.equal((await deployProbe(client, doomed.id, 'bye')).status, 'succeeded');
    await client.invoke(doomed.id);
    await client.createApiKey(doomed.id);
    const imageTag = `wharf-fn-${doomed.id}:v1`;
    await stack.docker.getImage(imageTag).inspect();
    await client.deleteFunction(doomed.id);

    const redis = new Redis(stack.redisUrl, { maxRetriesPerRequest: null });
    assert.deepEqual(await maintenanceSchedulers(redis, stack.queuePrefix), Object.values(MAINTENANCE_JOBS).sort());
    const logger = createLogger('test-reaper', 'silent');
    const pool = createPool(stack.databaseUrl, logger);
    const deps = { pool, redis, queuePrefix: stack.queuePrefix, logger };
    try {
      assert.deepEqual(await reapDueDeletions(deps, new Date(Date.now() + 6 * DAY_MS)), [], 'still within the grace period');
      assert.equal((await client.getFunction(doomed.id)).status, 'pending_deletion');

      const eightDaysOn = new Date(Date.now() + 8 * DAY_MS);
      const [first, second] = await Promise.all([reapDueDeletions(deps, eightDaysOn), reapDueDeletions(deps, eightDaysOn)]);
      assert.deepEqual([...first, ...second], [doomed.id], 'reaped exactly once, even by two reapers at once');
    } finally {
      redis.disconnect();
      await pool.end();
    }

    assert.equal((await client.getFunction(doomed.id)).status, 'deleted');
    await assert.rejects(client.listDeployments(doomed.id), rejectsWith(404, 'FUNCTION_NOT_FOUND'));
    const invoke = await client.invoke(doomed.id);
    assert.equal(invoke.status, 404);
    for (const table of ['deployments', 'invocations', 'function_api_keys']) {
      const { rows } = await db.query(`SELECT COUNT(*)::int AS n FROM ${table} WHERE function_id = $1`, [doomed.id]);
      assert.equal(rows[0].n, 0, `${table} emptied`);
    }
    assert.ok(!(await client.listFunctions()).some((f) => f.id === doomed.id));

    // The builder's and the runner's sweepers remove the image from the engine.
    const deadline = Date.now() + 15_000;
    while ((await stack.docker.getImage(imageTag).inspect().then(() => true, () => false)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    await assert.rejects(stack.docker.getImage(imageTag).inspect(), 'the image is gone from the engine');

    const reborn = await client.initFunction('doomed');
    assert.notEqual(reborn.id, doomed.id);
    assert.equal(reborn.status, 'init');
  });

  test("the API's own scheduled reaper picks up a deletion whose date has passed", async () => {
    const expired = await client.initFunction('expired');
    await client.deleteFunction(expired.id);
    // As if the grace period had run out: the stack's reaper ticks every 300 ms.
    await db.query(`UPDATE function_deletions SET deletion_date = now() - interval '1 second' WHERE function_id = $1`, [expired.id]);
    const deadline = Date.now() + 10_000;
    let status = '';
    while (status !== 'deleted' && Date.now() < deadline) {
      status = (await client.getFunction(expired.id)).status;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 'deleted');
  });

  test('API keys: created with a secret shown once, listed without it, revoked; signed requests pass, everything else is 401', async () => {
    const key = await client.createApiKey(probeId);
    assert.match(key.key_id, /^wk_/);
    assert.match(key.secret, /^wsk_/);
    assert.equal(key.signing_required, true);
    const listed = await client.listApiKeys(probeId);
    assert.deepEqual(listed.map((k) => k.key_id), [key.key_id]);
    assert.ok(!JSON.stringify(listed).includes(key.secret));
    const { rows } = await db.query('SELECT secret_hash FROM function_api_keys WHERE id = $1', [key.key_id]);
    assert.notEqual(rows[0].secret_hash, key.secret, 'only a hash is stored');

    const keyOnly = stack.client();
    const signed = await keyOnly.invoke(probeId, { body: { hi: 1 }, query: { q: 'x' }, key: { keyId: key.key_id, secret: key.secret } });
    assert.equal(signed.status, 201, signed.body);
    const seen = signed.json<ProbeBody>().request;
    assert.deepEqual(seen.body, { hi: 1 });
    assert.equal(seen.headers['x-wharf-api-key'], undefined);
    assert.ok((await client.listApiKeys(probeId))[0].last_used_at, 'use is recorded');

    const invokePath = `/api/functions/${probeId}/invoke`;
    const send = (headers: Record<string, string>, body = '{"hi":1}') =>
      fetch(`${stack.baseUrl}${invokePath}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const expect401 = async (headers: Record<string, string>, code: string, body?: string) => {
      const res = await send(headers, body);
      assert.equal(res.status, 401);
      const { error } = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(error.code, code);
      return error.message;
    };
    const stamp = (secret: string, seconds?: number, signedBody = '{"hi":1}') =>
      signedHeaders({ keyId: key.key_id, secret }, 'POST', invokePath, Buffer.from(signedBody), seconds);

    assert.equal((await send(stamp(key.secret))).status, 201, 'a hand-made signed request passes');
    await expect401({ 'x-wharf-key-id': key.key_id, 'x-wharf-api-key': key.secret }, 'INVALID_SIGNATURE');
    const wrongSecret = await expect401(stamp('wsk_wrong'), 'INVALID_SIGNATURE');
    await expect401(stamp(key.secret, Math.floor(Date.now() / 1000) - 6 * 60), 'INVALID_SIGNATURE');
    await expect401(stamp(key.secret), 'INVALID_SIGNATURE', '{"hi":2}');
    const unknownKey = await expect401({ ...stamp(key.secret), 'x-wharf-key-id': 'wk_000000000000000000000000' }, 'INVALID_SIGNATURE');
    assert.equal(unknownKey, wrongSecret, 'an unknown key reads like a wrong signature');
    await expect401({}, 'UNAUTHENTICATED');

    // A key belongs to one function.
    const greeter = await client.initFunction('greeter');
    const res = await fetch(`${stack.baseUrl}/api/functions/${greeter.id}/invoke`, {
      method: 'POST',
      headers: signedHeaders({ keyId: key.key_id, secret: key.secret }, 'POST', `/api/functions/${greeter.id}/invoke`, new Uint8Array()),
    });
    assert.equal(res.status, 401);

    await client.revokeApiKey(probeId, key.key_id);
    assert.equal(await expect401(stamp(key.secret), 'INVALID_SIGNATURE'), wrongSecret);
    assert.deepEqual(await client.listApiKeys(probeId), []);
    await assert.rejects(client.revokeApiKey(probeId, key.key_id), rejectsWith(404, 'API_KEY_NOT_FOUND'));
  });

  test('a function that skips signing takes the key secret as is (or a signature), and refuses a wrong one', async () => {
    await client.updateConfig(probeId, { skip_signing: true });
    const key = await client.createApiKey(probeId);
    assert.equal(key.signing_required, false);
    const keyOnly = stack.client();
    assert.equal((await keyOnly.invoke(probeId, { key: { keyId: key.key_id, secret: key.secret, sign: false } })).status, 201);
    assert.equal((await keyOnly.invoke(probeId, { key: { keyId: key.key_id, secret: key.secret } })).status, 201);
    const wrong = await keyOnly.invoke(probeId, { key: { keyId: key.key_id, secret: 'wsk_guess', sign: false } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json<{ error: { code: string } }>().error.code, 'INVALID_API_KEY');
    const badSignature = await keyOnly.invoke(probeId, { key: { keyId: key.key_id, secret: 'wsk_guess' } });
    assert.equal(badSignature.json<{ error: { code: string } }>().error.code, 'INVALID_SIGNATURE', 'a signature sent is always checked');
    await client.updateConfig(probeId, { skip_signing: false });
  });

  test('async invoke answers 202 at once; the record reaches its outcome; logs list recent invocations', async () => {
    const queued = await client.invokeAsync(probeId, { body: 'text body' });
    assert.equal(queued.status, 'queued');
    assert.equal(queued.status_url, `/api/invocations/${queued.invocation_id}`);
    const done = await client.waitForInvocation<{ status: string; response: { statusCode: number; body: string } }>(queued.invocation_id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.response.statusCode, 201);
    assert.equal(JSON.parse(done.response.body).request.body, 'text body');

    const logs = await client.logs(probeId, { limit: 2 });
    assert.equal(logs.invocations.length, 2);
    assert.equal(logs.invocations[0].invocation_id, queued.invocation_id);
    assert.equal((logs.invocations[0].logs[0] as { message: string }).message, 'probing');
    await assert.rejects(client.request('GET', `/api/functions/${probeId}/logs?limit=0`), rejectsWith(400, 'VALIDATION_FAILED'));
  });
});
