/**
 * Deploy and invoke latency of examples/hello through a private Wharf stack, against the floor
 * a per-invocation container cannot beat: the same hardened container created, started, waited
 * for and removed straight through dockerode, running an empty Node program on the base image.
 * Prints a table and writes bench/results/invoke.json. Runs: BENCH_RUNS (default 20).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { SANDBOX_FILES, parseEnv, runnerEnvSchema } from '@wharf/shared';
import { containerOptions, hostLimitsFrom } from '../apps/runner/src/container-runner.js';
import { packExample } from '../test/helpers/fixtures.js';
import { report, stats, time } from './measure.js';
import { startStack } from '../test/helpers/stack.js';

const runs = Number(process.env.BENCH_RUNS ?? 20);
const baseImage = process.env.WHARF_BASE_IMAGE ?? 'wharf/runtime-node:20';

async function baselineContainer(docker: Docker, hostDir: string): Promise<void> {
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
}

const docker = new Docker();
const stack = await startStack();
const hostDir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-bench-'));
// The outputs are bound one by one, so they must exist as files (the engine would make folders).
for (const name of [SANDBOX_FILES.result, SANDBOX_FILES.logs]) await fs.writeFile(path.join(hostDir, name), '');
try {
  const client = stack.client();
  await client.register(`bench-${stack.id}@example.test`, 'benchmark password');
  const fn = await client.initFunction('hello');
  const archive = await packExample('hello');

  const deploySamples: number[] = [];
  for (let i = 0; i < runs; i++) {
    deploySamples.push(
      await time(async () => {
        const { version } = await client.deploy(fn.id, archive);
        // Poll often, so that the poll interval hardly adds to what is measured.
        const deployment = await client.waitForDeployment(fn.id, version, { pollMs: 10 });
        if (deployment.status !== 'succeeded') throw new Error(`deploy failed: ${JSON.stringify(deployment.error)}`);
      }),
    );
  }

  await baselineContainer(docker, hostDir); // warm the engine's caches for both sides alike
  await client.invoke(fn.id);
  const baselineSamples: number[] = [];
  const invokeSamples: number[] = [];
  for (let i = 0; i < runs; i++) {
    baselineSamples.push(await time(() => baselineContainer(docker, hostDir)));
    invokeSamples.push(
      await time(async () => {
        const res = await client.invoke(fn.id);
        if (res.status !== 200) throw new Error(`invoke answered ${res.status}: ${res.body}`);
      }),
    );
  }

  // Warm mode: the same function served by a live instance (the first call starts it).
  const warmRuns = Number(process.env.BENCH_WARM_RUNS ?? 500);
  await client.updateConfig(fn.id, { mode: 'warm' });
  await client.invoke(fn.id);
  const warmSamples: number[] = [];
  for (let i = 0; i < warmRuns; i++) {
    warmSamples.push(
      await time(async () => {
        const res = await client.invoke(fn.id);
        if (res.status !== 200) throw new Error(`warm invoke answered ${res.status}: ${res.body}`);
      }),
    );
  }

  const rows = {
    'deploy hello → active (upload, analyse, bundle, image)': stats(deploySamples),
    'baseline: bare container run (dockerode create+start+wait+remove)': stats(baselineSamples),
    'invoke hello, synchronous, end to end over HTTP': stats(invokeSamples),
    'invoke hello, warm instance, end to end over HTTP': stats(warmSamples),
  };
  const ratio = rows['invoke hello, synchronous, end to end over HTTP'].median / rows['baseline: bare container run (dockerode create+start+wait+remove)'].median;
  await report('invoke', rows, { runs, invokeToBaselineRatio: ratio });
  console.log(`invoke median / baseline median = ${ratio.toFixed(2)}×`);
} finally {
  await stack.stop();
  await fs.rm(hostDir, { recursive: true, force: true });
}
