import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WharfError } from '@wharf/shared';
import { dependencyPlan, rejectForeignSources } from '../src/dependencies.js';

const REGISTRY = 'https://registry.npmjs.org/';
const plan = (manifest: unknown, lock?: unknown) =>
  dependencyPlan(new Map([['package.json', JSON.stringify(manifest)], ...(lock === undefined ? [] : [['package-lock.json', JSON.stringify(lock)] as [string, string]])]), REGISTRY);
const refusal = (fn: () => unknown): WharfError => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof WharfError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
};

test('registry versions, ranges, tags and npm: aliases of them are accepted', () => {
  const accepted = plan({ dependencies: { a: '1.2.3', b: '^1.0.0', c: '>=1 <2', d: 'latest', e: 'npm:zod@^3.23.0', f: '*', '@scope/g': '~2.1' } });
  assert.equal(Object.keys(accepted!.dependencies).length, 7);
  assert.equal(plan({ dependencies: { '@wharf/sdk': 'file:../sdk' } }), undefined, 'the SDK is the builder\'s own, whatever the archive says');
});

test('paths, file:, link:, git, GitHub shorthands, URLs and tarballs are refused, naming the spec', () => {
  const hostile = ['.', '..', './x', '../../etc', '/etc', '~/x', 'file:../../etc', 'link:..', 'git+https://example.com/x.git', 'git://example.com/x', 'github:a/b', 'someone/repo', 'https://example.com/x.tgz', 'x.tgz', 'x.tar.gz', 'npm:../x', 'npm:x@file:../y'];
  for (const spec of hostile) {
    const err = refusal(() => plan({ dependencies: { leak: spec } }));
    assert.equal(err.code, 'ANALYSIS_UNSAFE_REFERENCE', spec);
    assert.ok(err.message.includes(JSON.stringify(spec)), err.message);
  }
  for (const name of ['../escape', '', 'a b', '@scope/../x']) assert.equal(refusal(() => plan({ dependencies: { [name]: '1.0.0' } })).code, 'ANALYSIS_UNSAFE_REFERENCE', name);
  assert.equal(refusal(() => plan({ dependencies: { x: 1 } })).code, 'ANALYSIS_UNSAFE_REFERENCE');
  assert.equal(refusal(() => plan({ dependencies: ['x'] })).code, 'DEPENDENCY_INSTALL_FAILED');
});

test('a v3 lock file on the registry is accepted, with or without resolved URLs', () => {
  rejectForeignSources(
    JSON.stringify({
      lockfileVersion: 3,
      packages: {
        '': { dependencies: { a: '1.0.0' } },
        'node_modules/a': { version: '1.0.0', resolved: 'https://registry.npmjs.org/a/-/a-1.0.0.tgz' },
        'node_modules/a/node_modules/@s/b': { version: '2.0.0' },
      },
    }),
    REGISTRY,
  );
});

test('every resolved URL must be on the configured registry: v1 nested dependencies too', () => {
  const foreign = 'https://attacker.example/a-1.0.0.tgz';
  const v1 = { lockfileVersion: 1, dependencies: { a: { version: '1.0.0', resolved: 'https://registry.npmjs.org/a/-/a-1.0.0.tgz', dependencies: { b: { version: '1.0.0', resolved: foreign } } } } };
  const err = refusal(() => plan({ dependencies: { a: '1.0.0' } }, v1));
  assert.equal(err.code, 'ANALYSIS_UNSAFE_REFERENCE');
  assert.match(err.message, /dependencies "a" → "b" resolves to "https:\/\/attacker\.example\/a-1\.0\.0\.tgz"/);
  // v2 carries both layouts: either one pointing away is refused.
  const v2 = { lockfileVersion: 2, packages: { 'node_modules/a': { version: '1.0.0' } }, dependencies: { a: { version: '1.0.0', resolved: foreign } } };
  assert.equal(refusal(() => rejectForeignSources(JSON.stringify(v2), REGISTRY)).code, 'ANALYSIS_UNSAFE_REFERENCE');
  for (const resolved of [
    'http://registry.npmjs.org/a/-/a-1.0.0.tgz',
    'https://registry.npmjs.org.attacker.example/a.tgz',
    'https://user:pw@registry.npmjs.org/a.tgz',
    'git+ssh://git@github.com/a/b.git',
    'file:../../etc',
    '../../etc',
    42,
  ]) {
    assert.equal(refusal(() => rejectForeignSources(JSON.stringify({ packages: { 'node_modules/a': { version: '1.0.0', resolved } } }), REGISTRY)).code, 'ANALYSIS_UNSAFE_REFERENCE', String(resolved));
  }
  // A registry with a path: tarballs must be under it.
  assert.equal(refusal(() => rejectForeignSources(JSON.stringify({ packages: { 'node_modules/a': { resolved: 'https://npm.corp.example/other/a.tgz' } } }), 'https://npm.corp.example/npm/')).code, 'ANALYSIS_UNSAFE_REFERENCE');
  rejectForeignSources(JSON.stringify({ packages: { 'node_modules/a': { resolved: 'https://npm.corp.example/npm/a/-/a-1.0.0.tgz' } } }), 'https://npm.corp.example/npm/');
});

