import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Pool } from '@wharf/db';
import { QUEUE_NAMES, coerceError, webhookJobSchema, type Logger, type WebhookJob } from '@wharf/shared';
import { signedHeaders } from '@wharf/shared/signing';
import { newestApiKey } from './api-keys-store.js';
import { invocationBody } from './invocations-routes.js';
import { getInvocationById } from './invocations-store.js';
import { deriveKeySecret } from './signing.js';

export interface WebhookDeps {
  pool: Pool;
  redis: Redis;
  queuePrefix: string;
  signingSecret: string;
  timeoutMs: number;
  logger: Logger;
}

/**
 * Delivers finished invocations to their `callback_url`: a POST of the final record, signed like
 * a request to Wharf (same headers, same canonical string) with the function's newest API key
 * when it has one. Anything but a 2xx is retried with backoff (JOB_OPTIONS.webhook).
 */
export async function startWebhookWorker(deps: WebhookDeps) {
  const worker = new Worker<WebhookJob>(
    QUEUE_NAMES.webhook,
    async (job) => {
      const { invocationId, url } = webhookJobSchema.parse(job.data);
      const row = await getInvocationById(deps.pool, invocationId);
      if (!row) return { skipped: 'the invocation no longer exists' };
      const body = Buffer.from(JSON.stringify(invocationBody(row)));
      const target = new URL(url);
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'user-agent': 'wharf-callback',
        'x-wharf-invocation-id': invocationId,
        'x-wharf-delivery-attempt': String(job.attemptsMade + 1),
      };
      const key = await newestApiKey(deps.pool, row.function_id);
      if (key) Object.assign(headers, signedHeaders({ keyId: key.id, secret: deriveKeySecret(deps.signingSecret, key.id) }, 'POST', target.pathname + target.search, body));
      // No redirects: a callback goes exactly where it was registered to go.
      const res = await fetch(target, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(deps.timeoutMs) });
      await res.body?.cancel();
      if (res.status < 200 || res.status > 299) throw new Error(`the callback answered HTTP ${res.status}`);
      deps.logger.info({ invocationId, status: res.status, attempt: job.attemptsMade + 1 }, 'callback delivered');
      return { status: res.status };
    },
    { connection: deps.redis, prefix: deps.queuePrefix, concurrency: 8 },
  );
  worker.on('failed', (job, err) =>
    deps.logger.warn({ err: coerceError(err), invocationId: job?.data.invocationId, attempt: job?.attemptsMade }, 'callback delivery failed'),
  );
  worker.on('error', (err) => deps.logger.error({ err }, 'callback worker error'));
  await worker.waitUntilReady();
  return worker;
}
