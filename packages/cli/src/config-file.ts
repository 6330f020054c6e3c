import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

const cliConfigSchema = z.object({
  apiUrl: z.string().url().optional(),
  token: z.string().optional(),
  email: z.string().optional(),
});
export type CliConfig = z.infer<typeof cliConfigSchema>;

/** `$WHARF_CONFIG`, else `$XDG_CONFIG_HOME/wharf/config.json`, else `~/.config/wharf/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WHARF_CONFIG) return env.WHARF_CONFIG;
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'wharf', 'config.json');
}

export async function loadConfig(file = configPath()): Promise<CliConfig> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const parsed = cliConfigSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${file} is not a valid wharf config: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** The token is a credential: the file is readable by its owner only. */
export async function saveConfig(config: CliConfig, file = configPath()): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await fs.rename(tmp, file);
}
