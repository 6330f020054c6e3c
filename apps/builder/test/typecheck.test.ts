import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { WharfError } from '@wharf/shared';
import { AnalysisPool } from '../src/analysis-pool.js';
import { writeSourceTree } from '../../../test/helpers/fixtures.js';

const HEADER = `import { CloudFunction, CloudResponse, cloudFunction, type CloudRequest } from '@wharf/sdk';\n`;
const fnClass = (body: string) => `@cloudFunction\nexport class Fn extends CloudFunction {\n  async handle(request: CloudRequest) {\n${body}\n  }\n}\n`;
const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-typecheck-test-'));
after(() => fs.rm(scratch, { recursive: true, force: true }));

/** An extracted archive holding `entries`, as the analysis processes read it. */
const files = (entries: Record<string, string>) => writeSourceTree(scratch, entries);

// One pool for the file: its thread keeps TypeScript's libraries parsed between checks.
const pool = new AnalysisPool({ size: 1, analysisTimeoutMs: 60_000, bundleTimeoutMs: 60_000 });
after(() => pool.close());

async function typeErrors(entries: Record<string, string>): Promise<WharfError | undefined> {
  return pool.typeCheck(await files(entries)).then(
    () => undefined,
    (err: unknown) => {
      assert.ok(err instanceof WharfError, String(err));
      return err;
    },
  );
}

test('a well-typed function using the SDK and node: modules passes, strict by default', async () => {
  const ok = HEADER + `import fs from 'node:fs';\n` + fnClass(`    return CloudResponse.json({ q: request.query.q ?? '', here: fs.existsSync('/work') });`);
  assert.equal(await typeErrors({ 'index.ts': ok }), undefined);
  const implicitAny = HEADER + `function twice(x) { return x * 2; }\n` + fnClass(`    return CloudResponse.json(twice(2));`);
  const err = await typeErrors({ 'index.ts': implicitAny });
  assert.equal(err?.code, 'TYPECHECK_FAILED');
  assert.match(err!.message, /index\.ts:2: TS7006: Parameter 'x' implicitly has an 'any' type/);
  assert.equal(await typeErrors({ 'index.ts': implicitAny, 'tsconfig.json': '{ "compilerOptions": { "strict": false } }' }), undefined, "the user's tsconfig applies");
});

test('type errors are reported with file and line, the first 20 of them', async () => {
  const lines = Array.from({ length: 25 }, (_, i) => `const n${i}: number = 'text';`).join('\n');
  const err = await typeErrors({ 'lib/bad.ts': `${lines}\nexport {};\n`, 'index.ts': HEADER + fnClass(`    return CloudResponse.text(request.method);`) });
  assert.equal(err?.code, 'TYPECHECK_FAILED');
  assert.match(err!.message, /^25 type errors:/);
  assert.match(err!.message, /lib\/bad\.ts:1: TS2322/);
  assert.match(err!.message, /lib\/bad\.ts:20: TS2322/);
  assert.doesNotMatch(err!.message, /lib\/bad\.ts:21:/);
  assert.match(err!.message, /… and 5 more$/);
});

test('a tsconfig that extends another file is refused; nothing outside the archive resolves', async () => {
  const source = HEADER + fnClass(`    return CloudResponse.text('x');`);
  const extended = await typeErrors({ 'index.ts': source, 'tsconfig.json': '{ "extends": "/etc/tsconfig.json" }' });
  assert.equal(extended?.code, 'ANALYSIS_UNSAFE_REFERENCE');
  // The builder's own packages are not the function's: importing one fails to resolve.
  const borrowed = await typeErrors({ 'index.ts': `import { Worker } from 'bullmq';\nexport const w = Worker;\n` + source });
  assert.match(borrowed?.message ?? '', /Cannot find module 'bullmq'/);
});

test('analysis, type-check or bundle past its time limit is BUILD_TIMEOUT naming the step, and the process is replaced', async () => {
  const hasty = new AnalysisPool({ size: 1, analysisTimeoutMs: 1, bundleTimeoutMs: 1 });
  try {
    await assert.rejects(hasty.typeCheck(await files({ 'index.ts': 'export const x = 1;' })), (err: unknown) => err instanceof WharfError && err.code === 'BUILD_TIMEOUT' && /the (typecheck|analysis) step/.test(err.message));
    await assert.rejects(hasty.analyse(await files({ 'index.ts': 'export const x = 1;' })), (err: unknown) => err instanceof WharfError && err.code === 'BUILD_TIMEOUT' && /the (typecheck|analysis) step/.test(err.message));
    await assert.rejects(hasty.bundle(await files({ 'index.ts': 'export const x = 1;' }), { file: 'index.ts', className: 'X' }), (err: unknown) => err instanceof WharfError && err.code === 'BUILD_TIMEOUT' && /the bundle step/.test(err.message));
  } finally {
    await hasty.close();
  }
  const analysed = await pool.analyse(await files({ 'index.ts': HEADER + fnClass(`    return CloudResponse.text('x');`) }));
  assert.deepEqual(analysed, { file: 'index.ts', className: 'Fn' });
});

