import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import * as tar from 'tar';
import { WharfError } from '@wharf/shared';
import { buildTimeout, withTimeLimit } from './time-limits.js';

/** Files the analysis and the bundler may read; anything else in the archive is left on disk untouched. */
const SOURCE_FILE = /\.(ts|json)$/;

export interface ArchiveLimits {
  entries: number;
  /** Path segments of the deepest entry. */
  depth: number;
  fileBytes: number;
  /** Decompressed bytes of the tar stream, counted as they come out of gunzip (a gzip bomb stops here). */
  totalBytes: number;
  /** Decompressed bytes per compressed byte, once past `ratioFloorBytes`: a bomb is refused after a few megabytes, not hundreds. */
  ratio: number;
  ratioFloorBytes: number;
  /**
   * What may follow the tar end-of-archive marker (tar pads to its record size, 10 KiB by
   * default); more is refused, and never decompressed past this.
   */
  trailingBytes: number;
  /** The .ts and .json files the analysis, the type-checker and the bundler read, together. */
  sourceBytes: number;
  /** Wall time of the inspection. */
  inspectMs: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  entries: 10_000,
  depth: 32,
  fileBytes: 50 * 1024 * 1024,
  totalBytes: 200 * 1024 * 1024,
  ratio: 200,
  ratioFloorBytes: 1024 * 1024,
  trailingBytes: 1024 * 1024,
  sourceBytes: 20 * 1024 * 1024,
  inspectMs: 15_000,
};

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const LINK_TYPES = new Set(['SymbolicLink', 'Link']);
const INFLATE_CHUNK = 64 * 1024;

/**
 * Extracts a function archive into `dest` (a fresh, empty folder). A first pass reads every
 * header and refuses the archive — before anything is written — for a link, a FIFO or device, an
 * absolute or `..` path, too many entries, too deep a tree, too many bytes or too high a
 * compression ratio (counted as they come out of gunzip, so a bomb is stopped early), or data
 * trailing the end-of-archive marker. Then the archive is extracted, up to that marker and no
 * further, with node-tar's own guards as a second line: strict, no absolute paths, no owners or
 * modes, regular files and directories only.
 */
export async function extractArchive(archive: Buffer, dest: string, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<void> {
  const { tarBytes } = await inspectArchive(archive, limits);
  try {
    await withTimeLimit('archive', limits.inspectMs, (signal) =>
      pipeline(
        Readable.from(tarPrefix(archive, tarBytes)),
        tar.x({
        cwd: dest,
        strict: true,
        preservePaths: false,
        preserveOwner: false,
        noChmod: true,
          filter: (_path, entry) => {
            if (!('type' in entry)) return false;
            // Modes as the image needs them, never as the archive said: readable, executable
            // where it was, and no setuid, setgid, sticky or world-writable bit.
            entry.mode = entry.type === 'Directory' || (entry.mode ?? 0) & 0o111 ? 0o755 : 0o644;
            return FILE_TYPES.has(entry.type) || entry.type === 'Directory';
          },
        }),
        { signal },
      ),
    );
  } catch (err) {
    if (err instanceof WharfError) throw err;
    throw new WharfError('ARCHIVE_INVALID', `the archive could not be extracted: ${(err as Error).message}`);
  }
}

/**
 * The decompressed stream in chunks. Leaving the loop early (a refusal, the end of the tar)
 * destroys gunzip, which then stops decompressing at once: nothing is inflated that is not read.
 */
async function* inflate(archive: Buffer): AsyncGenerator<Buffer> {
  const gunzip = zlib.createGunzip({ chunkSize: INFLATE_CHUNK });
  gunzip.end(archive);
  yield* gunzip;
}

/** The first `bytes` of the decompressed stream: the tar up to its end-of-archive marker. */
async function* tarPrefix(archive: Buffer, bytes: number): AsyncGenerator<Buffer> {
  let left = bytes;
  for await (const chunk of inflate(archive)) {
    if (chunk.length >= left) {
      yield chunk.subarray(0, left);
      return;
    }
    left -= chunk.length;
    yield chunk;
  }
}

export interface InspectedArchive {
  /** Decompressed bytes up to the chunk holding the end-of-archive marker: all extraction reads. */
  tarBytes: number;
}

/** Reads every header of the archive without writing anything; throws the first violation. */
export async function inspectArchive(archive: Buffer, limits: ArchiveLimits): Promise<InspectedArchive> {
  let violation: WharfError | undefined;
  let entries = 0;
  let endOfArchive = false;
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      entry.resume();
      if (violation) return;
      violation = entryProblem(entry, ++entries, limits);
    },
  });
  parser.on('eof', () => (endOfArchive = true));
  parser.on('error', (err: Error) => (violation ??= new WharfError('ARCHIVE_INVALID', `the archive is not a readable tar.gz: ${err.message}`)));
  const allowed = Math.min(limits.totalBytes, Math.max(limits.ratioFloorBytes, archive.length * limits.ratio));
  const deadline = Date.now() + limits.inspectMs;
  let total = 0;
  let tarBytes: number | undefined;
  try {
    for await (const chunk of inflate(archive)) {
      total += chunk.length;
      if (total > allowed) {
        throw new WharfError(
          'ARCHIVE_TOO_LARGE',
          allowed === limits.totalBytes ? `the archive unpacks to more than ${limits.totalBytes} bytes` : `the archive inflates more than ${limits.ratio}-fold (${archive.length} compressed bytes unpack to more than ${allowed})`,
        );
      }
      if (Date.now() > deadline) throw buildTimeout('archive', limits.inspectMs);
      if (tarBytes === undefined) {
        if (total === chunk.length) refuseNonTar(chunk);
        // Entries are resumed as they come, so the parser takes each chunk whole, synchronously.
        parser.write(chunk);
        if (violation) throw violation;
        if (endOfArchive) tarBytes = total;
      } else if (total - tarBytes > limits.trailingBytes) {
        throw new WharfError('ARCHIVE_INVALID', `more than ${limits.trailingBytes} bytes follow the tar end-of-archive marker`);
      }
    }
  } catch (err) {
    if (err instanceof WharfError) throw err;
    throw new WharfError('ARCHIVE_INVALID', `the archive is not a readable tar.gz: ${(err as Error).message}`);
  }
  parser.end();
  if (violation) throw violation;
  return { tarBytes: tarBytes ?? total };
}

