/**
 * Chaos soak: three runners on three Docker engines, two API processes, one builder, images
 * through the loopback registry, on a Redis of its own. For SOAK_MINUTES (default 5) a bounded
 * mix of sync and async invocations of several functions runs while a chaos loop kills and
 * restarts random processes (a runner, the builder, an API, Redis) and a redeploy lands now and
 * then. Every invocation Wharf accepted goes to the checker, which at the end waits for each to
 * reach exactly one final state. Prints the report, writes bench/results/soak.json, and exits 1
 * if anything accepted was lost.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { WharfApiError, WharfClient } from '@wharf/client';
import { InvocationChecker } from '../test/helpers/checker.js';
import { packFixture } from '../test/helpers/fixtures.js';
import { startTestRedis } from '../test/helpers/redis-server.js';
import { startStack, type App } from '../test/helpers/stack.js';

const n = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const MINUTES = n('SOAK_MINUTES', 5);
const CLIENTS = n('SOAK_CLIENTS', 6);
/** Bounds the load whatever the machine: at most this many calls in all. */
const MAX_CALLS = n('SOAK_MAX_CALLS', 200_000);
const CHAOS_EVERY_MS = n('SOAK_CHAOS_EVERY_MS', 15_000);
const REGISTRY = process.env.WHARF_TEST_REGISTRY ?? '127.0.0.1:5055';
const ENGINES = ['unix:///run/wharf-hosts/h2.sock', 'unix:///run/wharf-hosts/h3.sock'];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];

/**
 * How often a warm invocation found a live instance on the runner that took it: runs in warm
 * mode, against instances started for them (from every runner's log, which outlives the kills
 * that reset a runner's own counters). Chaos kills instances with their runners.
 */
async function warmHits(logDir: string) {
  let warmRuns = 0;
  let instanceStarts = 0;
  for (const file of (await fs.readdir(logDir)).filter((name) => /^runner.*\.log$/.test(name))) {
    for (const line of (await fs.readFile(path.join(logDir, file), 'utf8')).split('\n')) {
      if (line.includes('"msg":"invocation finished"') && line.includes('"mode":"warm"')) warmRuns++;
      else if (line.includes('"msg":"starting an instance"') && line.includes('"singleUse":false')) instanceStarts++;
    }
  }
  return { warmRuns, instanceStarts, warmHitPercent: warmRuns ? Math.round((1 - instanceStarts / warmRuns) * 1000) / 10 : 0 };
}

const redis = await startTestRedis();
const stack = await startStack({
  registry: REGISTRY,
  apis: 2,
  runners: [{}, ...ENGINES.map((dockerHost) => ({ dockerHost }))],
  env: {
    REDIS_URL: redis.url,
    LOG_LEVEL: 'info',
    WHARF_RUNNER_SLOTS: '4',
    // A killed runner's jobs come back after 5 s; the reconciler looks every second at records quiet for 10 s.
    WHARF_RUNNER_LOCK_MS: '5000',
    WHARF_BUILDER_LOCK_MS: '5000',
    WHARF_RECONCILE_INTERVAL_MS: '1000',
    WHARF_RECONCILE_AFTER_MS: '10000',
  },
});

