import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, test } from 'node:test';
import * as tar from 'tar';
import { WharfError } from '@wharf/shared';
import { extractArchive, readSources } from '../src/archive.js';

const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-archive-test-'));
after(() => fs.rm(scratch, { recursive: true, force: true }));

/** Builds a tar.gz by hand from a folder laid out by `layout`. */
async function archiveOf(layout: (dir: string) => Promise<void>, entries: string[]): Promise<Buffer> {
  const dir = await fs.mkdtemp(path.join(scratch, 'src-'));
  await layout(dir);
  return buffer(tar.c({ cwd: dir, gzip: true }, entries));
}

test('extracts regular files and directories, and reads the sources back', async () => {
  const archive = await archiveOf(async (dir) => {
    await fs.mkdir(path.join(dir, 'lib'));
    await fs.writeFile(path.join(dir, 'index.ts'), 'export {};');
    await fs.writeFile(path.join(dir, 'lib', 'util.ts'), 'export const x = 1;');
    await fs.writeFile(path.join(dir, 'README.md'), 'not a source');
  }, ['index.ts', 'lib', 'README.md']);
  const dest = await fs.mkdtemp(path.join(scratch, 'dest-'));
  await extractArchive(archive, dest);
  const sources = await readSources(dest);
  assert.deepEqual([...sources.keys()].sort(), ['index.ts', 'lib/util.ts']);
  assert.equal(sources.get('lib/util.ts'), 'export const x = 1;');
});

test('refuses a symlink, naming it', async () => {
  const archive = await archiveOf(async (dir) => {
    await fs.writeFile(path.join(dir, 'index.ts'), 'export {};');
    await fs.symlink('/etc/passwd', path.join(dir, 'passwd.ts'));
  }, ['index.ts', 'passwd.ts']);
  const dest = await fs.mkdtemp(path.join(scratch, 'dest-'));
  await assert.rejects(extractArchive(archive, dest), (err: unknown) => err instanceof WharfError && err.code === 'ARCHIVE_INVALID' && /passwd\.ts \(SymbolicLink\)/.test(err.message));
  await assert.rejects(fs.lstat(path.join(dest, 'passwd.ts')), { code: 'ENOENT' });
});

test('refuses a ../ entry and writes nothing outside the destination', async () => {
  const parent = await fs.mkdtemp(path.join(scratch, 'parent-'));
  const dest = path.join(parent, 'dest');
  await fs.mkdir(dest);
  await assert.rejects(extractArchive(await hostileArchive(), dest), (err: unknown) => err instanceof WharfError && err.code === 'ARCHIVE_INVALID');
  assert.deepEqual(await fs.readdir(parent), ['dest']);
});

test('refuses bytes that are not a tar.gz', async () => {
  const dest = await fs.mkdtemp(path.join(scratch, 'dest-'));
  await assert.rejects(extractArchive(Buffer.from('definitely not gzip'), dest), (err: unknown) => err instanceof WharfError && err.code === 'ARCHIVE_INVALID');
});

/** A tar.gz whose single entry is named `../escaped.ts`. */
async function hostileArchive(): Promise<Buffer> {
  const header = new tar.Header({ path: '../escaped.ts', mode: 0o644, size: 10, type: 'File', mtime: new Date(0) });
  const block = Buffer.alloc(512);
  header.encode(block, 0);
  const body = Buffer.alloc(512);
  body.write('export {};');
  const { gzipSync } = await import('node:zlib');
  return gzipSync(Buffer.concat([block, body, Buffer.alloc(1024)]));
}
