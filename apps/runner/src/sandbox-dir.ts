import fs from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { SANDBOX_FILES, SANDBOX_USER, formatEnvConfig, type SandboxRequest } from '@wharf/shared';

export interface SandboxDirSpec {
  functionsDir: string;
  functionId: string;
  version: number;
  containerName: string;
  request: SandboxRequest;
  env: Record<string, string>;
}

export function sandboxDirPath(spec: Pick<SandboxDirSpec, 'functionsDir' | 'functionId' | 'version' | 'containerName'>): string {
  return path.join(spec.functionsDir, spec.functionId, `v${spec.version}`, spec.containerName);
}

/**
 * Creates the per-invocation folder the container gets as its working directory. It belongs to
 * the sandbox user, since the function runs as that user and must write its result there.
 */
export async function prepareSandboxDir(spec: SandboxDirSpec): Promise<string> {
  const dir = sandboxDirPath(spec);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const files: Array<[string, string]> = [
    [SANDBOX_FILES.request, JSON.stringify(spec.request)],
    [SANDBOX_FILES.envConfig, formatEnvConfig(spec.env)],
    [SANDBOX_FILES.logs, ''],
    [SANDBOX_FILES.result, ''],
  ];
  for (const [name, content] of files) {
    await fs.writeFile(path.join(dir, name), content, { mode: 0o600 });
  }
  await chownSandbox(dir, files.map(([name]) => path.join(dir, name)));
  return dir;
}

/** Hands a folder and files in it to the sandbox user (or, for a runner that is not root, opens them up). */
export async function chownSandbox(dir: string, files: string[]): Promise<void> {
  for (const target of [dir, ...files]) {
    try {
      await fs.chown(target, SANDBOX_USER.uid, SANDBOX_USER.gid);
    } catch (err) {
      // A runner that is not root cannot chown; the folder must still be writable by the container.
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
      await fs.chmod(target, target === dir ? 0o777 : 0o666);
    }
  }
}

export interface SandboxFile {
  /** At most the first `limit` bytes, as text. */
  text: string;
  /** The file's whole size, so that a caller can tell the text was cut short. */
  size: number;
}

/**
 * Reads a file the function wrote, without following a symlink it may have planted there and
 * without reading more than `limit` bytes. A missing or non-regular file (a FIFO, a device) reads as empty.
 */
export async function readSandboxFile(dir: string, name: string, limit: number): Promise<SandboxFile> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path.join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP') return { text: '', size: 0 };
    throw err;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { text: '', size: 0 };
    const buffer = Buffer.alloc(Math.min(stat.size, limit));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return { text: buffer.subarray(0, bytesRead).toString('utf8'), size: stat.size };
  } finally {
    await handle.close();
  }
}
