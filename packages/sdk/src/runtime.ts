/**
 * The in-container entry: reads the invocation from the working directory, runs the function's
 * `handle`, writes its logs (one JSON entry a line) and `result.json`. The builder bundles this with the user's class.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  SANDBOX_FILES,
  formatLogLines,
  parseEnvConfig,
  type LogEntry,
  type SandboxRequest,
  type SandboxResult,
} from '@wharf/shared/sandbox';
import { CloudResponse, createFunctionLogger, registeredFunctionClass, type CloudFunction } from './index.js';

export async function invokeFunction(
  FunctionClass: (new () => CloudFunction) | undefined,
  request: SandboxRequest,
  env: Record<string, string>,
  logs: LogEntry[],
): Promise<SandboxResult> {
  const logger = createFunctionLogger(logs);
  try {
    if (!FunctionClass) throw new Error('no class is decorated with @cloudFunction');
    const instance = new FunctionClass();
    const { invocationId, deadline, body, isBase64Encoded, ...rest } = request;
    const response = await instance.handle({ ...rest, body, isBase64Encoded: isBase64Encoded === true }, { env, logger, invocationId, deadline });
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
  const write = (name: string, text: string) => fs.writeFileSync(path.join(workDir, name), text);
  const logs: LogEntry[] = [];
  const request = JSON.parse(read(SANDBOX_FILES.request)) as SandboxRequest;
  const env = parseEnvConfig(read(SANDBOX_FILES.envConfig));
  const result = await invokeFunction(FunctionClass, request, env, logs);
  // The result first: logs past the platform's file-size limit stop the process, and must not cost the result.
  write(SANDBOX_FILES.result, JSON.stringify(result));
  write(SANDBOX_FILES.logs, formatLogLines(logs));
}
