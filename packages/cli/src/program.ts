import { createInterface } from 'node:readline/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import ora from 'ora';
import { WharfApiError, WharfClient, packFunction, type FunctionInfo, type InvokeKey } from '@wharf/client';
import { FUNCTION_MODES, FUNCTION_RUNTIMES, type FunctionMode, type FunctionRuntime } from '@wharf/shared';
import { DEFAULT_API_URL, loadConfig, saveConfig, type CliConfig } from './config-file.js';
import { defaultFunctionName, parseEnvPairs } from './function-source.js';

/** Where the program writes; tests pass their own. */
export interface Io {
  stdout: (text: string) => void;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

interface GlobalOptions {
  json?: boolean;
  api?: string;
}

/** A failure already explained to the user; main.ts exits non-zero without a stack trace. */
export class CliFailure extends Error {}

const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
};
const nonNegativeInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number, 0 or more');
  return n;
};
const positiveNumber = (value: string) => {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError('must be a positive number');
  return n;
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const collect = (value: string, previous: string[] = []) => [...previous, value];

export function buildProgram(io: Io): Command {
  const program = new Command('wharf')
    .description('Deploy and run TypeScript functions on a Wharf server.')
    .option('--json', 'print machine-readable JSON instead of text')
    .option('--api <url>', `API base URL (default: $WHARF_API_URL, the saved one, or ${DEFAULT_API_URL})`)
    .showHelpAfterError()
    .exitOverride();

  const globals = (cmd: Command) => cmd.optsWithGlobals<GlobalOptions>();

  async function session(cmd: Command) {
    const config = await loadConfig(configFile());
    const apiUrl = (globals(cmd).api ?? io.env.WHARF_API_URL ?? config.apiUrl ?? DEFAULT_API_URL).replace(/\/+$/, '');
    const token = io.env.WHARF_TOKEN ?? config.token;
    return { config, apiUrl, client: new WharfClient(apiUrl, token) };
  }

  /** The session and the caller's function of that name, for the commands that act on one function. */
  async function namedFunction(cmd: Command, name: string) {
    const { client } = await session(cmd);
    return { client, fn: await client.findFunction(name) };
  }

  function configFile() {
    return io.env.WHARF_CONFIG ? io.env.WHARF_CONFIG : undefined;
  }

  /** Prints `data` as JSON under --json, else the human lines. */
  function print(cmd: Command, data: unknown, human: () => string | string[]) {
    if (globals(cmd).json) io.stdout(`${JSON.stringify(data, null, 2)}\n`);
    else {
      const text = human();
      io.stdout(`${Array.isArray(text) ? text.join('\n') : text}\n`);
    }
  }

  function spinner(cmd: Command, text: string) {
    return ora({ text, stream: io.stderr, isSilent: !!globals(cmd).json });
  }

  async function credentials(options: { email?: string; password?: string }) {
    const email = options.email ?? io.env.WHARF_EMAIL;
    let password = options.password ?? io.env.WHARF_PASSWORD;
    if (!email) throw new CliFailure('pass --email (or set WHARF_EMAIL)');
    if (!password) {
      if (!process.stdin.isTTY) throw new CliFailure('pass --password (or set WHARF_PASSWORD)');
      const rl = createInterface({ input: process.stdin, output: io.stderr });
      password = await rl.question('password: ');
      rl.close();
    }
    return { email, password };
  }

  async function saveLogin(cmd: Command, apiUrl: string, config: CliConfig, email: string, token: string, verb: string) {
    await saveConfig({ ...config, apiUrl, email, token }, configFile());
    print(cmd, { api_url: apiUrl, email }, () => `${verb} as ${email} on ${apiUrl}`);
  }

  for (const [verb, past] of [['register', 'registered'], ['login', 'logged in']] as const) {
    program
      .command(verb)
      .description(verb === 'register' ? 'create an account and log in' : 'log in and save the token')
      .option('--email <email>')
      .option('--password <password>', 'or $WHARF_PASSWORD; asked for when neither is given')
      .action(async (options, cmd: Command) => {
        const { config, apiUrl, client } = await session(cmd);
        const { email, password } = await credentials(options);
        const token = verb === 'register' ? await client.register(email, password) : await client.login(email, password);
        await saveLogin(cmd, apiUrl, config, email, token, past);
      });
  }

  program
    .command('logout')
    .description('forget the saved token')
    .action(async (_options, cmd: Command) => {
      const config = await loadConfig(configFile());
      await saveConfig({ ...config, token: undefined }, configFile());
      print(cmd, { logged_out: true }, () => 'logged out');
    });

  program
    .command('token')
    .description('print the saved token (for curl: -H "Authorization: Bearer $(wharf token)")')
    .action(async (_options, cmd: Command) => {
      const { config, apiUrl } = await session(cmd);
      if (!config.token) throw new CliFailure('not logged in: wharf login');
      print(cmd, { api_url: apiUrl, email: config.email, token: config.token }, () => config.token!);
    });

  program
    .command('init <name>')
    .description('create a function (or show the existing one of that name)')
    .option('--skip-signing', 'let API keys invoke without signing requests')
    .action(async (name: string, options: { skipSigning?: boolean }, cmd: Command) => {
      const { client } = await session(cmd);
      const fn = await client.initFunction(name, { skipSigning: options.skipSigning });
      print(cmd, fn, () => `${fn.already_exists ? 'exists' : 'created'}: ${fn.name} (${fn.id}) status ${fn.status}`);
    });

  program
    .command('deploy <dir>')
    .description('pack a folder (without node_modules and dotfiles) and deploy it as a new version')
    .option('--name <name>', 'function name (default: package.json name, else the folder name)')
    .option('--env <KEY=VALUE>', 'a variable for this version (repeatable)', collect, [])
    .option('--wait', 'follow the build log until the build ends, and show its outcome')
    .addOption(new Option('--runtime <runtime>', 'what the folder holds (default: chosen from it: a @cloudFunction class, a bootstrap, a run)').choices([...FUNCTION_RUNTIMES]))
    .action(async (dir: string, options: { name?: string; env: string[]; wait?: boolean; runtime?: FunctionRuntime }, cmd: Command) => {
      const { client, apiUrl } = await session(cmd);
      const name = options.name ?? (await defaultFunctionName(dir));
      const env = parseEnvPairs(options.env);
      const archive = await packFunction(dir);
      const fn = await client.initFunction(name);
      const accepted = await client.deploy(fn.id, archive, { env: Object.keys(env).length ? env : undefined, runtime: options.runtime });
      const invokeUrl = `${apiUrl}/api/functions/${fn.id}/invoke`;
      const url = `${apiUrl}/fn/${name}`;
      if (!options.wait) {
        print(cmd, { function_id: fn.id, name, version: accepted.version, status: accepted.status, url, invoke_url: invokeUrl }, () =>
          `${name} v${accepted.version} is building (${archive.length} bytes uploaded); follow it with: wharf deployments ${name}`,
        );
        return;
      }
      const progress = spinner(cmd, `building ${name} v${accepted.version}`).start();
      for await (const chunk of client.followBuildLog(fn.id, accepted.version)) {
        if (globals(cmd).json) continue;
        progress.clear();
        io.stderr.write(chunk);
        progress.render();
      }
      const deployment = await client.waitForDeployment(fn.id, accepted.version);
      const result = { function_id: fn.id, name, version: deployment.version, status: deployment.status, error: deployment.error, url, invoke_url: invokeUrl };
      if (deployment.status !== 'succeeded') {
        progress.fail(`${name} v${deployment.version} failed: ${deployment.error?.code}: ${deployment.error?.message}`);
        if (globals(cmd).json) print(cmd, result, () => '');
        throw new CliFailure('');
      }
      progress.succeed(`${name} v${deployment.version} is active`);
      print(cmd, result, () => [`invoke: curl ${url} -H "Authorization: Bearer $(wharf token)"`, `    or: wharf invoke ${name}`]);
    });

  program
    .command('invoke <name>')
    .description('call a function (by name, or by id) and print its response (exits 1 when it answers 4xx/5xx)')
    .option('--data <json>', 'request body: JSON (sent as application/json) or any text')
    .option('--query <KEY=VALUE>', 'query parameter (repeatable)', collect, [])
    .option('--async', 'queue the invocation and print its id instead of waiting')
    .option('--idempotency-key <key>', 'with --async: the same key within 24 h returns the first invocation')
    .option('--callback-url <url>', 'with --async: POST the final record there')
    .addOption(new Option('--key-id <id>', 'invoke with an API key instead of the saved token').env('WHARF_KEY_ID'))
    .addOption(new Option('--secret <secret>', "the API key's secret").env('WHARF_KEY_SECRET'))
    .option('--no-sign', 'send the key secret as is (functions that skip signing)')
    .action(async (name: string, options: { data?: string; query: string[]; async?: boolean; idempotencyKey?: string; callbackUrl?: string; keyId?: string; secret?: string; sign: boolean }, cmd: Command) => {
      const { client } = await session(cmd);
      // An API key alone cannot list functions: with a key, name the function by its id.
      const fn = UUID.test(name) ? { id: name } : await client.findFunction(name);
      const key: InvokeKey | undefined = options.keyId && options.secret ? { keyId: options.keyId, secret: options.secret, sign: options.sign } : undefined;
      const invokeOptions = { body: options.data === undefined ? undefined : asJsonOrText(options.data), query: options.query.length ? parseEnvPairs(options.query) : undefined, key };
      if (options.async) {
        const queued = await client.invokeAsync(fn.id, { ...invokeOptions, idempotencyKey: options.idempotencyKey, callbackUrl: options.callbackUrl });
        print(cmd, queued, () => `queued ${queued.invocation_id}; its record: ${queued.status_url}`);
        return;
      }
      const res = await client.invoke(fn.id, invokeOptions);
      const invocationId = res.headers.get('x-wharf-invocation-id');
      print(cmd, { status: res.status, invocation_id: invocationId, body: tryJson(res.body) }, () => res.body);
      if (res.status >= 400) throw new CliFailure(globals(cmd).json ? '' : `HTTP ${res.status} (invocation ${invocationId ?? 'not recorded'})`);
    });

  program
    .command('ls')
    .description('list your functions')
    .action(async (_options, cmd: Command) => {
      const { client } = await session(cmd);
      const functions = await client.listFunctions();
      print(cmd, { functions }, () =>
        functions.length === 0
          ? 'no functions yet: wharf deploy <dir>'
          : table(['NAME', 'STATUS', 'ACTIVE', 'LATEST', 'ID'], functions.map((f) => [f.name, f.status, version(f.active_version), version(f.latest_version), f.id])),
      );
    });

  program
    .command('deployments <name>')
    .description("list a function's deployments, newest first")
    .option('--page <n>', 'page', positiveInt, 1)
    .option('--per-page <n>', 'per page (at most 100)', positiveInt, 20)
    .action(async (name: string, options: { page: number; perPage: number }, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const page = await client.listDeployments(fn.id, options);
      print(cmd, page, () => [
        table(
          ['VERSION', 'STATUS', 'ACTIVE', 'ARCHIVE', 'CREATED', 'ERROR'],
          page.deployments.map((d) => [`v${d.version}`, d.status, d.is_active ? '*' : '', d.pinned ? 'pinned' : d.archive_retained ? 'stored' : 'dropped', d.created_at, d.error ? `${d.error.code}: ${d.error.message}` : '']),
        ),
        `page ${page.page} of ${Math.max(page.total_pages, 1)} (${page.count} deployments)`,
      ]);
    });

  program
    .command('rollback <name> <version>')
    .description('make an earlier successful version the active one')
    .action(async (name: string, versionText: string, _options, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const result = await client.rollback(fn.id, positiveInt(versionText.replace(/^v/, '')));
      print(cmd, result, () => `${name}: ${result.message} (was ${version(result.previous_version)})`);
    });

  for (const [verb, pinned] of [['pin', true], ['unpin', false]] as const) {
    program
      .command(`${verb} <name> <version>`)
      .description(pinned ? "keep a version's archive past WHARF_KEEP_VERSIONS, so that a rollback can rebuild it" : 'let a version\'s archive go once it is past WHARF_KEEP_VERSIONS')
      .action(async (name: string, versionText: string, _options, cmd: Command) => {
        const { client, fn } = await namedFunction(cmd, name);
        const v = positiveInt(versionText.replace(/^v/, ''));
        const deployment = pinned ? await client.pin(fn.id, v) : await client.unpin(fn.id, v);
        print(cmd, deployment, () =>
          pinned
            ? `${name} v${v} is pinned: its archive is kept, and a rollback to it rebuilds it once its image is retired`
            : `${name} v${v} is unpinned: past WHARF_KEEP_VERSIONS its archive goes at the function's next build`,
        );
      });
  }

  program
    .command('rm <name>')
    .description('schedule a function for deletion (cancel with: wharf restore)')
    .action(async (name: string, _options, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const result = await client.deleteFunction(fn.id);
      print(cmd, result, () => `${result.message} (wharf restore ${name} to cancel)`);
    });

  program
    .command('restore <name>')
    .description('cancel a scheduled deletion')
    .action(async (name: string, _options, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const result = await client.cancelDeletion(fn.id);
      print(cmd, result, () => `${result.message}; ${name} is ${result.function.status}`);
    });

  program
    .command('logs <name>')
    .description("show a function's recent invocations and what they logged")
    .option('--limit <n>', 'how many invocations', positiveInt, 20)
    .option('--since <time>', 'only invocations queued after this ISO time')
    .action(async (name: string, options: { limit: number; since?: string }, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const result = await client.logs(fn.id, options);
      print(cmd, result, () =>
        result.invocations.flatMap((inv) => [
          `── ${inv.invocation_id} v${inv.version} ${inv.status} ${inv.queued_at}${inv.duration_ms == null ? '' : ` ${inv.duration_ms} ms`}`,
          ...(inv.logs as Array<{ timestamp: string; level: string; message: string; data?: unknown }>).map(
            (l) => `${l.timestamp} ${l.level.toUpperCase().padEnd(5)} ${l.message}${l.data === undefined ? '' : ` ${JSON.stringify(l.data)}`}`,
          ),
        ]),
      );
    });

  program
    .command('config <name>')
    .description("change a function's limits and variables (applies to every version from the next call)")
    .option('--timeout-ms <n>', 'time limit', positiveInt)
    .option('--memory-mb <n>', 'memory limit', positiveInt)
    .option('--cpus <n>', 'CPU share', positiveNumber)
    .option('--env <KEY=VALUE>', 'replace the function-level variables (repeatable)', collect)
    .option('--skip-signing <bool>', 'true: API keys may invoke unsigned', (v) => v === 'true')
    .option('--public <bool>', 'true: anyone may call /fn/<name> without credentials', (v) => v === 'true')
    .addOption(new Option('--mode <mode>', 'warm: live instances reused; isolated: a fresh container per call').choices([...FUNCTION_MODES]))
    .option('--concurrency <n>', 'warm: invocations one instance takes at once', positiveInt)
    .option('--min-instances <n>', 'warm: instances kept even when idle', nonNegativeInt)
    .action(async (name: string, options: { timeoutMs?: number; memoryMb?: number; cpus?: number; env?: string[]; skipSigning?: boolean; public?: boolean; mode?: FunctionMode; concurrency?: number; minInstances?: number }, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const updated = await client.updateConfig(fn.id, {
        timeout_ms: options.timeoutMs,
        memory_mb: options.memoryMb,
        cpus: options.cpus,
        env: options.env ? parseEnvPairs(options.env) : undefined,
        skip_signing: options.skipSigning,
        public: options.public,
        mode: options.mode,
        concurrency: options.concurrency,
        min_instances: options.minInstances,
      });
      print(cmd, updated, () => describeConfig(updated));
    });

  program
    .command('invocations <name>')
    .description("list a function's invocations, newest first")
    .option('--status <status>', 'only those in this state (queued, running, succeeded, failed, timed_out, cancelled)')
    .option('--page <n>', 'page', positiveInt, 1)
    .option('--per-page <n>', 'per page (at most 100)', positiveInt, 20)
    .action(async (name: string, options: { status?: string; page: number; perPage: number }, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const list = await client.listInvocations(fn.id, { status: options.status, page: options.page, per_page: options.perPage });
      print(cmd, list, () =>
        table(
          ['ID', 'STATUS', 'VERSION', 'QUEUED', 'MS', 'ERROR'],
          list.invocations.map((i) => [i.id, i.status, version(i.version as number), String(i.queued_at), i.duration_ms == null ? '' : String(i.duration_ms), (i.error as { code?: string } | undefined)?.code ?? '']),
        ),
      );
    });

  program
    .command('invocation <id>')
    .description("show one invocation's record (status, response, logs)")
    .action(async (id: string, _options, cmd: Command) => {
      const { client } = await session(cmd);
      const record = await client.getInvocation(id);
      print(cmd, record, () => JSON.stringify(record, null, 2));
    });

  program
    .command('cancel <id>')
    .description('cancel a queued or running invocation (a running one has its container killed)')
    .action(async (id: string, _options, cmd: Command) => {
      const { client } = await session(cmd);
      const record = await client.cancelInvocation<{ status: string }>(id);
      print(cmd, record, () => `invocation ${id} is ${record.status}`);
    });

  const keys = program.command('keys').description("manage a function's API keys");
  keys
    .command('create <name>')
    .description('create a key; its secret is shown once')
    .action(async (name: string, _options, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const key = await client.createApiKey(fn.id);
      print(cmd, key, () => [`key id: ${key.key_id}`, `secret: ${key.secret}`, 'the secret is not shown again; store it now', key.signing_required ? 'requests with this key must be signed' : 'this function accepts unsigned key requests']);
    });
  keys
    .command('ls <name>')
    .description('list keys (ids only)')
    .action(async (name: string, _options, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const list = await client.listApiKeys(fn.id);
      print(cmd, { api_keys: list }, () => table(['KEY ID', 'CREATED', 'LAST USED'], list.map((k) => [k.key_id, k.created_at, k.last_used_at ?? '-'])));
    });
  keys
    .command('revoke <name> <keyId>')
    .description('revoke a key at once')
    .action(async (name: string, keyId: string, _options, cmd: Command) => {
      const { client, fn } = await namedFunction(cmd, name);
      const result = await client.revokeApiKey(fn.id, keyId);
      print(cmd, result, () => `revoked ${keyId}`);
    });

  return program;
}

/** Turns an error into the line(s) the user sees, or the JSON error body under --json. */
export function describeError(err: unknown, json: boolean): string {
  if (err instanceof WharfApiError) {
    return json ? JSON.stringify({ error: { code: err.code, message: err.message, status: err.status } }) : `error: ${err.code}: ${err.message}`;
  }
  const message = err instanceof Error ? err.message : String(err);
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  // fetch() fails with a bare "fetch failed"; what went wrong is in its cause.
  const text = message === 'fetch failed'
    ? `cannot reach the Wharf API (${cause?.code ?? cause?.message ?? 'network error'}); is it running? see --api / WHARF_API_URL`
    : message;
  return json ? JSON.stringify({ error: { code: 'CLI_ERROR', message: text } }) : `error: ${text}`;
}

function asJsonOrText(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function version(v: number | null | undefined): string {
  return v == null ? '-' : `v${v}`;
}

function describeConfig(fn: FunctionInfo): string {
  const c = fn.config;
  return `${fn.name}: ${c.mode}${c.mode === 'warm' ? ` (concurrency ${c.concurrency}, min instances ${c.min_instances})` : ''}, timeout ${c.timeout_ms ?? 'default'} ms, memory ${c.memory_mb ?? 'default'} MB, cpus ${c.cpus ?? 'default'}, variables [${c.env_keys.join(', ')}], signing ${fn.skip_signing ? 'skipped' : 'required'}, ${fn.public ? `public at ${fn.url}` : 'private'}`;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [headers, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}
