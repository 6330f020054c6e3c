import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { LABELS, SANDBOX_FILES, SANDBOX_USER, parseEnvConfig } from '@wharf/shared';
import { containerOptions, type ContainerOutcome, type HostLimits } from '../src/container-runner.js';
import { attemptOf, collectResult, limitsFor } from '../src/invoke-processor.js';
import { prepareSandboxDir, readSandboxFile } from '../src/sandbox-dir.js';

const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-runner-test-'));
after(() => fs.rm(scratch, { recursive: true, force: true }));

const exited = (over: Partial<ContainerOutcome> = {}): ContainerOutcome => ({
  exitCode: 0,
  timedOut: false,
  oomKilled: false,
  cancelled: false,
  durationMs: 10,
  stderrTail: '',
  ...over,
});

const host: HostLimits = { pids: 64, nofile: 1024, fileBytes: 2049, tmpMb: 16, consoleBytes: 4096 };
const caps = { resultBytes: 1024, logBytes: 1024 };

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
    limits: { timeoutMs: 5000, memoryMb: 128, cpus: 0.5, ...host },
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
    Init: true,
    Ulimits: [
      { Name: 'nofile', Soft: 1024, Hard: 1024 },
      { Name: 'fsize', Soft: 2049, Hard: 2049 },
    ],
    LogConfig: { Type: 'json-file', Config: { 'max-size': '4096', 'max-file': '1' } },
    Binds: ['/srv/x:/work:ro', `/srv/x/${SANDBOX_FILES.result}:/work/${SANDBOX_FILES.result}:rw`, `/srv/x/${SANDBOX_FILES.logs}:/work/${SANDBOX_FILES.logs}:rw`],
    Tmpfs: { '/tmp': 'rw,noexec,nosuid,nodev,size=16m' },
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

test('reading outputs never follows a symlink the function planted, ignores FIFOs, and is capped', async () => {
  const dir = await sandboxWith({ 'big.json': 'x'.repeat(100) });
  await fs.symlink('/etc/passwd', path.join(dir, SANDBOX_FILES.result));
  assert.deepEqual(await readSandboxFile(dir, SANDBOX_FILES.result, 1024), { text: '', size: 0 });
  assert.deepEqual(await readSandboxFile(dir, 'big.json', 99), { text: 'x'.repeat(99), size: 100 });
  assert.deepEqual(await readSandboxFile(dir, 'big.json', 100), { text: 'x'.repeat(100), size: 100 });
  assert.deepEqual(await readSandboxFile(dir, 'missing.json', 100), { text: '', size: 0 });
  // A FIFO with no writer would block an ordinary open forever.
  execFileSync('mkfifo', [path.join(dir, SANDBOX_FILES.logs)]);
  assert.deepEqual(await readSandboxFile(dir, SANDBOX_FILES.logs, 100), { text: '', size: 0 });
});

test('logs past their cap are cut at the last whole entry and marked truncated', async () => {
  const entry = (i: number) => JSON.stringify({ level: 'info', message: `line ${i}`, timestamp: '2026-01-01T00:00:00.000Z' }) + '\n';
  const lines = Array.from({ length: 100 }, (_, i) => entry(i)).join('');
  const dir = await sandboxWith({ [SANDBOX_FILES.result]: JSON.stringify({ statusCode: 200, headers: {}, body: '' }), [SANDBOX_FILES.logs]: lines });
  const collected = await collectResult(dir, exited(), caps);
  assert.equal(collected.status, 'succeeded');
  assert.equal(collected.logsTruncated, true);
  assert.equal(collected.logs.length, Math.floor(1024 / entry(0).length));
  assert.equal(collected.logs[0].message, 'line 0');
  const small = await collectResult(await sandboxWith({ [SANDBOX_FILES.logs]: entry(1) }), exited(), caps);
  assert.equal(small.logsTruncated, undefined);
});

