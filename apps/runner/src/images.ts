import type Docker from 'dockerode';
import { coerceError, engineOutput } from '@wharf/shared';

/** Pulls in progress, so that invocations arriving together for a new image share one pull. */
const pulls = new Map<string, Promise<void>>();

/**
 * Creates the container. An image this host does not have yet is pulled first — from the registry
 * its name points to, where the builder pushed it — and stays cached on the engine. Costs nothing
 * on the usual path: the engine says when the image is missing.
 */
export async function createContainer(docker: Docker, options: Docker.ContainerCreateOptions): Promise<Docker.Container> {
  try {
    return await docker.createContainer(options);
  } catch (err) {
    if (!isMissingImage(err)) throw err;
    await pullOnce(docker, options.Image!);
    return docker.createContainer(options);
  }
}

function isMissingImage(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404 && /no such image/i.test(String((err as Error).message));
}

function pullOnce(docker: Docker, image: string): Promise<void> {
  let pull = pulls.get(image);
  if (!pull) {
    pull = pullImage(docker, image).finally(() => pulls.delete(image));
    pulls.set(image, pull);
  }
  return pull;
}

async function pullImage(docker: Docker, image: string): Promise<void> {
  try {
    const failed = (await engineOutput(docker, await docker.pull(image))).find((line) => line.error);
    if (failed) throw new Error(failed.error);
  } catch (err) {
    throw new Error(`image ${image} is not on this host and could not be pulled: ${coerceError(err).message}`);
  }
}
