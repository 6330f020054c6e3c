import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE_NAMES, type BuildJob, type BuildResult, type InvokeJob, type InvokeResult, type WebhookJob } from '@wharf/shared';

export function createQueues(producer: Redis, subscriber: Redis, prefix: string) {
  return {
    build: new Queue<BuildJob, BuildResult>(QUEUE_NAMES.build, { connection: producer, prefix }),
    invoke: new Queue<InvokeJob, InvokeResult>(QUEUE_NAMES.invoke, { connection: producer, prefix }),
    invokeEvents: new QueueEvents(QUEUE_NAMES.invoke, { connection: subscriber, prefix }),
    webhook: new Queue<WebhookJob>(QUEUE_NAMES.webhook, { connection: producer, prefix }),
  };
}
