import fs from 'node:fs/promises';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import * as tar from 'tar';

/**
 * Packs a function folder into a tar.gz with its files at the root, leaving out node_modules and dotfiles. Deterministic (fixed mtimes,
 * no owners, sorted names), so the same sources always give the same archive digest.
 */
export async function packFunction(dir: string): Promise<Buffer> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    // Dependencies are installed by the builder, and dotfiles (.git, .env, editor state) are not the function's.
    .filter((f) => !f.split('/').some((part) => part === 'node_modules' || part.startsWith('.')))
    .sort();
  return buffer(tar.c({ cwd: dir, gzip: true, portable: true, mtime: new Date(0) }, files));
}
