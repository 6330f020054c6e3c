import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { SANDBOX_FILES, WharfError, formatEnvConfig, parseLogLines } from '@wharf/shared';
import { analyseSources } from '../src/analysis.js';
import { readSources } from '../src/archive.js';
import { AnalysisPool } from '../src/analysis-pool.js';
import { bundleFunction } from '../src/bundle.js';
import { writeSourceTree } from '../../../test/helpers/fixtures.js';

const run = promisify(execFile);
const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-bundle-test-'));
after(() => fs.rm(scratch, { recursive: true, force: true }));

async function bundle(files: Record<string, string>, dependencies?: { nodeModules: string; external: string[] }): Promise<string> {
  const dir = await writeSourceTree(scratch, files);
  const sources = await readSources(dir);
  return bundleFunction(dir, analyseSources(sources), sources, dependencies);
}

/** A package folder with an index.js exporting `value`. */
async function fakePackage(nodeModules: string, name: string, value: unknown): Promise<void> {
  await fs.mkdir(path.join(nodeModules, name), { recursive: true });
  await fs.writeFile(path.join(nodeModules, name, 'package.json'), JSON.stringify({ name, version: '1.0.0', main: 'index.js' }));
  await fs.writeFile(path.join(nodeModules, name, 'index.js'), `module.exports = ${JSON.stringify(value)};`);
}

const multiFile = {
  'lib/format.ts': `export const greet = (name: string) => \`Hello \${name}\`;\n`,
  'handler.ts': `import { CloudFunction, CloudResponse, cloudFunction, type CloudRequest, type FunctionContext } from '@wharf/sdk';
import { greet } from './lib/format.js';

@cloudFunction
class Greeter extends CloudFunction {
  async handle(request: CloudRequest, ctx: FunctionContext) {
    ctx.logger.info('hi');
    return CloudResponse.json({ text: greet(String(request.query.name)), env: ctx.env.TARGET });
  }
}
`,
};

test('a multi-file function bundles into one file that runs the class without Wharf installed', async () => {
  const code = await bundle(multiFile);
  const workDir = await fs.mkdtemp(path.join(scratch, 'work-'));
  await fs.writeFile(path.join(workDir, 'index.js'), code);
  await fs.writeFile(path.join(workDir, SANDBOX_FILES.request), JSON.stringify({ method: 'GET', path: '/', headers: {}, query: { name: 'Ada' }, invocationId: 'i', deadline: Date.now() + 1000 }));
  await fs.writeFile(path.join(workDir, SANDBOX_FILES.envConfig), formatEnvConfig({ TARGET: 'moon' }));
  // Run from a folder with no node_modules in reach: everything must be in the bundle.
  await run(process.execPath, [path.join(workDir, 'index.js')], { cwd: workDir });
  const result = JSON.parse(await fs.readFile(path.join(workDir, SANDBOX_FILES.result), 'utf8'));
  assert.equal(result.statusCode, 200);
  assert.deepEqual(JSON.parse(result.body), { text: 'Hello Ada', env: 'moon' });
  const logs = parseLogLines(await fs.readFile(path.join(workDir, SANDBOX_FILES.logs), 'utf8')) as Array<{ message: string }>;
  assert.equal(logs[0].message, 'hi');
});

test('legacy experimentalDecorators from the user tsconfig work too', async () => {
  const code = await bundle({ ...multiFile, 'tsconfig.json': JSON.stringify({ compilerOptions: { experimentalDecorators: true } }) });
  assert.match(code, /__decorateClass|__decorate/);
});

