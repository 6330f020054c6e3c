import type Docker from 'dockerode';

/** One line of a Docker engine's build, push or pull progress. */
export interface EngineOutputLine {
  stream?: string;
  error?: string;
}

/** Reads an engine progress stream to its end. An `error` line does not reject: each caller decides what it means. */
export function engineOutput(docker: Docker, stream: NodeJS.ReadableStream): Promise<EngineOutputLine[]> {
  return new Promise((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, output: EngineOutputLine[]) => (err ? reject(err) : resolve(output))));
}
