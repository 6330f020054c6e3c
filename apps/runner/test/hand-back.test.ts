import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { JOB_OPTIONS, QUEUE_NAMES, createLogger, runnerQueueName, type InvokeJob, type InvokeResult } from '@wharf/shared';
import { forgetIfDrained, handBackJobs } from '../src/hand-back.js';

// The real Redis that infra/setup.sh starts; every key here is under a prefix of its own.
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const job = (priorAttempts?: number): InvokeJob => ({
  invocationId: randomUUID(),
  functionId: randomUUID(),
  functionName: 'f',
  version: 1,
  image: 'wharf-fn-x:v1',
  request: { method: 'GET', path: '/', headers: {}, query: {} },
  env: {},
  timeoutMs: 1000,
  memoryMb: 128,
  cpus: 0.5,
  mode: 'warm',
  ...(priorAttempts ? { priorAttempts } : {}),
});

describe("a gone runner's own queue: its calls go back to the shared queue, then the queue goes", () => {
  const prefix = `test-handback-${randomBytes(4).toString('hex')}`;
  const logger = createLogger('test', 'silent');
  let redis: Redis;
  let own: Queue<InvokeJob, InvokeResult>;
  let shared: Queue<InvokeJob, InvokeResult>;
  /** Workers need connections of their own; they do not close what they were given. */
  const connections: Redis[] = [];
  const connection = () => {
    const made = redis.duplicate();
    connections.push(made);
    return made;
  };

  before(() => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    own = new Queue(runnerQueueName('gone'), { connection: redis, prefix });
    shared = new Queue(QUEUE_NAMES.invoke, { connection: redis, prefix });
  });

  after(async () => {
    await Promise.all([own.close(), shared.close(), ...connections.map((made) => made.quit())]);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  test('waiting calls and calls whose runner died holding them move once, with the run they had counted; a call a live worker holds stays', async () => {
    const waiting = job(1);
    const orphaned = job();
    const held = job();
    // Taken by workers that never finish them: one whose lock lapses (its runner died), one that keeps it.
    const dead = new Worker(own.name, null, { connection: connection(), prefix, lockDuration: 300 });
    const alive = new Worker(own.name, null, { connection: connection(), prefix, lockDuration: 60_000 });
    await own.add('invoke', orphaned, { ...JOB_OPTIONS.invoke, jobId: orphaned.invocationId });
    assert.equal((await dead.getNextJob('dead-token'))?.id, orphaned.invocationId);
    await own.add('invoke', held, { ...JOB_OPTIONS.invoke, jobId: held.invocationId });
    assert.equal((await alive.getNextJob('alive-token'))?.id, held.invocationId);
    await own.add('invoke', waiting, { ...JOB_OPTIONS.invoke, jobId: waiting.invocationId });
    await new Promise((resolve) => setTimeout(resolve, 500));

    // Two peers at once: each call moves once.
    const moved = await Promise.all([handBackJobs(own, shared, redis, logger), handBackJobs(own, shared, redis, logger)]);
    assert.equal(moved[0] + moved[1], 2);
    const back = await shared.getJobs(['waiting']);
    assert.deepEqual(
      Object.fromEntries(back.map((j) => [j.id, j.data.priorAttempts ?? 0])),
      { [waiting.invocationId]: 1, [orphaned.invocationId]: 1 },
      'the orphaned call ran once; the waiting one keeps the run it had before',
    );
    assert.deepEqual((await own.getJobs(['active'])).map((j) => j.id), [held.invocationId]);
    assert.equal(await forgetIfDrained(own, { completedMs: 0, failedMs: 0 }), false, 'not while a call is in it');
    await Promise.all([dead.close(true), alive.close(true)]);
  });

  test('drained and past retention, the queue is removed; finished calls within retention keep it', async () => {
    const queue = new Queue<InvokeJob, InvokeResult>(runnerQueueName('drained'), { connection: redis, prefix });
    const worker = new Worker(queue.name, null, { connection: connection(), prefix });
    try {
      const done = job();
      await queue.add('invoke', done, { ...JOB_OPTIONS.invoke, jobId: done.invocationId });
      const taken = await worker.getNextJob('token');
      await taken!.moveToCompleted({ status: 'succeeded' } as InvokeResult, 'token', false);
      assert.equal(await forgetIfDrained(queue), false, 'its outcome may still be read for an hour');
      assert.equal(await forgetIfDrained(queue, { completedMs: 0, failedMs: 0 }), true);
      assert.deepEqual(await redis.keys(`${prefix}:${queue.name}:*`), []);
    } finally {
      await worker.close(true);
      await queue.close();
    }
  });
});
