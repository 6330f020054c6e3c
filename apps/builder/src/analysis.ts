import path from 'node:path';
import { Node, Project, SyntaxKind, type ClassDeclaration, type SourceFile } from 'ts-morph';
import { WharfError } from '@wharf/shared';

const SDK_MODULE = '@wharf/sdk';

export interface FunctionClassInfo {
  /** Path of the file holding the class, relative to the archive root. */
  file: string;
  className: string;
}

/**
 * Finds the one class Wharf will run: decorated with `@cloudFunction`, extending `CloudFunction`,
 * implementing `handle`, in sources with no top-level `main`. Pure: works on file contents, never
 * on the disk, so that nothing in the archive can make the analysis read outside it.
 */
export function analyseSources(files: ReadonlyMap<string, string>): FunctionClassInfo {
  const sourcePaths = [...files.keys()].filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).sort();
  if (sourcePaths.length === 0) throw new WharfError('NO_SOURCE_FILES', 'the archive holds no .ts files');

  const project = new Project({ useInMemoryFileSystem: true, compilerOptions: { allowJs: false } });
  const sources = sourcePaths.map((p) => project.createSourceFile(`/fn/${p}`, files.get(p)!));

  for (const source of sources) {
    rejectOutsideReferences(source);
    rejectMain(source);
  }

  const decorated = sources.flatMap((source) =>
    source.getClasses().filter((cls) => hasDecorator(cls, localNamesOf(source, 'cloudFunction'))),
  );
  if (decorated.length === 0) {
    throw new WharfError(
      'NO_FUNCTION_CLASS',
      'no function class found: exactly one class must extend CloudFunction and carry the @cloudFunction decorator',
    );
  }
  if (decorated.length > 1) {
    const where = decorated.map((cls) => `${cls.getName() ?? '(anonymous)'} (${at(cls)})`).join(', ');
    throw new WharfError('MULTIPLE_FUNCTION_CLASSES', `several @cloudFunction classes found: ${where}; keep exactly one`);
  }

  const cls = decorated[0];
  const name = cls.getName() ?? '(anonymous)';
  if (!extendsCloudFunction(cls)) {
    throw new WharfError('NOT_A_CLOUD_FUNCTION', `class ${name} (${at(cls)}) carries @cloudFunction but does not extend CloudFunction`);
  }
  if (!cls.getMethod('handle') && !cls.getProperty('handle')) {
    throw new WharfError('HANDLE_NOT_IMPLEMENTED', `class ${name} (${at(cls)}) does not implement handle(request, context)`);
  }
  return { file: relative(cls.getSourceFile()), className: name };
}

function relative(source: SourceFile): string {
  return source.getFilePath().slice('/fn/'.length);
}

function at(node: Node): string {
  return `${relative(node.getSourceFile())}:${node.getStartLineNumber()}`;
}

/** The names a file uses for an export of the SDK, following `import { x as y }`. */
function localNamesOf(source: SourceFile, exported: string): Set<string> {
  const names = new Set([exported]);
  for (const decl of source.getImportDeclarations()) {
    if (decl.getModuleSpecifierValue() !== SDK_MODULE) continue;
    for (const named of decl.getNamedImports()) {
      if (named.getName() === exported) names.add(named.getAliasNode()?.getText() ?? exported);
    }
  }
  return names;
}

function hasDecorator(cls: ClassDeclaration, names: Set<string>): boolean {
  return cls.getDecorators().some((d) => names.has(d.getName()));
}

function extendsCloudFunction(cls: ClassDeclaration): boolean {
  const base = cls.getExtends()?.getExpression();
  if (!base) return false;
  const local = localNamesOf(cls.getSourceFile(), 'CloudFunction');
  if (Node.isIdentifier(base)) return local.has(base.getText());
  // `import * as sdk from '@wharf/sdk'` … `extends sdk.CloudFunction`
  return Node.isPropertyAccessExpression(base) && base.getName() === 'CloudFunction';
}

/**
 * Relative imports and `/// <reference path>` must stay inside the archive; absolute ones never
 * can. (The bundler refuses such inputs too; this says so earlier, and names the line.)
 */
function rejectOutsideReferences(source: SourceFile): void {
  const dir = path.posix.dirname(source.getFilePath());
  const escapes = (target: string) => target.startsWith('/') || !path.posix.resolve(dir, target).startsWith('/fn/');
  for (const ref of source.getPathReferenceDirectives()) {
    if (escapes(ref.getFileName())) {
      throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `${relative(source)}: /// <reference path="${ref.getFileName()}"> points outside the archive`);
    }
  }
  const loads = source.getDescendantsOfKind(SyntaxKind.CallExpression).filter((call) => {
    const callee = unwrapped(call.getExpression());
    return callee.getKind() === SyntaxKind.ImportKeyword || callee.getText() === 'require';
  });
  for (const call of loads) {
    // The bundler expands a computed path (`../${name}`, `'./' + x`) over whole folder trees,
    // outside the archive too: a module is named by a literal, or not loaded at all.
    const [first] = call.getArguments();
    if (first && !Node.isStringLiteral(first) && !Node.isNoSubstitutionTemplateLiteral(first)) {
      throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `${at(call)}: ${unwrapped(call.getExpression()).getText()}() of a computed path cannot be bundled; name the module in a string literal`);
    }
  }
  const specifiers = [
    ...source.getImportDeclarations().map((decl) => decl.getModuleSpecifier()),
    ...source.getExportDeclarations().flatMap((decl) => decl.getModuleSpecifier() ?? []),
    ...loads.flatMap((call) => call.getArguments().slice(0, 1).filter((arg) => Node.isStringLiteral(arg) || Node.isNoSubstitutionTemplateLiteral(arg))),
  ];
  for (const specifier of specifiers) {
    const target = specifier.getLiteralText();
    if ((target.startsWith('.') || target.startsWith('/')) && escapes(target)) {
      throw new WharfError('ANALYSIS_UNSAFE_REFERENCE', `${at(specifier)}: ${JSON.stringify(target)} points outside the archive`);
    }
  }
}

/** `(require)`, `require!`, `(require as any)`, `<any>require`: the same require. */
function unwrapped(expression: Node): Node {
  let current = expression;
  while (Node.isParenthesizedExpression(current) || Node.isNonNullExpression(current) || Node.isAsExpression(current) || Node.isSatisfiesExpression(current) || Node.isTypeAssertion(current)) {
    current = current.getExpression();
  }
  return current;
}

/** The platform calls the handler; a `main` of the user's own would run at import time or mislead. */
function rejectMain(source: SourceFile): void {
  const declared = source.getFunction('main') ?? source.getVariableDeclaration('main');
  if (declared) {
    throw new WharfError('MAIN_NOT_ALLOWED', `${at(declared)}: a top-level main() is not allowed; Wharf calls handle() itself`);
  }
  for (const statement of source.getStatements()) {
    if (!Node.isExpressionStatement(statement)) continue;
    const callsMain = statement
      .getDescendantsOfKind(SyntaxKind.CallExpression)
      .some((call) => call.getExpression().getText() === 'main');
    if (callsMain) {
      throw new WharfError('MAIN_NOT_ALLOWED', `${at(statement)}: a top-level main() call is not allowed; Wharf calls handle() itself`);
    }
  }
}
