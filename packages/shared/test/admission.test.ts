import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { admitInvocation, releaseAdmission, runnerKey, warmSlotsKey } from '../src/index.js';

// The real Redis that infra/setup.sh starts; every key here is under a prefix of its own.
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('admission: bounded queues and the free warm slots a warm invocation is routed by', () => {
  let redis: Redis;
  const prefix = `test-admission-${randomBytes(4).toString('hex')}`;
  const functionId = randomUUID();
  const ownerId = randomUUID();
  const limits = { perFunction: 2, perUser: 3 };
  const slots = warmSlotsKey(prefix, functionId, 1);
  const invocation = () => ({ invocationId: randomUUID(), functionId, ownerId });
  const beat = (runnerId: string) => redis.set(runnerKey(prefix, runnerId), '{}', 'PX', 60_000);

  before(() => {
    redis = new Redis(REDIS_URL);
  });

  after(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  test('past the function bound nothing is admitted and no warm slot is taken; a release makes room', async () => {
    await beat('r1');
    await redis.lpush(slots, 'r1');
    const first = invocation();
    assert.deepEqual(await admitInvocation(redis, prefix, first, limits), { admitted: true });
    assert.deepEqual(await admitInvocation(redis, prefix, invocation(), limits), { admitted: true });
    assert.deepEqual(await admitInvocation(redis, prefix, invocation(), limits, slots), { admitted: false, full: 'function' });
    assert.deepEqual(await redis.lrange(slots, 0, -1), ['r1'], 'a refused call takes no slot');
    await releaseAdmission(redis, prefix, first);
    assert.deepEqual(await admitInvocation(redis, prefix, invocation(), limits, slots), { admitted: true, runnerId: 'r1' });
    assert.equal(await redis.llen(slots), 0);
    await redis.del(`${prefix}:queued:function:${functionId}`, `${prefix}:queued:user:${ownerId}`);
  });

  test('the most recently freed slot is taken first; a slot of a runner without a heartbeat is dropped', async () => {
    await beat('r1');
    await beat('r2');
    // r1 freed a slot, then r3 (no heartbeat: dead), then r2.
    await redis.lpush(slots, 'r1', 'r3', 'r2');
    const taken = [];
    for (let i = 0; i < 2; i++) {
      const admission = await admitInvocation(redis, prefix, invocation(), { perFunction: 100, perUser: 100 }, slots);
      assert.ok(admission.admitted);
      taken.push(admission.runnerId);
    }
    assert.deepEqual(taken, ['r2', 'r1']);
    assert.equal(await redis.llen(slots), 0, "the dead runner's slot went with it");
    const none = await admitInvocation(redis, prefix, invocation(), { perFunction: 100, perUser: 100 }, slots);
    assert.deepEqual(none, { admitted: true }, 'no free slot: any runner');
  });
});
