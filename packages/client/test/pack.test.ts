import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import * as tar from 'tar';
import { packFunction } from '../src/pack.js';

async function listArchive(archive: Buffer): Promise<string[]> {
  const names: string[] = [];
  await new Promise<void>((resolve, reject) => {
    Readable.from(archive)
      .pipe(tar.t({ onReadEntry: (entry) => names.push(entry.path) }))
      .on('finish', resolve)
      .on('error', reject);
  });
  return names.sort();
}

test('packing leaves out node_modules and dotfiles, and is deterministic', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-pack-'));
  try {
    const files = ['index.ts', 'lib/util.ts', 'package.json', '.env', '.git/config', 'lib/.cache/x', 'node_modules/dep/index.js'];
    for (const file of files) {
      await fs.mkdir(path.dirname(path.join(dir, file)), { recursive: true });
      await fs.writeFile(path.join(dir, file), file);
    }
    const first = await packFunction(dir);
    assert.deepEqual(await listArchive(first), ['index.ts', 'lib/util.ts', 'package.json']);
    await fs.utimes(path.join(dir, 'index.ts'), new Date(), new Date(2001, 1, 1));
    assert.ok(first.equals(await packFunction(dir)), 'same sources, same bytes');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
