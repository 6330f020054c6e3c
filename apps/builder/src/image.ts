import fs from 'node:fs/promises';
import path from 'node:path';
import type Docker from 'dockerode';
import * as tar from 'tar';
import { LABELS, SANDBOX_MOUNT, SANDBOX_USER, engineOutput } from '@wharf/shared';
import { RUNTIME_ENTRIES, type ProgramRuntime } from './runtimes.js';
import { withTimeLimit } from './time-limits.js';

/** What the image runs: a bundled Node function, or the archive's own program behind the launcher. */
export type ImageContent =
  | {
      runtime: 'node';
      bundle: string;
      /** Copied to /app/node_modules, for packages that could not be bundled. */
      nodeModules?: string;
    }
  | {
      runtime: ProgramRuntime;
      /** The extracted archive, copied to /app. */
      appDir: string;
      launcher: string;
    };

export interface ImageSpec {
  tag: string;
  baseImage: string;
  labels: Record<string, string>;
  content: ImageContent;
}

const LAUNCHER_PATH = '/opt/wharf/launch.js';

export function dockerfileFor(spec: Pick<ImageSpec, 'baseImage' | 'labels' | 'content'>): string {
  const labels = Object.entries({ [LABELS.managed]: 'true', ...spec.labels })
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(' \\\n      ');
  const { content } = spec;
  const files =
    content.runtime === 'node'
      ? [...(content.nodeModules ? ['COPY node_modules /app/node_modules'] : []), `COPY index.js /app/index.js`]
      : [`COPY app /app`, `COPY launch.js ${LAUNCHER_PATH}`];
  const entrypoint = content.runtime === 'node' ? ['node', '/app/index.js'] : ['node', LAUNCHER_PATH, content.runtime];
  return [
    `FROM ${spec.baseImage}`,
    // Labels first, so that even the intermediate images of an interrupted build carry the builder's id.
    `LABEL ${labels}`,
    ...files,
    `USER ${SANDBOX_USER.uid}:${SANDBOX_USER.gid}`,
    `WORKDIR ${SANDBOX_MOUNT}`,
    `ENTRYPOINT ${JSON.stringify(entrypoint)}`,
    '',
  ].join('\n');
}

/** Writes the build context's files; returns their names. */
async function writeContext(contextDir: string, content: ImageContent): Promise<string[]> {
  if (content.runtime !== 'node') {
    await fs.cp(content.appDir, path.join(contextDir, 'app'), { recursive: true });
    // Extraction applies no modes from the archive: the entry must run whatever the archive said.
    await fs.chmod(path.join(contextDir, 'app', RUNTIME_ENTRIES[content.runtime]), 0o755);
    await fs.writeFile(path.join(contextDir, 'launch.js'), content.launcher);
    return ['app', 'launch.js'];
  }
  await fs.writeFile(path.join(contextDir, 'index.js'), content.bundle);
  if (!content.nodeModules) return ['index.js'];
  await fs.cp(content.nodeModules, path.join(contextDir, 'node_modules'), { recursive: true, dereference: true });
  return ['index.js', 'node_modules'];
}

/** Builds `spec.tag` from the Dockerfile and the function's files; returns the engine's build output. */
export async function buildImage(docker: Docker, contextDir: string, spec: ImageSpec, timeoutMs: number): Promise<string[]> {
  await fs.writeFile(path.join(contextDir, 'Dockerfile'), dockerfileFor(spec));
  const entries = ['Dockerfile', ...(await writeContext(contextDir, spec.content))];
  return withTimeLimit('image', timeoutMs, async (abortSignal) => {
    const context = tar.c({ cwd: contextDir, portable: true }, entries);
    // The base image is local (none can be pulled here); `pull: false` keeps the engine from trying.
    // An aborted request ends the build on the engine too.
    const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, { t: spec.tag, pull: false, rm: true, forcerm: true, abortSignal });
    const output = await engineOutput(docker, stream);
    const log = output.map((line) => (line.stream ?? line.error ?? '').trimEnd()).filter(Boolean);
    const failed = output.find((line) => line.error);
    if (failed) throw new Error(`docker build failed: ${failed.error}`);
    return log;
  });
}

/** Pushes `tag` (a name under the registry) so that runners on other hosts can pull it. */
export async function pushImage(docker: Docker, tag: string, timeoutMs: number): Promise<void> {
  const at = tag.lastIndexOf(':');
  await withTimeLimit('push', timeoutMs, async (abortSignal) => {
    // The engine insists on an auth header even for a registry that needs none.
    const stream = await docker.getImage(tag.slice(0, at)).push({ tag: tag.slice(at + 1), authconfig: {}, abortSignal });
    const failed = (await engineOutput(docker, stream)).find((line) => line.error);
    if (failed) throw new Error(`docker push of ${tag} failed: ${failed.error}`);
  });
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
