import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { getLibFiles } from '@ts-morph/common';
import { ts } from 'ts-morph';
import { WharfError } from '@wharf/shared';

const require = createRequire(import.meta.url);

/** Where each part of the virtual file system the checker sees comes from. */
const ROOT = '/fn';
const LIB_DIR = '/__wharf__/lib';
const PLATFORM_MODULES = '/__wharf__/node_modules';
/** Packages the checker may read from the builder's own installation: the SDK's and Node's types. */
const PLATFORM_PACKAGES: Record<string, string> = {
  '@wharf/sdk': path.dirname(require.resolve('@wharf/sdk')),
  '@wharf/shared': path.dirname(require.resolve('@wharf/shared/sandbox')),
  '@types/node': path.dirname(require.resolve('@types/node/package.json')),
  'undici-types': path.dirname(require.resolve('undici-types/package.json')),
};
const LIB_FILES = new Map(getLibFiles().map((lib) => [`${LIB_DIR}/${lib.fileName}`, lib.text]));

/** At most this many type errors are reported. */
const MAX_ERRORS = 20;

/** Options the user's tsconfig may set; anything else there (paths, roots, emit…) is the platform's. */
const USER_OPTIONS = [
  'strict', 'noImplicitAny', 'strictNullChecks', 'strictFunctionTypes', 'strictBindCallApply', 'strictPropertyInitialization',
  'noImplicitThis', 'useUnknownInCatchVariables', 'alwaysStrict', 'noUnusedLocals', 'noUnusedParameters', 'noImplicitReturns',
  'noFallthroughCasesInSwitch', 'noUncheckedIndexedAccess', 'exactOptionalPropertyTypes', 'noImplicitOverride',
  'noPropertyAccessFromIndexSignature', 'experimentalDecorators', 'useDefineForClassFields', 'allowUnreachableCode', 'allowUnusedLabels',
] as const;

/**
 * Parsed declaration files that do not change between builds (TypeScript's libs, Node's types,
 * the SDK, and installed dependency trees, which live in folders named by their hash), kept
 * across checks so that only the function's own files are parsed each time.
 */
const parsed = new Map<string, ts.SourceFile>();
const MAX_PARSED_FILES = 20_000;

export interface TypeCheckInput {
  files: ReadonlyMap<string, string>;
  /** Installed dependencies, served to the checker as the function's node_modules. */
  nodeModules?: string;
}

/**
 * Type-checks the function's files as a project rooted in its archive: strict unless its
 * tsconfig.json says otherwise, against the SDK's and Node's types and its installed
 * dependencies. Nothing outside those is visible, so no `extends`, reference or import can reach
 * the builder's disk. Throws TYPECHECK_FAILED with the first errors, each with file and line.
 */
export function typeCheck(input: TypeCheckInput): void {
  // Dependency trees come and go with lock files; start over rather than grow without bound.
  if (parsed.size > MAX_PARSED_FILES) parsed.clear();
  const options: ts.CompilerOptions = {
    strict: true,
    ...userOptions(input.files),
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    esModuleInterop: true,
    // The bundler imports JSON files; the checker must accept what the bundler does.
    resolveJsonModule: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
    typeRoots: [`${PLATFORM_MODULES}/@types`],
    baseUrl: '/',
    paths: { '@wharf/sdk': [`${PLATFORM_MODULES}/@wharf/sdk/index.ts`], '@wharf/shared/sandbox': [`${PLATFORM_MODULES}/@wharf/shared/sandbox.ts`] },
  };
  const roots = [...input.files.keys()].filter((file) => file.endsWith('.ts')).map((file) => `${ROOT}/${file}`);
  const host = virtualHost(input);
  const program = ts.createProgram({ rootNames: roots, options, host });
  const diagnostics = roots.flatMap((file) => {
    const source = program.getSourceFile(file);
    return source ? [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)] : [];
  });
  if (diagnostics.length === 0) return;
  const shown = diagnostics.slice(0, MAX_ERRORS).map(describe);
  const more = diagnostics.length > MAX_ERRORS ? `\n… and ${diagnostics.length - MAX_ERRORS} more` : '';
  throw new WharfError('TYPECHECK_FAILED', `${diagnostics.length} type error${diagnostics.length === 1 ? '' : 's'}:\n${shown.join('\n')}${more}`);
}

function describe(diagnostic: ts.Diagnostic): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
  if (!diagnostic.file || diagnostic.start === undefined) return `TS${diagnostic.code}: ${message}`;
  const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return `${diagnostic.file.fileName.slice(ROOT.length + 1)}:${line + 1}: TS${diagnostic.code}: ${message}`;
}

