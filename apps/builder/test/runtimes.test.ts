import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { WharfError } from '@wharf/shared';
import { chooseRuntime } from '../src/runtimes.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true }))));

async function archiveWith(...files: string[]): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-runtimes-'));
  dirs.push(dir);
  for (const file of files) await fs.writeFile(path.join(dir, file), '#!/bin/sh\n');
  return dir;
}
const aClass = async () => ({ file: 'index.ts', className: 'Hello' });
const noClass = async (): Promise<never> => {
  throw new WharfError('NO_FUNCTION_CLASS', 'no function class found');
};
const rejectsWith = (code: string) => (err: unknown) => err instanceof WharfError && err.code === code;

test('from the archive: a class is node, even beside a run script; else bootstrap is custom, run is isolated-files', async () => {
  assert.deepEqual(await chooseRuntime(await archiveWith('run'), null, aClass), { runtime: 'node', fn: { file: 'index.ts', className: 'Hello' }, handler: 'index.ts#Hello' });
  assert.deepEqual(await chooseRuntime(await archiveWith('bootstrap', 'run'), null, noClass), { runtime: 'custom', handler: 'bootstrap' });
  assert.deepEqual(await chooseRuntime(await archiveWith('run'), null, noClass), { runtime: 'isolated-files', handler: 'run' });
  await assert.rejects(chooseRuntime(await archiveWith('README'), null, noClass), rejectsWith('NO_FUNCTION_CLASS'));
});

test('named at deploy: its entry must be there, and the class analysis is not consulted', async () => {
  assert.deepEqual(await chooseRuntime(await archiveWith('bootstrap'), 'custom', aClass), { runtime: 'custom', handler: 'bootstrap' });
  await assert.rejects(chooseRuntime(await archiveWith('bootstrap'), 'isolated-files', aClass), rejectsWith('RUNTIME_ENTRY_MISSING'));
  await assert.rejects(chooseRuntime(await archiveWith('bootstrap'), 'node', noClass), rejectsWith('NO_FUNCTION_CLASS'));
});
