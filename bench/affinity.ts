/**
 * Warm affinity: how often a warm invocation finds a live instance, with the API routing warm
 * calls to a runner that has one free (`WHARF_WARM_ROUTING=affinity`, the default) against the
 * shared queue alone (`any`: whichever runner is free takes the call), on the same machine in
 * one run. Three runners (all on this machine's engine, two slots each), each allowed
 * AFFINITY_MAX_INSTANCES warm instances, serve AFFINITY_FUNCTIONS warm functions called at random
 * by 1, then AFFINITY_CLIENTS, sequential clients, AFFINITY_CALLS calls in all per mode and load. Hits and misses come from the
 * runners' own counters (`GET /api/cluster`). Prints the tables and writes
 * bench/results/affinity.json.
 */
import os from 'node:os';
import { packFixture } from '../test/helpers/fixtures.js';
import { startStack } from '../test/helpers/stack.js';
import { report, stats, time, type Stats } from './measure.js';

const n = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const CALLS = n('AFFINITY_CALLS', 600);
const CLIENTS = n('AFFINITY_CLIENTS', 3);
const FUNCTIONS = n('AFFINITY_FUNCTIONS', 6);
const MAX_INSTANCES = n('AFFINITY_MAX_INSTANCES', 3);
const RUNNERS = 3;

interface Outcome {
  latency: Stats;
  callsPerSecond: number;
  hits: number;
  misses: number;
  hitPercent: number;
  /** Warm instances alive on all runners at the end. */
  instances: number;
  errors: number;
}

async function measure(routing: 'affinity' | 'any', clients: number): Promise<Outcome> {
  const stack = await startStack({
    env: { WHARF_WARM_ROUTING: routing, WHARF_WARM_MAX_INSTANCES: String(MAX_INSTANCES), WHARF_RUNNER_SLOTS: '2', WHARF_HEARTBEAT_MS: '200' },
    runners: Array.from({ length: RUNNERS }, () => ({})),
  });
  try {
    const client = stack.client();
    await client.register(`affinity-${stack.id}@example.test`, 'bench password');
    const archive = await packFixture('counter');
    const ids: string[] = [];
    for (let i = 0; i < FUNCTIONS; i++) {
      const fn = await client.initFunction(`warm-${i}`);
      const { version } = await client.deploy(fn.id, archive);
      if ((await client.waitForDeployment(fn.id, version, { timeoutMs: 120_000 })).status !== 'succeeded') throw new Error(`warm-${i} did not build`);
      ids.push(fn.id);
    }
    const before = (await client.cluster()).totals;
    const samples: number[] = [];
    let issued = 0;
    let errors = 0;
    const deadline = Date.now() + 5 * 60_000;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (issued < CALLS && Date.now() < deadline) {
          issued++;
          const id = ids[Math.floor(Math.random() * ids.length)];
          samples.push(
            await time(async () => {
              if ((await client.invoke(id)).status !== 200) errors++;
            }),
          );
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    // The counters travel with the heartbeats: a few beats after the last call they are complete.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = (await client.cluster()).totals;
    const hits = after.warm_hits - before.warm_hits;
    const misses = after.warm_misses - before.warm_misses;
    return {
      latency: stats(samples),
      callsPerSecond: Math.round((samples.length / seconds) * 10) / 10,
      hits,
      misses,
      hitPercent: Math.round((hits / Math.max(1, hits + misses)) * 1000) / 10,
      instances: after.warm_instances,
      errors,
    };
  } finally {
    await stack.stop();
  }
}

const summary = (o: Outcome) => ({ 'hit %': o.hitPercent, hits: o.hits, misses: o.misses, 'instances at end': o.instances, 'calls/s': o.callsPerSecond, errors: o.errors });
const outcomes: Record<string, Outcome> = {};
for (const clients of [...new Set([1, CLIENTS])]) {
  for (const routing of ['any', 'affinity'] as const) outcomes[`${routing === 'any' ? 'shared queue (any)' : 'affinity'}, ${clients} client${clients > 1 ? 's' : ''}`] = await measure(routing, clients);
}
console.log(`\n${RUNNERS} runners × ${MAX_INSTANCES} warm instances, ${FUNCTIONS} warm functions, ${CALLS} calls per row`);
console.table(Object.fromEntries(Object.entries(outcomes).map(([name, o]) => [name, summary(o)])));
await report(
  'affinity',
  Object.fromEntries(Object.entries(outcomes).map(([name, o]) => [`latency, ${name}`, o.latency])),
  {
    machine: `${os.cpus().length} cores, ${os.platform()} ${os.release()}, Node ${process.version}`,
    setup: { runners: RUNNERS, slotsPerRunner: 2, maxInstancesPerRunner: MAX_INSTANCES, functions: FUNCTIONS, callsPerRow: CALLS },
    outcomes: Object.fromEntries(Object.entries(outcomes).map(([name, o]) => [name, { ...o, latency: undefined }])),
  },
);
