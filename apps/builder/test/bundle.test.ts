import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { SANDBOX_FILES, WharfError, formatEnvConfig, parseLogLines } from '@wharf/shared';
import { analyseSources } from '../src/analysis.js';
import { readSources } from '../src/archive.js';
import { bundleFunction } from '../src/bundle.js';

const run = promisify(execFile);
const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-bundle-test-'));
after(() => fs.rm(scratch, { recursive: true, force: true }));

async function sourceTree(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(scratch, 'src-'));
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), content);
  }
  return dir;
}

async function bundle(files: Record<string, string>): Promise<string> {
  const dir = await sourceTree(files);
  const sources = await readSources(dir);
  return bundleFunction(dir, analyseSources(sources), sources);
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
  for (const specifier of [outside, '../host-secret.json', 'host-pkg']) {
    await assert.rejects(
      bundle(importing(specifier)),
      (err: unknown) => err instanceof WharfError && err.code === 'ANALYSIS_UNSAFE_REFERENCE',
      `import of ${specifier}`,
    );
  }
});
