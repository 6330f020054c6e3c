/**
 * The in-container entry. Isolated mode: reads the invocation from the working directory, runs
 * the function's `handle`, writes `result.json` and its logs. Warm mode (`RUNTIME_API_SOCKET`
 * set): constructs the class once, then loops on the runtime API, one invocation at a time.
 * The builder bundles this with the user's class.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  RUNTIME_API,
  SANDBOX_FILES,
  formatLogLines,
  parseEnvConfig,
  type LogEntry,
  type SandboxRequest,
  type SandboxResult,
  type WarmResponse,
} from '@wharf/shared/sandbox';
import { CloudResponse, createFunctionLogger, registeredFunctionClass, type CloudFunction } from './index.js';

type FunctionClass = new () => CloudFunction;

export async function invokeFunction(
  FunctionClass: FunctionClass | undefined,
  request: SandboxRequest,
  env: Record<string, string>,
  logs: LogEntry[],
): Promise<SandboxResult> {
  return handleWith(() => {
    if (!FunctionClass) throw new Error('no class is decorated with @cloudFunction');
    return new FunctionClass();
  }, request, env, logs);
}

/** Runs one invocation on the instance `instance()` gives (a new one, or the warm one); a throw anywhere is FUNCTION_ERROR. */
async function handleWith(instance: () => CloudFunction, request: SandboxRequest, env: Record<string, string>, logs: LogEntry[]): Promise<SandboxResult> {
  const logger = createFunctionLogger(logs);
  try {
    const { invocationId, deadline, body, isBase64Encoded, ...rest } = request;
    const response = await instance().handle({ ...rest, body, isBase64Encoded: isBase64Encoded === true }, { env, logger, invocationId, deadline });
    if (!(response instanceof CloudResponse)) {
      throw new Error('handle() must return a CloudResponse (CloudResponse.json(), .text(), .binary() or .status())');
    }
    if (response.body instanceof Uint8Array) {
      return { statusCode: response.statusCode, headers: response.headers, body: Buffer.from(response.body).toString('base64'), isBase64Encoded: true };
    }
    return { statusCode: response.statusCode, headers: response.headers, body: String(response.body) };
  } catch (thrown) {
    const message = thrown instanceof Error ? thrown.message : String(thrown);
    logger.error('function threw', { message, stack: thrown instanceof Error ? thrown.stack : undefined });
    const error = { code: 'FUNCTION_ERROR' as const, message };
    return { statusCode: 500, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error }), error };
  }
}

/** Runs the class that `@cloudFunction` registered while the function's modules loaded. */
export async function runFunction(
  FunctionClass = registeredFunctionClass(),
  workDir = process.cwd(),
): Promise<void> {
  const read = (name: string) => fs.readFileSync(path.join(workDir, name), 'utf8');
  const env = parseEnvConfig(read(SANDBOX_FILES.envConfig));
  const socket = process.env.RUNTIME_API_SOCKET;
  if (socket) return serveInvocations(FunctionClass, env, socket);

  const write = (name: string, text: string) => fs.writeFileSync(path.join(workDir, name), text);
  const logs: LogEntry[] = [];
  const request = JSON.parse(read(SANDBOX_FILES.request)) as SandboxRequest;
  const result = await invokeFunction(FunctionClass, request, env, logs);
  // The result first: logs past the platform's file-size limit stop the process, and must not cost the result.
  write(SANDBOX_FILES.result, JSON.stringify(result));
  write(SANDBOX_FILES.logs, formatLogLines(logs));
}

/**
 * Warm mode: one instance of the class for the container's life, fed by the runtime API;
 * `RUNTIME_CONCURRENCY` loops, so that the instance takes that many invocations at once.
 */
async function serveInvocations(FunctionClass: FunctionClass | undefined, env: Record<string, string>, socketPath: string): Promise<never> {
  let instance: CloudFunction | undefined;
  const warmInstance = () => {
    if (!FunctionClass) throw new Error('no class is decorated with @cloudFunction');
    return (instance ??= new FunctionClass());
  };
  const loop = async (): Promise<never> => {
    for (;;) {
      const { id, body } = await call(socketPath, 'GET', RUNTIME_API.next);
      const logs: LogEntry[] = [];
      const result = await handleWith(warmInstance, JSON.parse(body) as SandboxRequest, env, logs);
      const response: WarmResponse = { ...result, logs };
      await call(socketPath, 'POST', `${RUNTIME_API.responsePrefix}${id}`, JSON.stringify(response));
    }
  };
  const concurrency = Math.max(1, Number(process.env.RUNTIME_CONCURRENCY) || 1);
  return Promise.race(Array.from({ length: concurrency }, loop));
}

function call(socketPath: string, method: string, urlPath: string, body?: string): Promise<{ id: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: urlPath, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ id: String(res.headers[RUNTIME_API.requestIdHeader] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