test('a syntax error fails with its file and line', async () => {
  await assert.rejects(
    bundle({ 'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.text('x' }\n}\n` }),
    (err: unknown) => err instanceof WharfError && err.code === 'BUNDLE_FAILED' && /index\.ts:4/.test(err.message),
  );
});

test('an import of a package the archive does not provide fails the bundle', async () => {
  await assert.rejects(
    bundle({ 'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\nimport left from 'left-pad';\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.text(left('x', 3)); }\n}\n` }),
    (err: unknown) => err instanceof WharfError && err.code === 'BUNDLE_FAILED' && /left-pad/.test(err.message),
  );
});

test('an import reaching outside the archive is refused, not bundled', async () => {
  const importing = (specifier: string) => ({
    'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\nimport leak from ${JSON.stringify(specifier)};\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.json(leak); }\n}\n`,
  });
  const outside = path.join(scratch, 'host-secret.json');
  await fs.writeFile(outside, JSON.stringify({ secret: 'builder host file' }));
  // A package in a node_modules above the build folder, as the builder's own would be.
  await fs.mkdir(path.join(scratch, 'node_modules', 'host-pkg'), { recursive: true });
  await fs.writeFile(path.join(scratch, 'node_modules', 'host-pkg', 'index.js'), 'module.exports = { host: true };');
  for (const specifier of [outside, '../host-secret.json']) {
    await assert.rejects(
      bundle(importing(specifier)),
      (err: unknown) => err instanceof WharfError && err.code === 'ANALYSIS_UNSAFE_REFERENCE',
      `import of ${specifier}`,
    );
  }
  // A package above the build folder is never even seen.
  await assert.rejects(
    bundle(importing('host-pkg')),
    (err: unknown) => err instanceof WharfError && err.code === 'BUNDLE_FAILED' && /host-pkg is not among the function's dependencies/.test(err.message) && !err.message.includes(scratch),
  );
});

test("packages resolve in the function's own installed tree, never in a node_modules above the build folder", async () => {
  // The platform's tree (above the build folder) and the function's installed tree (elsewhere) both have "shared-pkg".
  await fakePackage(path.join(scratch, 'node_modules'), 'shared-pkg', 'platform copy');
  const installed = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-bundle-deps-')), 'node_modules');
  after(() => fs.rm(path.dirname(installed), { recursive: true, force: true }));
  await fakePackage(installed, 'shared-pkg', 'function copy');
  // A dependency's own dependency resolves from the installed tree too.
  await fakePackage(installed, 'wrapper', 'unused');
  await fs.writeFile(path.join(installed, 'wrapper', 'index.js'), `module.exports = 'wrapped ' + require('shared-pkg');`);
  const code = await bundle(
    {
      'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\nimport shared from 'shared-pkg';\nimport wrapped from 'wrapper';\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.json([shared, wrapped]); }\n}\n`,
    },
    { nodeModules: installed, external: [] },
  );
  assert.match(code, /function copy/);
  assert.doesNotMatch(code, /platform copy/);
});

test("suffix tricks, globs over folders and host files never reach the bundle, nor their names the message", async () => {
  const secret = path.join(scratch, 'host-secret-2.json');
  await fs.writeFile(secret, JSON.stringify({ marker: 'HOST-SECRET' }));
  const sdkDir = path.dirname(createRequire(import.meta.url).resolve('@wharf/sdk'));
  const up = '/..'.repeat(20);
  // A `.js` module in the archive: the analysis reads only .ts, so the bundler is the one to refuse.
  const withModule = (js: string) => ({
    'mod.js': js,
    'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\n// @ts-ignore\nimport leak from './mod.js';\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.json(leak); }\n}\n`,
  });
  const cases = [
    // esbuild drops the `?…` ending to find the file, but path.resolve folds it into the SDK's folder.
    `module.exports = require(${JSON.stringify(`${secret}?${up}${sdkDir}/x`)});`,
    `module.exports = require(${JSON.stringify(secret)});`,
    // Expanded by esbuild over every file below the folder named (no plugin sees them).
    'const n = process.env.N; module.exports = require(`../${n}`);',
  ];
  for (const js of cases) {
    const err = await bundle(withModule(js)).then(
      (code) => assert.fail(`bundled: ${code.includes('HOST-SECRET')}`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WharfError, String(err));
    assert.ok(['ANALYSIS_UNSAFE_REFERENCE', 'BUNDLE_FAILED'].includes(err.code), `${js}: ${err.code} ${err.message}`);
    assert.ok(!err.message.includes(scratch) && !err.message.includes('host-secret'), `${js}: ${err.message}`);
  }
});

test("a package's missing subpath does not fall through to a package of that name above the build folder", async () => {
  await fakePackage(path.join(scratch, 'node_modules'), 'exportless', 'platform copy');
  await fs.writeFile(path.join(scratch, 'node_modules', 'exportless', 'sub.js'), "module.exports = 'platform sub';");
  // The installed tree below the folder whose node_modules has the other copy: esbuild, not
  // finding sub.js in the function's package, walks on up to it.
  const installed = path.join(await fs.mkdtemp(path.join(scratch, 'deps-')), 'node_modules');
  await fakePackage(installed, 'exportless', 'function copy');
  await assert.rejects(
    bundle({ 'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\n// @ts-ignore\nimport sub from 'exportless/sub.js';\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.json(sub); }\n}\n` }, { nodeModules: installed, external: [] }),
    (err: unknown) => err instanceof WharfError && err.code === 'BUNDLE_FAILED' && /in the function's exportless/.test(err.message) && !err.message.includes(scratch),
  );
});

test('build and dependency folders reached through symlinks bundle as well', async () => {
  const real = await fs.mkdtemp(path.join(scratch, 'real-'));
  const linked = path.join(scratch, `linked-${path.basename(real)}`);
  await fs.symlink(real, linked);
  await fakePackage(path.join(real, 'deps', 'node_modules'), 'shared-pkg', 'function copy');
  const dir = await writeSourceTree(linked, {
    'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\n// @ts-ignore\nimport shared from 'shared-pkg';\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.json(shared); }\n}\n`,
  });
  const sources = await readSources(dir);
  const code = await bundleFunction(dir, analyseSources(sources), sources, { nodeModules: path.join(linked, 'deps', 'node_modules'), external: [] });
  assert.match(code, /function copy/);
});

test('a computed path esbuild expands never loads a device or a file outside (here /dev/zero, which would be read forever)', async () => {
  const js = "const x = process.env.X;\nmodule.exports = import(`" + '../'.repeat(20) + "dev/zer${x}`, { with: { type: 'text' } });\n";
  // In an analysis process, as the builder bundles: were the guard to fail, its time limit ends the read, not the host's memory.
  const pool = new AnalysisPool({ size: 1, analysisTimeoutMs: 30_000, bundleTimeoutMs: 30_000 });
  try {
    const dir = await writeSourceTree(scratch, {
      'mod.js': js,
      'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\n// @ts-ignore\nimport leak from './mod.js';\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.json(leak); }\n}\n`,
    });
    await assert.rejects(
      pool.bundle(dir, { file: 'index.ts', className: 'A' }),
      (err: unknown) => err instanceof WharfError && err.code === 'ANALYSIS_UNSAFE_REFERENCE' && !/dev|zer/.test(err.message),
    );
  } finally {
    await pool.close();
  }
});

test("Node's own modules stay external, those esbuild does not know too", async () => {
  const code = await bundle({
    'index.ts': `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\nimport rl from 'readline/promises';\nimport fs from 'fs';\n@cloudFunction\nclass A extends CloudFunction {\n  handle() { return CloudResponse.json([typeof rl, typeof fs]); }\n}\n`,
  });
  assert.match(code, /require\("readline\/promises"\)/);
});
