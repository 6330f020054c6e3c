import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, test } from 'node:test';
import * as tar from 'tar';
import { WharfError } from '@wharf/shared';
import { gzipSync } from 'node:zlib';
import { DEFAULT_ARCHIVE_LIMITS, extractArchive, isUnsafePath, readSources } from '../src/archive.js';
import { execFileSync } from 'node:child_process';
import { gzipBomb, rawArchive, rawTar, ratioBomb, trailingZerosBomb } from '../../../test/helpers/archives.js';

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

/** Extracts into a folder of its own inside a parent, so that a write outside the folder would show. */
async function attempt(archive: Buffer, limits?: Parameters<typeof extractArchive>[2]) {
  const parent = await fs.mkdtemp(path.join(scratch, 'parent-'));
  const dest = path.join(parent, 'dest');
  await fs.mkdir(dest);
  const error = await extractArchive(archive, dest, limits).then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(error instanceof WharfError, `expected a WharfError, got ${String(error)}`);
  assert.deepEqual(await fs.readdir(parent), ['dest'], 'nothing written beside the folder');
  assert.deepEqual(await fs.readdir(dest), [], 'nothing written at all');
  return error;
}

test('absolute, ////, and .. paths are refused as ARCHIVE_UNSAFE_PATH, naming the entry', async () => {
  for (const bad of ['../escaped.ts', '/etc/cron.d/x', '////x.ts', 'lib/../../x.ts', 'C:\\x.ts']) {
    const err = await attempt(rawArchive([{ path: 'index.ts', body: 'export {};' }, { path: bad, body: 'x' }]));
    assert.equal(err.code, 'ARCHIVE_UNSAFE_PATH', bad);
    assert.ok(err.message.includes(JSON.stringify(bad)), err.message);
  }
  assert.equal(isUnsafePath('lib/util.ts'), false);
  assert.equal(isUnsafePath('./index.ts'), false);
});

test('a symlink (then a write through it) and a hard link to /etc/passwd are ARCHIVE_LINK_REJECTED', async () => {
  const through = await attempt(rawArchive([{ path: 'out', type: 'SymbolicLink', linkpath: scratch }, { path: 'out/pwned.ts', body: 'x' }]));
  assert.equal(through.code, 'ARCHIVE_LINK_REJECTED');
  assert.match(through.message, /"out" is a symbolic link/);
  const hard = await attempt(rawArchive([{ path: 'passwd.ts', type: 'Link', linkpath: '/etc/passwd' }]));
  assert.equal(hard.code, 'ARCHIVE_LINK_REJECTED');
  assert.match(hard.message, /hard link \(to "\/etc\/passwd"\)/);
});

test('FIFOs and devices are ARCHIVE_INVALID', async () => {
  for (const type of ['FIFO', 'CharacterDevice', 'BlockDevice']) {
    const err = await attempt(rawArchive([{ path: 'dev.ts', type }]));
    assert.equal(err.code, 'ARCHIVE_INVALID', type);
    assert.match(err.message, new RegExp(`"dev.ts" is a ${type}`));
  }
});

test('a 1 GB gzip bomb stops at the decompressed-bytes cap, whatever its headers claim', async () => {
  const bomb = gzipBomb();
  assert.ok(bomb.length < 2 * 1024 * 1024);
  const started = Date.now();
  const counted = await attempt(bomb, { ...DEFAULT_ARCHIVE_LIMITS, fileBytes: 2 ** 40, totalBytes: 32 * 1024 * 1024 });
  assert.equal(counted.code, 'ARCHIVE_TOO_LARGE');
  assert.match(counted.message, /unpacks to more than/);
  assert.ok(Date.now() - started < 10_000, 'stopped early, not after inflating a gigabyte');
  const byHeader = await attempt(bomb);
  assert.equal(byHeader.code, 'ARCHIVE_TOO_LARGE');
  assert.match(byHeader.message, /"bomb.ts" is 1073741824 bytes/);
});

test('100,000 entries and deep nesting are refused', async () => {
  const many = gzipSync(rawTar(Array.from({ length: 100_000 }, (_, i) => ({ path: `f${i}.ts` }))));
  const tooMany = await attempt(many);
  assert.equal(tooMany.code, 'ARCHIVE_TOO_LARGE');
  assert.match(tooMany.message, /more than 10000 entries/);
  const deep = await attempt(rawArchive([{ path: `${'d/'.repeat(40)}x.ts`, body: 'x' }]));
  assert.equal(deep.code, 'ARCHIVE_INVALID');
  assert.match(deep.message, /nested 41 folders deep/);
});

test('corrupt, truncated and non-gzip archives are ARCHIVE_INVALID', async () => {
  const good = rawArchive([{ path: 'index.ts', body: 'export const a = 1;\n'.repeat(200) }]);
  const corrupt = Buffer.from(good);
  for (let i = 20; i < 60; i++) corrupt[i] ^= 0xff;
  assert.equal((await attempt(corrupt)).code, 'ARCHIVE_INVALID');
  assert.equal((await attempt(good.subarray(0, Math.floor(good.length / 2)))).code, 'ARCHIVE_INVALID');
  const truncatedTar = gzipSync(rawTar([{ path: 'index.ts', body: 'x'.repeat(2000) }]).subarray(0, 1024));
  assert.equal((await attempt(truncatedTar)).code, 'ARCHIVE_INVALID');
  assert.equal((await attempt(Buffer.from('definitely not gzip'))).code, 'ARCHIVE_INVALID');
});

