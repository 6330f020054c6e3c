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
  /** Copied to /app/node_modules, for packages that could not be bundled. */
  nodeModules?: string;
}

export function dockerfileFor(spec: Pick<ImageSpec, 'baseImage' | 'labels' | 'nodeModules'>): string {
  const labels = Object.entries({ [LABELS.managed]: 'true', ...spec.labels })
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(' \\\n      ');
  return [
    `FROM ${spec.baseImage}`,
    // Labels first, so that even the intermediate images of an interrupted build carry the builder's id.
    `LABEL ${labels}`,
    ...(spec.nodeModules ? ['COPY node_modules /app/node_modules'] : []),
    `COPY index.js /app/index.js`,
    `USER ${SANDBOX_USER.uid}:${SANDBOX_USER.gid}`,
    `WORKDIR ${SANDBOX_MOUNT}`,
    `ENTRYPOINT ["node", "/app/index.js"]`,
    '',
  ].join('\n');
}

/** Builds `spec.tag` from the Dockerfile, the bundle and unbundled packages; returns the engine's build output. */
export async function buildImage(docker: Docker, contextDir: string, spec: ImageSpec): Promise<string[]> {
  await fs.writeFile(path.join(contextDir, 'Dockerfile'), dockerfileFor(spec));
  await fs.writeFile(path.join(contextDir, 'index.js'), spec.bundle);
  const entries = ['Dockerfile', 'index.js'];
  if (spec.nodeModules) {
    await fs.cp(spec.nodeModules, path.join(contextDir, 'node_modules'), { recursive: true, dereference: true });
    entries.push('node_modules');
  }
  const context = tar.c({ cwd: contextDir, portable: true }, entries);
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

/**
 * What a builder killed mid-build leaves on the engine: dangling intermediate images carrying its
 * id (the Dockerfile labels them first). Removed when a builder of that id starts.
 */
export async function removeDanglingImages(docker: Docker, builderId: string): Promise<number> {
  const images = await docker.listImages({ filters: { dangling: ['true'], label: [`${LABELS.builderId}=${builderId}`] } });
  for (const image of images) await docker.getImage(image.Id).remove({ force: true }).catch(() => {});
  return images.length;
}
