import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import npa from 'npm-package-arg';
import validateName from 'validate-npm-package-name';
import { WharfError } from '@wharf/shared';
import type { ChildProcesses } from './child-processes.js';
import { hideHostPaths } from './host-paths.js';
import { buildTimeout } from './time-limits.js';

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

/** Registry packages only: npm's own parser says what a spec is. */
const REGISTRY_TYPES = new Set(['version', 'range', 'tag']);

/**
 * Whether `spec` names a package on the registry: a version, a range or a dist-tag, optionally
 * behind an `npm:` alias. Paths (`.`, `..`, `./x`, `x.tgz`), `file:`, `link:`, git, GitHub
 * shorthands and URLs would let an archive pull in the builder host's files or reach arbitrary
 * hosts from it.
 */
function isRegistrySpec(name: string, spec: string): boolean {
  if (!validateName(name).validForOldPackages) return false;
  try {
    const parsed = npa.resolve(name, spec);
    const target = parsed.type === 'alias' ? parsed.subSpec : parsed;
    return !!target && REGISTRY_TYPES.has(target.type);
  } catch {
    return false;
  }
}

/** The archive's runtime dependencies, or nothing to install. */
export function dependencyPlan(files: ReadonlyMap<string, string>, registry: string): DependencyPlan | undefined {
  const manifestText = files.get('package.json');
  if (!manifestText) return undefined;
  const manifest = parseJson('package.json', manifestText) as { dependencies?: unknown };
  const declared = manifest?.dependencies ?? {};
  if (typeof declared !== 'object' || declared === null || Array.isArray(declared)) {
    throw new WharfError('DEPENDENCY_INSTALL_FAILED', 'package.json: "dependencies" must be an object of package names to versions');
  }
  const dependencies: Record<string, string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    if (name.startsWith('@wharf/')) continue; // the builder supplies the SDK itself
    if (typeof spec !== 'string' || !isRegistrySpec(name, spec)) {
      throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `package.json: dependency ${JSON.stringify(name)} is ${JSON.stringify(spec)}; only registry versions, ranges and tags are allowed (no paths, file:, link:, git, URLs or tarballs)`);
    }
    dependencies[name] = spec;
  }
  if (Object.keys(dependencies).length === 0) return undefined;
  const lock = files.get('package-lock.json');
  if (lock) rejectForeignSources(lock, registry);
  return { dependencies, lock };
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new WharfError('DEPENDENCY_INSTALL_FAILED', `${file} is not valid JSON: ${(err as Error).message}`);
  }
}

interface LockEntry {
  name?: unknown;
  version?: unknown;
  resolved?: unknown;
  link?: unknown;
  dependencies?: unknown;
  requires?: unknown;
}

/** The maps of dependency specs an entry may carry: npm resolves any it finds unmet, wherever they point. */
const SPEC_MAPS = ['dependencies', 'optionalDependencies', 'peerDependencies', 'devDependencies'] as const;

/**
 * A lock file names where each package comes from, and npm fetches it from there: every entry
 * must be a registry package on the configured registry, and every dependency spec an entry
 * declares a registry spec (npm re-resolves an edge the lock does not satisfy). Both layouts are
 * read — v2/v3 `packages` and v1's nested `dependencies` with their `requires` (which v2
 * repeats) — whatever `lockfileVersion` says. npm itself is also told to allow no git, remote,
 * file or directory source, and what it installed is checked again (see `installDependencies`).
 */
