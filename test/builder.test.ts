import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WharfApiError, packFunction, type WharfClient } from '@wharf/client';
import { LABELS } from '@wharf/shared';
import { gzipBomb, rawArchive, ratioBomb, trailingZerosBomb } from './helpers/archives.js';
import { until } from './helpers/poll.js';
import { descendants, isAlive, processesMentioning, treeRss } from './helpers/proc.js';
import { fixtureDir, packFixture } from './helpers/fixtures.js';
import { startStack, type Stack } from './helpers/stack.js';

const MAX_ARCHIVE_BYTES = 3 * 1024 * 1024;
const ROOT = path.resolve(import.meta.dirname, '..');
await fs.mkdir(path.join(ROOT, '.wharf'), { recursive: true });

describe('builder: safe archives, npm dependencies, build logs, recovery', () => {
  let stack: Stack;
  let client: WharfClient;

  // Builds inside the checkout, as `npm run up` once had them: the platform's own node_modules
  // (zod 4, express 5, pg, ioredis 6 …) lie above every build folder.
  let inCheckout: string;
  let buildDir: string;
  let cacheDir: string;

  before(async () => {
    inCheckout = await fs.mkdtemp(path.join(ROOT, '.wharf', 'test-builder-'));
    buildDir = path.join(inCheckout, 'builds');
    cacheDir = path.join(inCheckout, 'build-cache');
    stack = await startStack({
      env: {
        WHARF_MAX_ARCHIVE_BYTES: String(MAX_ARCHIVE_BYTES),
        WHARF_BUILDER_LOCK_MS: '3000',
        WHARF_KEEP_VERSIONS: '2',
        WHARF_BUILD_DIR: buildDir,
        WHARF_BUILDER_CACHE_DIR: cacheDir,
      },
    });
    client = stack.client();
    await client.register(`builder-${stack.id}@example.test`, 'correct horse battery');
  });

  after(async () => {
    await stack?.stop();
    if (inCheckout) await fs.rm(inCheckout, { recursive: true, force: true });
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
    const entries = await fs.readdir(buildDir, { recursive: true }).catch(() => [] as string[]);
    const installs = await fs.readdir(cacheDir).catch(() => [] as string[]);
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
    assert.ok(![cacheDir, buildDir, ROOT].some((host) => missing.deployment.error?.message.includes(host)), `a host path in: ${missing.deployment.error?.message}`);
    assert.match(await buildLogOf(missing.fn.id, 1), /failed: DEPENDENCY_INSTALL_FAILED/);

    for (const spec of ['file:../../../etc', 'git+https://example.com/x.git', 'https://example.com/x.tgz', 'someone/repo', '.', '..', './lib', 'x.tgz', 'link:..']) {
      const refused = await deploy('local-dep', await withManifest({ dependencies: { leak: spec } }));
      assert.equal(refused.deployment.error?.code, 'ANALYSIS_UNSAFE_REFERENCE', spec);
      assert.ok(refused.deployment.error?.message.includes(JSON.stringify(spec)), refused.deployment.error?.message);
    }
  });

  test('an old-format (v1) lock file whose nested dependency resolves off the registry is refused before npm runs', async () => {
    // Never fetched: nothing listens there, and the refusal comes before any install.
    const foreign = 'http://127.0.0.1:9/dayjs-1.11.10.tgz';
    const lock = {
      name: 'fixture',
      lockfileVersion: 1,
      requires: true,
      dependencies: {
        'tiny-invariant': { version: '1.3.1', resolved: 'https://registry.npmjs.org/tiny-invariant/-/tiny-invariant-1.3.1.tgz', dependencies: { dayjs: { version: '1.11.10', resolved: foreign } } },
      },
    };
    const { deployment, fn } = await deploy('v1-lock', await withManifest({ dependencies: { 'tiny-invariant': '1.3.1' } }, 'probe', lock));
    assert.equal(deployment.error?.code, 'ANALYSIS_UNSAFE_REFERENCE');
    assert.ok(deployment.error?.message.includes(foreign), deployment.error?.message);
    assert.doesNotMatch(await buildLogOf(fn.id, 1), /npm ci/);
  });

  test("functions depending on the platform's own packages at other versions (and one it lacks) build inside a checkout and run", async () => {
    const { fn, deployment } = await deploy('platform-deps', await packFixture('platform-deps'));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    const res = await client.invoke(fn.id, { query: { quantity: '3' } });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json(), {
      versions: { zod: '3.23.8', express: '4.21.2', pg: '8.11.5', ioredis: '5.4.1', uuid: '9.0.1' },
      order: { valid: true, quantity: 3 },
      express: 42,
      pg: '9007199254740993',
      redis: 'end',
    });
    assert.doesNotMatch(await buildLogOf(fn.id, 1), new RegExp(ROOT.replace(/[/.]/g, '\\$&')), 'the build log names no host folder');
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

  test('a trailing-zeros bomb and a 1,000:1 ratio bomb are refused within 2 s; a deploy queued behind them proceeds', async () => {
    const trailing = trailingZerosBomb(2);
    assert.ok(trailing.length < MAX_ARCHIVE_BYTES);
    const fns = await Promise.all(['bomb-trailing', 'bomb-ratio', 'behind-bombs'].map((name) => client.initFunction(name)));
    // The bombs first, then the deploy queued behind them.
    const deployed = [];
    for (const [i, archive] of [trailing, ratioBomb(), await packFixture('probe')].entries()) deployed.push(await client.deploy(fns[i].id, archive));
    const [trailed, inflated, behind] = await Promise.all(deployed.map(({ version }, i) => client.waitForDeployment(fns[i].id, version, { timeoutMs: 120_000 })));
    assert.equal(trailed.error?.code, 'ARCHIVE_INVALID', trailed.error?.message);
    assert.match(trailed.error!.message, /follow the tar end-of-archive marker/);
    assert.equal(inflated.error?.code, 'ARCHIVE_TOO_LARGE', inflated.error?.message);
    assert.match(inflated.error!.message, /inflates more than 200-fold/);
    for (const [i, refused] of [trailed, inflated].entries()) {
      // The builder's own clock: the build log's `[seconds]` at the refusal (time queued not counted).
      const seconds = Number(/\[(\d+\.\d)s\] failed:/.exec(await buildLogOf(fns[i].id, refused.version))?.[1]);
      assert.ok(seconds < 2, `refused ${seconds} s into its build`);
    }
    assert.equal(behind.status, 'succeeded', JSON.stringify(behind.error));
    assert.equal((await client.invoke(fns[2].id)).status, 201);
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
      // A cold npm cache: npm is downloading when the builder dies.
      await fs.rm(path.join(cacheDir, '_npm'), { recursive: true, force: true });
      const { version } = await client.deploy(fn.id, archive);
      await waitForLog(fn.id, version, killAt);
      if (phase === 'npm install') assert.ok(await until(() => processesMentioning(cacheDir).length > 0, 10_000), 'npm is running when the builder is killed');
      const children = descendants(stack.pid('builder')!);
      assert.ok(children.length >= 2, 'the analysis processes, at least');
      await stack.stopProcess('builder', 'SIGKILL');
      // npm and the analysis processes die with the builder, before any successor starts.
      const gone = await until(() => processesMentioning(cacheDir).length === 0 && !children.some(isAlive), 3000);
      assert.ok(gone, `still running: ${JSON.stringify(processesMentioning(cacheDir))} ${children.filter(isAlive)}`);
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

  test('past WHARF_KEEP_VERSIONS, old images are retired and unpinned archives dropped; a rollback to a pinned one rebuilds it', async () => {
    const fn = await client.initFunction('versions');
    const archive = await packFixture('probe');
    for (const greeting of ['one', 'two', 'three']) {
      const { version } = await client.deploy(fn.id, archive, { env: { GREETING: greeting } });
      assert.equal((await client.waitForDeployment(fn.id, version)).status, 'succeeded');
      // Pinned before it falls out of the window: its archive stays.
      if (version === 1) assert.equal((await client.pin(fn.id, 1)).pinned, true);
    }
    const imageOf = (version: number) => stack.docker.getImage(`wharf-fn-${fn.id}:v${version}`).inspect().then(() => true, () => false);
    const tags = async () => Object.fromEntries((await client.listDeployments(fn.id)).deployments.map((d) => [d.version, d.image_tag ?? null]));
    const archives = async () => Object.fromEntries((await client.listDeployments(fn.id)).deployments.map((d) => [d.version, d.archive_retained]));
    // Two kept: the active v3 and the newest other, v2.
    assert.deepEqual(await tags(), { 3: `wharf-fn-${fn.id}:v3`, 2: `wharf-fn-${fn.id}:v2`, 1: null });
    assert.deepEqual([await imageOf(1), await imageOf(2), await imageOf(3)], [false, true, true]);
    assert.deepEqual(await archives(), { 3: true, 2: true, 1: true });

    const rollback = await client.rollback(fn.id, 1);
    assert.equal(rollback.rebuilding, true);
    const rebuilt = await client.waitForDeployment(fn.id, 1, { timeoutMs: 60_000 });
    assert.equal(rebuilt.status, 'succeeded');
    assert.equal((await client.getFunction(fn.id)).active_version, 1);
    assert.equal((await client.invoke(fn.id)).json<{ env: { GREETING: string } }>().env.GREETING, 'one');
    assert.match(await buildLogOf(fn.id, 1), /rebuild \(rollback\) of v1/);
    // v1 active again: v3 is the newest other and stays; v2 goes, and, unpinned, its archive with it.
    assert.deepEqual([await imageOf(1), await imageOf(2), await imageOf(3)], [true, false, true]);
    assert.deepEqual(await archives(), { 3: true, 2: false, 1: true });
    await assert.rejects(client.rollback(fn.id, 2), (err: WharfApiError) => err.status === 409 && err.code === 'VERSION_NOT_RETAINED');
  });

  test('after a huge build the builder, with its processes, is back near its idle memory', async (t) => {
    const builder = stack.pid('builder')!;
    const idle = treeRss(builder);
    const workersBefore = descendants(builder).filter((pid) => processesMentioning('analysis-worker').some((p) => p.pid === pid));
    assert.ok(workersBefore.length > 0);
    // 1,000 modules, about 2 MB of TypeScript: within every limit, but an analysis process grows
    // past half a gigabyte analysing and type-checking them.
    const modules = Array.from({ length: 1000 }, (_, i) => ({
      path: `lib/m${i}.ts`,
      body: `export interface Shape${i} { id: number; name: string; tags: string[] }\n` + Array.from({ length: 20 }, (_, j) => `export function f${i}_${j}(s: Shape${i}): string { return s.name + ${i * j} + s.tags.join('${j}'); }\n`).join(''),
    }));
    const probe = await Promise.all(['index.ts', 'attempt.ts'].map(async (file) => ({ path: file, body: await fs.readFile(path.join(fixtureDir('probe'), file), 'utf8') })));
    const archive = rawArchive([...modules, ...probe]);
    const fn = await client.initFunction('huge');
    const { version } = await client.deploy(fn.id, archive);
    let peak = idle;
    const sampler = setInterval(() => (peak = Math.max(peak, treeRss(builder))), 100);
    const deployment = await client.waitForDeployment(fn.id, version, { timeoutMs: 180_000 }).finally(() => clearInterval(sampler));
    assert.equal(deployment.status, 'succeeded', JSON.stringify(deployment.error));
    const settled = await until(() => treeRss(builder) < idle + 100 * 1024 * 1024, 30_000);
    const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
    t.diagnostic(`builder and its processes: idle ${mb(idle)} MB, peak ${mb(peak)} MB, after ${mb(treeRss(builder))} MB`);
    assert.ok(settled, `still ${mb(treeRss(builder))} MB after the build; idle was ${mb(idle)} MB (peak ${mb(peak)} MB)`);
    assert.ok(workersBefore.some((pid) => !isAlive(pid)), 'the worker that took the build was replaced');
  });

  async function waitForLog(functionId: string, version: number, pattern: RegExp): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!pattern.test(await buildLogOf(functionId, version))) {
      if (Date.now() > deadline) throw new Error(`no ${pattern} in the build log`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** A copy of a fixture (probe by default) with its package.json replaced. */
  async function withManifest(manifest: Record<string, unknown>, fixture = 'probe', lock?: unknown): Promise<Buffer> {
    const dir = await fs.mkdtemp(path.join(stack.logDir, 'fixture-'));
    await fs.cp(fixtureDir(fixture), dir, { recursive: true });
    await fs.rm(path.join(dir, 'package-lock.json'), { force: true });
    await fs.writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'fixture', private: true, ...manifest }));
    if (lock) await fs.writeFile(path.join(dir, 'package-lock.json'), JSON.stringify(lock));
    return packFunction(dir);
  }
});
