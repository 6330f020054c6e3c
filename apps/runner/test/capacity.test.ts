import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Capacity } from '../src/capacity.js';

test("no more jobs run than the runner has slots; routed calls take slots from the shared queue's worker", async () => {
  const capacity = new Capacity(2);
  assert.deepEqual({ free: capacity.free, shared: capacity.sharedConcurrency }, { free: 2, shared: 2 });
  await capacity.acquire(true);
  assert.deepEqual({ free: capacity.free, shared: capacity.sharedConcurrency, running: capacity.running }, { free: 1, shared: 1, running: 1 });
  await capacity.acquire(false);
  // A third job (a routed call crossing the shared worker's last one) waits for a slot.
  let third = false;
  const waiting = capacity.acquire(true).then(() => (third = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual({ third, running: capacity.running, free: capacity.free, shared: capacity.sharedConcurrency }, { third: false, running: 2, free: 0, shared: 1 });
  capacity.release(false);
  await waiting;
  assert.deepEqual({ third, running: capacity.running, free: capacity.free }, { third: true, running: 2, free: 0 });
  capacity.release(true);
  capacity.release(true);
  assert.deepEqual({ running: capacity.running, free: capacity.free, shared: capacity.sharedConcurrency }, { running: 0, free: 2, shared: 2 });
});
