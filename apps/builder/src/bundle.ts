import { existsSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { WharfError } from '@wharf/shared';
import type { FunctionClassInfo } from './analysis.js';
import { hideHostPaths } from './host-paths.js';
import { withTimeLimit } from './time-limits.js';

const require = createRequire(import.meta.url);

/** The only files outside the archive that a bundle may contain: the SDK and the sandbox contract. */
const PLATFORM_FILES = [path.dirname(require.resolve('@wharf/sdk')) + path.sep, require.resolve('@wharf/shared/sandbox')];

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

/**
 * Packages resolve in the function's node_modules folders only. Node's resolution (and
 * esbuild's) walks up from the importing file through every node_modules above it; a build
 * folder inside a checkout then finds the platform's own packages (zod 4 for a function built
 * against zod 3). Here the walk stops at the archive's root, or at the installed tree's, and
 * falls back to the installed tree: nothing above them is ever seen.
 */
function confinedPackages(sourceRoot: string, nodeModules: string | undefined): esbuild.Plugin {
  const roots = [sourceRoot, ...(nodeModules ? [path.dirname(nodeModules)] : [])].map((root) => path.resolve(root));
  const inside = (dir: string, root: string) => dir === root || dir.startsWith(root + path.sep);
  return {
    name: 'wharf-confined-packages',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === CONFINED || isBuiltin(args.path)) return undefined;
        const root = roots.find((candidate) => inside(args.resolveDir, candidate));
        if (!root) return undefined; // the platform's own files (the SDK) resolve as they always do
        const name = args.path.split('/').slice(0, args.path.startsWith('@') ? 2 : 1).join('/');
        const resolveIn = async (dir: string) => build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: dir, pluginData: CONFINED });
        for (let dir = args.resolveDir; ; dir = path.dirname(dir)) {
          if (existsSync(path.join(dir, 'node_modules', name))) return resolveIn(dir);
          if (dir === root) break;
        }
        if (nodeModules && existsSync(path.join(nodeModules, name))) return resolveIn(path.dirname(nodeModules));
        const missing = `${name} is not among the function's dependencies (package.json)`;
        // A dependency's own require of a package not installed (an optional one, like pg's
        // pg-native) fails at run time, as it would in Node; the function's own import fails now.
        if (root !== roots[0]) return { path: args.path, external: true, warnings: [{ text: `"${args.path}" left to run time: ${missing}` }] };
        return { errors: [{ text: `Could not resolve "${args.path}": ${missing}` }] };
      });
    },
  };
}

export interface BundleOptions {
  dependencies?: BundleDependencies;
  timeoutMs: number;
}

/**
 * Bundles a generated entry, the user's modules, their npm dependencies and the SDK into one
 * CommonJS file for Node 20. The entry loads the function's module (whose decorator registers the
 * class) and runs it.
 */
export async function bundleFunction(sourceRoot: string, fn: FunctionClassInfo, files: ReadonlyMap<string, string>, options: BundleOptions): Promise<string> {
  const { dependencies } = options;
  const entry = [
    `import { runFunction } from '@wharf/sdk/runtime';`,
    `import ${JSON.stringify('./' + fn.file)};`,
    `runFunction().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });`,
  ].join('\n');
  const shown = (file: string) => hideHostPaths(path.resolve(sourceRoot, file), [[sourceRoot, ''], ...(dependencies ? [[dependencies.nodeModules, 'node_modules'] as [string, string]] : [])]);
  const context = await esbuild.context({
    ...NODE_BUNDLE,
    stdin: { contents: entry, resolveDir: sourceRoot, sourcefile: '__wharf_entry.ts', loader: 'ts' },
    absWorkingDir: sourceRoot,
    plugins: [wharfSdkPlugin, confinedPackages(sourceRoot, dependencies?.nodeModules)],
    tsconfigRaw: { compilerOptions: userCompilerOptions(files) },
    metafile: true,
    external: (dependencies?.external ?? []).flatMap((name) => [name, `${name}/*`]),
  });
  try {
    const result = await withTimeLimit('bundle', options.timeoutMs, (signal) => {
      signal.addEventListener('abort', () => void context.cancel());
      return context.rebuild();
    });
    rejectOutsideInputs([sourceRoot, ...(dependencies ? [dependencies.nodeModules] : [])], Object.keys(result.metafile!.inputs), shown);
    return result.outputFiles![0].text;
  } catch (err) {
    if (err instanceof WharfError) throw err;
    const failure = err as esbuild.BuildFailure;
    const messages = (failure.errors ?? []).slice(0, 5).map((m) => (m.location ? `${shown(m.location.file)}:${m.location.line}: ${m.text}` : m.text));
    throw new WharfError('BUNDLE_FAILED', `bundling failed: ${messages.join('; ') || failure.message}`);
  } finally {
    await context.dispose();
  }
}

/**
 * An import may name any path (`/etc/…`, `../../…`, a package in the builder's own node_modules);
 * bundling it would copy the builder host's files into the image. Only the archive's own files,
 * its installed dependencies and the platform's are allowed in.
 */
function rejectOutsideInputs([sourceRoot, ...otherRoots]: string[], inputs: string[], shown: (file: string) => string): void {
  const roots = [sourceRoot, ...otherRoots].map((root) => path.resolve(root) + path.sep);
  for (const input of inputs) {
    if (input === '<stdin>') continue;
    const absolute = path.resolve(sourceRoot, input);
    const allowed = roots.some((root) => absolute.startsWith(root)) || PLATFORM_FILES.some((p) => (p.endsWith(path.sep) ? absolute.startsWith(p) : absolute === p));
    if (!allowed) {
      throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `the function imports ${shown(input)}, which is outside its archive`);
    }
  }
}
