import fs from 'node:fs/promises';
import path from 'node:path';
import { packFunction } from '@wharf/client';

const ROOT = path.resolve(import.meta.dirname, '../..');

export const fixtureDir = (name: string) => path.join(ROOT, 'test', 'fixtures', name);
export const exampleDir = (name: string) => path.join(ROOT, 'examples', name);

export const packFixture = (name: string) => packFunction(fixtureDir(name));
export const packExample = (name: string) => packFunction(exampleDir(name));

/** A fresh folder under `parent` holding `files` (path → content), as an extracted archive would. */
export async function writeSourceTree(parent: string, files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(parent, 'src-'));
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), content);
  }
  return dir;
}
