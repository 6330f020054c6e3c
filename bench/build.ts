/**
 * Deploy-to-active latency through a private stack (upload → archive checks → analysis and
 * type-check → npm install → bundle → docker build → active), for (a) examples/hello and (b) a
 * five-file function with three npm dependencies (bench/fixtures/deps5):
 *  - hello, cold: the first deploy after the builder starts (its analysis thread has not yet
 *    parsed TypeScript's libraries);
 *  - hello, warm: later deploys;
 *  - deps5, cold cache: the builder's dependency cache (and npm's own) emptied before each
 *    deploy, so npm downloads from the registry;
 *  - deps5, warm cache: the installed tree reused.
 * Prints a table and writes bench/results/build.json. Runs per case: BENCH_RUNS (default 10).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { WharfClient } from '@wharf/client';
import { packFunction } from '@wharf/client';
import { exampleDir } from '../test/helpers/fixtures.js';
import { startStack } from '../test/helpers/stack.js';
import { report, stats, time } from './measure.js';

const runs = Number(process.env.BENCH_RUNS ?? 10);

async function deployOnce(client: WharfClient, functionId: string, archive: Buffer): Promise<void> {
  const { version } = await client.deploy(functionId, archive);
  const deployment = await client.waitForDeployment(functionId, version, { pollMs: 10, timeoutMs: 300_000 });
  if (deployment.status !== 'succeeded') throw new Error(`deploy failed: ${JSON.stringify(deployment.error)}`);
}

// Every run deploys several times: past the default of 60 deployments an hour, the quota would refuse them.
const stack = await startStack({ env: { WHARF_USER_MAX_DEPLOYS_PER_HOUR: '100000' } });
try {
  const client = stack.client();
  await client.register(`bench-build-${stack.id}@example.test`, 'benchmark password');
  const hello = await client.initFunction('hello');
  const deps = await client.initFunction('deps5');
  const helloArchive = await packFunction(exampleDir('hello'));
  const depsArchive = await packFunction(path.join(import.meta.dirname, 'fixtures', 'deps5'));
  const cacheDir = path.join(stack.logDir, 'build-cache');

  const helloCold: number[] = [];
  for (let i = 0; i < runs; i++) {
    await stack.stopProcess('builder', 'SIGTERM');
    await stack.startProcess('builder');
    helloCold.push(await time(() => deployOnce(client, hello.id, helloArchive)));
  }
  const helloWarm: number[] = [];
  for (let i = 0; i < runs; i++) helloWarm.push(await time(() => deployOnce(client, hello.id, helloArchive)));

  const depsCold: number[] = [];
  for (let i = 0; i < runs; i++) {
    await fs.rm(cacheDir, { recursive: true, force: true });
    depsCold.push(await time(() => deployOnce(client, deps.id, depsArchive)));
  }
  const depsWarm: number[] = [];
  for (let i = 0; i < runs; i++) depsWarm.push(await time(() => deployOnce(client, deps.id, depsArchive)));

  const res = await client.invoke(deps.id, { query: { from: '2026-01-30', days: '2' } });
  if (res.status !== 201 || res.json<{ due: string }>().due !== '2026-02-01') throw new Error(`deps5 answered ${res.status} ${res.body}`);

  await report('build', {
    'hello, cold builder (first deploy after start)': stats(helloCold),
    'hello, warm builder': stats(helloWarm),
    'deps5 (5 files, 3 npm deps), cold dependency cache': stats(depsCold),
    'deps5, warm dependency cache': stats(depsWarm),
  }, { runs });
} finally {
  await stack.stop();
}
