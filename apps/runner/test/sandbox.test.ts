import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { LABELS, SANDBOX_FILES, SANDBOX_USER, parseEnvConfig } from '@wharf/shared';
import { containerOptions, type ContainerOutcome } from '../src/container-runner.js';
import { collectResult, limitsFor } from '../src/invoke-processor.js';
import { OutputTooLargeError, prepareSandboxDir, readSandboxFile } from '../src/sandbox-dir.js';

const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-runner-test-'));
after(() => fs.rm(scratch, { recursive: true, force: true }));

const exited = (over: Partial<ContainerOutcome> = {}): ContainerOutcome => ({
  exitCode: 0,
  timedOut: false,
  oomKilled: false,
  durationMs: 10,
  stderrTail: '',
  ...over,
});

async function sandboxWith(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(scratch, 'sandbox-'));
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), content);
  return dir;
}

test('the container is created with every isolation setting', () => {
  const options = containerOptions({
    name: 'wharf-x',
    image: 'wharf-fn-x:v1',
    hostDir: '/srv/x',
    labels: { [LABELS.invocationId]: 'abc' },
    limits: { timeoutMs: 5000, memoryMb: 128, cpus: 0.5, pids: 64 },
  });
  assert.equal(options.User, `${SANDBOX_USER.uid}:${SANDBOX_USER.gid}`);
  assert.equal(options.NetworkDisabled, true);
  assert.equal(options.WorkingDir, '/work');
  assert.equal(options.Labels?.[LABELS.managed], 'true');
  assert.deepEqual(options.HostConfig, {
    NetworkMode: 'none',
    ReadonlyRootfs: true,
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    Memory: 128 * 1024 * 1024,
    MemorySwap: 128 * 1024 * 1024,
    NanoCpus: 500_000_000,
    PidsLimit: 64,
    Binds: ['/srv/x:/work:rw'],
    Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
    AutoRemove: false,
  });
});

test('the sandbox folder holds the request, the variables and empty outputs, owned by the sandbox user', async () => {
  const dir = await prepareSandboxDir({
    functionsDir: scratch,
    functionId: 'fn',
    version: 3,
    containerName: 'wharf-test-1',
    request: { method: 'GET', path: '/', headers: {}, query: { a: '1' }, body: undefined, invocationId: 'i', deadline: 1 },
    env: { GREETING: 'multi\nline', WHARF_RESTRICTED: 'true' },
  });
  assert.equal(dir, path.join(scratch, 'fn', 'v3', 'wharf-test-1'));
  assert.deepEqual((await fs.readdir(dir)).sort(), [SANDBOX_FILES.envConfig, SANDBOX_FILES.logs, SANDBOX_FILES.request, SANDBOX_FILES.result].sort());
  assert.deepEqual(parseEnvConfig(await fs.readFile(path.join(dir, SANDBOX_FILES.envConfig), 'utf8')), { GREETING: 'multi\nline', WHARF_RESTRICTED: 'true' });
  assert.equal(JSON.parse(await fs.readFile(path.join(dir, SANDBOX_FILES.request), 'utf8')).query.a, '1');
  assert.equal(await fs.readFile(path.join(dir, SANDBOX_FILES.result), 'utf8'), '');
  if (process.getuid?.() === 0) assert.equal((await fs.stat(dir)).uid, SANDBOX_USER.uid);
});

test('reading outputs never follows a symlink the function planted, and is capped', async () => {
  const dir = await sandboxWith({ 'big.json': 'x'.repeat(100) });
  await fs.symlink('/etc/passwd', path.join(dir, SANDBOX_FILES.result));
  assert.equal(await readSandboxFile(dir, SANDBOX_FILES.result, 1024), '');
  await assert.rejects(readSandboxFile(dir, 'big.json', 99), OutputTooLargeError);
  assert.equal((await readSandboxFile(dir, 'big.json', 100)).length, 100);
  assert.equal(await readSandboxFile(dir, 'missing.json', 100), '');
});

test('a written result with logs is a success', async () => {
  const dir = await sandboxWith({
    [SANDBOX_FILES.result]: JSON.stringify({ statusCode: 200, headers: { 'Content-Type': 'text/plain' }, body: 'hi' }),
    [SANDBOX_FILES.logs]: JSON.stringify([{ level: 'info', message: 'm', timestamp: '2026-01-01T00:00:00.000Z' }]),
  });
  assert.deepEqual(await collectResult(dir, exited(), 1024), {
    status: 'succeeded',
    logs: [{ level: 'info', message: 'm', timestamp: '2026-01-01T00:00:00.000Z' }],
    response: { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: 'hi' },
  });
});

test('a thrown error, a timeout, an OOM kill and a crash each map to their code', async () => {
  const errorBody = JSON.stringify({ statusCode: 500, headers: {}, body: '{}', error: { code: 'FUNCTION_ERROR', message: 'boom' } });
  const threw = await collectResult(await sandboxWith({ [SANDBOX_FILES.result]: errorBody }), exited(), 1024);
  assert.equal(threw.status, 'failed');
  assert.deepEqual(threw.error, { code: 'FUNCTION_ERROR', message: 'boom' });

  const empty = await sandboxWith({ [SANDBOX_FILES.result]: '', [SANDBOX_FILES.logs]: '' });
  assert.equal((await collectResult(empty, exited({ timedOut: true, exitCode: null }), 1024)).error?.code, 'FUNCTION_TIMEOUT');
  assert.equal((await collectResult(empty, exited({ timedOut: true, exitCode: null }), 1024)).status, 'timed_out');
  assert.equal((await collectResult(empty, exited({ oomKilled: true, exitCode: 137 }), 1024)).error?.code, 'FUNCTION_OUT_OF_MEMORY');
  const crashed = await collectResult(empty, exited({ exitCode: 1, stderrTail: 'SyntaxError: nope' }), 1024);
  assert.equal(crashed.error?.code, 'FUNCTION_CRASHED');
  assert.match(crashed.error?.message ?? '', /code 1.*SyntaxError: nope/);

  const badStatus = await sandboxWith({ [SANDBOX_FILES.result]: JSON.stringify({ statusCode: 42, headers: {}, body: '' }) });
  assert.equal((await collectResult(badStatus, exited(), 1024)).error?.code, 'FUNCTION_CRASHED');

  const huge = await sandboxWith({ [SANDBOX_FILES.result]: 'x'.repeat(2048) });
  const tooLarge = await collectResult(huge, exited(), 1024);
  assert.equal(tooLarge.status, 'failed');
  assert.match(tooLarge.error?.message ?? '', /larger than 1024 bytes/);
});

test("a job's limits are clamped to the runner's maxima; the pid limit is the runner's", () => {
  const maxima = { timeoutMs: 60_000, memoryMb: 512, cpus: 1, pids: 64 };
  assert.deepEqual(limitsFor({ timeoutMs: 2000, memoryMb: 256, cpus: 0.5 }, maxima), { timeoutMs: 2000, memoryMb: 256, cpus: 0.5, pids: 64 });
  assert.deepEqual(limitsFor({ timeoutMs: 600_000, memoryMb: 4096, cpus: 8 }, maxima), { timeoutMs: 60_000, memoryMb: 512, cpus: 1, pids: 64 });
});
