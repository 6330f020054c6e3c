import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '@wharf/shared';

const ASIDE = '.discarded-';

/**
 * Removes folders a predecessor left (a killed build's, a killed install's). Each is first renamed
 * aside, which frees its name at once whatever is still in it, then deleted in the background with
 * retries: a file appearing while the tree is deleted (ENOTEMPTY) must not stop a builder from
 * starting. Folders set aside earlier and not yet gone are deleted too. Resolves once all are
 * renamed; `deleted` once all are gone.
 */
export async function discardFolders(folders: string[], logger: Logger): Promise<{ discarded: number; deleted: Promise<void> }> {
  const aside: string[] = [];
  for (const folder of folders) {
    const parent = path.dirname(folder);
    const earlier = (await fs.readdir(parent).catch(() => [] as string[])).filter((name) => name.startsWith(`${path.basename(folder)}${ASIDE}`));
    aside.push(...earlier.map((name) => path.join(parent, name)));
    const target = `${folder}${ASIDE}${randomBytes(4).toString('hex')}`;
    try {
      await fs.rename(folder, target);
      aside.push(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  const deleted = Promise.all(
    aside.map((folder) =>
      fs.rm(folder, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }).catch((err: unknown) => logger.warn({ err, folder }, 'could not delete a discarded folder')),
    ),
  ).then(() => {});
  return { discarded: aside.length, deleted };
}
