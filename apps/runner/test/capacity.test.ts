import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Capacity } from '../src/capacity.js';

test("routed calls take slots from the shared queue's worker; every call takes one of the free slots", () => {
  const capacity = new Capacity(3);
  assert.deepEqual({ free: capacity.free, shared: capacity.sharedConcurrency }, { free: 3, shared: 3 });
  capacity.started(false);
  capacity.started(true);
  assert.deepEqual({ free: capacity.free, shared: capacity.sharedConcurrency, running: capacity.running }, { free: 1, shared: 2, running: 2 });
  capacity.started(true);
  capacity.started(true);
  // Over by one (a crossing): nothing free, and the shared worker still takes one job (BullMQ's minimum).
  assert.deepEqual({ free: capacity.free, shared: capacity.sharedConcurrency }, { free: 0, shared: 1 });
  for (const routed of [true, true, true, false]) capacity.ended(routed);
  assert.deepEqual({ free: capacity.free, shared: capacity.sharedConcurrency, running: capacity.running }, { free: 3, shared: 3, running: 0 });
});
