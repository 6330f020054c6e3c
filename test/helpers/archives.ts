/** Hostile archives, built header by header: node-tar itself refuses to create most of them. */
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';

export interface RawEntry {
  path: string;
  type?: string;
  body?: string;
  /** What the header claims, when it should differ from the body's length. */
  size?: number;
  linkpath?: string;
  mode?: number;
}

export function rawTar(entries: RawEntry[], end = true): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    const header = Buffer.alloc(512);
    new tar.Header({ path: entry.path, mode: entry.mode ?? 0o644, size: entry.size ?? body.length, type: (entry.type ?? 'File') as 'File', linkpath: entry.linkpath, mtime: new Date(0) }).encode(header, 0);
    blocks.push(header);
    if (body.length) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  if (end) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export const rawArchive = (entries: RawEntry[]) => gzipSync(rawTar(entries));

/** About 1 MB on the wire, 1 GB once inflated: concatenated gzip members are one valid stream. */
export function gzipBomb(): Buffer {
  const mb = Buffer.alloc(1024 * 1024);
  const head = gzipSync(Buffer.concat([rawTar([{ path: 'bomb.ts', size: 1024 * 1024 * 1024 }], false), mb]));
  const member = gzipSync(mb);
  return Buffer.concat([head, ...Array.from({ length: 1023 }, () => member)]);
}

/**
 * A small valid function followed, after the tar end-of-archive marker, by `gigabytes` of zeros
 * (a few MB on the wire): a reader that does not stop at the marker inflates all of it.
 */
export function trailingZerosBomb(gigabytes: number, entries: RawEntry[] = [{ path: 'index.ts', body: 'export const x = 1;\n' }]): Buffer {
  const member = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
  return Buffer.concat([gzipSync(rawTar(entries)), ...Array.from({ length: gigabytes * 16 }, () => member)]);
}

/** One 40 MB file of spaces: within every size limit, but about 1,000 bytes out for each byte in. */
export function ratioBomb(): Buffer {
  return gzipSync(rawTar([{ path: 'index.ts', body: 'export {};\n' }, { path: 'data.json', body: ' '.repeat(40 * 1024 * 1024) }]), { level: 9 });
}
