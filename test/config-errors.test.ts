import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '..');

function start(app: string, env: Record<string, string>) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'apps', app, 'src', 'main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

test('a bad setting stops each process at start-up with a message naming the variable', () => {
  const api = start('api', { WHARF_API_PORT: 'eighty' });
  assert.equal(api.status, 1);
  assert.match(api.stderr, /^api: invalid configuration: WHARF_API_PORT="eighty"/m);

  const runner = start('runner', { WHARF_MAX_CPUS: 'lots' });
  assert.equal(runner.status, 1);
  assert.match(runner.stderr, /^runner: invalid configuration: WHARF_MAX_CPUS="lots"/m);

  const builder = start('builder', { REDIS_URL: 'not a url' });
  assert.equal(builder.status, 1);
  assert.match(builder.stderr, /^builder: invalid configuration: REDIS_URL="not a url"/m);

  const registry = start('builder', { WHARF_REGISTRY: 'http://127.0.0.1:5055' });
  assert.equal(registry.status, 1);
  assert.match(registry.stderr, /^builder: invalid configuration: WHARF_REGISTRY="http:\/\/127.0.0.1:5055": must be host\[:port\]\[\/path\], without a scheme/m);

  const slots = start('runner', { WHARF_RUNNER_SLOTS: '0' });
  assert.equal(slots.status, 1);
  assert.match(slots.stderr, /^runner: invalid configuration: WHARF_RUNNER_SLOTS="0"/m);
});
