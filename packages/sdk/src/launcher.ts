/**
 * The in-container entry of programs that are not Node classes, bundled into their images:
 *
 * - `custom`: serves the runtime API on loopback (`RUNTIME_API_ADDR`) and relays it to the
 *   runner's Unix socket, then runs `/app/bootstrap`; the program's output lines become the
 *   logs of the invocation it was handed last. Ends when the program ends.
 * - `isolated-files`: one invocation: writes `input.json` in a fresh folder, runs `/app/run`
 *   there, and turns `output.json` / `error.json` / `out.log` / `done` into the result and logs
 *   files the runner reads.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  ISOLATED_FILES,
  RUNTIME_API,
  SANDBOX_FILES,
  SANDBOX_MOUNT,
  formatLogLines,
  parseEnvConfig,
  resultFromError,
  resultFromOutput,
  type LogEntry,
  type SandboxResult,
  type WarmResponse,
} from '@wharf/shared/sandbox';

const CODE_ROOT = '/app';
/** Past this many bytes of logs an invocation's further lines are dropped (the runner reports them truncated). */
const LOG_LIMIT = Number(process.env.RUNTIME_LOG_LIMIT ?? 1024 * 1024) + 1;
const LINE_LIMIT = 16 * 1024;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/** Collects a program's output lines as log entries, up to LOG_LIMIT bytes. */
class LogCollector {
  readonly entries: LogEntry[] = [];
  private size = 0;

  add(level: LogEntry['level'], line: string): void {
    if (this.size > LOG_LIMIT) return;
    const entry: LogEntry = { level, message: line.slice(0, LINE_LIMIT), timestamp: new Date().toISOString() };
    this.size += Buffer.byteLength(JSON.stringify(entry)) + 1;
    this.entries.push(entry);
  }
}

/** Calls `onLine` for each line the stream gives. */
function eachLine(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  let pending = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) onLine(line.replace(/\r$/, ''));
    if (pending.length > LINE_LIMIT) {
      onLine(pending);
      pending = '';
    }
  });
  stream?.on('end', () => pending && onLine(pending));
}

function functionEnv(): NodeJS.ProcessEnv {
  const configured = parseEnvConfig(fs.readFileSync(path.join(SANDBOX_MOUNT, SANDBOX_FILES.envConfig), 'utf8'));
  return { ...process.env, ...configured };
}

function exitWith(child: ChildProcess): void {
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
}