function userOptions(files: ReadonlyMap<string, string>): ts.CompilerOptions {
  const text = files.get('tsconfig.json');
  if (!text) return {};
  const { config, error } = ts.parseConfigFileTextToJson('tsconfig.json', text);
  if (error) throw new WharfError('TYPECHECK_FAILED', `tsconfig.json: ${ts.flattenDiagnosticMessageText(error.messageText, ' ')}`);
  if (config?.extends !== undefined) {
    throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', 'tsconfig.json: "extends" is not supported; put the compiler options in the archive\'s tsconfig.json itself');
  }
  const { options } = ts.convertCompilerOptionsFromJson(config?.compilerOptions ?? {}, ROOT);
  return Object.fromEntries(USER_OPTIONS.filter((name) => options[name] !== undefined).map((name) => [name, options[name]]));
}

/** Maps a virtual path to the real file it stands for, or undefined when it is not part of the checker's world. */
function realPathOf(virtual: string, input: TypeCheckInput): string | undefined {
  const ownModules = `${ROOT}/node_modules`;
  if (input.nodeModules && (virtual === ownModules || virtual.startsWith(`${ownModules}/`))) {
    return confined(input.nodeModules, virtual.slice(ownModules.length + 1));
  }
  if (virtual.startsWith(`${PLATFORM_MODULES}/`)) {
    const rest = virtual.slice(PLATFORM_MODULES.length + 1);
    const name = Object.keys(PLATFORM_PACKAGES).find((pkg) => rest === pkg || rest.startsWith(`${pkg}/`));
    if (name) return confined(PLATFORM_PACKAGES[name], rest.slice(name.length + 1));
  }
  return undefined;
}

/** `relative` joined to `base`, or undefined if it would leave it. */
function confined(base: string, relative: string): string | undefined {
  const full = path.resolve(base, relative);
  return full === base || full.startsWith(base + path.sep) ? full : undefined;
}

const realBases = new Map<string, string>();
function realBase(base: string): string {
  let real = realBases.get(base);
  if (!real) realBases.set(base, (real = fs.realpathSync(base)));
  return real;
}

/** Whether what `file` really is (symlinks followed) still lies in one of the folders the checker may read. */
function readable(file: string, input: TypeCheckInput): boolean {
  try {
    const real = fs.realpathSync(file);
    const bases = [...(input.nodeModules ? [input.nodeModules] : []), ...Object.values(PLATFORM_PACKAGES)].map(realBase);
    return bases.some((base) => real.startsWith(base + path.sep));
  } catch {
    return false;
  }
}

function virtualHost(input: TypeCheckInput): ts.CompilerHost {
  const archivePath = (file: string) => (file.startsWith(`${ROOT}/`) ? file.slice(ROOT.length + 1) : undefined);
  const readFile = (file: string): string | undefined => {
    const own = archivePath(file);
    if (own !== undefined && input.files.has(own)) return input.files.get(own);
    if (LIB_FILES.has(file)) return LIB_FILES.get(file);
    const real = realPathOf(file, input);
    if (!real || !readable(real, input)) return undefined;
    try {
      return fs.readFileSync(real, 'utf8');
    } catch {
      return undefined;
    }
  };
  // Module resolution probes many candidates: answer without reading them.
  const fileExists = (file: string): boolean => {
    const own = archivePath(file);
    if ((own !== undefined && input.files.has(own)) || LIB_FILES.has(file)) return true;
    const real = realPathOf(file, input);
    if (!real) return false;
    try {
      return fs.statSync(real, { throwIfNoEntry: false })?.isFile() === true;
    } catch {
      return false; // ENOTDIR: a probe below a file (`x/package.json/package.json`)
    }
  };
  return {
    getSourceFile(file, languageVersion) {
      const real = LIB_FILES.has(file) ? file : realPathOf(file, input);
      const key = real && `${real}@${JSON.stringify(languageVersion)}`;
      if (key && parsed.has(key)) return parsed.get(key);
      const text = readFile(file);
      if (text === undefined) return undefined;
      const source = ts.createSourceFile(file, text, languageVersion);
      if (key) parsed.set(key, source);
      return source;
    },
    getDefaultLibFileName: () => `${LIB_DIR}/lib.es2022.d.ts`,
    getDefaultLibLocation: () => LIB_DIR,
    writeFile: () => {},
    getCurrentDirectory: () => ROOT,
    getCanonicalFileName: (file) => file,
    useCaseSensitiveFileNames: () => true,
    getNewLine: () => '\n',
    fileExists,
    readFile,
    directoryExists: (dir) => {
      const own = archivePath(dir);
      if (dir === ROOT || (own !== undefined && [...input.files.keys()].some((file) => file.startsWith(`${own}/`)))) return true;
      if ([LIB_DIR, PLATFORM_MODULES, `${PLATFORM_MODULES}/@types`, `${PLATFORM_MODULES}/@wharf`].includes(dir)) return true;
      const real = realPathOf(dir, input);
      return real ? fs.existsSync(real) : false;
    },
    getDirectories: (dir) => {
      if (dir === `${PLATFORM_MODULES}/@types`) return ['node'];
      const real = realPathOf(dir, input);
      if (!real) return [];
      try {
        return fs.readdirSync(real, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
      } catch {
        return [];
      }
    },
    realpath: (file) => file,
  };
}
