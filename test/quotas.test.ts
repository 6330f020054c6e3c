import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import pg from 'pg';
import * as tar from 'tar';
import { WharfApiError, WharfClient } from '@wharf/client';
import { apiEnvSchema, parseEnv } from '@wharf/shared';
import { buildProgram } from '../packages/cli/src/program.js';
import { packFixture } from './helpers/fixtures.js';
import { startStack, type Stack } from './helpers/stack.js';

const MAX_FUNCTIONS = 3;
const MAX_ARCHIVE_BYTES = 64 * 1024;
const MAX_DEPLOYS_PER_HOUR = 3;
const MAX_MIN_INSTANCES = 4;
/** Long enough that nothing is dropped before a test says so: it ages a build's end with SQL. */
const FAILED_RETENTION_MINUTES = 5;

type ProbeBody = { env: Record<string, string | undefined> };

const rejectsWith = (status: number, code: string, message?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof WharfApiError, String(err));
  assert.equal(err.code, code, err.message);
  assert.equal(err.status, status);
  if (message) assert.match(err.message, message);
  return true;
};

/** A valid tar.gz of `bytes` random (incompressible) bytes and no source: uploaded whole, its build fails at once. */
function junkArchive(bytes: number): Buffer {
  const header = Buffer.alloc(512);
  new tar.Header({ path: 'junk.bin', mode: 0o644, size: bytes, type: 'File', mtime: new Date(0) }).encode(header, 0);
  return gzipSync(Buffer.concat([header, randomBytes(bytes), Buffer.alloc((512 - (bytes % 512)) % 512), Buffer.alloc(1024)]));
}

/** A deploy as raw HTTP, for the status and headers (the client turns a refusal into an error without them). */
async function deployRaw(client: WharfClient, functionId: string, archive: Buffer): Promise<Response> {
  const form = new FormData();
  form.set('function_id', functionId);
  form.set('archive', new Blob([new Uint8Array(archive)], { type: 'application/gzip' }), 'function.tar.gz');
  return fetch(`${client.baseUrl}/api/functions/deploy`, { method: 'POST', headers: { authorization: `Bearer ${client.token}` }, body: form });
}