/** A program's failure report, `{<typeKey>, <messageKey>}`; text that is not JSON is the message. */
function readFailure(text: string, typeKey: string, messageKey: string): { type: string; message: string } {
  let posted: Record<string, unknown> | null;
  try {
    posted = JSON.parse(text);
  } catch {
    posted = { [messageKey]: text };
  }
  return { type: String(posted?.[typeKey] ?? 'Error'), message: String(posted?.[messageKey] ?? '') };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Custom runtime: the loopback relay and the program it serves. */
function runCustom(): void {
  const socketPath = process.env.RUNTIME_API_SOCKET;
  if (!socketPath) throw new Error('RUNTIME_API_SOCKET is not set: custom runtimes run only as instances');
  // Invocations handed out and not yet answered, newest last: output lines go to the newest.
  const inFlight = new Map<string, LogCollector>();
  const newest = () => [...inFlight.values()].at(-1);

  /** Sends one call on to the runner and its whole answer back (the program may speak HTTP/1.0: no chunking passes through). */
  const forward = (method: string, urlPath: string, body: string | undefined, res: http.ServerResponse, onAnswer?: (id: string) => void) => {
    const upstream = http.request({ socketPath, method, path: urlPath, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const id = String(answer.headers[RUNTIME_API.requestIdHeader] ?? '');
        onAnswer?.(id);
        const passed = Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !HOP_BY_HOP.has(name)));
        res.writeHead(answer.statusCode ?? 502, passed).end(Buffer.concat(chunks));
      });
    });
    upstream.on('error', () => res.writeHead(502).end());
    upstream.end(body);
  };

  const server = http.createServer(async (req, res) => {
    const url = req.url ?? '';
    const body = await readBody(req).catch(() => '');
    if (req.method === 'GET' && url === RUNTIME_API.next) {
      return forward('GET', url, undefined, res, (id) => id && inFlight.set(id, new LogCollector()));
    }
    const ending = url.startsWith(RUNTIME_API.responsePrefix) ? RUNTIME_API.responsePrefix : url.startsWith(RUNTIME_API.errorPrefix) ? RUNTIME_API.errorPrefix : undefined;
    if (req.method !== 'POST' || !ending) return void res.writeHead(404).end();
    const id = decodeURIComponent(url.slice(ending.length));
    const logs = inFlight.get(id)?.entries ?? [];
    inFlight.delete(id);
    if (ending === RUNTIME_API.responsePrefix) {
      const response: WarmResponse = { ...resultFromOutput(body, req.headers['content-type']), logs };
      return forward('POST', url, JSON.stringify(response), res);
    }
    const { type, message } = readFailure(body, 'errorType', 'errorMessage');
    forward('POST', url, JSON.stringify({ errorType: type, errorMessage: message, logs }), res);
  });

  const [host, port] = RUNTIME_API.relayAddress.split(':');
  server.listen(Number(port), host, () => {
    const child = spawn(path.join(CODE_ROOT, 'bootstrap'), [], {
      cwd: CODE_ROOT,
      env: { ...functionEnv(), RUNTIME_API_ADDR: RUNTIME_API.relayAddress },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Lines nobody's invocation owns (start-up, crashes) stay on the container's own output for the runner's crash report.
    eachLine(child.stdout, (line) => (newest() ? newest()!.add('info', line) : console.log(line)));
    eachLine(child.stderr, (line) => {
      newest()?.add('error', line);
      console.error(line);
    });
    child.on('error', (err) => {
      console.error(`could not start ${CODE_ROOT}/bootstrap: ${err.message}`);
      process.exit(127);
    });
    exitWith(child);
  });
}

/** isolated-files runtime: one invocation, through files. */
function runIsolatedFiles(): void {
  const request = fs.readFileSync(path.join(SANDBOX_MOUNT, SANDBOX_FILES.request), 'utf8');
  // /tmp is the container's only writable place besides the two output files.
  const jobDir = fs.mkdtempSync('/tmp/job-');
  fs.writeFileSync(path.join(jobDir, ISOLATED_FILES.input), request);
  const logs = new LogCollector();
  const child = spawn(path.join(CODE_ROOT, 'run'), [], { cwd: jobDir, env: functionEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  eachLine(child.stdout, (line) => logs.add('info', line));
  eachLine(child.stderr, (line) => {
    logs.add('error', line);
    console.error(line);
  });
  child.on('error', (err) => {
    console.error(`could not start ${CODE_ROOT}/run: ${err.message}`);
    process.exit(127);
  });
  child.on('close', (code, signal) => {
    const read = (name: string) => {
      try {
        return fs.readFileSync(path.join(jobDir, name), 'utf8');
      } catch {
        return undefined;
      }
    };
    const outLog = read(ISOLATED_FILES.log);
    const entries = outLog === undefined ? [] : outLog.split('\n').filter((line) => line.trim()).map((message) => ({ level: 'info' as const, message, timestamp: new Date().toISOString() }));
    const allLogs = [...entries, ...logs.entries];
    if (read(ISOLATED_FILES.done) === undefined) {
      fs.writeFileSync(path.join(SANDBOX_MOUNT, SANDBOX_FILES.logs), formatLogLines(allLogs));
      console.error(`${CODE_ROOT}/run exited (${signal ?? `code ${code}`}) without creating ${ISOLATED_FILES.done}`);
      process.exit(code || 1);
    }
    const errorText = read(ISOLATED_FILES.error);
    let result: SandboxResult;
    if (errorText !== undefined) {
      const { type, message } = readFailure(errorText, 'code', 'message');
      result = resultFromError(type, message);
    } else {
      result = resultFromOutput(read(ISOLATED_FILES.output) ?? '');
    }
    // The result first: logs past the platform's file-size limit stop the process, and must not cost the result.
    fs.writeFileSync(path.join(SANDBOX_MOUNT, SANDBOX_FILES.result), JSON.stringify(result));
    fs.writeFileSync(path.join(SANDBOX_MOUNT, SANDBOX_FILES.logs), formatLogLines(allLogs));
  });
}

const kind = process.argv[2];
if (kind === 'custom') runCustom();
else if (kind === 'isolated-files') runIsolatedFiles();
else {
  console.error(`unknown runtime ${kind}`);
  process.exit(2);
}