test('4 GB of zeros after the end-of-archive marker are refused within 2 s, never inflated', async () => {
  const bomb = trailingZerosBomb(4);
  const started = Date.now();
  const err = await attempt(bomb);
  assert.equal(err.code, 'ARCHIVE_INVALID');
  assert.match(err.message, /follow the tar end-of-archive marker/);
  assert.ok(Date.now() - started < 2000, `refused after ${Date.now() - started} ms`);
});

test('a 1,000:1 ratio bomb under every size limit is refused within 2 s by the ratio', async () => {
  const started = Date.now();
  const err = await attempt(ratioBomb());
  assert.equal(err.code, 'ARCHIVE_TOO_LARGE');
  assert.match(err.message, /inflates more than 200-fold/);
  assert.ok(Date.now() - started < 2000, `refused after ${Date.now() - started} ms`);
});

test('the padding tar writes after the marker is accepted; extraction stops at the marker', async () => {
  const dir = await fs.mkdtemp(path.join(scratch, 'gnu-'));
  await fs.writeFile(path.join(dir, 'index.ts'), 'export {};');
  // GNU tar pads to 10 KiB records by default; a blocking factor of 200 pads to 100 KiB.
  const gnu = execFileSync('tar', ['-C', dir, '-b', '200', '-czf', '-', 'index.ts']);
  const dest = await fs.mkdtemp(path.join(scratch, 'dest-'));
  await extractArchive(gnu, dest);
  assert.deepEqual(await fs.readdir(dest), ['index.ts']);
  // An entry after the marker (a concatenated second archive) is trailing data: not extracted.
  const hidden = gzipSync(Buffer.concat([rawTar([{ path: 'index.ts', body: 'export {};' }]), rawTar([{ path: 'hidden.ts', body: 'x' }])]));
  const dest2 = await fs.mkdtemp(path.join(scratch, 'dest-'));
  await extractArchive(hidden, dest2);
  assert.deepEqual(await fs.readdir(dest2), ['index.ts']);
});

test('sources past the source-bytes limit are ARCHIVE_TOO_LARGE', async () => {
  const dir = await fs.mkdtemp(path.join(scratch, 'sources-'));
  await fs.writeFile(path.join(dir, 'a.ts'), '// x\n'.repeat(1000));
  await fs.writeFile(path.join(dir, 'b.json'), '{}');
  assert.equal((await readSources(dir, 10_000)).size, 2);
  await assert.rejects(readSources(dir, 4_000), (err: unknown) => err instanceof WharfError && err.code === 'ARCHIVE_TOO_LARGE' && !err.message.includes(dir));
});

test('a tar.gz inside the gzip (or anything but a tar) is refused before node-tar would inflate it again', async () => {
  // 30 files of 40 MB, gzipped twice: 300 KB on the wire, 1.2 GB once both layers are undone.
  const inner = gzipSync(rawTar(Array.from({ length: 30 }, (_, i) => ({ path: `f${i}.ts`, body: ' '.repeat(40 * 1024 * 1024) }))), { level: 9 });
  const started = Date.now();
  const nested = await attempt(gzipSync(inner));
  assert.equal(nested.code, 'ARCHIVE_INVALID');
  assert.match(nested.message, /not a tar inside gzip/);
  assert.ok(Date.now() - started < 2000);
  assert.equal((await attempt(gzipSync(Buffer.from('plain text, not a tar\n'.repeat(100))))).code, 'ARCHIVE_INVALID');
});

test('modes are the image\'s, not the archive\'s: no setuid/setgid, nothing unreadable, executables stay executable', async () => {
  const dest = await fs.mkdtemp(path.join(scratch, 'modes-'));
  await extractArchive(rawArchive([
    { path: 'suid', body: 'x', mode: 0o6777 },
    { path: 'locked', body: 'x', mode: 0o000 },
    { path: 'bootstrap', body: '#!/bin/sh', mode: 0o700 },
  ]), dest);
  const mode = async (name: string) => (await fs.stat(path.join(dest, name))).mode & 0o7777;
  assert.deepEqual([await mode('suid'), await mode('locked'), await mode('bootstrap')], [0o755, 0o644, 0o755]);
});

test('a first tar header that is also a gzip stream\'s start is refused (node-tar would sniff it and inflate the rest)', async () => {
  const tarBytes = rawTar([{ path: 'index.ts', body: 'export {};' }]);
  // gzip's magic, method and flags in the name field; the checksum made right again.
  tarBytes.set([0x1f, 0x8b, 0x08, 0x04], 0);
  tarBytes.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += tarBytes[i];
  tarBytes.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const err = await attempt(gzipSync(tarBytes));
  assert.equal(err.code, 'ARCHIVE_INVALID');
  assert.match(err.message, /not a tar inside gzip/);
});
