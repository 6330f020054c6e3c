import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WharfError } from '@wharf/shared';
import { analyseSources } from '../src/analysis.js';

const HEADER = `import { CloudFunction, CloudResponse, cloudFunction } from '@wharf/sdk';\n`;
const fnClass = (name: string, extra = '') =>
  `@cloudFunction\nexport class ${name} extends CloudFunction {\n  async handle() { return CloudResponse.text('${name}'); }\n}\n${extra}`;

function analyse(files: Record<string, string>) {
  return analyseSources(new Map(Object.entries(files)));
}

function rejectsWith(files: Record<string, string>, code: string, message?: RegExp) {
  assert.throws(
    () => analyse(files),
    (err: unknown) => err instanceof WharfError && err.code === code && (!message || message.test(err.message)),
  );
}

test('finds the one decorated class, in whichever file holds it', () => {
  assert.deepEqual(analyse({ 'index.ts': HEADER + fnClass('Hello') }), { file: 'index.ts', className: 'Hello' });
  assert.deepEqual(
    analyse({
      'util.ts': 'export const shout = (s: string) => s.toUpperCase();\n',
      'src/handler.ts': HEADER + `import { shout } from '../util.js';\n` + fnClass('Nested'),
    }),
    { file: 'src/handler.ts', className: 'Nested' },
  );
});

test('follows renamed and namespace imports of the SDK', () => {
  const renamed = `import { CloudFunction as Base, CloudResponse, cloudFunction as fn } from '@wharf/sdk';\n@fn\nclass A extends Base { handle() { return CloudResponse.text('a'); } }\n`;
  assert.equal(analyse({ 'a.ts': renamed }).className, 'A');
  const namespaced = `import * as sdk from '@wharf/sdk';\n@sdk.cloudFunction\nclass B extends sdk.CloudFunction { handle() { return sdk.CloudResponse.text('b'); } }\n`;
  assert.equal(analyse({ 'b.ts': namespaced }).className, 'B');
});

test('no .ts files', () => {
  rejectsWith({ 'package.json': '{}' }, 'NO_SOURCE_FILES');
  rejectsWith({ 'types.d.ts': 'declare const x: number;' }, 'NO_SOURCE_FILES');
});

test('no decorated class', () => {
  rejectsWith({ 'index.ts': HEADER + 'export class Plain extends CloudFunction { handle() { return CloudResponse.text(""); } }' }, 'NO_FUNCTION_CLASS', /@cloudFunction/);
});

test('several decorated classes, named with their files', () => {
  rejectsWith({ 'a.ts': HEADER + fnClass('One'), 'b.ts': HEADER + fnClass('Two') }, 'MULTIPLE_FUNCTION_CLASSES', /One \(a\.ts:2\).*Two \(b\.ts:2\)/);
});

test('a decorated class that does not extend CloudFunction', () => {
  rejectsWith({ 'index.ts': HEADER + '@cloudFunction\nexport class Rogue { handle() {} }\n' }, 'NOT_A_CLOUD_FUNCTION', /Rogue \(index\.ts:2\)/);
  rejectsWith({ 'index.ts': HEADER + 'class Other {}\n@cloudFunction\nexport class Rogue extends Other { handle() {} }\n' }, 'NOT_A_CLOUD_FUNCTION');
});

test('a class without handle()', () => {
  rejectsWith({ 'index.ts': HEADER + '@cloudFunction\nexport class Lazy extends CloudFunction {}\n' }, 'HANDLE_NOT_IMPLEMENTED');
});

test('a top-level main, declared or called', () => {
  rejectsWith({ 'index.ts': HEADER + fnClass('Hello', 'function main() {}\n') }, 'MAIN_NOT_ALLOWED', /index\.ts:6/);
  rejectsWith({ 'index.ts': HEADER + fnClass('Hello'), 'run.ts': 'declare function main(): Promise<void>;\nmain().catch(console.error);\n' }, 'MAIN_NOT_ALLOWED');
  rejectsWith({ 'index.ts': HEADER + fnClass('Hello', 'const main = async () => {};\n') }, 'MAIN_NOT_ALLOWED');
  // A method or a local called main is the user's business.
  assert.equal(analyse({ 'index.ts': HEADER + fnClass('Hello', 'export function helper() { const main = 1; return main; }\n') }).className, 'Hello');
});

test('imports and references that leave the archive are ANALYSIS_UNSAFE_REFERENCE, naming the line', () => {
  rejectsWith({ 'index.ts': HEADER + `import secrets from '../../etc/secrets.js';\n` + fnClass('A') }, 'ANALYSIS_UNSAFE_REFERENCE', /index\.ts:2: "..\/..\/etc\/secrets.js"/);
  rejectsWith({ 'lib/a.ts': `export * from '../../outside.js';\n`, 'index.ts': HEADER + fnClass('A') }, 'ANALYSIS_UNSAFE_REFERENCE', /lib\/a\.ts:1/);
  rejectsWith({ 'index.ts': HEADER + `const x = require('/etc/passwd');\n` + fnClass('A') }, 'ANALYSIS_UNSAFE_REFERENCE', /"\/etc\/passwd"/);
  rejectsWith({ 'index.ts': `/// <reference path="../../../usr/lib/node.d.ts" />\n` + HEADER + fnClass('A') }, 'ANALYSIS_UNSAFE_REFERENCE', /reference path/);
  // Inside the archive is fine, however it is spelled.
  assert.equal(analyse({ 'lib/util.ts': `export * from '../index.js';\n`, 'index.ts': HEADER + `import './lib/../lib/util.js';\n` + fnClass('A') }).className, 'A');
});

test('a template-literal path is checked like a string; a computed import() or require() path is refused', () => {
  rejectsWith({ 'index.ts': HEADER + 'const x = require(`/etc/passwd`);\n' + fnClass('A') }, 'ANALYSIS_UNSAFE_REFERENCE', /"\/etc\/passwd" points outside/);
  // The bundler would expand these over whole folder trees, the builder's included.
  for (const load of ['require(`../../${name}`)', "require('./lib/' + name)", 'import(name)', '(require)(`../${name}`)', 'require!(`../${name}`)', '(require as any)(`../${name}`)']) {
    rejectsWith({ 'index.ts': HEADER + `const name = 'x';\nexport const loaded = () => ${load};\n` + fnClass('A') }, 'ANALYSIS_UNSAFE_REFERENCE', /computed path cannot be bundled/);
  }
  assert.equal(analyse({ 'lib/x.ts': 'export {};\n', 'index.ts': HEADER + 'export const lazy = () => import(`./lib/x.js`);\n' + fnClass('A') }).className, 'A');
});
