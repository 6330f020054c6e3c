/**
 * Starts a private Wharf — api, builder and runner as real processes — on the real Redis,
 * PostgreSQL and Docker engine that infra/setup.sh provides. Each stack gets its own database,
 * queue prefix, runner id, folders and API port, so it shares nothing with `npm run up`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { Redis } from 'ioredis';
import pg from 'pg';
import { LABELS, deleteFromRegistry } from '@wharf/shared';
import { WharfClient } from '@wharf/client';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SETPRIV = '/usr/bin/setpriv';
const ADMIN_URL = process.env.WHARF_TEST_DATABASE_URL ?? 'postgres://wharf:wharf@127.0.0.1:5432/wharf';

export interface Stack {
  id: string;
  baseUrl: string;
  /** Every API process's URL, in order (the first is `baseUrl`). */
  apiUrls: string[];
  runnerId: string;
  databaseUrl: string;
  queuePrefix: string;
  redisUrl: string;
  docker: Docker;
  /** Where each process writes its log, for reading when a test fails. */
  logDir: string;
  /** Every runner's id, in the order of `runners` (the first is `runnerId`). */
  runnerIds: string[];
  /** The engine of each runner, in the same order. */
  engines: Docker[];
  client(): WharfClient;
  /** Stops one of the stack's processes with a signal and resolves with its exit code. */
  stopProcess(app: App, signal: NodeJS.Signals): Promise<number | null>;
  /** Whether that process is still alive (it has not exited on its own). */
  alive(app: App): boolean;
  /** That process's id (for reading its memory in /proc). */
  pid(app: App): number | undefined;
  /** Starts a process again (after stopProcess) and waits until it is ready. */
  startProcess(app: App): Promise<void>;
  /** Containers this stack's runner has left on the engine (there should be none). */
  leftoverContainers(): Promise<Docker.ContainerInfo[]>;
  stop(): Promise<void>;
}

/** `runner` is the first runner; a stack with more has `runner-2`, `runner-3`, … */
export type App = 'api' | `api-${number}` | 'builder' | 'runner' | `runner-${number}`;

/** A runner of the stack: on its own engine (`DOCKER_HOST`) when given, as a separate container host. */
export interface RunnerOptions {
  dockerHost?: string;
  /** A network namespace (`ip netns`) to run the runner in, as on another machine. */
  netns?: string;
  env?: Record<string, string>;
}

