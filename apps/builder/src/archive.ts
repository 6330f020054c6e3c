import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import * as tar from 'tar';
import { WharfError } from '@wharf/shared';

/** Files the analysis and the bundler may read; anything else in the archive is left on disk untouched. */
const SOURCE_FILE = /\.(ts|json)$/;

export interface ArchiveLimits {
  entries: number;
  /** Path segments of the deepest entry. */
  depth: number;
  fileBytes: number;
  /** Decompressed bytes of the whole tar stream, counted through gunzip (a gzip bomb stops here). */
  totalBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  entries: 10_000,
  depth: 32,
  fileBytes: 50 * 1024 * 1024,
  totalBytes: 200 * 1024 * 1024,
};

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const LINK_TYPES = new Set(['SymbolicLink', 'Link']);

/**
 * Extracts a function archive into `dest` (a fresh, empty folder). A first pass reads every
 * header and refuses the archive — before anything is written — for a link, a FIFO or device, an
 * absolute or `..` path, too many entries, too deep a tree, or too many bytes (counted as they come
 * out of gunzip, so a bomb is stopped early). Then the archive is extracted with node-tar's own
 * guards as a second line: strict, no absolute paths, no owners or modes, regular files and
 * directories only.
 */
export async function extractArchive(archive: Buffer, dest: string, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<void> {
  await inspectArchive(archive, limits);
  try {
    await pipeline(
      Readable.from([archive]),
      tar.x({
        cwd: dest,
        strict: true,
        preservePaths: false,
        preserveOwner: false,
        noChmod: true,
        filter: (_path, entry) => ('type' in entry ? FILE_TYPES.has(entry.type) || entry.type === 'Directory' : false),
      }),
    );
  } catch (err) {
    throw new WharfError('ARCHIVE_INVALID', `the archive could not be extracted: ${(err as Error).message}`);
  }
}

/** Reads every header of the archive without writing anything; throws the first violation. */
export async function inspectArchive(archive: Buffer, limits: ArchiveLimits): Promise<void> {
  let violation: WharfError | undefined;
  let entries = 0;
  let total = 0;
  const source = Readable.from([archive]);
  const refuse = (err: WharfError) => {
    violation ??= err;
    source.destroy(err);
  };
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      if (total > limits.totalBytes) {
        refuse(new WharfError('ARCHIVE_TOO_LARGE', `the archive unpacks to more than ${limits.totalBytes} bytes`));
        return done();
      }
      done(null, chunk);
    },
  });
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      entry.resume();
      if (violation) return;
      const problem = entryProblem(entry, ++entries, limits);
      if (problem) refuse(problem);
    },
  });
  try {
    await pipeline(source, zlib.createGunzip(), counter, parser);
  } catch (err) {
    if (violation) throw violation;
    throw new WharfError('ARCHIVE_INVALID', `the archive is not a readable tar.gz: ${(err as Error).message}`);
  }
  if (violation) throw violation;
}

function entryProblem(entry: tar.ReadEntry, count: number, limits: ArchiveLimits): WharfError | undefined {
  const name = JSON.stringify(entry.path);
  if (count > limits.entries) return new WharfError('ARCHIVE_TOO_LARGE', `the archive holds more than ${limits.entries} entries`);
  if (LINK_TYPES.has(entry.type)) {
    return new WharfError('ARCHIVE_LINK_REJECTED', `${name} is a ${entry.type === 'Link' ? 'hard link' : 'symbolic link'} (to ${JSON.stringify(entry.linkpath)}); only regular files and directories are allowed`);
  }
  if (!FILE_TYPES.has(entry.type) && entry.type !== 'Directory') {
    return new WharfError('ARCHIVE_INVALID', `${name} is a ${entry.type}; only regular files and directories are allowed`);
  }
  if (isUnsafePath(entry.path)) return new WharfError('ARCHIVE_UNSAFE_PATH', `${name} is absolute or leaves the archive's folder`);
  const depth = entry.path.split('/').filter((segment) => segment && segment !== '.').length;
  if (depth > limits.depth) return new WharfError('ARCHIVE_INVALID', `${name} is nested ${depth} folders deep; at most ${limits.depth}`);
  if ((entry.size ?? 0) > limits.fileBytes) return new WharfError('ARCHIVE_TOO_LARGE', `${name} is ${entry.size} bytes; at most ${limits.fileBytes} per file`);
  return undefined;
}

/** Absolute (`/x`, `////x`, `C:\x`, `\\x`), `..` anywhere, or a NUL: never inside the destination by construction. */
export function isUnsafePath(entryPath: string): boolean {
  if (entryPath.includes('\0')) return true;
  if (/^([/\\]|[a-zA-Z]:)/.test(entryPath)) return true;
  return entryPath.split(/[/\\]/).includes('..');
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
