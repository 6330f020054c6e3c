import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire, isBuiltin } from 'node:module';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { WharfError } from '@wharf/shared';
import type { FunctionClassInfo } from './analysis.js';
import { hideHostPaths } from './host-paths.js';

const require = createRequire(import.meta.url);

/** The only files outside the archive that a bundle may contain: the SDK and the sandbox contract. */
const PLATFORM_FILES = [path.dirname(require.resolve('@wharf/sdk')) + path.sep, require.resolve('@wharf/shared/sandbox')];
const isPlatformFile = (file: string) => PLATFORM_FILES.some((p) => (p.endsWith(path.sep) ? file.startsWith(p) : file === p));

/**
 * The user never installs `@wharf/sdk`: the builder resolves it (and the contract module it uses)
 * to its own copy, whatever the archive's package.json says.
 */
const wharfSdkPlugin: esbuild.Plugin = {
  name: 'wharf-sdk',
  setup(build) {
    build.onResolve({ filter: /^@wharf\/(sdk|shared\/sandbox)(\/runtime)?$/ }, (args) => ({ path: require.resolve(args.path) }));
  },
};

/** Compiler options the user may choose that change emitted code; everything else in their tsconfig is ignored. */
function userCompilerOptions(files: ReadonlyMap<string, string>): Record<string, unknown> {
  const raw = files.get('tsconfig.json');
  if (!raw) return {};
  try {
    const options = (JSON.parse(raw) as { compilerOptions?: Record<string, unknown> }).compilerOptions ?? {};
    return {
      experimentalDecorators: options.experimentalDecorators === true,
      useDefineForClassFields: options.useDefineForClassFields,
    };
  } catch {
    throw new WharfError('BUNDLE_FAILED', 'tsconfig.json is not valid JSON');
  }
}

/** One CommonJS file for the base image's Node, kept in memory. */
const NODE_BUNDLE = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', write: false, logLevel: 'silent' } as const satisfies esbuild.BuildOptions;

let launcher: Promise<string> | undefined;

/** The in-container launcher of program runtimes (relay, files), bundled once per builder process. */
export function launcherBundle(): Promise<string> {
  launcher ??= esbuild.build({ ...NODE_BUNDLE, entryPoints: [require.resolve('@wharf/sdk/launcher')] }).then((result) => result.outputFiles[0].text);
  return launcher;
}

/** Installed npm dependencies the bundle may draw on. */
export interface BundleDependencies {
  nodeModules: string;
  /** Packages left out of the bundle, to be required at run time from /app/node_modules (native add-ons). */
  external: string[];
}

const CONFINED = Symbol('confined');
/** Marks the refusal of a path outside the archive among esbuild's errors. */
const OUTSIDE = Symbol('outside');

const inside = (file: string, root: string) => file === root || file.startsWith(root + path.sep);
const isBare = (specifier: string) => !/^(\.{1,2}(\/|$)|\/)/.test(specifier);

/**
 * Every import resolves inside the function's own files: the archive's, or its installed
 * dependencies'. Node's resolution (and esbuild's) walks up from the importing file through every
 * node_modules above it; a build folder inside a checkout then finds the platform's own packages
 * (zod 4 for a function built against zod 3). Here a package is looked up from the importing
 * file up to the archive's root, or the installed tree's, then in the installed tree, and nowhere
 * else; a relative or absolute path must land inside those roots (so a host file is never even
 * read). The platform's own files (the SDK) resolve as they always do.
 */
function confinedResolution(sourceRoot: string, nodeModules: string | undefined): esbuild.Plugin {
  const roots = [sourceRoot, ...(nodeModules ? [path.dirname(nodeModules)] : [])];
  return {
    name: 'wharf-confined-resolution',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === CONFINED || args.kind === 'entry-point') return undefined;
        // Node's own modules stay external (esbuild does not know every one: `readline/promises`).
        if (isBuiltin(args.path)) return { path: args.path, external: true };
        const root = roots.find((candidate) => inside(args.resolveDir, candidate));
        if (!root) return undefined;
        const resolve = (resolveDir: string) => build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir, pluginData: CONFINED });
        if (!isBare(args.path)) {
          const found = await resolve(args.resolveDir);
          // The path found, not the one asked for: `x.json?/../../sdk/y` loads x.json.
          if (found.errors.length > 0 || found.external || roots.some((allowed) => inside(found.path, allowed))) return found;
          return { errors: [{ text: `"${args.path}" is outside the function's archive`, detail: OUTSIDE }] };
        }
        const name = args.path.split('/').slice(0, args.path.startsWith('@') ? 2 : 1).join('/');
        // esbuild walks on up when the package lacks the file asked for: an answer from anywhere
        // but the package found is no answer.
        const resolveIn = async (dir: string): Promise<esbuild.OnResolveResult> => {
          const found = await resolve(dir);
          if (found.errors.length > 0 || found.external || inside(found.path, path.join(dir, 'node_modules', name))) return found;
          return { errors: [{ text: `Could not resolve "${args.path}" in the function's ${name}` }] };
        };
        for (let dir = args.resolveDir; ; dir = path.dirname(dir)) {
          if (existsSync(path.join(dir, 'node_modules', name))) return resolveIn(dir);
          if (dir === root) break;
        }
        if (nodeModules && existsSync(path.join(nodeModules, name))) return resolveIn(path.dirname(nodeModules));
        const missing = `${name} is not among the function's dependencies (package.json)`;
        // A dependency's own require of a package not installed (an optional one, like pg's
        // pg-native) fails at run time, as it would in Node; the function's own import fails now.
        if (root !== sourceRoot) return { path: args.path, external: true, warnings: [{ text: `"${args.path}" left to run time: ${missing}` }] };
        return { errors: [{ text: `Could not resolve "${args.path}": ${missing}` }] };
      });
      // What esbuild loads without asking any resolver (the files a computed `require(\`../${x}\`)`
      // expands to) comes through here: nothing outside the roots, and nothing but regular files
      // (`/dev/zero` would be read until the host runs out of memory), is ever read.
      build.onLoad({ filter: /.*/ }, async (args) => {
        const allowed = roots.some((root) => inside(args.path, root)) || isPlatformFile(args.path);
        if (allowed && (await fs.lstat(args.path).catch(() => undefined))?.isFile()) return undefined;
        return { errors: [{ text: 'a file outside the function\'s archive', detail: OUTSIDE }] };
      });
    },
  };
}

