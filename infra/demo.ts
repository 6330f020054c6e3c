/**
 * The last step of `npm run up`: signs in a demo user, deploys examples/hello when its sources
 * changed since the active version (or its image is not on this engine), invokes it, and prints
 * the curl line a user would type.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import Docker from 'dockerode';
import { WharfApiError, WharfClient, packFunction } from '@wharf/client';

const root = path.resolve(import.meta.dirname, '..');
const port = process.env.WHARF_API_PORT ?? '8080';
const baseUrl = `http://127.0.0.1:${port}`;
const tokenFile = path.join(root, '.wharf', 'demo-token');
const demo = { email: 'demo@wharf.local', password: 'wharf-demo-password' };

async function signIn(client: WharfClient): Promise<void> {
  client.token = await fs.readFile(tokenFile, 'utf8').then((t) => t.trim(), () => undefined);
  if (client.token) {
    try {
      await client.request('GET', '/api/functions/00000000-0000-4000-8000-000000000000');
    } catch (err) {
      if (err instanceof WharfApiError && err.code === 'FUNCTION_NOT_FOUND') return; // the token works
    }
  }
  try {
    await client.register(demo.email, demo.password);
  } catch (err) {
    if (!(err instanceof WharfApiError && err.code === 'EMAIL_TAKEN')) throw err;
    await client.login(demo.email, demo.password);
  }
  await fs.writeFile(tokenFile, client.token!, { mode: 0o600 });
}

const client = new WharfClient(baseUrl);
await signIn(client);
const fn = await client.initFunction('hello');
const archive = await packFunction(path.join(root, 'examples', 'hello'));
const sha256 = createHash('sha256').update(archive).digest('hex');
const current = await client.getFunction(fn.id);

// An engine that lost the image (wiped, or a fresh data root) cannot run the active version: build it again.
const imageTag = current.active_deployment?.image_tag;
const imagePresent = imageTag ? await new Docker().getImage(imageTag).inspect().then(() => true, () => false) : false;
if (current.active_deployment?.archive_sha256 === sha256 && imagePresent) {
  console.log(`hello v${current.active_version} is already deployed and active`);
} else {
  if (current.active_deployment?.archive_sha256 === sha256) console.log(`hello v${current.active_version}'s image ${imageTag} is not on this engine: deploying it again`);
  const started = Date.now();
  const { version } = await client.deploy(fn.id, archive);
  const deployment = await client.waitForDeployment(fn.id, version);
  if (deployment.status !== 'succeeded') {
    console.error(`deploying hello failed: ${deployment.error?.code}: ${deployment.error?.message}`);
    process.exit(1);
  }
  console.log(`deployed hello v${version} in ${Date.now() - started} ms`);
}

const res = await client.invoke(fn.id);
console.log(`invoked hello: HTTP ${res.status} ${res.body} (${res.headers.get('x-wharf-duration-ms')} ms in the container)`);
if (res.status !== 200) process.exit(1);
console.log('\nTry it yourself:');
console.log(`  curl -s -H "Authorization: Bearer $(cat .wharf/demo-token)" '${baseUrl}/fn/${fn.name}?name=you'`);
console.log(`\nLogs: .wharf/logs/{api,builder,runner}.log   Stop: npm run down`);
