import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hideHostPaths } from '../src/host-paths.js';

test('host folders become what the owner knows them as, only where a path starts and only as whole folder names', () => {
  const known: Array<[string, string]> = [
    ['/var/lib/wharf/builds/b1/dep-x/src', ''],
    ['/var/lib/wharf/build-cache/abc/node_modules', 'node_modules'],
    ['/wharf', '<platform>'],
  ];
  assert.equal(hideHostPaths('/var/lib/wharf/builds/b1/dep-x/src/lib/a.ts:3: TS2322', known), 'lib/a.ts:3: TS2322');
  assert.equal(hideHostPaths('in "/var/lib/wharf/build-cache/abc/node_modules/zod/index.js"', known), 'in "node_modules/zod/index.js"');
  assert.equal(hideHostPaths('at /wharf/apps/builder/src/x.ts', known), 'at <platform>/apps/builder/src/x.ts');
  // Not a path that merely contains a root's text, nor a longer folder name.
  assert.equal(hideHostPaths('lib/wharf/util.ts:3: TS2322', known), 'lib/wharf/util.ts:3: TS2322');
  assert.equal(hideHostPaths('/var/lib/wharf/functions and /wharfish/x', known), '/var/lib/wharf/functions and /wharfish/x');
  assert.equal(hideHostPaths('cwd: /var/lib/wharf/builds/b1/dep-x/src', known), 'cwd: .');
});
