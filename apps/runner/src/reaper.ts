import fs from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import { LABELS, type Logger } from '@wharf/shared';
import { containerNamePrefix } from './invoke-processor.js';

/**
 * A runner that died mid-invocation leaves its container and folder behind. Each runner id owns
 * what it created, so a runner starting under that id removes them before taking work.
 */
export async function reapLeftovers(docker: Docker, functionsDir: string, runnerId: string, logger: Logger): Promise<number> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.runnerId}=${runnerId}`] },
  });
  for (const info of containers) {
    await docker.getContainer(info.Id).remove({ force: true, v: true }).catch((err: Error) =>
      logger.warn({ err, containerId: info.Id }, 'could not remove leftover container'),
    );
  }
  const prefix = containerNamePrefix(runnerId);
  const dirs = await fs.readdir(functionsDir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of dirs) {
    if (entry.isDirectory() && entry.name.startsWith(prefix)) {
      await fs.rm(path.join(entry.parentPath, entry.name), { recursive: true, force: true });
    }
  }
  if (containers.length > 0) logger.info({ count: containers.length }, 'removed leftover containers');
  return containers.length;
}