/** The bundle is one file held in memory and copied into the image: a function's code, not its data. */
const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;

/** What esbuild says when its own process died (a stack overflow on deeply nested code): it is dead for every later build of this process too. */
const BUNDLER_STOPPED = /The service (was stopped|is no longer running)/;

/**
 * Bundles a generated entry, the user's modules, their npm dependencies and the SDK into one
 * CommonJS file for Node 20. The entry loads the function's module (whose decorator registers the
 * class) and runs it. It runs in an analysis process, whose time limit is the bundle's.
 */
export async function bundleFunction(givenRoot: string, fn: FunctionClassInfo, files: ReadonlyMap<string, string>, given?: BundleDependencies): Promise<string> {
  // esbuild reports real paths: the folders compared with them must be real too (a symlinked
  // temporary or state folder would otherwise put every input outside them).
  const sourceRoot = await fs.realpath(givenRoot);
  const dependencies = given && { ...given, nodeModules: await fs.realpath(given.nodeModules) };
  const entry = [
    `import { runFunction } from '@wharf/sdk/runtime';`,
    `import ${JSON.stringify('./' + fn.file)};`,
    `runFunction().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });`,
  ].join('\n');
  const roots = [sourceRoot, ...(dependencies ? [dependencies.nodeModules] : [])];
  const shown = (text: string) => withoutOutsidePaths(text, sourceRoot, dependencies?.nodeModules);
  try {
    const result = await esbuild.build({
      ...NODE_BUNDLE,
      stdin: { contents: entry, resolveDir: sourceRoot, sourcefile: '__wharf_entry.ts', loader: 'ts' },
      absWorkingDir: sourceRoot,
      plugins: [wharfSdkPlugin, confinedResolution(sourceRoot, dependencies?.nodeModules)],
      tsconfigRaw: { compilerOptions: userCompilerOptions(files) },
      metafile: true,
      external: (dependencies?.external ?? []).flatMap((name) => [name, `${name}/*`]),
    });
    rejectOutsideInputs(roots, sourceRoot, Object.keys(result.metafile.inputs));
    const bundle = result.outputFiles[0];
    if (bundle.contents.length > MAX_BUNDLE_BYTES) throw new WharfError('BUNDLE_FAILED', `the bundle is ${bundle.contents.length} bytes; at most ${MAX_BUNDLE_BYTES}`);
    return bundle.text;
  } catch (err) {
    if (err instanceof WharfError) throw err;
    const failure = err as esbuild.BuildFailure;
    const outside = (failure.errors ?? []).find((e) => e.detail === OUTSIDE);
    if (outside) {
      const where = outside.location ? `${shown(path.resolve(sourceRoot, outside.location.file))}:${outside.location.line}: ` : '';
      throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `${where}the function imports a file outside its archive`);
    }
    if (BUNDLER_STOPPED.test(failure.message ?? '')) throw new WharfError('SOURCE_TOO_COMPLEX', 'the bundler stopped on these sources (code nested too deeply?)');
    const messages = (failure.errors ?? []).slice(0, 5).map((m) => (m.location ? `${shown(path.resolve(sourceRoot, m.location.file))}:${m.location.line}: ${shown(m.text)}` : shown(m.text)));
    throw new WharfError('BUNDLE_FAILED', `bundling failed: ${messages.join('; ') || shown(failure.message)}`);
  }
}

/**
 * An import may name any path (`/etc/…`, `../../…`, a package in the builder's own node_modules,
 * a pattern esbuild expands over folders); bundling it would copy the builder host's files into
 * the image. Only the archive's own files, its installed dependencies and the platform's are
 * allowed in. A path's `?…`/`#…` ending is not part of the file esbuild read: both are checked.
 */
function rejectOutsideInputs(roots: string[], sourceRoot: string, inputs: string[]): void {
  for (const input of inputs) {
    if (input === '<stdin>') continue;
    const candidates = [input, input.split(/[?#]/)[0]].map((file) => path.resolve(sourceRoot, file));
    const allowed = (absolute: string) => roots.some((root) => inside(absolute, root)) || isPlatformFile(absolute);
    if (!candidates.every(allowed)) throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', 'the function imports a file outside its archive and its dependencies');
  }
}

/**
 * esbuild's messages name files relative to the archive's root; one outside it (`../../x`, an
 * absolute path) is another user's build or a host file, and its name is not the owner's to read.
 */
function withoutOutsidePaths(text: string, sourceRoot: string, nodeModules: string | undefined): string {
  const hidden = hideHostPaths(text, [[sourceRoot, ''], ...(nodeModules ? [[nodeModules, 'node_modules'] as [string, string]] : [])]);
  return hidden.replace(/(?<![\w.<>-])(?:\.\.\/|\/)[^\s"'`:;,)]+/g, '<outside the archive>');
}