test('a worker that grew past its memory bound is replaced by a fresh, warm one', async () => {
  // Every worker is over a 1-byte bound: each task's worker is recycled.
  const recycling = new AnalysisPool({ size: 1, analysisTimeoutMs: 60_000, bundleTimeoutMs: 60_000, recycleRssBytes: 1 });
  try {
    await recycling.warmUp();
    const [first] = recycling.pids();
    assert.ok(first);
    const source = await files({ 'index.ts': HEADER + fnClass(`    return CloudResponse.text('x');`) });
    assert.deepEqual(await recycling.analyse(source), { file: 'index.ts', className: 'Fn' });
    // The replacement starts at once, not at the next build.
    const deadline = Date.now() + 10_000;
    while (recycling.pids().length === 0 || recycling.pids()[0] === first) {
      assert.ok(Date.now() < deadline, 'no replacement started');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const gone = () => {
      try {
        process.kill(first, 0);
        return false;
      } catch {
        return true;
      }
    };
    while (!gone()) {
      assert.ok(Date.now() < deadline, 'the old worker is still alive');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(await recycling.analyse(source), { file: 'index.ts', className: 'Fn' });
  } finally {
    await recycling.close();
  }
});

test('a project past the worker heap is BUILD_OUT_OF_MEMORY; a worker that died while idle is not handed the next task', async () => {
  const source = await files({ 'index.ts': HEADER + fnClass(`    return CloudResponse.text('x');`) });
  const small = new AnalysisPool({ size: 1, analysisTimeoutMs: 60_000, bundleTimeoutMs: 60_000, heapMb: 32 });
  try {
    await assert.rejects(small.typeCheck(source), (err: unknown) => err instanceof WharfError && err.code === 'BUILD_OUT_OF_MEMORY' && /typecheck step ran out of memory \(32 MB\)/.test(err.message));
  } finally {
    await small.close();
  }
  const [idle] = pool.pids();
  process.kill(idle, 'SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(await pool.analyse(source), { file: 'index.ts', className: 'Fn' });
});

test('sources nested too deeply for TypeScript or esbuild are SOURCE_TOO_COMPLEX, and the next build on the pool works', async () => {
  const ok = await files({ 'index.ts': HEADER + fnClass(`    return CloudResponse.text('x');`) });
  // A TypeScript expression nested past the checker's stack.
  const deepTs = await files({ 'index.ts': HEADER + `export const deep = ${'['.repeat(50_000)}${']'.repeat(50_000)};\n` + fnClass(`    return CloudResponse.text('x');`) });
  await assert.rejects(pool.typeCheck(deepTs), (err: unknown) => err instanceof WharfError && err.code === 'SOURCE_TOO_COMPLEX');
  // A JavaScript module nested past the bundler's stack: esbuild's own process dies.
  const deepJs = await files({ 'deep.js': `module.exports = ${'['.repeat(1_000_000)}${']'.repeat(1_000_000)};\n`, 'index.ts': HEADER + `// @ts-ignore\nimport deep from './deep.js';\n` + fnClass(`    return CloudResponse.json(deep);`) });
  await assert.rejects(pool.bundle(deepJs, { file: 'index.ts', className: 'Fn' }), (err: unknown) => err instanceof WharfError && err.code === 'SOURCE_TOO_COMPLEX');
  assert.match(await pool.bundle(ok, { file: 'index.ts', className: 'Fn' }), /CloudResponse/);
  assert.deepEqual(await pool.analyse(ok), { file: 'index.ts', className: 'Fn' });
});

test("the checker does not follow a symlink out of the installed tree", async () => {
  const secret = path.join(scratch, 'host-secret.d.ts');
  await fs.writeFile(secret, 'export declare const key: "HOST-SECRET-TYPE";\n');
  const nodeModules = path.join(await fs.mkdtemp(path.join(scratch, 'deps-')), 'node_modules');
  await fs.mkdir(path.join(nodeModules, 'pkg'), { recursive: true });
  await fs.writeFile(path.join(nodeModules, 'pkg', 'package.json'), JSON.stringify({ name: 'pkg', version: '1.0.0', types: 'index.d.ts' }));
  await fs.symlink(secret, path.join(nodeModules, 'pkg', 'index.d.ts'));
  const source = await files({ 'index.ts': HEADER + `import { key } from 'pkg';\nexport const n: number = key;\n` + fnClass(`    return CloudResponse.text('x');`) });
  const err = await pool.typeCheck(source, nodeModules).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof WharfError && err.code === 'TYPECHECK_FAILED', String(err));
  assert.doesNotMatch(err.message, /HOST-SECRET/);
});
