/**
 * Removes an image from the registry its name points to (`host[:port]/repository:tag`, as the
 * builder pushes it), through the registry's HTTP API: the manifest's digest, then DELETE. The
 * registry must allow deletes (`storage.delete.enabled`); its garbage collection frees the layers.
 * A tag the registry does not have is not an error.
 */
export async function deleteFromRegistry(image: string): Promise<void> {
  const slash = image.indexOf('/');
  const colon = image.lastIndexOf(':');
  if (slash === -1 || colon < slash) throw new Error(`${image} does not name a registry and a tag`);
  const host = image.slice(0, slash);
  const repository = image.slice(slash + 1, colon);
  const tag = image.slice(colon + 1);
  // The engine speaks plain HTTP only to registries on loopback; so does this.
  const scheme = /^(127\.|localhost(:|$))/.test(host) ? 'http' : 'https';
  const base = `${scheme}://${host}/v2/${repository}/manifests`;
  const head = await fetch(`${base}/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  });
  if (head.status === 404) return;
  const digest = head.headers.get('docker-content-digest');
  if (!head.ok || !digest) throw new Error(`registry ${host} answered ${head.status} for ${repository}:${tag}`);
  const deleted = await fetch(`${base}/${digest}`, { method: 'DELETE' });
  if (!deleted.ok && deleted.status !== 404) throw new Error(`registry ${host} refused to delete ${repository}:${tag} (${deleted.status})`);
}