test('a written result with logs is a success', async () => {
  const dir = await sandboxWith({
    [SANDBOX_FILES.result]: JSON.stringify({ statusCode: 200, headers: { 'Content-Type': 'text/plain' }, body: 'hi' }),
    [SANDBOX_FILES.logs]: JSON.stringify({ level: 'info', message: 'm', timestamp: '2026-01-01T00:00:00.000Z' }) + '\nnot json\n',
  });
  assert.deepEqual(await collectResult(dir, exited(), caps), {
    status: 'succeeded',
    logs: [{ level: 'info', message: 'm', timestamp: '2026-01-01T00:00:00.000Z' }],
    response: { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: 'hi' },
  });
});

test('a thrown error, a timeout, an OOM kill, a crash, an oversized result and a cancellation each map to their code', async () => {
  const errorBody = JSON.stringify({ statusCode: 500, headers: {}, body: '{}', error: { code: 'FUNCTION_ERROR', message: 'boom' } });
  const threw = await collectResult(await sandboxWith({ [SANDBOX_FILES.result]: errorBody }), exited(), caps);
  assert.equal(threw.status, 'failed');
  assert.deepEqual(threw.error, { code: 'FUNCTION_ERROR', message: 'boom' });

  const empty = await sandboxWith({ [SANDBOX_FILES.result]: '', [SANDBOX_FILES.logs]: '' });
  assert.equal((await collectResult(empty, exited({ timedOut: true, exitCode: null }), caps)).error?.code, 'FUNCTION_TIMEOUT');
  assert.equal((await collectResult(empty, exited({ timedOut: true, exitCode: null }), caps)).status, 'timed_out');
  assert.equal((await collectResult(empty, exited({ oomKilled: true, exitCode: 137 }), caps)).error?.code, 'FUNCTION_OOM');
  const crashed = await collectResult(empty, exited({ exitCode: 1, stderrTail: 'SyntaxError: nope' }), caps);
  assert.equal(crashed.error?.code, 'FUNCTION_CRASHED');
  assert.match(crashed.error?.message ?? '', /code 1.*SyntaxError: nope/);

  const badStatus = await sandboxWith({ [SANDBOX_FILES.result]: JSON.stringify({ statusCode: 42, headers: {}, body: '' }) });
  assert.equal((await collectResult(badStatus, exited(), caps)).error?.code, 'FUNCTION_CRASHED');

  const huge = await sandboxWith({ [SANDBOX_FILES.result]: 'x'.repeat(2048) });
  const tooLarge = await collectResult(huge, exited(), caps);
  assert.equal(tooLarge.status, 'failed');
  assert.equal(tooLarge.error?.code, 'RESULT_TOO_LARGE');
  assert.match(tooLarge.error?.message ?? '', /larger than 1024 bytes/);
  // Killed for writing past the file-size limit: the oversized result still names the cause.
  assert.equal((await collectResult(huge, exited({ exitCode: 153 }), caps)).error?.code, 'RESULT_TOO_LARGE');

  const cancelled = await collectResult(empty, exited({ cancelled: true, exitCode: null }), caps);
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(cancelled.error?.code, 'INVOCATION_CANCELLED');
});

test("a job's limits are clamped to the runner's maxima; the pid limit is the runner's", () => {
  const maxima = { timeoutMs: 60_000, memoryMb: 512, cpus: 1 };
  assert.deepEqual(limitsFor({ timeoutMs: 2000, memoryMb: 256, cpus: 0.5 }, maxima, host), { timeoutMs: 2000, memoryMb: 256, cpus: 0.5, ...host });
  assert.deepEqual(limitsFor({ timeoutMs: 600_000, memoryMb: 4096, cpus: 8 }, maxima, host), { timeoutMs: 60_000, memoryMb: 512, cpus: 1, ...host });
});

test('attempts count across retries and across a re-enqueue of the invocation', () => {
  const data = { priorAttempts: undefined } as unknown as Parameters<typeof attemptOf>[1];
  assert.equal(attemptOf({ attemptsStarted: 1, attemptsMade: 0 }, data), 1);
  assert.equal(attemptOf({ attemptsStarted: 2, attemptsMade: 1 }, data), 2);
  assert.equal(attemptOf({ attemptsStarted: 1, attemptsMade: 0 }, { ...data, priorAttempts: 2 }), 3);
});
