/**
 * Invoke latency and throughput of Wharf (1 API + 1 runner + Redis, a private stack) against the
 * floors it is built on, all measured in this one run on this machine:
 * - floors: a BullMQ add → worker → completion round trip alone; a plain Node HTTP server
 *   answering the same JSON; the engine creating, starting, waiting for and removing a hardened
 *   container of the base image running `node -e 0`.
 * - Wharf warm (examples/hello): sequential latency; throughput with N concurrent clients.
 * - Wharf isolated: sequential latency, and its ratio to the engine floor.
 * - Wharf custom runtime (examples/custom-shell, warm): sequential latency.
 * - deploy of hello, end to end.
 * Prints tables and writes bench/results/invoke.json. BENCH_CPU_PROF=1 also profiles the API
 * and the runner (--cpu-prof) and prints where their time went.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, Worker } from 'bullmq';
import Docker from 'dockerode';
import { SANDBOX_FILES, parseEnv, runnerEnvSchema } from '@wharf/shared';
import { containerOptions, hostLimitsFrom } from '../apps/runner/src/container-runner.js';
import { packExample } from '../test/helpers/fixtures.js';
import { startStack } from '../test/helpers/stack.js';
import { report, stats, time, type Stats } from './measure.js';
import { summarizeProfiles } from './profile.js';

const n = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const RUNS = {
  deploy: n('BENCH_DEPLOY_RUNS', 10),
  floor: n('BENCH_FLOOR_RUNS', 2000),
  warm: n('BENCH_WARM_RUNS', 2000),
  isolated: n('BENCH_ISOLATED_RUNS', 50),
  custom: n('BENCH_CUSTOM_RUNS', 300),
};
const THROUGHPUT_CLIENTS = [1, 8, 32, 64];
const THROUGHPUT_SECONDS = n('BENCH_THROUGHPUT_SECONDS', 10);
/** Bounds each throughput round by count as well as time. */
const THROUGHPUT_MAX_CALLS = 100_000;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const baseImage = process.env.WHARF_BASE_IMAGE ?? 'wharf/runtime-node:20';
const profileDir = process.env.BENCH_CPU_PROF ? path.join(import.meta.dirname, 'results', 'profiles') : undefined;

async function sequential(runs: number, call: () => Promise<unknown>): Promise<Stats> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await time(call));
  return stats(samples);
}

/** `clients` loops calling for `seconds`; completed calls per second, errors, and latency. */
async function throughput(clients: number, seconds: number, call: () => Promise<boolean>) {
  const deadline = performance.now() + seconds * 1000;
  const samples: number[] = [];
  let errors = 0;
  let started = 0;
  const begun = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline && started < THROUGHPUT_MAX_CALLS) {
        started++;
        const at = performance.now();
        const ok = await call().catch(() => false);
        if (ok) samples.push(performance.now() - at);
        else errors++;
      }
    }),
  );
  const elapsed = (performance.now() - begun) / 1000;
  const latency = stats(samples.length ? samples : [0]);
  return { clients, seconds: Math.round(elapsed * 10) / 10, completed: samples.length, errors, perSecond: Math.round(samples.length / elapsed), p50: latency.median, p99: latency.p99 };
}

/** Floor 1: what BullMQ alone costs for one job, with one QueueEvents feeding a map of waiters (as the API does). */
async function bullmqRoundTrip(runs: number): Promise<Stats> {
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const connection = { url: REDIS_URL, maxRetriesPerRequest: null };
  const queue = new Queue('roundtrip', { connection, prefix });
  const events = new QueueEvents('roundtrip', { connection, prefix });
  const worker = new Worker('roundtrip', async () => ({ statusCode: 200, body: '{"message":"Hello"}' }), { connection, prefix, concurrency: 4 });
  const waiters = new Map<string, () => void>();
  events.on('completed', ({ jobId }) => waiters.get(jobId)?.());
  await Promise.all([events.waitUntilReady(), worker.waitUntilReady()]);
  try {
    return await sequential(runs, async () => {
      const jobId = randomUUID();
      const done = new Promise<void>((resolve) => waiters.set(jobId, resolve));
      await queue.add('job', { hello: 'world' }, { jobId, removeOnComplete: true });
      await done;
      waiters.delete(jobId);
    });
  } finally {
    await worker.close();
    await events.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
}

/** Floor 2: a plain Node HTTP server giving hello's answer, called the way the benchmark calls Wharf. */
async function plainHttp(runs: number): Promise<Stats> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"message":"Hello, world!"}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  try {
    return await sequential(runs, async () => (await fetch(url, { method: 'POST', body: '{}' })).text());
  } finally {
    server.close();
  }
}