test('links, folders, v1 version specs that are not versions, and paths outside node_modules are refused', () => {
  const cases: unknown[] = [
    { packages: { 'node_modules/a': { link: true, resolved: '../../etc' } } },
    { packages: { '../../etc': { version: '1.0.0' } } },
    { packages: { 'packages/workspace': { version: '1.0.0' } } },
    { packages: { 'node_modules/../../x': { version: '1.0.0' } } },
    { dependencies: { a: { version: 'file:../../etc' } } },
    { dependencies: { a: { version: 'git+https://example.com/x.git' } } },
    { dependencies: { a: { version: 'https://example.com/a.tgz' } } },
    { dependencies: { a: 'not an object' } },
    { packages: 'nope' },
  ];
  for (const lock of cases) assert.equal(refusal(() => rejectForeignSources(JSON.stringify(lock), REGISTRY)).code, 'ANALYSIS_UNSAFE_REFERENCE', JSON.stringify(lock));
  // v1 aliases keep `npm:name@version` in version: a registry package.
  rejectForeignSources(JSON.stringify({ lockfileVersion: 1, dependencies: { z: { version: 'npm:zod@3.23.8' } } }), REGISTRY);
});

test('lock files that are not JSON objects are DEPENDENCY_INSTALL_FAILED', () => {
  for (const text of ['{', 'null', '[]']) {
    const err = refusal(() => dependencyPlan(new Map([['package.json', '{"dependencies":{"a":"1.0.0"}}'], ['package-lock.json', text]]), REGISTRY));
    assert.ok(['DEPENDENCY_INSTALL_FAILED', 'ANALYSIS_UNSAFE_REFERENCE'].includes(err.code), `${text}: ${err.code}`);
  }
});

test('an entry\'s own dependency specs, its requires and its package name must all point at the registry', () => {
  const cases: Array<[unknown, RegExp]> = [
    // npm ci re-resolves an edge the lock does not satisfy, from wherever the spec says.
    [{ packages: { 'node_modules/a': { version: '1.0.0', dependencies: { b: 'http://127.0.0.1:9/b-1.0.0.tgz' } }, 'node_modules/b': { version: '1.0.0' } } }, /"node_modules\/a" dependencies names "b" as "http:/],
    [{ packages: { 'node_modules/a': { version: '1.0.0', optionalDependencies: { b: 'git+https://example.com/b.git' } } } }, /optionalDependencies/],
    [{ packages: { 'node_modules/a': { version: '1.0.0', peerDependencies: { b: 'file:../b' } } } }, /peerDependencies/],
    [{ packages: { '': { dependencies: { a: 'https://example.com/a.tgz' } } } }, /"" dependencies/],
    [{ lockfileVersion: 1, dependencies: { a: { version: '1.0.0', requires: { b: 'github:someone/b' } } } }, /requires names "b"/],
    // An alias's `name` is what npm fetches: `<name>@<version>`.
    [{ packages: { 'node_modules/foo': { name: 'http://127.0.0.1:9/evil.tgz#', version: '1.0.0' } } }, /is named "http/],
    [{ packages: { 'node_modules/foo': { name: 'git+http://127.0.0.1:9/repo.git#', version: '1.0.0' } } }, /is named/],
  ];
  for (const [lock, message] of cases) {
    const err = refusal(() => rejectForeignSources(JSON.stringify(lock), REGISTRY));
    assert.equal(err.code, 'ANALYSIS_UNSAFE_REFERENCE', JSON.stringify(lock));
    assert.match(err.message, message);
  }
  // A registry alias and registry ranges everywhere pass.
  rejectForeignSources(JSON.stringify({ packages: { 'node_modules/z': { name: 'zod', version: '3.23.8', peerDependencies: { typescript: '>=4' } } } }), REGISTRY);
  // registry.npmjs.org URLs are fetched from a mirror when one is configured (npm's replace-registry-host).
  rejectForeignSources(JSON.stringify({ packages: { 'node_modules/a': { resolved: 'https://registry.npmjs.org/a/-/a-1.0.0.tgz' } } }), 'https://npm.corp.example/npm/');
});