const checker = new InvocationChecker();
const tally = { calls: 0, accepted: 0, refused: {} as Record<string, number>, deploys: 0, kills: [] as string[] };
let report: Awaited<ReturnType<InvocationChecker['check']>> | undefined;
const started = Date.now();
try {
  const admin = stack.client();
  await admin.register(`soak-${stack.id}@example.test`, 'soak password');
  const clients = stack.apiUrls.map((url) => new WharfClient(url, admin.token));
  const functions: Array<{ id: string; query: Record<string, string> }> = [];
  for (const [name, mode, query] of [
    ['quick', 'warm', {}],
    ['sleepy', 'warm', { sleep: '200' }],
    ['fresh', 'isolated', {}],
  ] as const) {
    const fn = await admin.initFunction(name);
    const { version } = await admin.deploy(fn.id, await packFixture('counter'));
    if ((await admin.waitForDeployment(fn.id, version, { timeoutMs: 120_000 })).status !== 'succeeded') throw new Error(`${name} did not build`);
    await admin.updateConfig(fn.id, { mode, concurrency: mode === 'warm' ? 4 : 1 });
    functions.push({ id: fn.id, query });
  }

  const deadline = started + MINUTES * 60_000;
  const refused = (err: unknown) => {
    const code = err instanceof WharfApiError ? err.code : (err as Error).name === 'TypeError' ? 'CONNECTION' : 'OTHER';
    tally.refused[code] = (tally.refused[code] ?? 0) + 1;
  };
  const load = async () => {
    while (Date.now() < deadline && tally.calls < MAX_CALLS) {
      tally.calls++;
      const fn = pick(functions);
      const client = pick(clients);
      try {
        if (Math.random() < 0.5) {
          const { invocation_id } = await client.invokeAsync(fn.id, { query: fn.query });
          checker.accepted(invocation_id);
        } else {
          const res = await client.invoke(fn.id, { query: fn.query });
          // An id in the answer means the invocation was accepted, whatever became of the call.
          const id = res.headers.get('x-wharf-invocation-id');
          if (id) checker.accepted(id);
          if (res.status !== 200) refused(new WharfApiError(res.status, res.json<{ error: { code: string } }>().error.code, ''));
        }
      } catch (err) {
        refused(err);
        await sleep(100);
      }
    }
  };
  const victims: Array<App | 'redis'> = ['runner', 'runner-2', 'runner-3', 'builder', 'api', 'api-2', 'redis'];
  const chaos = async () => {
    let round = 0;
    let order: typeof victims = [];
    while (Date.now() + CHAOS_EVERY_MS < deadline) {
      await sleep(CHAOS_EVERY_MS * (0.5 + Math.random()));
      // Every kind of process is hit once per cycle, in a random order.
      if (order.length === 0) order = [...victims].sort(() => Math.random() - 0.5);
      const victim = order.pop()!;
      const signal = Math.random() < 0.7 ? 'SIGKILL' : 'SIGTERM';
      tally.kills.push(`${victim}:${signal}`);
      console.log(`[soak ${Math.round((Date.now() - started) / 1000)}s] ${signal} ${victim}`);
      if (victim === 'redis') {
        await redis.stop(signal);
        await sleep(1000 + Math.random() * 2000);
        await redis.start();
      } else {
        await stack.stopProcess(victim, signal);
        await sleep(1000 + Math.random() * 2000);
        await stack.startProcess(victim);
      }
      // Now and then a new version lands while everything else goes on.
      if (++round % 3 === 0) {
        const fn = pick(functions);
        await admin
          .deploy(fn.id, await packFixture('counter'))
          .then(() => tally.deploys++)
          .catch(refused);
      }
    }
  };
  await Promise.all([chaos(), ...Array.from({ length: CLIENTS }, load)]);
  const loadSeconds = (Date.now() - started) / 1000;
  tally.accepted = checker.count;

  // Every accepted invocation must end, once; the reconciler has a few quiet periods to find the lost ones.
  report = await checker.check(admin, 180_000);
  const warm = await warmHits(stack.logDir);
  const summary = {
    machine: `${os.cpus().length} cores, ${os.platform()} ${os.release()}, Node ${process.version}`,
    minutes: MINUTES,
    clients: CLIENTS,
    calls: tally.calls,
    accepted: report.accepted,
    completed: report.completed,
    lost: report.lost.length,
    duplicated: report.duplicated,
    extraRuns: report.extraRuns,
    statuses: report.statuses,
    refusedCalls: tally.refused,
    p50Ms: report.p50Ms,
    p99Ms: report.p99Ms,
    acceptedPerSecond: Math.round(report.accepted / loadSeconds),
    kills: tally.kills,
    deploys: tally.deploys,
    ...warm,
  };
  console.table({
    soak: {
      minutes: MINUTES,
      accepted: summary.accepted,
      completed: summary.completed,
      lost: summary.lost,
      duplicated: summary.duplicated,
      'p50 ms': summary.p50Ms,
      'p99 ms': summary.p99Ms,
      'accepted/s': summary.acceptedPerSecond,
      kills: summary.kills.length,
      'warm hit %': summary.warmHitPercent,
    },
  });
  console.log(JSON.stringify(summary, null, 2));
  await fs.mkdir(path.join(import.meta.dirname, 'results'), { recursive: true });
  await fs.writeFile(path.join(import.meta.dirname, 'results', 'soak.json'), JSON.stringify({ ...summary, lostIds: report.lost }, null, 2));
} finally {
  await stack.stop().catch((err) => console.error('stack stop failed', err));
  await redis.remove();
}
if (!report || report.lost.length > 0) process.exit(1);
