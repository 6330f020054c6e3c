import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WharfApiError, packFunction, type WharfClient } from '@wharf/client';
import { LABELS } from '@wharf/shared';
import { gzipBomb, rawArchive } from './helpers/archives.js';
import { fixtureDir, packFixture } from './helpers/fixtures.js';
import { startStack, type Stack } from './helpers/stack.js';

const MAX_ARCHIVE_BYTES = 3 * 1024 * 1024;

describe('builder: safe archives, npm dependencies, build logs, recovery', () => {
  let stack: Stack;
  let client: WharfClient;

  before(async () => {
    stack = await startStack({ env: { WHARF_MAX_ARCHIVE_BYTES: String(MAX_ARCHIVE_BYTES), WHARF_BUILDER_LOCK_MS: '3000', WHARF_KEEP_VERSIONS: '2' } });
    client = stack.client();
    await client.register(`builder-${stack.id}@example.test`, 'correct horse battery');
  });

  after(async () => {
    await stack?.stop();
  });

  async function deploy(name: string, archive: Buffer) {
    const fn = await client.initFunction(name);
    const { version } = await client.deploy(fn.id, archive);
    return { fn, deployment: await client.waitForDeployment(fn.id, version, { timeoutMs: 180_000 }) };
  }

  async function buildLogOf(functionId: string, version: number): Promise<string> {
    return (await client.buildLog(functionId, version)).log;
  }

  /** What builds leave in their folders (there should be nothing once they are over). */
  async function buildLeftovers(): Promise<string[]> {
    // builds/<builder id>/ is the builder's own folder; what matters is what lies in it.
    const entries = await fs.readdir(path.join(stack.logDir, 'builds'), { recursive: true }).catch(() => [] as string[]);
    const installs = await fs.readdir(path.join(stack.logDir, 'build-cache')).catch(() => [] as string[]);
    return [...entries.filter((entry) => entry.includes(path.sep)), ...installs.filter((name) => name.startsWith('install-'))];
  }

  test('a multi-file function with npm dependencies (from the registry) builds, bundles them, and runs', async () => {
    const { fn, deployment } = await deploy('with-deps', await packFixture('with-deps'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    const res = await client.invoke(fn.id, { query: { from: '2026-02-27', days: '3' } });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json(), { due: '2026-03-02' });

    const log = await buildLogOf(fn.id, 1);
    assert.match(log, /dependencies: dayjs@\^1\.11\.0, tiny-invariant@\^1\.3\.0 \(npm ci, from package-lock\.json\)/);
    assert.match(log, /dependencies: installed in \d+ ms/);
    assert.doesNotMatch(log, /left-pad/, 'dev dependencies are not installed');
    assert.match(log, /docker: Step \d\/\d+ : FROM/);
    assert.match(log, /v1 is active/);

    // The same lock file again: the installed tree is reused.
    const again = await client.deploy(fn.id, await packFixture('with-deps'));
    assert.equal((await client.waitForDeployment(fn.id, again.version, { timeoutMs: 60_000 })).status, 'succeeded');
    assert.match(await buildLogOf(fn.id, again.version), /dependencies: cached in \d+ ms/);

    const image = await stack.docker.getImage(`wharf-fn-${fn.id}:v1`).inspect();
    assert.equal(image.Config.Labels[LABELS.functionId], fn.id);
    assert.equal(image.Config.Labels[LABELS.version], '1');
    assert.match(image.Config.Labels[LABELS.archiveSha256], /^[0-9a-f]{64}$/);
    assert.match(image.Config.Labels[LABELS.sdkVersion], /^\d+\.\d+\.\d+/);
    assert.ok(image.Config.Labels[LABELS.builderId]);
    assert.deepEqual(await buildLeftovers(), []);
  });

  test('a package with a native add-on is left out of the bundle and copied into the image', async () => {
    const { fn, deployment } = await deploy('native-dep', await packFixture('native-dep'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    assert.match(await buildLogOf(fn.id, 1), /native add-ons found: packages copied into the image unbundled/);
    const res = await client.invoke(fn.id, { query: { text: 'hello' } });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json(), { crc32: 907060870 });
  });

  test('a dependency that does not exist fails with DEPENDENCY_INSTALL_FAILED and npm\'s message; non-registry specs are refused', async () => {
    const missing = await deploy('missing-dep', await withManifest({ dependencies: { [`wharf-no-such-package-${randomBytes(6).toString('hex')}`]: '^1.0.0' } }));
    assert.equal(missing.deployment.status, 'failed');
    assert.equal(missing.deployment.error?.code, 'DEPENDENCY_INSTALL_FAILED');
    assert.match(missing.deployment.error?.message ?? '', /404|E404|Not Found/i);
    assert.match(await buildLogOf(missing.fn.id, 1), /failed: DEPENDENCY_INSTALL_FAILED/);

    for (const spec of ['file:../../../etc', 'git+https://example.com/x.git', 'https://example.com/x.tgz', 'someone/repo']) {
      const refused = await deploy('local-dep', await withManifest({ dependencies: { leak: spec } }));
      assert.equal(refused.deployment.error?.code, 'ANALYSIS_UNSAFE_REFERENCE', spec);
    }
  });

  test('hostile archives fail their deployment with a stable code, leaving nothing behind', async () => {
    const cases: Array<[string, Buffer, string]> = [
      ['dotdot', rawArchive([{ path: 'index.ts', body: 'export {};' }, { path: '../../escape.ts', body: 'x' }]), 'ARCHIVE_UNSAFE_PATH'],
      ['absolute', rawArchive([{ path: '/tmp/wharf-owned.ts', body: 'x' }]), 'ARCHIVE_UNSAFE_PATH'],
      ['hardlink', rawArchive([{ path: 'passwd.ts', type: 'Link', linkpath: '/etc/passwd' }]), 'ARCHIVE_LINK_REJECTED'],
      ['fifo', rawArchive([{ path: 'pipe.ts', type: 'FIFO' }]), 'ARCHIVE_INVALID'],
      ['bomb', gzipBomb(), 'ARCHIVE_TOO_LARGE'],
      ['truncated', rawArchive([{ path: 'index.ts', body: 'export const x = 1;\n'.repeat(500) }]).subarray(0, 100), 'ARCHIVE_INVALID'],
    ];
    for (const [name, archive, code] of cases) {
      const { deployment } = await deploy(`hostile-${name}`, archive);
      assert.equal(deployment.status, 'failed', name);
      assert.equal(deployment.error?.code, code, `${name}: ${deployment.error?.message}`);
    }
    await assert.rejects(fs.access('/tmp/wharf-owned.ts'));
    assert.deepEqual(await buildLeftovers(), []);
    // Bytes that are not gzip at all are refused at upload, before any version exists.
    const garbage = await client.initFunction('hostile-garbage');
    await assert.rejects(client.deploy(garbage.id, randomBytes(4096)), (err: WharfApiError) => err.status === 422 && err.code === 'ARCHIVE_INVALID');
    assert.equal((await client.listDeployments(garbage.id)).count, 0);
  });

  test('an upload over WHARF_MAX_ARCHIVE_BYTES is refused with 413 and creates no version', async () => {
    const fn = await client.initFunction('too-big');
    await assert.rejects(client.deploy(fn.id, randomBytes(MAX_ARCHIVE_BYTES + 1024)), (err: WharfApiError) => err.status === 413 && err.code === 'PAYLOAD_TOO_LARGE');
    assert.equal((await client.listDeployments(fn.id)).count, 0);
  });

  test('the build log can be followed while the build runs', async () => {
    const fn = await client.initFunction('followed');
    const { version } = await client.deploy(fn.id, await packFixture('probe'));
    const chunks: string[] = [];
    for await (const chunk of client.followBuildLog(fn.id, version, { pollMs: 50 })) chunks.push(chunk);
    assert.ok(chunks.length >= 1);
    const whole = chunks.join('');
    assert.equal(whole, await buildLogOf(fn.id, version), 'the pieces add up to the log, nothing repeated or lost');
    assert.match(whole, /analysis: class Probe in index\.ts/);
    await assert.rejects(client.buildLog(fn.id, 99), (err: WharfApiError) => err.code === 'DEPLOYMENT_NOT_FOUND');
  });

  // Killed while npm installs, and while the engine builds the image.
  for (const [phase, killAt] of [['npm install', /dependencies: dayjs@1\.11\.10/], ['docker build', /bundle: /]] as const) {
    test(`a builder killed mid-build (${phase}): the build is retried under the same version, leaving no folder or dangling image`, async () => {
      const fn = await client.initFunction(`interrupted-${phase.replace(' ', '-')}`);
      // A dependency set not cached yet makes the build long enough to be caught in the middle.
      const archive = await withManifest({ dependencies: { dayjs: '1.11.10', 'tiny-invariant': '1.3.1' } }, 'with-deps');
      const { version } = await client.deploy(fn.id, archive);
      await waitForLog(fn.id, version, killAt);
      await stack.stopProcess('builder', 'SIGKILL');
      await stack.startProcess('builder');
      const deployment = await client.waitForDeployment(fn.id, version, { timeoutMs: 180_000 });
      assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
      assert.match(await buildLogOf(fn.id, version), /attempt 2/);
      assert.deepEqual((await client.listDeployments(fn.id)).deployments.map((d) => d.version), [version], 'one version, not two');
      assert.equal((await client.invoke(fn.id, { query: { from: '2026-01-30', days: '2' } })).json<{ due: string }>().due, '2026-02-01');
      assert.deepEqual(await buildLeftovers(), []);
      const dangling = await stack.docker.listImages({ filters: { dangling: ['true'], label: [`${LABELS.functionId}=${fn.id}`] } });
      assert.deepEqual(dangling, []);
    });
  }

  test('past WHARF_KEEP_VERSIONS, old images are retired but archives kept; a rollback to one rebuilds it', async () => {
    const fn = await client.initFunction('versions');
    const archive = await packFixture('probe');
    for (const greeting of ['one', 'two', 'three']) {
      const { version } = await client.deploy(fn.id, archive, { env: { GREETING: greeting } });
      assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
    }
    const imageOf = (version: number) => stack.docker.getImage(`wharf-fn-${fn.id}:v${version}`).inspect().then(() => true, () => false);
    const tags = async () => Object.fromEntries((await client.listDeployments(fn.id)).deployments.map((d) => [d.version, d.image_tag ?? null]));
    // Two kept: the active v3 and the newest other, v2.
    assert.deepEqual(await tags(), { 3: `wharf-fn-${fn.id}:v3`, 2: `wharf-fn-${fn.id}:v2`, 1: null });
    assert.deepEqual([await imageOf(1), await imageOf(2), await imageOf(3)], [false, true, true]);

    const rollback = await client.rollback(fn.id, 1);
    assert.equal(rollback.rebuilding, true);
    const rebuilt = await client.waitForDeployment(fn.id, 1, { timeoutMs: 60_000 });
    assert.equal(rebuilt.status, 'succeeded');
    assert.equal((await client.getFunction(fn.id)).active_version, 1);
    assert.equal((await client.invoke(fn.id)).json<{ env: { GREETING: string } }>().env.GREETING, 'one');
    assert.match(await buildLogOf(fn.id, 1), /rebuild \(rollback\) of v1/);
    // v1 active again: v3 is the newest other and stays; v2 goes.
    assert.deepEqual([await imageOf(1), await imageOf(2), await imageOf(3)], [true, false, true]);
  });

  async function waitForLog(functionId: string, version: number, pattern: RegExp): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!pattern.test(await buildLogOf(functionId, version))) {
      if (Date.now() > deadline) throw new Error(`no ${pattern} in the build log`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** A copy of a fixture (probe by default) with its package.json replaced. */
  async function withManifest(manifest: Record<string, unknown>, fixture = 'probe'): Promise<Buffer> {
    const dir = await fs.mkdtemp(path.join(stack.logDir, 'fixture-'));
    await fs.cp(fixtureDir(fixture), dir, { recursive: true });
    await fs.rm(path.join(dir, 'package-lock.json'), { force: true });
    await fs.writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'fixture', private: true, ...manifest }));
    return packFunction(dir);
  }
});
