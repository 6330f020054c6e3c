import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { WharfError } from '@wharf/shared';

const run = promisify(execFile);

export interface DependencyPlan {
  dependencies: Record<string, string>;
  /** The archive's package-lock.json, when it has one: `npm ci` installs exactly that. */
  lock?: string;
}

export interface InstallSettings {
  /** Installed trees, one folder per lock-file hash, reused across builds. */
  cacheDir: string;
  /** The builder's id: its installs in progress are named after it, so that its successor can remove them. */
  builderId: string;
  registry: string;
  timeoutMs: number;
}

export interface InstalledDependencies {
  /** The cached tree the bundle resolves packages from. */
  nodeModules: string;
  /** Whether some package ships a native add-on (`.node`), which cannot be bundled. */
  native: boolean;
  cached: boolean;
  /** What npm printed, for the build log. */
  output: string[];
}

/**
 * Registry packages only: a range, a version or a dist-tag, optionally behind an `npm:` alias.
 * `file:`, `link:`, git and URL specs would let an archive pull in the builder host's files or
 * reach arbitrary hosts from it.
 */
const REGISTRY_SPEC = /^(npm:(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*@)?[\w.^~<>=|* -]*$/i;

/** The archive's runtime dependencies, or nothing to install. */
export function dependencyPlan(files: ReadonlyMap<string, string>, registry: string): DependencyPlan | undefined {
  const manifestText = files.get('package.json');
  if (!manifestText) return undefined;
  let manifest: { dependencies?: Record<string, unknown> };
  try {
    manifest = JSON.parse(manifestText);
  } catch (err) {
    throw new WharfError('DEPENDENCY_INSTALL_FAILED', `package.json is not valid JSON: ${(err as Error).message}`);
  }
  const dependencies: Record<string, string> = {};
  for (const [name, spec] of Object.entries(manifest.dependencies ?? {})) {
    if (name.startsWith('@wharf/')) continue; // the builder supplies the SDK itself
    if (typeof spec !== 'string' || !REGISTRY_SPEC.test(spec)) {
      throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `package.json: dependency ${name} is ${JSON.stringify(spec)}; only registry versions, ranges and tags are allowed`);
    }
    dependencies[name] = spec;
  }
  if (Object.keys(dependencies).length === 0) return undefined;
  const lock = files.get('package-lock.json');
  if (lock) rejectForeignTarballs(lock, registry);
  return { dependencies, lock };
}

/** A lock file names each tarball's URL; every one must come from the configured registry. */
function rejectForeignTarballs(lockText: string, registry: string): void {
  let lock: { packages?: Record<string, { resolved?: string }> };
  try {
    lock = JSON.parse(lockText);
  } catch (err) {
    throw new WharfError('DEPENDENCY_INSTALL_FAILED', `package-lock.json is not valid JSON: ${(err as Error).message}`);
  }
  const origin = new URL(registry).origin;
  for (const [where, entry] of Object.entries(lock.packages ?? {})) {
    if (entry.resolved && !safeOrigin(entry.resolved, origin)) {
      throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `package-lock.json: ${where || 'the root'} resolves to ${entry.resolved}, outside ${origin}`);
    }
  }
}

function safeOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url).origin === origin;
  } catch {
    return false;
  }
}

/**
 * Installs the plan's dependencies (`npm ci` with a lock file, `npm install` without; never dev
 * dependencies, never install scripts), or reuses the tree an identical plan installed before.
 * npm runs in a folder holding only package.json and the lock, so nothing else of the archive
 * (an `.npmrc`, say) takes part.
 */
export async function installDependencies(plan: DependencyPlan, settings: InstallSettings): Promise<InstalledDependencies> {
  const key = createHash('sha256')
    .update(JSON.stringify({ dependencies: plan.dependencies, lock: plan.lock ?? null, node: process.versions.node, registry: settings.registry }))
    .digest('hex');
  const target = path.join(settings.cacheDir, key);
  const ready = await readMarker(target);
  if (ready) return { nodeModules: path.join(target, 'node_modules'), native: ready.native, cached: true, output: [`dependencies: reused the tree installed for ${key.slice(0, 12)}`] };

  await fs.mkdir(settings.cacheDir, { recursive: true });
  const work = await fs.mkdtemp(path.join(settings.cacheDir, `${installPrefix(settings.builderId)}`));
  try {
    await fs.writeFile(path.join(work, 'package.json'), JSON.stringify({ name: 'wharf-function', private: true, dependencies: plan.dependencies }));
    if (plan.lock) await fs.writeFile(path.join(work, 'package-lock.json'), plan.lock);
    const args = [plan.lock ? 'ci' : 'install', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier', `--registry=${settings.registry}`, `--cache=${path.join(settings.cacheDir, '_npm')}`];
    let output: string[];
    try {
      const { stdout, stderr } = await run('npm', args, { cwd: work, timeout: settings.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 });
      output = `${stdout}\n${stderr}`.split('\n').filter((line) => line.trim());
    } catch (err) {
      const failure = err as { stderr?: string; killed?: boolean; message: string };
      if (failure.killed) throw new WharfError('DEPENDENCY_INSTALL_FAILED', `npm did not finish within ${settings.timeoutMs} ms`);
      const npmSays = (failure.stderr ?? '').split('\n').filter((line) => /npm (error|ERR!)/.test(line)).slice(0, 12).join('\n');
      throw new WharfError('DEPENDENCY_INSTALL_FAILED', `npm ${args[0]} failed:\n${npmSays || failure.message}`);
    }
    const native = await hasNativeAddon(path.join(work, 'node_modules'));
    await fs.mkdir(target, { recursive: true });
    // Another build may have installed the same plan meanwhile: either tree is right, keep the first.
    await fs.rename(path.join(work, 'node_modules'), path.join(target, 'node_modules')).catch(async (err) => {
      if (!(await fs.stat(path.join(target, 'node_modules')).catch(() => undefined))) throw err;
    });
    await fs.writeFile(path.join(target, 'ready.json'), JSON.stringify({ native }));
    return { nodeModules: path.join(target, 'node_modules'), native, cached: false, output };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

function installPrefix(builderId: string): string {
  return `install-${builderId}-`;
}

/** Installs a builder killed mid-install left in the cache folder. */
export async function removeInterruptedInstalls(cacheDir: string, builderId: string): Promise<number> {
  const leftovers = (await fs.readdir(cacheDir).catch(() => [] as string[])).filter((name) => name.startsWith(installPrefix(builderId)));
  for (const name of leftovers) await fs.rm(path.join(cacheDir, name), { recursive: true, force: true });
  return leftovers.length;
}

async function readMarker(target: string): Promise<{ native: boolean } | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(target, 'ready.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

async function hasNativeAddon(dir: string): Promise<boolean> {
  const entries = await fs.readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.some((entry) => entry.endsWith('.node'));
}