export interface StackOptions {
  env?: Record<string, string>;
  /** The stack's runners (default: one, on the main engine). */
  runners?: RunnerOptions[];
  /** Set as the builder's WHARF_REGISTRY: images are pushed there and runners pull them. */
  registry?: string;
  /** API processes (default 1): `api`, `api-2`, … each on its own port, sharing the database and Redis. */
  apis?: number;
  /** Given to node before the app's module (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  nodeArgs?: (app: App) => string[];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}

export function databaseUrlFor(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs one statement on the admin database (CREATE/DROP DATABASE cannot run inside a pool's transaction). */
async function adminQuery(sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

export async function createDatabase(name: string): Promise<string> {
  await adminQuery(`CREATE DATABASE ${name}`);
  return databaseUrlFor(name);
}

export async function dropDatabase(name: string): Promise<void> {
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const id = randomBytes(4).toString('hex');
  const dbName = `wharf_test_${id}`;
  const databaseUrl = await createDatabase(dbName);
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), `wharf-test-${id}-`));
  const port = await freePort();
  const apiPorts = [port];
  for (let i = 1; i < (options.apis ?? 1); i++) apiPorts.push(await freePort());
  const runnerId = `test-${id}`;
  const queuePrefix = `test-${id}`;
  const redisUrl = options.env?.REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATABASE_URL: databaseUrl,
    WHARF_QUEUE_PREFIX: queuePrefix,
    WHARF_API_PORT: String(port),
    WHARF_RUNNER_ID: runnerId,
    WHARF_FUNCTIONS_DIR: path.join(tmp, 'functions'),
    WHARF_BUILD_DIR: path.join(tmp, 'builds'),
    WHARF_BUILDER_CACHE_DIR: path.join(tmp, 'build-cache'),
    WHARF_BUILDER_CONCURRENCY: '2',
    LOG_LEVEL: 'debug',
    ...options.env,
  };
  const docker = new Docker();
  const runners = (options.runners ?? [{}]).map((runner, i) => {
    const app: App = i === 0 ? 'runner' : `runner-${i + 1}`;
    const id = i === 0 ? runnerId : `${runnerId}-r${i + 1}`;
    const engine = runner.dockerHost ? new Docker({ socketPath: runner.dockerHost.replace(/^unix:\/\//, '') }) : docker;
    const runnerEnv: Record<string, string> = {
      WHARF_RUNNER_ID: id,
      // Each host has folders of its own.
      WHARF_FUNCTIONS_DIR: path.join(tmp, i === 0 ? 'functions' : `functions-${i + 1}`),
      ...(runner.dockerHost ? { DOCKER_HOST: runner.dockerHost } : {}),
      ...runner.env,
    };
    return { app, id, engine, env: runnerEnv, netns: runner.netns };
  });
  // The builder's engine (the main one) holds every image too, whether or not a runner uses it.
  const engines = [...new Set([docker, ...runners.map((runner) => runner.engine)])];
  const children = new Map<App, ChildProcess>();
  const stop = async () => {
    await Promise.all([...children.values()].map((child) => stopChild(child, 'SIGTERM')));
    // Every step runs even if one fails (a stack whose API never migrated has no tables to read images from).
    const steps = [
      ...engines.map((engine) => () => removeImagesOf(engine, databaseUrl)),
      ...(options.registry ? [() => removeRegistryImagesOf(options.registry!, databaseUrl)] : []),
      () => dropDatabase(dbName),
      () => deleteRedisKeys(redisUrl, queuePrefix),
      () => fsp.rm(tmp, { recursive: true, force: true }),
    ];
    const failures: unknown[] = [];
    for (const step of steps) await step().catch((err: unknown) => failures.push(err));
    if (failures.length > 0) throw failures[0];
  };
  const start = (app: App) => {
    const logFile = path.join(tmp, `${app}.log`);
    // A restarted process appends to its log: only what it writes from now on counts.
    const offset = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
    const log = fs.openSync(logFile, 'a');
    const runner = runners.find((r) => r.app === app);
    const apiIndex = app === 'api' ? 0 : app.startsWith('api-') ? Number(app.slice(4)) - 1 : -1;
    const kind = runner ? 'runner' : apiIndex >= 0 ? 'api' : app;
    const main = path.join(ROOT, 'apps', kind, 'src', 'main.ts');
    const command = [process.execPath, ...(options.nodeArgs?.(app) ?? []), '--import', 'tsx', main];
    // `ip netns exec` execs the command: the child's pid (and signals) stay the runner's.
    if (runner?.netns) command.unshift('ip', 'netns', 'exec', runner.netns);
    // A test process that dies (killed, crashed before its `after`) takes its stack's processes with it.
    if (fs.existsSync(SETPRIV)) command.unshift(SETPRIV, '--pdeathsig', 'SIGKILL', '--');
    const child = spawn(command[0], command.slice(1), {
      cwd: ROOT,
      env: {
        ...env,
        ...runner?.env,
        ...(apiIndex >= 0 ? { WHARF_API_PORT: String(apiPorts[apiIndex]) } : {}),
        ...(app === 'builder' && options.registry ? { WHARF_REGISTRY: options.registry } : {}),
      },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    children.set(app, child);
    return waitForLogLine(logFile, `${kind} ready`, child, 30_000, offset);
  };
  try {
    // The API migrates the database; the others start after it so that none races the migration.
    await start('api');
    const moreApis = apiPorts.slice(1).map((_, i): App => `api-${i + 2}`);
    await Promise.all([start('builder'), ...runners.map((runner) => start(runner.app)), ...moreApis.map((app) => start(app))]);
  } catch (err) {
    // The start-up failure is the news; a clean-up failure after it would hide it.
    await stop().catch(() => {});
    throw err;
  }

  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    id,
    baseUrl,
    apiUrls: apiPorts.map((p) => `http://127.0.0.1:${p}`),
    runnerId,
    databaseUrl,
    queuePrefix,
    redisUrl,
    docker,
    logDir: tmp,
    runnerIds: runners.map((runner) => runner.id),
    engines: runners.map((runner) => runner.engine),
    client: () => new WharfClient(baseUrl),
    leftoverContainers: async () =>
      (
        await Promise.all(
          engines.map((engine) => engine.listContainers({ all: true, filters: { label: [`${LABELS.managed}=true`] } })),
        )
      )
        .flat()
        .filter((container) => runners.some((runner) => container.Labels[LABELS.runnerId] === runner.id)),
    stopProcess: (app, signal) => stopChild(children.get(app)!, signal),
    alive: (app) => {
      const child = children.get(app);
      return !!child && child.exitCode === null && child.signalCode === null;
    },
    pid: (app) => children.get(app)?.pid,
    startProcess: start,
    stop,
  };
}

async function waitForLogLine(file: string, message: string, child: ChildProcess, timeoutMs: number, offset = 0): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const text = (await fsp.readFile(file)).subarray(offset).toString('utf8');
    if (text.includes(`"msg":"${message}"`)) return;
    if (child.exitCode !== null) throw new Error(`${path.basename(file)}: the process exited with ${child.exitCode}:\n${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no "${message}" after ${timeoutMs} ms in ${path.basename(file)}:\n${await fsp.readFile(file, 'utf8')}`);
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/** Removes the images built for this stack's functions, so test runs do not pile images up. */
async function removeImagesOf(docker: Docker, databaseUrl: string): Promise<void> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const { rows } = await db.query<{ id: string }>('SELECT id FROM functions').finally(() => db.end());
  const ids = new Set(rows.map((r) => r.id));
  const images = await docker.listImages({ filters: { label: [`${LABELS.managed}=true`] } });
  for (const image of images) {
    if (ids.has(image.Labels?.[LABELS.functionId] ?? '')) {
      await docker.getImage(image.Id).remove({ force: true }).catch(() => {});
    }
  }
}

/** Removes the manifests of this stack's function images from the registry (their layers wait for the registry's garbage collection). */
async function removeRegistryImagesOf(registry: string, databaseUrl: string): Promise<void> {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const { rows } = await db.query<{ id: string }>('SELECT id FROM functions').finally(() => db.end());
  for (const { id } of rows) {
    const name = `wharf-fn-${id}`;
    const tags = await fetch(`http://${registry}/v2/${name}/tags/list`);
    if (!tags.ok) continue;
    for (const tag of ((await tags.json()) as { tags: string[] | null }).tags ?? []) await deleteFromRegistry(`${registry}/${name}:${tag}`);
  }
}

/** Removes this stack's queues and platform keys from the shared Redis. */
async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