/** Floor 3: the engine alone, for the same hardened container options the runner uses. */
function engineFloor(docker: Docker, hostDir: string): () => Promise<void> {
  return async () => {
    const options = containerOptions({
      name: `wharf-bench-${randomUUID()}`,
      image: baseImage,
      hostDir,
      labels: {},
      limits: { timeoutMs: 5000, memoryMb: 128, cpus: 0.5, ...hostLimitsFrom(parseEnv(runnerEnvSchema, {})) },
    });
    const container = await docker.createContainer({ ...options, Entrypoint: ['node', '-e', '0'] });
    try {
      await container.start();
      await container.wait();
    } finally {
      await container.remove({ force: true });
    }
  };
}

if (profileDir) await fs.rm(profileDir, { recursive: true, force: true });
const docker = new Docker();
const stack = await startStack({
  env: {
    // What a production process logs: per-invocation info lines, no debug.
    LOG_LEVEL: 'info',
    WHARF_RUNNER_SLOTS: '64',
  },
  nodeArgs: (app) => (profileDir && app !== 'builder' ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, app)}`] : []),
});
const hostDir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-bench-'));
// The outputs are bound one by one, so they must exist as files (the engine would make folders).
for (const name of [SANDBOX_FILES.result, SANDBOX_FILES.logs]) await fs.writeFile(path.join(hostDir, name), '');
const rows: Record<string, Stats> = {};
let throughputRows: Array<Awaited<ReturnType<typeof throughput>>> = [];
try {
  const client = stack.client();
  await client.register(`bench-${stack.id}@example.test`, 'benchmark password');
  const fn = await client.initFunction('hello');
  const archive = await packExample('hello');
  const ok = async () => {
    const res = await client.invoke(fn.id);
    if (res.status !== 200) throw new Error(`invoke answered ${res.status}: ${res.body}`);
    return true;
  };

  rows['deploy hello → active (upload, analyse, bundle, image)'] = await sequential(RUNS.deploy, async () => {
    const { version } = await client.deploy(fn.id, archive);
    // Poll often, so that the poll interval hardly adds to what is measured.
    const deployment = await client.waitForDeployment(fn.id, version, { pollMs: 10 });
    if (deployment.status !== 'succeeded') throw new Error(`deploy failed: ${JSON.stringify(deployment.error)}`);
  });

  rows['floor: BullMQ add → worker → completed event'] = await bullmqRoundTrip(RUNS.floor);
  rows['floor: plain Node HTTP server, same JSON'] = await plainHttp(RUNS.floor);

  await ok(); // starts the warm instance
  rows['Wharf warm: invoke hello, sync, over HTTP'] = await sequential(RUNS.warm, ok);

  await client.updateConfig(fn.id, { concurrency: 16 });
  await ok();
  for (const clients of THROUGHPUT_CLIENTS) throughputRows.push(await throughput(clients, THROUGHPUT_SECONDS, ok));

  // Isolated, interleaved with the engine floor so that both see the same engine state.
  await client.updateConfig(fn.id, { mode: 'isolated', concurrency: 1 });
  const floor = engineFloor(docker, hostDir);
  await floor();
  await ok();
  const floorSamples: number[] = [];
  const isolatedSamples: number[] = [];
  for (let i = 0; i < RUNS.isolated; i++) {
    floorSamples.push(await time(floor));
    isolatedSamples.push(await time(ok));
  }
  rows['floor: engine create+start+wait+remove, node -e 0'] = stats(floorSamples);
  rows['Wharf isolated: invoke hello, sync, over HTTP'] = stats(isolatedSamples);

  const custom = await client.initFunction('custom-shell');
  const { version } = await client.deploy(custom.id, await packExample('custom-shell'));
  if ((await client.waitForDeployment(custom.id, version)).status !== 'succeeded') throw new Error('custom-shell did not build');
  const echo = async () => {
    const res = await client.invoke(custom.id, { body: { hello: 'world' } });
    if (res.status !== 200) throw new Error(`custom invoke answered ${res.status}: ${res.body}`);
  };
  await echo();
  rows['Wharf custom runtime (shell bootstrap), warm'] = await sequential(RUNS.custom, echo);
} finally {
  await stack.stop();
  await fs.rm(hostDir, { recursive: true, force: true });
}

const ratio = rows['Wharf isolated: invoke hello, sync, over HTTP'].median / rows['floor: engine create+start+wait+remove, node -e 0'].median;
const best = throughputRows.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
await report('invoke', rows, { runs: RUNS, throughput: throughputRows, isolatedToEngineFloor: ratio });
console.table(Object.fromEntries(throughputRows.map((row) => [`warm, ${row.clients} clients`, { ...row, p50: Math.round(row.p50 * 10) / 10, p99: Math.round(row.p99 * 10) / 10 }])));
console.log(`isolated median / engine floor median = ${ratio.toFixed(2)}×; best warm throughput ${best.perSecond}/s at ${best.clients} clients`);
if (profileDir) await summarizeProfiles(profileDir);
