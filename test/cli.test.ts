import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { fixtureDir } from './helpers/fixtures.js';
import { freePort, startStack, type Stack } from './helpers/stack.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const WHARF = path.join(ROOT, 'node_modules', '.bin', 'wharf');
const run = promisify(execFile);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json<T = Record<string, unknown>>(): T;
}

describe('the wharf CLI drives a deploy → invoke → rollback → rm cycle against a running stack', () => {
  let stack: Stack;
  let configHome: string;

  /** Runs `wharf ...args` the way a user would (the npm-installed bin), with its own config folder. */
  async function wharf(...args: string[]): Promise<CliResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: configHome, WHARF_API_URL: stack.baseUrl };
    delete env.WHARF_TOKEN;
    const result = await run(WHARF, args, { env, cwd: ROOT, timeout: 120_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );
    return { ...result, json: () => JSON.parse(result.stdout) };
  }

  before(async () => {
    stack = await startStack();
    configHome = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-cli-home-'));
  });

  after(async () => {
    await stack?.stop();
    if (configHome) await fs.rm(configHome, { recursive: true, force: true });
  });

  test('register saves the API URL and token in a private config file; login replaces it', async () => {
    const registered = await wharf('register', '--email', `cli-${stack.id}@example.test`, '--password', 'correct horse battery');
    assert.equal(registered.code, 0, registered.stderr);
    assert.match(registered.stdout, /registered as cli-/);
    const file = path.join(configHome, 'wharf', 'config.json');
    const saved = JSON.parse(await fs.readFile(file, 'utf8'));
    assert.equal(saved.apiUrl, stack.baseUrl);
    assert.match(saved.token, /\S{20,}/);
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);

    const wrong = await wharf('login', '--email', `cli-${stack.id}@example.test`, '--password', 'not the password');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /INVALID_CREDENTIALS/);
    const login = await wharf('--json', 'login', '--email', `cli-${stack.id}@example.test`, '--password', 'correct horse battery');
    assert.equal(login.code, 0, login.stderr);
    const token = JSON.parse(await fs.readFile(file, 'utf8')).token;
    assert.notEqual(token, saved.token);
    assert.equal((await wharf('token')).stdout.trim(), token);
  });

  test('deploy --wait builds and prints the invoke URL; invoke, rollback, deployments, logs, keys, rm and restore work by name', async () => {
    const v1 = await wharf('--json', 'deploy', fixtureDir('probe'), '--name', 'probe', '--env', 'GREETING=one', '--wait');
    assert.equal(v1.code, 0, v1.stderr);
    const first = v1.json<{ function_id: string; version: number; status: string; url: string; invoke_url: string }>();
    assert.deepEqual([first.version, first.status], [1, 'succeeded']);
    assert.equal(first.invoke_url, `${stack.baseUrl}/api/functions/${first.function_id}/invoke`);
    assert.equal(first.url, `${stack.baseUrl}/fn/probe`);

    const human = await wharf('deploy', fixtureDir('probe'), '--name', 'probe', '--env', 'GREETING=two', '--wait');
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stderr, /probe v2 is active/, 'progress and outcome on stderr');
    assert.match(human.stderr, /analysis: class Probe in index\.ts[\s\S]*typecheck: no errors[\s\S]*docker: Step 1\/\d+ : FROM/, 'the build log, followed as it runs');
    assert.match(human.stdout, /invoke: curl http:\/\/127\.0\.0\.1:\d+\/fn\/probe -H "Authorization: Bearer \$\(wharf token\)"/);

    const greeting = async () => {
      const res = await wharf('--json', 'invoke', 'probe', '--data', '{"n":1}');
      assert.equal(res.code, 0, res.stderr);
      const body = res.json<{ status: number; body: { env: { GREETING: string }; request: { body: unknown } } }>();
      assert.equal(body.status, 201);
      assert.deepEqual(body.body.request.body, { n: 1 });
      return body.body.env.GREETING;
    };
    assert.equal(await greeting(), 'two');

    const broken = await wharf('deploy', fixtureDir('no-function-class'), '--name', 'probe', '--wait');
    assert.equal(broken.code, 1, 'a failed build exits non-zero');
    assert.match(broken.stderr, /probe v3 failed: NO_FUNCTION_CLASS/);
    assert.equal(await greeting(), 'two', 'the failed build left v2 serving');

    const rollback = await wharf('rollback', 'probe', '1');
    assert.equal(rollback.code, 0, rollback.stderr);
    assert.match(rollback.stdout, /version 1 is now active \(was v2\)/);
    assert.equal(await greeting(), 'one');

    const deployments = await wharf('--json', 'deployments', 'probe');
    assert.deepEqual(
      deployments.json<{ deployments: Array<{ version: number; status: string; is_active: boolean }> }>().deployments.map((d) => [d.version, d.status, d.is_active]),
      [[3, 'failed', false], [2, 'succeeded', false], [1, 'succeeded', true]],
    );
    const table = await wharf('deployments', 'probe');
    assert.match(table.stdout, /^v1\s+succeeded\s+\*/m);

    const listed = await wharf('ls');
    assert.match(listed.stdout, /^probe\s+active\s+v1\s+v3\s/m);

    const logs = await wharf('logs', 'probe', '--limit', '1');
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /DEBUG probing/);

    const queued = await wharf('--json', 'invoke', 'probe', '--async');
    assert.equal(queued.code, 0, queued.stderr);
    const queuedId = queued.json<{ invocation_id: string }>().invocation_id;
    assert.match(queuedId, /^[0-9a-f-]{36}$/);
    const poller = stack.client();
    poller.token = (await wharf('token')).stdout.trim();
    await poller.waitForInvocation(queuedId);
    const shown = await wharf('--json', 'invocation', queuedId);
    assert.equal(shown.json<{ status: string; attempts: number }>().status, 'succeeded');
    const listedRuns = await wharf('invocations', 'probe', '--status', 'succeeded');
    assert.match(listedRuns.stdout, new RegExp(`^${queuedId}\\s+succeeded`, 'm'));
    const lateCancel = await wharf('cancel', queuedId);
    assert.equal(lateCancel.code, 1);
    assert.match(lateCancel.stderr, /INVOCATION_FINISHED/);
    const opened = await wharf('config', 'probe', '--public', 'true');
    assert.match(opened.stdout, /public at \/fn\/probe/);
    const warmed = await wharf('config', 'probe', '--mode', 'warm');
    assert.match(warmed.stdout, /^probe: warm \(concurrency 1, min instances 0\), /);
    assert.equal((await wharf('config', 'probe', '--mode', 'lukewarm')).code, 1, 'an unknown mode is refused');
    assert.equal((await fetch(`${stack.baseUrl}/fn/probe`)).status, 201, 'a public function answers without credentials');

    const key = (await wharf('--json', 'keys', 'create', 'probe')).json<{ key_id: string; secret: string }>();
    const keyed = await run(WHARF, ['--json', 'invoke', first.function_id, '--key-id', key.key_id, '--secret', key.secret], {
      env: { ...process.env, WHARF_API_URL: stack.baseUrl, WHARF_CONFIG: path.join(configHome, 'none.json') },
    });
    assert.equal(JSON.parse(keyed.stdout).status, 201, 'a signed invocation with only an API key');
    assert.match((await wharf('keys', 'ls', 'probe')).stdout, new RegExp(key.key_id));
    assert.equal((await wharf('keys', 'revoke', 'probe', key.key_id)).code, 0);

    const config = await wharf('config', 'probe', '--timeout-ms', '999999999');
    assert.equal(config.code, 1);
    assert.match(config.stderr, /VALIDATION_FAILED/);

    const rm = await wharf('rm', 'probe');
    assert.equal(rm.code, 0, rm.stderr);
    assert.match(rm.stdout, /will be deleted on .*wharf restore probe/);
    const refused = await wharf('invoke', 'probe');
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /FUNCTION_PENDING_DELETION/);
    assert.match((await wharf('ls')).stdout, /^probe\s+pending_deletion/m);

    const restore = await wharf('--json', 'restore', 'probe');
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(restore.json<{ function: { status: string } }>().function.status, 'active');
    assert.equal(await greeting(), 'one');
  });

  test('failures exit non-zero with the error code; --json errors are JSON', async () => {
    const missing = await wharf('invoke', 'nope');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /FUNCTION_NOT_FOUND/);
    const json = await wharf('--json', 'rollback', 'nope', '1');
    assert.equal(json.code, 1);
    assert.equal(JSON.parse(json.stderr).error.code, 'FUNCTION_NOT_FOUND');
    const unreachable = await run(WHARF, ['ls', '--api', `http://127.0.0.1:${await freePort()}`], { env: { ...process.env, XDG_CONFIG_HOME: configHome } }).catch((err) => err);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach the Wharf API \(ECONNREFUSED\)/);
    const usage = await wharf('rollback', 'probe');
    assert.notEqual(usage.code, 0);
    assert.match(usage.stderr, /missing required argument/);
  });
});
