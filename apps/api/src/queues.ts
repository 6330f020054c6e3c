import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  QUEUE_NAMES,
  createRedis,
  runnerQueueName,
  runnerQueuesKey,
  warmSlotsKey,
  type BuildJob,
  type BuildResult,
  type InvokeJob,
  type InvokeResult,
  type Logger,
  type WebhookJob,
} from '@wharf/shared';
import type { InvocationWaiter } from './invocation-waiter.js';

export function createQueues(producer: Redis, subscriber: Redis, prefix: string) {
  return {
    build: new Queue<BuildJob, BuildResult>(QUEUE_NAMES.build, { connection: producer, prefix }),
    invoke: new Queue<InvokeJob, InvokeResult>(QUEUE_NAMES.invoke, { connection: producer, prefix }),
    invokeEvents: new QueueEvents(QUEUE_NAMES.invoke, { connection: subscriber, prefix }),
    webhook: new Queue<WebhookJob>(QUEUE_NAMES.webhook, { connection: producer, prefix }),
  };
}

const PRUNE_EVERY_MS = 30_000;

type InvokeQueue = Queue<InvokeJob, InvokeResult>;

interface Opened {
  queue: InvokeQueue;
  events: QueueEvents;
  /** QueueEvents blocks on its connection: one each. */
  connection: Redis;
}

export interface RunnerQueuesDeps {
  producer: Redis;
  redisUrl: string;
  prefix: string;
  waiter: Pick<InvocationWaiter, 'listen'>;
  logger: Logger;
  /** `affinity`: warm invocations may go to a runner's own queue (`WHARF_WARM_ROUTING`). */
  routing: 'affinity' | 'any';
}

/**
 * The runners' own invoke queues, as this API process uses them (warm affinity). Before its
 * first job goes to a runner's queue, this process subscribes to that queue's events from the
 * last one already there, so that no outcome can slip past the waiter. Queues whose runner died
 * and whose jobs a peer handed back are dropped within `PRUNE_EVERY_MS`.
 */
export class RunnerQueues {
  private readonly opened = new Map<string, Promise<Opened>>();
  private readonly pruning: NodeJS.Timeout;

  constructor(private readonly deps: RunnerQueuesDeps) {
    this.pruning = setInterval(() => this.prune().catch((err) => deps.logger.warn({ err }, 'could not prune runner queues')), PRUNE_EVERY_MS);
    this.pruning.unref();
  }

  /** The list of free warm slots to take one from for this job, or none: isolated mode, or routing off. */
  warmSlotsFor(job: Pick<InvokeJob, 'functionId' | 'version' | 'mode'>): string | undefined {
    return this.deps.routing === 'affinity' && job.mode === 'warm' ? warmSlotsKey(this.deps.prefix, job.functionId, job.version) : undefined;
  }

  /** A runner's queue, heard by this process's waiter before it is handed out. */
  async queueFor(runnerId: string): Promise<InvokeQueue> {
    let opening = this.opened.get(runnerId);
    if (!opening) {
      opening = this.open(runnerId);
      this.opened.set(runnerId, opening);
      // A failed subscription is tried again by the next caller.
      opening.catch(() => this.opened.delete(runnerId));
    }
    return (await opening).queue;
  }

  /** Stops hearing queues of runners that are gone for good (their jobs handed back to the shared queue). */
  async prune(): Promise<void> {
    const known = new Set(await this.deps.producer.smembers(runnerQueuesKey(this.deps.prefix)));
    for (const runnerId of [...this.opened.keys()]) {
      if (!known.has(runnerId)) await this.closeOne(runnerId);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.pruning);
    await Promise.all([...this.opened.keys()].map((runnerId) => this.closeOne(runnerId)));
  }

  private async open(runnerId: string): Promise<Opened> {
    const { producer, prefix, redisUrl, logger } = this.deps;
    const name = runnerQueueName(runnerId);
    // From the newest event already in the stream: anything this process enqueues later is after it.
    const [newest] = await producer.xrevrange(`${prefix}:${name}:events`, '+', '-', 'COUNT', 1);
    const connection = createRedis(redisUrl, 'worker');
    connection.on('error', (err) => logger.warn({ err, runnerId }, 'redis (runner queue events) error'));
    const events = new QueueEvents(name, { connection, prefix, lastEventId: newest?.[0] ?? '0-0' });
    this.deps.waiter.listen(events);
    try {
      await events.waitUntilReady();
    } catch (err) {
      await events.close().catch(() => undefined);
      connection.disconnect();
      throw err;
    }
    return { queue: new Queue<InvokeJob, InvokeResult>(name, { connection: producer, prefix }), events, connection };
  }

  private async closeOne(runnerId: string): Promise<void> {
    const opening = this.opened.get(runnerId);
    this.opened.delete(runnerId);
    const opened = await opening?.catch(() => undefined);
    if (!opened) return;
    await Promise.all([opened.events.close(), opened.queue.close()]);
    opened.connection.disconnect();
  }
}