export function rejectForeignSources(lockText: string, registry: string, file = 'package-lock.json'): void {
  const lock = parseJson(file, lockText) as { packages?: unknown; dependencies?: unknown } | null;
  if (typeof lock !== 'object' || lock === null || Array.isArray(lock)) throw new WharfError('DEPENDENCY_INSTALL_FAILED', `${file} is not a JSON object`);
  const home = new URL(registry);
  const refuse = (where: string, what: string): never => {
    throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `${file}: ${where} ${what}; only packages from ${home.origin} are installed`);
  };
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
  const checkSpecs = (where: string, specs: unknown) => {
    if (specs === undefined) return;
    if (!isObject(specs)) return refuse(where, 'is not an object');
    for (const [dependency, spec] of Object.entries(specs)) {
      if (typeof spec !== 'string' || !isRegistrySpec(dependency, spec)) refuse(where, `names ${JSON.stringify(dependency)} as ${JSON.stringify(spec)}`);
    }
  };
  const check = (where: string, name: string, entry: LockEntry) => {
    if (!isObject(entry)) return refuse(where, 'is not an object');
    if (entry.link !== undefined && entry.link !== false) refuse(where, 'is a link to a folder');
    if (entry.resolved !== undefined && !onRegistry(entry.resolved, home)) refuse(where, `resolves to ${JSON.stringify(entry.resolved)}`);
    // An alias's real package name: npm fetches `<name>@<version>`, so it must be a package name.
    if (entry.name !== undefined && (typeof entry.name !== 'string' || !validateName(entry.name).validForOldPackages)) refuse(where, `is named ${JSON.stringify(entry.name)}`);
    // v1 keeps the spec of a non-registry package (a path, git, a URL) in `version`.
    if (entry.version !== undefined && (typeof entry.version !== 'string' || !isRegistrySpec(name, entry.version))) refuse(where, `has version ${JSON.stringify(entry.version)}`);
  };
  const packages = lock.packages ?? {};
  if (!isObject(packages)) return refuse('"packages"', 'is not an object');
  for (const [where, entry] of Object.entries(packages)) {
    const shown = JSON.stringify(where);
    if (where !== '') {
      // Anything but node_modules/… is a workspace or linked folder of the project.
      const name = /^(?:node_modules\/(?:@[^/]+\/)?[^/]+\/)*node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(where)?.[1];
      if (!name || where.split('/').some((segment) => segment === '..' || segment === '.')) refuse(shown, 'is not a package under node_modules');
      check(shown, name!, entry as LockEntry);
    }
    for (const map of SPEC_MAPS) checkSpecs(`${shown} ${map}`, isObject(entry) ? entry[map] : undefined);
  }
  const walk = (dependencies: unknown, trail: string) => {
    if (dependencies === undefined) return;
    if (!isObject(dependencies)) return refuse(trail, 'is not an object');
    for (const [name, entry] of Object.entries(dependencies)) {
      const where = `${trail} ${JSON.stringify(name)}`;
      check(where, name, entry as LockEntry);
      checkSpecs(`${where} requires`, (entry as LockEntry).requires);
      walk((entry as LockEntry).dependencies, `${where} →`);
    }
  };
  walk(lock.dependencies, 'dependencies');
}

/** What npm's default `replace-registry-host=npmjs` rewrites to the configured registry. */
const NPMJS = new URL('https://registry.npmjs.org/');

/**
 * A URL on the configured registry's origin, under its path — or on registry.npmjs.org, which npm
 * (`--replace-registry-host=npmjs`) fetches from the configured registry instead.
 */
function onRegistry(url: unknown, home: URL): boolean {
  if (typeof url !== 'string') return false;
  try {
    const parsed = new URL(url);
    if (parsed.username || parsed.password) return false;
    return [home, NPMJS].some((registry) => parsed.origin === registry.origin && parsed.pathname.startsWith(registry.pathname.endsWith('/') ? registry.pathname : `${registry.pathname}/`));
  } catch {
    return false;
  }
}

/**
 * npm reads no settings from the builder's environment or the user's ~/.npmrc (a scoped registry
 * there would send packages elsewhere): only the host's global npmrc (CA, proxy) and the flags
 * given here.
 */
function npmEnvironment(work: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
  return { ...env, HOME: work };
}

/**
 * Installs the plan's dependencies (`npm ci` with a lock file, `npm install` without; never dev
 * dependencies, never install scripts), or reuses the tree an identical plan installed before.
 * npm runs in a folder holding only package.json and the lock, so nothing else of the archive
 * (an `.npmrc`, say) takes part; it runs as a child the builder kills if it dies itself.
 */
