import fs from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import * as tar from 'tar';
import { LABELS, SANDBOX_MOUNT, SANDBOX_USER } from '@wharf/shared';

export interface ImageSpec {
  tag: string;
  baseImage: string;
  bundle: string;
  labels: Record<string, string>;
}

export function dockerfileFor(spec: Pick<ImageSpec, 'baseImage' | 'labels'>): string {
  const labels = Object.entries({ [LABELS.managed]: 'true', ...spec.labels })
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(' \\\n      ');
  return [
    `FROM ${spec.baseImage}`,
    `COPY index.js /app/index.js`,
    `LABEL ${labels}`,
    `USER ${SANDBOX_USER.uid}:${SANDBOX_USER.gid}`,
    `WORKDIR ${SANDBOX_MOUNT}`,
    `ENTRYPOINT ["node", "/app/index.js"]`,
    '',
  ].join('\n');
}

/** Builds `spec.tag` from a two-file context (Dockerfile + bundle); returns the engine's build output. */
export async function buildImage(docker: Docker, contextDir: string, spec: ImageSpec): Promise<string[]> {
  await fs.writeFile(path.join(contextDir, 'Dockerfile'), dockerfileFor(spec));
  await fs.writeFile(path.join(contextDir, 'index.js'), spec.bundle);
  const context = tar.c({ cwd: contextDir, portable: true }, ['Dockerfile', 'index.js']);
  // The base image is local (none can be pulled here); `pull: false` keeps the engine from trying.
  const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, {
    t: spec.tag,
    pull: false,
    rm: true,
    forcerm: true,
  });
  const output = await new Promise<Array<{ stream?: string; error?: string }>>((resolve, reject) =>
    docker.modem.followProgress(stream, (err, res) => (err ? reject(err) : resolve(res))),
  );
  const log = output.map((line) => (line.stream ?? line.error ?? '').trimEnd()).filter(Boolean);
  const failed = output.find((line) => line.error);
  if (failed) throw new Error(`docker build failed: ${failed.error}`);
  return log;
}
