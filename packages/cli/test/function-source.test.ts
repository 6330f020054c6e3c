import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { configPath, loadConfig, saveConfig } from '../src/config-file.js';
import { defaultFunctionName, parseEnvPairs } from '../src/function-source.js';

test('--env pairs: values may hold "=", a pair without a key is refused', () => {
  assert.deepEqual(parseEnvPairs(['A=1', 'B=x=y', 'C=']), { A: '1', B: 'x=y', C: '' });
  assert.throws(() => parseEnvPairs(['=1']), /KEY=VALUE/);
  assert.throws(() => parseEnvPairs(['novalue']), /KEY=VALUE/);
});

test('a folder deploys under its package.json name (unscoped), else its own name, made valid', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-cli-'));
  try {
    const withPkg = path.join(root, 'whatever');
    await fs.mkdir(withPkg);
    await fs.writeFile(path.join(withPkg, 'package.json'), JSON.stringify({ name: '@acme/Resize Images' }));
    assert.equal(await defaultFunctionName(withPkg), 'resize-images');
    const bare = path.join(root, 'My_Func');
    await fs.mkdir(bare);
    assert.equal(await defaultFunctionName(bare), 'my_func');
    const hopeless = path.join(root, '123');
    await fs.mkdir(hopeless);
    await assert.rejects(defaultFunctionName(hopeless), /--name/);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('the config file lives under XDG_CONFIG_HOME (or ~/.config), is private, and round-trips', async () => {
  assert.equal(configPath({ XDG_CONFIG_HOME: '/x' }), '/x/wharf/config.json');
  assert.equal(configPath({ WHARF_CONFIG: '/y/c.json', XDG_CONFIG_HOME: '/x' }), '/y/c.json');
  assert.equal(configPath({ HOME: os.homedir() }), path.join(os.homedir(), '.config', 'wharf', 'config.json'));
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-cli-'));
  try {
    const file = path.join(root, 'wharf', 'config.json');
    assert.deepEqual(await loadConfig(file), {});
    await saveConfig({ apiUrl: 'http://127.0.0.1:1', token: 't' }, file);
    assert.deepEqual(await loadConfig(file), { apiUrl: 'http://127.0.0.1:1', token: 't' });
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