async function eventually(check: () => Promise<void>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

test('quota settings: defaults that work on one machine; retention takes fractions of a minute; a bad value names the variable', () => {
  const env = parseEnv(apiEnvSchema, {});
  assert.equal(env.WHARF_USER_MAX_FUNCTIONS, 100);
  assert.equal(env.WHARF_USER_MAX_ARCHIVE_BYTES, 512 * 1024 * 1024);
  assert.equal(env.WHARF_USER_MAX_DEPLOYS_PER_HOUR, 60);
  assert.equal(env.WHARF_USER_MAX_MIN_INSTANCES, 8);
  assert.equal(env.WHARF_FAILED_ARCHIVE_RETENTION_MINUTES, 60);
  assert.equal(parseEnv(apiEnvSchema, { WHARF_FAILED_ARCHIVE_RETENTION_MINUTES: '0.5' }).WHARF_FAILED_ARCHIVE_RETENTION_MINUTES, 0.5);
  assert.equal(parseEnv(apiEnvSchema, { WHARF_USER_MAX_MIN_INSTANCES: '0' }).WHARF_USER_MAX_MIN_INSTANCES, 0);
  assert.throws(() => parseEnv(apiEnvSchema, { WHARF_USER_MAX_FUNCTIONS: '0' }), /WHARF_USER_MAX_FUNCTIONS="0"/);
  assert.throws(() => parseEnv(apiEnvSchema, { WHARF_FAILED_ARCHIVE_RETENTION_MINUTES: '-1' }), /WHARF_FAILED_ARCHIVE_RETENTION_MINUTES="-1"/);
});

describe('per-user quotas and archive retention', () => {
  /** Small limits, and failed builds' archives dropped after 3 s. */
  let stack: Stack;
  /** Default quotas, two versions kept per function. */
  let versions: Stack;
  let db: pg.Client;
  let versionsDb: pg.Client;

  before(async () => {
    [stack, versions] = await Promise.all([
      startStack({
        env: {
          WHARF_USER_MAX_FUNCTIONS: String(MAX_FUNCTIONS),
          WHARF_USER_MAX_ARCHIVE_BYTES: String(MAX_ARCHIVE_BYTES),
          WHARF_USER_MAX_DEPLOYS_PER_HOUR: String(MAX_DEPLOYS_PER_HOUR),
          WHARF_USER_MAX_MIN_INSTANCES: String(MAX_MIN_INSTANCES),
          WHARF_FAILED_ARCHIVE_RETENTION_MINUTES: String(FAILED_RETENTION_MINUTES),
          WHARF_PRUNE_INTERVAL_MS: '300',
        },
      }),
      startStack({ env: { WHARF_KEEP_VERSIONS: '2' } }),
    ]);
    db = new pg.Client({ connectionString: stack.databaseUrl });
    versionsDb = new pg.Client({ connectionString: versions.databaseUrl });
    await Promise.all([db.connect(), versionsDb.connect()]);
  });

  after(async () => {
    await Promise.all([db?.end(), versionsDb?.end()]);
    await Promise.all([stack?.stop(), versions?.stop()]);
  });

  /** Quotas are per user: each test has its own. */
  async function newUser(on: Stack = stack): Promise<WharfClient> {
    const client = on.client();
    await client.register(`user-${randomBytes(4).toString('hex')}-${on.id}@example.test`, 'correct horse battery');
    return client;
  }

  test(`WHARF_USER_MAX_FUNCTIONS: the function past ${MAX_FUNCTIONS} is refused with 403 and not created, pending deletions included; parallel inits create exactly the free count`, async () => {
    const client = await newUser();
    const ids = [];
    for (const name of ['one', 'two', 'three']) ids.push((await client.initFunction(name)).id);
    await assert.rejects(client.initFunction('four'), rejectsWith(403, 'FUNCTION_QUOTA_EXCEEDED', /you have 3 functions; WHARF_USER_MAX_FUNCTIONS allows 3/));
    assert.deepEqual((await client.listFunctions()).map((f) => f.name), ['one', 'three', 'two']);
    // An existing name is no new function.
    assert.equal((await client.initFunction('one')).already_exists, true);

    // A function pending deletion can be restored: it counts until it is deleted for good.
    await client.deleteFunction(ids[0]);
    await assert.rejects(client.initFunction('four'), rejectsWith(403, 'FUNCTION_QUOTA_EXCEEDED', /1 pending deletion/));
    const { rows } = await db.query(`SELECT id FROM functions WHERE name = 'four'`);
    assert.deepEqual(rows, []);

    const parallel = await newUser();
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => parallel.initFunction(`fn-${i}`)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, MAX_FUNCTIONS);
    for (const r of results) if (r.status === 'rejected') rejectsWith(403, 'FUNCTION_QUOTA_EXCEEDED')(r.reason);
    assert.equal((await parallel.listFunctions()).length, MAX_FUNCTIONS);
  });

  test('WHARF_USER_MAX_ARCHIVE_BYTES: a deploy past the stored bytes is refused (403, no version used); once a failed build\'s retention passes, its archive is dropped (record and build log kept) and the space is free', async () => {
    const client = await newUser();
    const fn = await client.initFunction('stored');
    const probe = await packFixture('probe');
    const v1 = await client.deploy(fn.id, probe);
    assert.equal((await client.waitForDeployment(fn.id, v1.version)).status, 'succeeded');

    const junk = junkArchive(40 * 1024);
    assert.ok(probe.length + junk.length <= MAX_ARCHIVE_BYTES && probe.length + 2 * junk.length > MAX_ARCHIVE_BYTES);
    const v2 = await client.deploy(fn.id, junk);
    const failed = await client.waitForDeployment(fn.id, v2.version);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.archive_retained, true, 'kept during its retention');
    assert.equal(failed.archive_bytes, junk.length);

    await assert.rejects(
      client.deploy(fn.id, junk),
      rejectsWith(403, 'STORAGE_QUOTA_EXCEEDED', new RegExp(`you store ${probe.length + junk.length} bytes of archives \\(2 versions\\).*WHARF_USER_MAX_ARCHIVE_BYTES allows ${MAX_ARCHIVE_BYTES} bytes`)),
    );
    assert.deepEqual((await client.listDeployments(fn.id)).deployments.map((d) => d.version), [2, 1], 'the refused deploy wrote nothing');
    // A failed build cannot be pinned (which would keep its archive).
    await assert.rejects(client.pin(fn.id, 2), rejectsWith(409, 'VERSION_NOT_DEPLOYABLE'));

    // Past its retention the failed build's archive goes; the record, its error and its build log stay.
    await db.query(`UPDATE deployments SET finished_at = now() - interval '6 minutes' WHERE function_id = $1 AND version = 2`, [fn.id]);
    await eventually(async () => assert.equal((await client.getDeployment(fn.id, 2)).archive_retained, false));
    const dropped = await client.getDeployment(fn.id, 2);
    assert.equal(dropped.status, 'failed');
    assert.ok(dropped.error?.code);
    assert.equal(dropped.archive_bytes, junk.length);
    assert.match((await client.buildLog(fn.id, 2)).log, /failed: /);
    const row = await db.query(`SELECT archive IS NULL AS gone, archive_dropped_at FROM deployments WHERE function_id = $1 AND version = 2`, [fn.id]);
    assert.equal(row.rows[0].gone, true);
    assert.ok(row.rows[0].archive_dropped_at instanceof Date);
    // The successful v1 keeps its archive whatever its age.
    assert.equal((await client.getDeployment(fn.id, 1)).archive_retained, true);

    const v3 = await client.deploy(fn.id, junk);
    assert.equal(v3.version, 3, 'the refused deploy used no version number');
  });

  test('WHARF_USER_MAX_ARCHIVE_BYTES holds for parallel deploys', async () => {
    const client = await newUser();
    const fn = await client.initFunction('parallel-bytes');
    const junk = junkArchive(25 * 1024);
    const fits = Math.floor(MAX_ARCHIVE_BYTES / junk.length);
    assert.ok(fits < MAX_DEPLOYS_PER_HOUR, 'the storage limit, not the hourly one, decides');
    const results = await Promise.all(Array.from({ length: 6 }, () => deployRaw(client, fn.id, junk)));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(fits).fill(202), ...Array(6 - fits).fill(403)]);
    for (const res of results.filter((r) => r.status === 403)) assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'STORAGE_QUOTA_EXCEEDED');
    const listed = await client.listDeployments(fn.id);
    assert.deepEqual(listed.deployments.map((d) => d.version), Array.from({ length: fits }, (_, i) => fits - i));
  });

  test(`WHARF_USER_MAX_DEPLOYS_PER_HOUR: deploy ${MAX_DEPLOYS_PER_HOUR + 1} answers 429 with Retry-After until the oldest leaves the hour`, async () => {
    const client = await newUser();
    const fn = await client.initFunction('hourly');
    const tiny = junkArchive(16);
    for (let i = 0; i < MAX_DEPLOYS_PER_HOUR; i++) assert.equal((await deployRaw(client, fn.id, tiny)).status, 202);

    const refused = await deployRaw(client, fn.id, tiny);
    assert.equal(refused.status, 429);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'DEPLOY_RATE_EXCEEDED');
    assert.match(body.error.message, /you have made 3 deployments in the last hour; WHARF_USER_MAX_DEPLOYS_PER_HOUR allows 3/);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter > 3500 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
    assert.equal((await client.listDeployments(fn.id)).count, MAX_DEPLOYS_PER_HOUR);

    // The oldest was made 59 minutes ago: a slot frees in about a minute.
    await db.query(`UPDATE deployments SET created_at = now() - interval '59 minutes' WHERE function_id = $1 AND version = 1`, [fn.id]);
    const soon = await deployRaw(client, fn.id, tiny);
    assert.equal(soon.status, 429);
    const seconds = Number(soon.headers.get('retry-after'));
    assert.ok(seconds > 50 && seconds <= 60, `Retry-After ${seconds}`);
    // Out of the window: accepted, under the next version number.
    await db.query(`UPDATE deployments SET created_at = now() - interval '61 minutes' WHERE function_id = $1 AND version = 1`, [fn.id]);
    const accepted = await deployRaw(client, fn.id, tiny);
    assert.equal(accepted.status, 202);
    assert.equal(((await accepted.json()) as { deployment: { version: number } }).deployment.version, MAX_DEPLOYS_PER_HOUR + 1);

    // A rollback that rebuilds is no deployment: it is not counted (nor refused) — see the retention tests.
  });

  test(`WHARF_USER_MAX_DEPLOYS_PER_HOUR: 10 parallel deploys against a limit of ${MAX_DEPLOYS_PER_HOUR} accept exactly the free count, with no gap in versions`, async () => {
    const client = await newUser();
    const [a, b] = [await client.initFunction('burst-a'), await client.initFunction('burst-b')];
    const tiny = junkArchive(16);
    assert.equal((await deployRaw(client, a.id, tiny)).status, 202);
    // Across the user's functions: the limit is the user's.
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => deployRaw(client, i % 2 ? a.id : b.id, tiny)));
    const accepted = results.filter((r) => r.status === 202).length;
    assert.equal(accepted, MAX_DEPLOYS_PER_HOUR - 1);
    assert.deepEqual([...new Set(results.filter((r) => r.status !== 202).map((r) => r.status))], [429]);
    const all = [...(await client.listDeployments(a.id)).deployments, ...(await client.listDeployments(b.id)).deployments];
    assert.equal(all.length, MAX_DEPLOYS_PER_HOUR);
    for (const id of [a.id, b.id]) {
      const found = (await client.listDeployments(id)).deployments.map((d) => d.version);
      assert.deepEqual(found, Array.from({ length: found.length }, (_, i) => found.length - i), 'versions 1..n, none consumed by a refusal');
    }
  });

  test(`WHARF_USER_MAX_MIN_INSTANCES: min_instances summed over a user's functions stays within ${MAX_MIN_INSTANCES}, parallel PATCHes included`, async () => {
    const client = await newUser();
    const [a, b, c] = [await client.initFunction('warm-a'), await client.initFunction('warm-b'), await client.initFunction('warm-c')];
    await client.updateConfig(a.id, { min_instances: 3 });
    await assert.rejects(
      client.updateConfig(b.id, { min_instances: 2, timeout_ms: 1234 }),
      rejectsWith(403, 'MIN_INSTANCES_QUOTA_EXCEEDED', /your functions have 3 min_instances .*would make 5; WHARF_USER_MAX_MIN_INSTANCES allows 4/),
    );
    const unchanged = await client.getFunction(b.id);
    assert.equal(unchanged.config.min_instances, 0);
    assert.equal(unchanged.config.timeout_ms, null, 'a refused PATCH changes nothing');
    assert.equal((await client.updateConfig(b.id, { min_instances: 1 })).config.min_instances, 1);
    // Setting what it has, or less, always passes.
    assert.equal((await client.updateConfig(a.id, { min_instances: 3 })).config.min_instances, 3);
    assert.equal((await client.updateConfig(a.id, { min_instances: 0 })).config.min_instances, 0);
    await client.updateConfig(b.id, { min_instances: 0 });
    // The per-function bound still answers 400 first.
    await assert.rejects(client.updateConfig(c.id, { min_instances: 9 }), rejectsWith(400, 'VALIDATION_FAILED'));

    const results = await Promise.allSettled([a, b, c].map((fn) => client.updateConfig(fn.id, { min_instances: 2 })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2);
    for (const r of results) if (r.status === 'rejected') rejectsWith(403, 'MIN_INSTANCES_QUOTA_EXCEEDED')(r.reason);
    const sum = (await client.listFunctions()).reduce((total, fn) => total + fn.config.min_instances, 0);
    assert.equal(sum, MAX_MIN_INSTANCES);
  });

  test('past WHARF_KEEP_VERSIONS: unpinned versions lose their archives, a pinned one keeps it and a rollback rebuilds and serves it; an unpinned one answers 409 VERSION_NOT_RETAINED', async () => {
    const client = await newUser(versions);
    const other = await newUser(versions);
    const fn = await client.initFunction('kept');
    const archive = await packFixture('probe');
    const deploy = async (greeting: string) => {
      const { version } = await client.deploy(fn.id, archive, { env: { GREETING: greeting } });
      assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
      return version;
    };
    await deploy('one');
    const pinned = await client.pin(fn.id, 1);
    assert.equal(pinned.pinned, true);
    assert.equal(pinned.archive_retained, true);
    // Another user's function is not found, whatever they try.
    await assert.rejects(other.pin(fn.id, 1), rejectsWith(404, 'FUNCTION_NOT_FOUND'));
    await assert.rejects(other.unpin(fn.id, 1), rejectsWith(404, 'FUNCTION_NOT_FOUND'));
    await assert.rejects(client.pin(fn.id, 9), rejectsWith(404, 'DEPLOYMENT_NOT_FOUND'));
    for (const greeting of ['two', 'three', 'four']) await deploy(greeting);

    type State = { image: boolean; archive: boolean; pinned: boolean };
    const state = async (): Promise<Record<number, State>> =>
      Object.fromEntries((await client.listDeployments(fn.id)).deployments.map((d) => [d.version, { image: d.image_tag !== null, archive: d.archive_retained, pinned: d.pinned }]));
    // v4 active, v3 the newest other; v2 lost image and archive; v1 lost its image only (pinned).
    await eventually(async () =>
      assert.deepEqual(await state(), {
        4: { image: true, archive: true, pinned: false },
        3: { image: true, archive: true, pinned: false },
        2: { image: false, archive: false, pinned: false },
        1: { image: false, archive: true, pinned: true },
      }),
    );
    const stored = await versionsDb.query(`SELECT version, archive IS NOT NULL AS stored FROM deployments WHERE function_id = $1 ORDER BY version`, [fn.id]);
    assert.deepEqual(stored.rows.map((r) => r.stored), [true, false, true, true]);

    await assert.rejects(client.rollback(fn.id, 2), rejectsWith(409, 'VERSION_NOT_RETAINED', /WHARF_KEEP_VERSIONS.*pin/));
    await assert.rejects(client.pin(fn.id, 2), rejectsWith(409, 'VERSION_NOT_RETAINED'));
    assert.equal((await client.getFunction(fn.id)).active_version, 4, 'a refused rollback changes nothing');

    const rollback = await client.rollback(fn.id, 1);
    assert.equal(rollback.rebuilding, true);
    assert.equal((await client.waitForDeployment(fn.id, 1, { timeoutMs: 60_000 })).status, 'succeeded');
    assert.equal((await client.getFunction(fn.id)).active_version, 1);
    const res = await client.invoke(fn.id);
    assert.equal(res.status, 201, res.body);
    assert.equal(res.json<ProbeBody>().env.GREETING, 'one');
    // v1 active again: v4 is the newest other; v3 falls out of the window, unpinned.
    await eventually(async () => {
      const now = await state();
      assert.deepEqual(now[1], { image: true, archive: true, pinned: true });
      assert.deepEqual(now[3], { image: false, archive: false, pinned: false });
      assert.deepEqual(now[4], { image: true, archive: true, pinned: false });
    });

    // Unpinned, the active version keeps its archive all the same.
    const unpinned = await client.unpin(fn.id, 1);
    assert.equal(unpinned.pinned, false);
    assert.equal(unpinned.archive_retained, true);
    assert.equal((await client.rollback(fn.id, 4)).function.active_version, 4);

    // The same through the CLI.
    const wharf = async (...args: string[]) => {
      let out = '';
      const env = { WHARF_API_URL: versions.baseUrl, WHARF_TOKEN: client.token!, WHARF_CONFIG: path.join(versions.logDir, 'cli-config.json') };
      await buildProgram({ stdout: (text) => void (out += text), stderr: new PassThrough(), env }).parseAsync(['node', 'wharf', ...args]);
      return out;
    };
    assert.equal(JSON.parse(await wharf('--json', 'pin', 'kept', 'v4')).pinned, true);
    assert.match(await wharf('deployments', 'kept'), /v4\s+succeeded\s+\*\s+pinned\b[\s\S]*v2\s+succeeded\s+dropped\b/);
    assert.match(await wharf('unpin', 'kept', '4'), /kept v4 is unpinned/);
    assert.match(await wharf('deployments', 'kept'), /v4\s+succeeded\s+\*\s+stored\b/);
  });
});
