import fs from 'node:fs/promises';
import path from 'node:path';
import { FUNCTION_NAME_PATTERN } from '@wharf/shared';

/**
 * The name a folder deploys as when `--name` is not given: its package.json name (without a
 * scope), else the folder's own name, lower-cased into a valid function name.
 */
export async function defaultFunctionName(dir: string): Promise<string> {
  let name = path.basename(path.resolve(dir));
  try {
    const pkg = JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
    if (typeof pkg.name === 'string' && pkg.name) name = pkg.name.replace(/^@[^/]+\//, '');
  } catch {
    // No package.json (or not JSON): the folder name it is.
  }
  const cleaned = name.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[^a-z]+/, '').slice(0, 63);
  if (!FUNCTION_NAME_PATTERN.test(cleaned)) throw new Error(`cannot make a function name out of "${name}"; pass --name`);
  return cleaned;
}

/** `--env K=V` repeated, into an object; a value may itself contain `=`. */
export function parseEnvPairs(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`--env wants KEY=VALUE, got "${pair}"`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}