/**
 * node-tar decompresses again whatever compressed stream it is handed (gzip, zstd): a tar.gz of
 * a tar.gz would then unpack past every bound counted here. The stream must open with a tar
 * header (or the empty archive's null block).
 */
function refuseNonTar(first: Buffer): void {
  const refusal = new WharfError('ARCHIVE_INVALID', 'the archive is not a tar inside gzip (one gzip layer around a tar, nothing else)');
  // A header can be both a valid tar header and a gzip (or zstd) stream's start: node-tar sniffs the magic first.
  if (first.length < 512 || COMPRESSED_MAGIC.some((magic) => first.subarray(0, magic.length).equals(magic))) throw refusal;
  let header: tar.Header;
  try {
    header = new tar.Header(first.subarray(0, 512));
  } catch {
    throw refusal;
  }
  if (!(header.cksumValid || header.nullBlock)) throw refusal;
}

/** gzip and zstd, the streams node-tar inflates on its own. */
const COMPRESSED_MAGIC = [Buffer.from([0x1f, 0x8b]), Buffer.from([0x28, 0xb5, 0x2f, 0xfd])];

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

/**
 * The .ts and .json files the analysis, the type-checker and the bundler read (node_modules left
 * out), relative to `root`; refused past `maxBytes` together.
 */
export async function sourcePaths(root: string, maxBytes = DEFAULT_ARCHIVE_LIMITS.sourceBytes): Promise<string[]> {
  const found: string[] = [];
  let total = 0;
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile() || !SOURCE_FILE.test(entry.name)) continue;
    const full = path.join(entry.parentPath, entry.name);
    const rel = path.relative(root, full).split(path.sep).join('/');
    if (rel.split('/').includes('node_modules')) continue;
    total += (await fs.stat(full)).size;
    if (total > maxBytes) throw new WharfError('ARCHIVE_TOO_LARGE', `the archive's .ts and .json files add up to more than ${maxBytes} bytes`);
    found.push(rel);
  }
  return found;
}

/** Reads the extracted sources into memory, keyed by their path relative to `root`. */
export async function readSources(root: string, maxBytes = DEFAULT_ARCHIVE_LIMITS.sourceBytes): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const rel of await sourcePaths(root, maxBytes)) files.set(rel, await fs.readFile(path.join(root, rel), 'utf8'));
  return files;
}

/**
 * The project files the builder itself reads (its dependencies, its compiler options); the
 * sources are read by the analysis processes, so that this process never holds them.
 */
const PROJECT_FILES = ['package.json', 'package-lock.json', 'tsconfig.json'] as const;

export async function readProjectFiles(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const name of PROJECT_FILES) {
    const text = await fs.readFile(path.join(root, name), 'utf8').catch(() => undefined);
    if (text !== undefined) files.set(name, text);
  }
  return files;
}