export async function installDependencies(plan: DependencyPlan, settings: InstallSettings, children: Pick<ChildProcesses, 'run'>): Promise<InstalledDependencies> {
  const key = createHash('sha256')
    .update(JSON.stringify({ dependencies: plan.dependencies, lock: plan.lock ?? null, node: process.versions.node, registry: settings.registry }))
    .digest('hex');
  const target = path.join(settings.cacheDir, key);
  const ready = await readMarker(target);
  if (ready) return { nodeModules: path.join(target, 'node_modules'), native: ready.native, cached: true, output: [`dependencies: reused the tree installed for ${key.slice(0, 12)}`] };

  await fs.mkdir(settings.cacheDir, { recursive: true });
  const work = await fs.mkdtemp(path.join(settings.cacheDir, `${installPrefix(settings.builderId)}`));
  const hide = (text: string) => hideHostPaths(text, [[work, '.'], [settings.cacheDir, '<npm cache>']]);
  try {
    await fs.writeFile(path.join(work, 'package.json'), JSON.stringify({ name: 'wharf-function', private: true, dependencies: plan.dependencies }));
    if (plan.lock) await fs.writeFile(path.join(work, 'package-lock.json'), plan.lock);
    await fs.writeFile(path.join(work, '.npmrc-user'), '');
    const args = [
      plan.lock ? 'ci' : 'install',
      '--omit=dev',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--no-update-notifier',
      `--registry=${settings.registry}`,
      '--replace-registry-host=npmjs',
      // npm 11: no source but the registry, whatever a lock file or a package's own manifest names.
      '--allow-git=none',
      '--allow-remote=none',
      '--allow-file=none',
      '--allow-directory=none',
      `--userconfig=${path.join(work, '.npmrc-user')}`,
      `--cache=${path.join(settings.cacheDir, '_npm')}`,
    ];
    const expired = AbortSignal.timeout(settings.timeoutMs);
    const result = await children.run('npm', args, { cwd: work, env: npmEnvironment(work), signal: expired, maxBytes: 1024 * 1024 });
    if (expired.aborted) throw buildTimeout('install', settings.timeoutMs);
    if (result.code !== 0) {
      const npmSays = result.stderr.split('\n').filter((line) => /npm (error|ERR!)/.test(line)).slice(0, 12).join('\n');
      throw new WharfError('DEPENDENCY_INSTALL_FAILED', hide(`npm ${args[0]} failed (${result.signal ?? `exit code ${result.code}`}):\n${npmSays || result.stderr.slice(-2000)}`));
    }
    const output = hide(`${result.stdout}\n${result.stderr}`).split('\n').filter((line) => line.trim());
    // What npm installed, as it recorded it: a package's own manifest may name a URL or git
    // dependency that no lock file listed (an npm without the --allow-* settings fetches it).
    const installed = await fs.readFile(path.join(work, 'node_modules', '.package-lock.json'), 'utf8').catch(() => undefined);
    if (installed) rejectForeignSources(installed, settings.registry, 'what npm installed');
    const native = await hasNativeAddon(path.join(work, 'node_modules'));
    await fs.mkdir(target, { recursive: true });
    // Another build may have installed the same plan meanwhile: either tree is right, keep the first.
    await fs.rename(path.join(work, 'node_modules'), path.join(target, 'node_modules')).catch(async (err) => {
      if (!(await fs.stat(path.join(target, 'node_modules')).catch(() => undefined))) throw err;
    });
    await fs.writeFile(path.join(target, 'ready.json'), JSON.stringify({ native }));
    return { nodeModules: path.join(target, 'node_modules'), native, cached: false, output };
  } finally {
    await fs.rm(work, { recursive: true, force: true, maxRetries: 5 });
  }
}

/** Fixed length, so that no builder id's prefix is another's (`b1-` would also match builder `b1-x`). */
function installPrefix(builderId: string): string {
  return `install-${createHash('sha256').update(builderId).digest('hex').slice(0, 16)}-`;
}

/** The install folders a builder of this id left in the cache folder (killed mid-install). */
export async function interruptedInstalls(cacheDir: string, builderId: string): Promise<string[]> {
  const names = await fs.readdir(cacheDir).catch(() => [] as string[]);
  return names.filter((name) => name.startsWith(installPrefix(builderId))).map((name) => path.join(cacheDir, name));
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
