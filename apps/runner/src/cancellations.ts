import type { Redis } from 'ioredis';
import { cancelChannel, cancelledInvocationKey, createRedis, retireChannel, type Logger } from '@wharf/shared';

/**
 * How a cancellation reaches the container running it: the API publishes the invocation id,
 * every runner hears it, and the one running that invocation aborts it (its container is killed).
 * A job picked up after the cancellation finds the invocation's cancelled key and is skipped.
 * The same subscription hears which functions changed (`onRetire`: their warm instances go).
 */
export class Cancellations {
  private readonly running = new Map<string, AbortController>();

  private constructor(
    private readonly subscriber: Redis,
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  static async start(redisUrl: string, redis: Redis, prefix: string, logger: Logger, onRetire: (functionId: string) => void): Promise<Cancellations> {
    // A subscribed connection can do nothing else, hence its own; ioredis re-subscribes after a reconnect.
    const subscriber = createRedis(redisUrl, 'worker');
    subscriber.on('error', (err) => logger.warn({ err }, 'redis (cancellations) error'));
    const cancellations = new Cancellations(subscriber, redis, prefix);
    const retirements = retireChannel(prefix);
    subscriber.on('message', (channel: string, id: string) => {
      if (channel === retirements) return onRetire(id);
      const invocationId = id;
      const controller = cancellations.running.get(invocationId);
      if (!controller) return;
      logger.info({ invocationId }, 'cancelling: killing its container');
      controller.abort();
    });
    await subscriber.subscribe(cancelChannel(prefix), retirements);
    return cancellations;
  }

  async isCancelled(invocationId: string): Promise<boolean> {
    return (await this.redis.exists(cancelledInvocationKey(this.prefix, invocationId))) === 1;
  }

  /** A signal that aborts if the invocation is cancelled while it runs; `release` when it is over. */
  watch(invocationId: string): AbortSignal {
    const controller = new AbortController();
    this.running.set(invocationId, controller);
    return controller.signal;
  }

  release(invocationId: string): void {
    this.running.delete(invocationId);
  }

  async close(): Promise<void> {
    await this.subscriber.quit();
  }
}
