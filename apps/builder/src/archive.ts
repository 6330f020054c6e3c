import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { WharfError } from '@wharf/shared';

/** Files the analysis and the bundler may read; anything else in the archive is left on disk untouched. */
const SOURCE_FILE = /\.(ts|json)$/;

/**
 * Extracts a function archive into `dest`, admitting only regular files and directories, never
 * absolute or `..` paths (node-tar strips them unless `preservePaths`), never applying the archive's
 * owners or modes.
 */
export async function extractArchive(archive: Buffer, dest: string): Promise<void> {
  const rejected: string[] = [];
  try {
    await pipeline(
      Readable.from([archive]),
      tar.x({
        cwd: dest,
        strict: true,
        preservePaths: false,
        preserveOwner: false,
        noChmod: true,
        filter: (entryPath, entry) => {
          const type = 'type' in entry ? entry.type : 'File';
          const admitted = type === 'File' || type === 'Directory';
          if (!admitted) rejected.push(`${entryPath} (${type})`);
          return admitted;
        },
      }),
    );
  } catch (err) {
    throw new WharfError('ARCHIVE_INVALID', `the archive is not a readable tar.gz: ${(err as Error).message}`);
  }
  if (rejected.length > 0) {
    throw new WharfError('ARCHIVE_INVALID', `only regular files and directories are allowed; rejected: ${rejected.slice(0, 5).join(', ')}`);
  }
}

/** Reads the extracted sources into memory, keyed by their path relative to `root`. */
export async function readSources(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile() || !SOURCE_FILE.test(entry.name)) continue;
    const full = path.join(entry.parentPath, entry.name);
    const rel = path.relative(root, full).split(path.sep).join('/');
    if (rel.split('/').includes('node_modules')) continue;
    files.set(rel, await fs.readFile(full, 'utf8'));
  }
  return files;
}
