// The Helm charts, rendered by the real helm binary over the values matrix in each chart's ci/
// folder, and every rendered object validated against the Kubernetes schemas.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { charts, ciValuesFiles, find, helm, render, template, validateManifest, type Manifest } from './helm.js';
import { schemaTextFor, type JsonSchema } from './schema.js';
import { parser as promql } from '@prometheus-io/lezer-promql';
import { GatewayMetrics } from '@cairn/gateway';
import { WorkerMetrics } from '@cairn/worker';

const dataPlane = charts[0];
const controlPlane = charts[1];
/**
 * The Secret a `<name>_FILE` variable reads from: the secret volume mounted (read-only) where its
 * path points. Undefined when the variable is missing, or the file is not in a read-only Secret.
 */
function fileSecretOf(pod: PodSpec, c: Container, name: string): string | undefined {
  const path = c.env?.find((e) => e.name === `${name}_FILE`)?.value;
  if (path === undefined || c.env?.some((e) => e.name === name)) return undefined;
  const mount = (c.volumeMounts ?? []).find((m) => path.startsWith(`${m.mountPath}/`));
  if (mount?.readOnly !== true) return undefined;
  return pod.volumes?.find((v) => v.name === mount.name)?.secret?.secretName;
}

/** A container's volume mounts. */
const mountsOf = (c: Container) => c.volumeMounts ?? [];
const dpCi = (name: string) => join(dataPlane.dir, 'ci', `${name}-values.yaml`);
const cpCi = (name: string) => join(controlPlane.dir, 'ci', `${name}-values.yaml`);

interface Container {
  name: string;
  image: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports?: Array<{ name: string; containerPort: number }>;
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[] } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  startupProbe?: { httpGet?: { path: string; port: string | number } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  volumes?: Array<{ name: string; secret?: { secretName?: string } }>;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, unknown>;
  containers: Container[];
}

const podSpec = (m: Manifest): PodSpec | undefined => {
  if (m.kind === 'Pod') return m['spec'] as PodSpec;
  if (['Deployment', 'StatefulSet', 'Job'].includes(m.kind)) return (m['spec'] as { template: { spec: PodSpec } }).template.spec;
  if (m.kind === 'CronJob') return (m['spec'] as { jobTemplate: { spec: { template: { spec: PodSpec } } } }).jobTemplate.spec.template.spec;
  return undefined;
};
const env = (c: Container, name: string) => c.env?.find((e) => e.name === name)?.value;

interface Rule {
  to?: Array<{ ipBlock?: { cidr: string }; namespaceSelector?: unknown; podSelector?: unknown }>;
  from?: unknown[];
  ports?: Array<{ protocol: string; port: number }>;
}

describe('helm charts', () => {
  for (const chart of charts) {
    describe(chart.name, () => {
      it('has a values.schema.json generated from values.yaml, with a description on every value', async () => {
        const text = readFileSync(join(chart.dir, 'values.schema.json'), 'utf8');
        assert.equal(text, await schemaTextFor(chart.dir, chart.title), 'run `node --import tsx test/src/helm/generate-schema.ts`');
        const schema = JSON.parse(text) as JsonSchema;
        const undocumented: string[] = [];
        const walk = (s: JsonSchema, path: string) => {
          const props = s['properties'] as Record<string, JsonSchema> | undefined;
          // `global` alone stays open: Helm passes a parent chart's globals to its subcharts.
          if (s['type'] === 'object' && props && path !== 'global')
            assert.equal(s['additionalProperties'], false, `${path || '(root)'} is closed`);
          for (const [k, v] of Object.entries(props ?? {})) {
            const where = path ? `${path}.${k}` : k;
            if (typeof v['description'] !== 'string' || v['description'].length < 5) undocumented.push(where);
            walk(v, where);
          }
        };
        walk(schema, '');
        assert.deepEqual(undocumented, []);
      });

      for (const file of ciValuesFiles(chart.dir)) {
        const name = file.slice(file.lastIndexOf('/') + 1);
        it(`passes helm lint --strict and renders valid Kubernetes objects with ci/${name}`, async () => {
          const lint = helm(['lint', '--strict', chart.dir, '--values', file]);
          assert.equal(lint.status, 0, `helm lint failed:\n${lint.stdout}${lint.stderr}`);
          const manifests = render(chart.dir, [file]);
          assert.ok(
            manifests.some((m) => m.kind === 'Deployment'),
            `renders a Deployment: ${manifests.map((m) => m.kind).join(', ')}`,
          );
          for (const m of manifests) {
            const error = await validateManifest(m);
            assert.equal(error, null, `${m.kind}/${m.metadata.name}: ${error?.message}`);
            assert.equal(
              m.metadata.labels?.['app.kubernetes.io/managed-by'],
              'Helm',
              `${m.kind}/${m.metadata.name} has the standard labels`,
            );
          }
          assertSecureDefaults(manifests);
          assertNoOpenNetworkPolicy(manifests);
        });
      }
    });
  }

  describe('cairn-data-plane', () => {
    const manifests = render(dataPlane.dir, [dpCi('default')]);
    const worker = find(manifests, 'Deployment', '-worker');
    const gateway = find(manifests, 'Deployment', '-gateway');
    const workerPod = podSpec(worker)!;
    const workerContainer = workerPod.containers[0]!;
    const gatewayContainer = podSpec(gateway)!.containers[0]!;

    it('limits worker egress to the control plane, the payload store, DNS and the listed model endpoints', () => {
      const policy = find(manifests, 'NetworkPolicy', '-worker');
      const spec = policy['spec'] as {
        podSelector: { matchLabels: Record<string, string> };
        policyTypes: string[];
        ingress: unknown[];
        egress: Rule[];
      };
      assert.deepEqual(spec.policyTypes, ['Ingress', 'Egress']);
      assert.deepEqual(spec.ingress, [], 'workers accept no connections');
      assert.deepEqual(spec.podSelector.matchLabels, (worker['spec'] as { selector: { matchLabels: unknown } }).selector.matchLabels);
      const rules = spec.egress.map((r) => ({
        to: (r.to ?? []).map((t) => t.ipBlock?.cidr ?? JSON.stringify({ ns: t.namespaceSelector, pod: t.podSelector })),
        ports: (r.ports ?? []).map((p) => `${p.protocol}/${p.port}`),
      }));
      const dns = JSON.stringify({
        ns: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
        pod: { matchLabels: { 'k8s-app': 'kube-dns' } },
      });
      assert.deepEqual(rules, [
        { to: ['203.0.113.10/32', '203.0.113.11/32'], ports: ['TCP/443'] },
        { to: ['10.20.0.0/24'], ports: ['TCP/5432'] },
        { to: [dns], ports: ['UDP/53', 'TCP/53'] },
        { to: ['198.51.100.0/24'], ports: ['TCP/443'] },
      ]);
    });

    it('admits gateway traffic only from its client label and the configured sources, and KEDA only to the scaler port', () => {
      const spec = find(manifests, 'NetworkPolicy', '-gateway')['spec'] as { ingress: Rule[]; egress: Rule[] };
      assert.deepEqual(spec.ingress, [
        { from: [{ podSelector: { matchLabels: { 'cairn-cairn-data-plane-client': 'true' } } }], ports: [{ protocol: 'TCP', port: 8081 }] },
      ]);
      assert.equal(spec.egress.length, 3, 'control plane, payload store, DNS');

      const keda = render(dataPlane.dir, [dpCi('keda')]);
      const kedaSpec = find(keda, 'NetworkPolicy', '-gateway')['spec'] as { ingress: Rule[] };
      assert.deepEqual(kedaSpec.ingress[1], {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keda' } } }],
        ports: [{ protocol: 'TCP', port: 9090 }],
      });
      const evaluation = render(dataPlane.dir, [dpCi('evaluation')]);
      const evalSpec = find(evaluation, 'NetworkPolicy', '-gateway')['spec'] as { ingress: Rule[] };
      assert.deepEqual(evalSpec.ingress[0]!.from![1], {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
      });
      const pg = find(evaluation, 'NetworkPolicy', '-postgresql')['spec'] as { ingress: Rule[]; egress: Rule[] };
      assert.equal(pg.ingress[0]!.from!.length, 3, 'worker, gateway and migration pods reach the evaluation Postgres');
      assert.deepEqual(pg.egress, []);
    });

    it('probes the worker health port and the gateway health endpoints', () => {
      const port = workerContainer.ports!.find((p) => p.name === 'health')!.containerPort;
      assert.equal(env(workerContainer, 'CAIRN_WORKER_HEALTH_PORT'), String(port));
      assert.deepEqual(workerContainer.livenessProbe!.httpGet, { path: '/healthz', port: 'health' });
      assert.deepEqual(workerContainer.readinessProbe!.httpGet, { path: '/readyz', port: 'health' });
      assert.deepEqual(workerContainer.startupProbe!.httpGet, { path: '/healthz', port: 'health' });
      assert.deepEqual(gatewayContainer.livenessProbe!.httpGet, { path: '/healthz', port: 'http' });
      assert.deepEqual(gatewayContainer.readinessProbe!.httpGet, { path: '/readyz', port: 'http' });
      const cp = podSpec(find(render(controlPlane.dir, [cpCi('default')]), 'Deployment', 'control-plane'))!.containers[0]!;
      assert.deepEqual(cp.livenessProbe!.httpGet, { path: '/healthz', port: 'http' });
      assert.deepEqual(cp.readinessProbe!.httpGet, { path: '/readyz', port: 'http' });
    });

    it("sets the gateway's allowed CORS origins (the console's origin) from gateway.corsOrigins, and none by default", () => {
      assert.equal(env(gatewayContainer, 'CAIRN_GATEWAY_CORS_ORIGINS'), undefined, 'no origin is allowed unless configured');
      const withConsole = render(
        dataPlane.dir,
        [dpCi('default')],
        ['gateway.corsOrigins={https://cairn.example.com,http://localhost:8080}'],
      );
      const container = podSpec(find(withConsole, 'Deployment', '-gateway'))!.containers[0]!;
      assert.equal(env(container, 'CAIRN_GATEWAY_CORS_ORIGINS'), 'https://cairn.example.com,http://localhost:8080');
    });

    it('drains workers within terminationGracePeriodSeconds', () => {
      const drainMs = Number(env(workerContainer, 'CAIRN_DRAIN_TIMEOUT_MS'));
      assert.ok(drainMs > 0 && drainMs < workerPod.terminationGracePeriodSeconds! * 1000, `drain ${drainMs} ms within the grace period`);
      const strategy = (worker['spec'] as { strategy: { rollingUpdate: { maxUnavailable: number } } }).strategy;
      assert.equal(strategy.rollingUpdate.maxUnavailable, 0, 'a rollout starts a new worker before an old one drains');
    });

    it('derives the grace period from the drain bound, so a longer bound for agent work never outlasts it', () => {
      const drainAndGrace = (set: string[]) => {
        const pod = podSpec(find(render(dataPlane.dir, [dpCi('default')], set), 'Deployment', '-worker'))!;
        return [env(pod.containers[0]!, 'CAIRN_DRAIN_TIMEOUT_MS'), pod.terminationGracePeriodSeconds];
      };
      assert.deepEqual(drainAndGrace([]), ['45000', 60], 'the defaults: 45 s of drain, 15 s to close');
      assert.deepEqual(drainAndGrace(['worker.drainTimeoutSeconds=900']), ['900000', 915], 'a 15-minute bound for long model calls');
      assert.deepEqual(drainAndGrace(['worker.drainTimeoutSeconds=900', 'worker.terminationGracePeriodSeconds=960']), ['900000', 960]);
      const r = template(dataPlane.dir, [dpCi('default')], ['worker.drainTimeoutSeconds=900', 'worker.terminationGracePeriodSeconds=600']);
      assert.notEqual(r.status, 0, 'a grace period shorter than the drain is refused');
      assert.match(r.stderr, /worker.terminationGracePeriodSeconds \(600\) must be at least worker.drainTimeoutSeconds \(900\) \+ 5/);
      // NOTES.txt says what happens past the bound, with the release's numbers.
      const install = helm([
        'install',
        'cairn',
        dataPlane.dir,
        '--namespace',
        'cairn',
        '--dry-run=client',
        '--values',
        dpCi('default'),
        '--set',
        'worker.drainTimeoutSeconds=900',
      ]);
      assert.equal(install.status, 0, install.stderr);
      const notes = install.stdout.slice(install.stdout.indexOf('NOTES:')).replace(/\s+/g, ' ');
      assert.match(notes, /waits up to 900 s \(worker.drainTimeoutSeconds\)/);
      assert.match(
        notes,
        /one still running after that is given back unfinished and runs again on another worker \(a model call is paid twice\)/,
      );
      assert.match(notes, /the grace period is 915 s/);
    });

    it('has PodDisruptionBudgets selecting the workers and the gateway', () => {
      for (const [deployment, suffix] of [
        [worker, '-worker'],
        [gateway, '-gateway'],
      ] as const) {
        const pdb = find(manifests, 'PodDisruptionBudget', suffix)['spec'] as {
          maxUnavailable: number;
          selector: unknown;
          unhealthyPodEvictionPolicy: string;
        };
        assert.equal(pdb.maxUnavailable, 1);
        // Pods made unready by an outage (control plane, payload store) never block a node drain.
        assert.equal(pdb.unhealthyPodEvictionPolicy, 'AlwaysAllow');
        assert.deepEqual(pdb.selector, (deployment['spec'] as { selector: unknown }).selector);
      }
      const evaluation = render(dataPlane.dir, [dpCi('evaluation')]);
      assert.deepEqual(find(evaluation, 'PodDisruptionBudget', '-worker')['spec'], {
        minAvailable: 1,
        unhealthyPodEvictionPolicy: 'AlwaysAllow',
        selector: (find(evaluation, 'Deployment', '-worker')['spec'] as { selector: unknown }).selector,
      });
      assert.ok(!render(dataPlane.dir, [dpCi('workers-only')]).some((m) => m.kind === 'PodDisruptionBudget'));
    });

    it('wires secrets as read-only files from Secrets, never as environment values', () => {
      const gatewayContainer = podSpec(find(manifests, 'Deployment', '-gateway'))!.containers[0]!;
      for (const [container, names] of [
        [workerContainer, ['CAIRN_DP_CREDENTIAL', 'CAIRN_DP_DATABASE_URL', 'CAIRN_DP_ENCRYPTION_KEYS', 'CAIRN_DP_HMAC_KEY']],
        [
          gatewayContainer,
          ['CAIRN_DP_CREDENTIAL', 'CAIRN_DP_DATABASE_URL', 'CAIRN_DP_ENCRYPTION_KEYS', 'CAIRN_DP_HMAC_KEY', 'CAIRN_GATEWAY_TOKENS'],
        ],
      ] as const) {
        for (const name of names) {
          assert.equal(
            container.env!.find((e) => e.name === name),
            undefined,
            `${name} is not in the environment`,
          );
          const path = env(container, `${name}_FILE`);
          assert.match(String(path), /^\/etc\/cairn\/secrets\//, `${name}_FILE points into a mounted Secret`);
          const mount = mountsOf(container).find((m) => String(path).startsWith(`${m.mountPath}/`));
          assert.equal(mount?.readOnly, true, `${name}'s Secret is mounted read-only`);
        }
      }
      assert.equal(env(workerContainer, 'CAIRN_CP_GRPC_ADDRESS'), 'cairn.example.com:443');
      assert.equal(env(workerContainer, 'CAIRN_CP_TLS'), 'true');
      const keys = find(render(dataPlane.dir, [dpCi('keda')]), 'Secret', '-encryption');
      assert.equal(keys.metadata.annotations?.['helm.sh/resource-policy'], 'keep', 'uninstall keeps the encryption keys');
    });

    it('migrates the payload store in a hook Job and tests the gateway-to-control-plane path with helm test', () => {
      const job = find(manifests, 'Job', '-migrate-1');
      assert.equal(job.metadata.annotations?.['helm.sh/hook'], 'post-install,pre-upgrade');
      const container = podSpec(job)!.containers[0]!;
      assert.deepEqual((container as unknown as { args: string[] }).args, ['migrate']);
      assert.deepEqual(
        container.env!.map((e) => e.name),
        ['CAIRN_DP_DATABASE_URL_FILE', 'CAIRN_DP_ENCRYPTION_KEYS_FILE', 'CAIRN_LOG_LEVEL'],
        'the migration needs no credential',
      );
      assert.equal(job.metadata.annotations?.['argocd.argoproj.io/hook'], undefined, 'Helm hooks only by default');
      const argo = find(render(dataPlane.dir, [dpCi('default')], ['migration.argoCdHook=PreSync']), 'Job', '-migrate-1');
      assert.equal(argo.metadata.annotations?.['argocd.argoproj.io/hook'], 'PreSync', 'one run per Argo CD sync, before the rest');
      const test = find(manifests, 'Pod', '-test-gateway');
      assert.equal(test.metadata.annotations?.['helm.sh/hook'], 'test');
      assert.equal(test.metadata.labels?.['cairn-cairn-data-plane-client'], 'true', 'the NetworkPolicy lets the test pod in');
      const script = (podSpec(test)!.containers[0] as unknown as { command: string[] }).command.join(' ');
      assert.match(script, /CAIRN-1105/);
    });

    it('in envelope mode gives pods only wrapped keys and the key-encryption key as files; migrates as the owner and grants the service role', () => {
      const envelope = render(dataPlane.dir, [dpCi('envelope')]);
      for (const suffix of ['-worker', '-gateway']) {
        const container = podSpec(find(envelope, 'Deployment', suffix))!.containers[0]!;
        const names = container.env!.map((e) => e.name);
        assert.ok(!names.includes('CAIRN_DP_ENCRYPTION_KEYS') && !names.includes('CAIRN_DP_ENCRYPTION_KEYS_FILE'), 'no unwrapped key');
        assert.equal(env(container, 'CAIRN_DP_WRAPPED_ENCRYPTION_KEYS_FILE'), '/etc/cairn/secrets/keys/wrapped-encryption-keys');
        assert.equal(env(container, 'CAIRN_DP_KMS'), 'file');
        assert.equal(env(container, 'CAIRN_DP_KMS_KEY_FILE'), '/etc/cairn/secrets/kek/kek');
        assert.equal(mountsOf(container).find((m) => m.mountPath === '/etc/cairn/secrets/kek')?.readOnly, true);
        assert.doesNotMatch(
          JSON.stringify(podSpec(find(envelope, 'Deployment', suffix))),
          /cairn-payload-store-owner/,
          'pods never see the owner',
        );
      }
      const job = podSpec(find(envelope, 'Job', '-migrate-1'))!;
      const migrate = job.containers[0]!;
      assert.equal(env(migrate, 'CAIRN_DP_MIGRATION_DATABASE_URL_FILE'), '/etc/cairn/secrets/payload-store-owner/url');
      assert.equal(env(migrate, 'CAIRN_DP_SERVICE_ROLE'), 'cairn_dp_service');
      assert.ok((job.volumes ?? []).some((v) => v.secret?.secretName === 'cairn-payload-store-owner'));
      assert.throws(
        () => render(dataPlane.dir, [dpCi('envelope')], ['encryption.envelope.keyEncryptionKeySecret=']),
        /keyEncryptionKeySecret/,
      );
    });

    it('scales workers with KEDA through the gateway’s external scaler when asked', () => {
      const keda = render(dataPlane.dir, [dpCi('keda')]);
      const scaled = find(keda, 'ScaledObject', '-worker');
      const kedaWorker = find(keda, 'Deployment', '-worker');
      assert.equal((kedaWorker['spec'] as { replicas?: number }).replicas, undefined, 'KEDA owns the replica count');
      assert.deepEqual(scaled['spec'], {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: kedaWorker.metadata.name },
        minReplicaCount: 0,
        maxReplicaCount: 50,
        pollingInterval: 15,
        cooldownPeriod: 300,
        // The scaler failing (gateway or control plane unreachable) keeps 2 workers, not the last answer.
        fallback: { failureThreshold: 3, replicas: 2 },
        // Scale-down is gradual: each worker removed drains its runs first.
        advanced: {
          horizontalPodAutoscalerConfig: {
            behavior: { scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Percent', value: 25, periodSeconds: 60 }] } },
          },
        },
        triggers: [
          {
            type: 'external-push',
            metadata: {
              scalerAddress: 'cairn-cairn-data-plane-gateway.cairn.svc:9090',
              taskQueues: 'default,emails',
              targetRunsPerReplica: '10',
            },
          },
        ],
      });
      const gw = podSpec(find(keda, 'Deployment', '-gateway'))!.containers[0]!;
      assert.equal(env(gw, 'CAIRN_GATEWAY_SCALER_PORT'), '9090');
      const service = find(keda, 'Service', '-gateway')['spec'] as { ports: Array<{ name: string; port: number }> };
      assert.deepEqual(
        service.ports.map((p) => `${p.name}:${p.port}`),
        ['http:80', 'scaler:9090'],
      );
      assert.ok(!manifests.some((m) => m.kind === 'ScaledObject' || m.kind === 'HorizontalPodAutoscaler'), 'autoscaling is opt-in');
      const tuned = find(
        render(
          dataPlane.dir,
          [dpCi('keda')],
          ['worker.autoscaling.keda.fallback.behavior=currentReplicasIfHigher', 'worker.autoscaling.keda.fallback.replicas=5'],
        ),
        'ScaledObject',
        '-worker',
      )['spec'] as { fallback: unknown };
      assert.deepEqual(tuned.fallback, { failureThreshold: 3, replicas: 5, behavior: 'currentReplicasIfHigher' });
      const noFallback = find(
        render(dataPlane.dir, [dpCi('keda')], ['worker.autoscaling.keda.fallback.enabled=false']),
        'ScaledObject',
        '-worker',
      );
      assert.equal((noFallback['spec'] as { fallback?: unknown }).fallback, undefined);
      const hpa = find(render(dataPlane.dir, [dpCi('evaluation')]), 'HorizontalPodAutoscaler', '-worker');
      assert.equal((hpa['spec'] as { maxReplicas: number }).maxReplicas, 6);
    });

    it('sends workers and the gateway through an HTTP proxy when given one, and lets them reach only it', () => {
      assert.equal(env(workerContainer, 'HTTPS_PROXY'), undefined, 'no proxy by default');
      const set = [
        'proxy.url=http://proxy.corp.example:3128',
        'proxy.networkPolicy.cidrs={10.40.0.7/32}',
        'networkPolicy.controlPlane.cidrs=null',
        'networkPolicy.worker.modelEndpoints=null',
      ];
      const proxied = render(dataPlane.dir, [dpCi('default')], set);
      for (const suffix of ['-worker', '-gateway']) {
        const c = podSpec(find(proxied, 'Deployment', suffix))!.containers[0]!;
        assert.deepEqual(
          ['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY'].map((n) => env(c, n)),
          ['http://proxy.corp.example:3128', 'http://proxy.corp.example:3128', '.svc,.cluster.local,localhost,127.0.0.1'],
        );
        const egress = (find(proxied, 'NetworkPolicy', suffix)['spec'] as { egress: Rule[] }).egress;
        assert.deepEqual(
          egress.map(
            (r) => `${(r.to ?? []).map((p) => p.ipBlock?.cidr ?? 'peer').join(',')}:${(r.ports ?? []).map((p) => p.port).join(',')}`,
          ),
          ['10.40.0.7/32:3128', '10.20.0.0/24:5432', 'peer:53,53'],
          `${suffix}: the proxy, the payload store and DNS, nothing else`,
        );
      }
      for (const m of proxied)
        assert.doesNotMatch(JSON.stringify(m), /"to":\[\]/, `${m.kind}/${m.metadata.name} has no rule open to everything`);
      const r = template(dataPlane.dir, [dpCi('default')], ['proxy.url=http://proxy.corp.example:3128']);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /proxy.networkPolicy.cidrs \(or .peers\) is required with proxy.url/);
      const bad = template(dataPlane.dir, [dpCi('default')], ['proxy.url=proxy.corp.example:3128']);
      assert.match(bad.stderr, /at '\/proxy\/url'/);
    });

    it('refuses bad values with a message naming the value', () => {
      const cases: Array<[string[], RegExp]> = [
        [['worker.replicas=-1'], /at '\/worker\/replicas': minimum: got -1, want 0/],
        [['worker.image.pullPolicy=Sometimes'], /at '\/worker\/image\/pullPolicy'/],
        [['gateway.replcias=3'], /at '\/gateway': additional properties 'replcias' not allowed/],
        [['networkPolicy.controlPlane.cidrs[0]=cairn.example.com'], /at '\/networkPolicy\/controlPlane\/cidrs\/0'/],
        [
          ['networkPolicy.worker.modelEndpoints[1].cidr=10.0.0.0/8'],
          /at '\/networkPolicy\/worker\/modelEndpoints\/1': missing property 'ports'/,
        ],
        [['dataPlane.id=not-a-uuid'], /at '\/dataPlane\/id'/],
        [['gateway.corsOrigins={https://cairn.example.com/console}'], /at '\/gateway\/corsOrigins\/0'/],
        [['controlPlane.address=no-port'], /at '\/controlPlane\/address'/],
        [['worker.drainTimeoutSeconds=60', 'worker.terminationGracePeriodSeconds=60'], /at least worker.drainTimeoutSeconds \(60\) \+ 5/],
        [['worker.autoscaling.keda.fallback.behavior=sometimes'], /at '\/worker\/autoscaling\/keda\/fallback\/behavior'/],
        [['worker.pdb.unhealthyPodEvictionPolicy=Never'], /at '\/worker\/pdb\/unhealthyPodEvictionPolicy'/],
        [['worker.autoscaling.hpa.enabled=true', 'worker.autoscaling.keda.enabled=true'], /choose one/],
        [['controlPlane.address='], /controlPlane.address is required/],
        [['payloadStore.existingSecret='], /payloadStore.existingSecret is required/],
        [['networkPolicy.controlPlane.cidrs=null'], /networkPolicy.controlPlane.cidrs \(or .peers\) is required/],
        [['metrics.serviceMonitor.interval=often'], /at '\/metrics\/serviceMonitor\/interval'/],
        [
          ['metrics.prometheusRule.thresholds.commitLatencyP99Seconds=0'],
          /at '\/metrics\/prometheusRule\/thresholds\/commitLatencyP99Seconds'/,
        ],
        [['metrics.grafanaDashboard.enabeld=true'], /at '\/metrics\/grafanaDashboard': additional properties 'enabeld' not allowed/],
      ];
      for (const [set, message] of cases) {
        const r = template(dataPlane.dir, [dpCi('default')], set);
        assert.notEqual(r.status, 0, `${set.join(' ')} is refused`);
        assert.match(r.stderr, message, `${set.join(' ')}: ${r.stderr}`);
      }
    });
  });

  describe('cairn-data-plane monitoring', () => {
    const monitored = render(dataPlane.dir, [dpCi('monitoring')]);
    /** Every metric name the worker and the gateway serve (histograms with their series suffixes). */
    const served = async (): Promise<Set<string>> => {
      const names = new Set([
        'cairn_dp_listener_connected',
        'cairn_dp_listener_reconnects_total',
        'cairn_dp_listener_reconnect_failures_total',
      ]);
      for (const registry of [new WorkerMetrics({ decryptFailures: 0 }).registry, new GatewayMetrics({ decryptFailures: 0 }).registry]) {
        for (const metric of await registry.getMetricsAsJSON()) {
          names.add(metric.name);
          if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_count', '_sum']) names.add(`${metric.name}${suffix}`);
        }
      }
      return names;
    };
    /** The metric names an expression selects; fails on an expression PromQL does not parse. */
    const metricsOf = (expr: string): string[] => {
      const tree = promql.parse(expr);
      const names: string[] = [];
      let broken = false;
      tree.iterate({
        enter(node) {
          if (node.type.isError) broken = true;
          const id = node.name === 'VectorSelector' ? node.node.getChild('Identifier') : null;
          if (id) names.push(expr.slice(id.from, id.to));
        },
      });
      assert.equal(broken, false, `PromQL parses: ${expr}`);
      return names;
    };

    it('creates nothing for Prometheus or Grafana unless asked', () => {
      const plain = render(dataPlane.dir, [dpCi('default')]);
      const kinds = plain.map((m) => `${m.kind}/${m.metadata.name}`);
      assert.equal(plain.filter((m) => ['ServiceMonitor', 'PrometheusRule'].includes(m.kind)).length, 0, kinds.join(', '));
      assert.equal(
        kinds.some((k) => k.endsWith('-dashboard') || k.endsWith('-worker-metrics')),
        false,
      );
    });

    it('points a ServiceMonitor at each worker pod and at the gateway, on the ports that serve /metrics', () => {
      const workerService = find(monitored, 'Service', '-worker-metrics');
      const gatewayService = find(monitored, 'Service', '-gateway');
      const services = [workerService, gatewayService];
      const workerPorts = podSpec(find(monitored, 'Deployment', '-worker'))!.containers[0]!.ports!.map((p) => p.name);
      assert.equal((workerService['spec'] as { clusterIP?: string }).clusterIP, 'None', 'every worker pod is a target');
      const monitors = monitored.filter((m) => m.kind === 'ServiceMonitor');
      assert.deepEqual(monitors.map((m) => m.metadata.name).sort(), ['cairn-cairn-data-plane-gateway', 'cairn-cairn-data-plane-worker']);
      for (const monitor of monitors) {
        assert.equal(monitor.metadata.labels?.['release'], 'kube-prometheus-stack', 'the Prometheus selecting it finds its label');
        const spec = monitor['spec'] as {
          selector: { matchLabels: Record<string, string> };
          endpoints: Array<{ port: string; path: string }>;
        };
        const selected = services.filter((s) => Object.entries(spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v));
        assert.equal(selected.length, 1, `${monitor.metadata.name} selects one Service`);
        const ports = (selected[0]!['spec'] as { ports: Array<{ name: string; targetPort: string }> }).ports;
        for (const endpoint of spec.endpoints) {
          assert.equal(endpoint.path, '/metrics');
          const port = ports.find((p) => p.name === endpoint.port);
          assert.ok(port, `${monitor.metadata.name}: the Service has port ${endpoint.port}`);
          if (selected[0] === workerService) assert.ok(workerPorts.includes(port.targetPort), 'the worker container names the target port');
        }
      }
    });

    it('lets only metrics.scrapeFrom reach the metrics ports through the NetworkPolicies', () => {
      const peer = {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
      };
      const ingressOf = (suffix: string) =>
        (find(monitored, 'NetworkPolicy', suffix)['spec'] as { ingress: Array<{ from: unknown[]; ports: Array<{ port: number }> }> })
          .ingress;
      assert.deepEqual(ingressOf('-worker'), [{ from: [peer], ports: [{ protocol: 'TCP', port: 8090 }] }]);
      assert.ok(ingressOf('-gateway').some((rule) => JSON.stringify(rule.from) === JSON.stringify([peer]) && rule.ports[0]?.port === 8081));
      const plain = render(dataPlane.dir, [dpCi('default')]);
      assert.deepEqual((find(plain, 'NetworkPolicy', '-worker')['spec'] as { ingress: unknown[] }).ingress, [], 'no scrapes unless asked');
    });

    it('alerts on a stream down, the lease loss rate, the backlog age, slow commits and decrypt failures, over metrics the pods serve', async () => {
      const rule = find(monitored, 'PrometheusRule', 'cairn-data-plane');
      const rules = (
        rule['spec'] as {
          groups: Array<{
            rules: Array<{ alert: string; expr: string; labels: Record<string, string>; annotations: Record<string, string> }>;
          }>;
        }
      ).groups.flatMap((g) => g.rules);
      assert.deepEqual(
        rules.map((r) => r.alert),
        [
          'CairnWorkerStreamDown',
          'CairnGatewayControlPlaneUnreachable',
          'CairnLeaseLossRate',
          'CairnBacklogAge',
          'CairnJournalCommitSlow',
          'CairnDecryptFailures',
        ],
      );
      const known = await served();
      for (const r of rules) {
        const names = metricsOf(r.expr);
        assert.ok(names.length > 0, `${r.alert} selects a metric`);
        for (const name of names) assert.ok(known.has(name), `${r.alert}: ${name} is served by the worker or the gateway`);
        assert.match(r.expr, /namespace="cairn", job=~?"cairn-cairn-data-plane-/, `${r.alert} selects this release's pods`);
        assert.ok(['critical', 'warning'].includes(r.labels['severity'] ?? ''), `${r.alert} has a severity`);
        assert.equal(r.labels['team'], 'payments', 'alertLabels are added');
        assert.ok((r.annotations['description'] ?? '').length > 80, `${r.alert} says what to check`);
      }
      const expr = (name: string) => rules.find((r) => r.alert === name)!.expr;
      assert.match(expr('CairnBacklogAge'), /> 900$/, 'backlogAgeMinutes in seconds');
      assert.match(expr('CairnJournalCommitSlow'), /> 0\.25$/);
      const tuned = render(dataPlane.dir, [dpCi('monitoring')], ['metrics.prometheusRule.thresholds.backlogAgeMinutes=60']);
      assert.match(
        (
          find(tuned, 'PrometheusRule', 'cairn-data-plane')['spec'] as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
        ).groups[0]!.rules.find((r) => r.alert === 'CairnBacklogAge')!.expr,
        /> 3600$/,
      );
    });

    it('ships a Grafana dashboard for the sidecar whose every query selects metrics the pods serve', async () => {
      const configMap = find(monitored, 'ConfigMap', '-dashboard');
      assert.equal(configMap.metadata.namespace, 'monitoring');
      assert.equal(configMap.metadata.labels?.['grafana_dashboard'], '1', "the sidecar's usual label");
      assert.equal(configMap.metadata.annotations?.['grafana_folder'], 'Cairn');
      const dashboard = JSON.parse((configMap['data'] as Record<string, string>)['cairn-data-plane.json']!) as {
        uid: string;
        panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>;
      };
      assert.equal(dashboard.uid, 'cairn-data-plane');
      const known = await served();
      const seen = new Set<string>();
      for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
        assert.ok((panel.targets ?? []).length > 0, `${panel.title} has a query`);
        for (const target of panel.targets ?? []) {
          // Grafana's variables stand in for a range and a namespace.
          const expr = target.expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', 'default');
          for (const name of metricsOf(expr)) {
            assert.ok(known.has(name), `${panel.title}: ${name} is served by the worker or the gateway`);
            seen.add(name.replace(/_(bucket|count|sum)$/, ''));
          }
        }
      }
      for (const name of [
        'cairn_worker_model_tokens_total',
        'cairn_worker_journal_commit_duration_seconds',
        'cairn_task_queue_oldest_queued_age_seconds',
        'cairn_dp_decrypt_failures_total',
      ]) {
        assert.ok(seen.has(name), `the dashboard shows ${name}`);
      }
    });
  });

  describe('cairn-control-plane', () => {
    const manifests = render(controlPlane.dir, [cpCi('default')]);

    it('scrapes the metrics port with an opt-in ServiceMonitor, sending the metrics token when one is configured', () => {
      assert.equal(render(controlPlane.dir, [cpCi('default')]).filter((m) => m.kind === 'ServiceMonitor').length, 0, 'opt-in');
      const airgapped = render(controlPlane.dir, [cpCi('airgapped')]);
      const monitor = find(airgapped, 'ServiceMonitor', 'cairn-control-plane');
      const spec = monitor['spec'] as {
        selector: { matchLabels: Record<string, string> };
        endpoints: Array<{ port: string; path: string; authorization?: { type: string; credentials: { name: string; key: string } } }>;
      };
      const service = find(airgapped, 'Service', 'cairn-control-plane');
      assert.ok(
        Object.entries(spec.selector.matchLabels).every(([k, v]) => service.metadata.labels?.[k] === v),
        'selects the Service',
      );
      assert.ok((service['spec'] as { ports: Array<{ name: string }> }).ports.some((p) => p.name === 'metrics'));
      assert.deepEqual(
        spec.endpoints.map((e) => [e.port, e.path, e.authorization]),
        [['metrics', '/metrics', { type: 'Bearer', credentials: { name: 'cairn-cp-metrics', key: 'token' } }]],
      );
      const off = template(controlPlane.dir, [cpCi('default')], ['metrics.serviceMonitor.enabled=true', 'metrics.enabled=false']);
      assert.notEqual(off.status, 0);
      assert.match(off.stderr, /metrics.serviceMonitor.enabled needs metrics.enabled/);
    });

    it('serves HTTP and gRPC, migrates before install and upgrade, and has a PDB and a helm test', () => {
      const deployment = find(manifests, 'Deployment', 'control-plane');
      const container = podSpec(deployment)!.containers[0]!;
      assert.deepEqual(
        container.ports!.map((p) => `${p.name}:${p.containerPort}`),
        ['http:8080', 'grpc:7233', 'metrics:9464'],
      );
      // Metrics on a port of their own; the REST port an Ingress may publish never serves them openly.
      assert.equal(env(container, 'CAIRN_CP_METRICS_PORT'), '9464');
      assert.equal(
        container.env!.find((e) => e.name === 'CAIRN_METRICS_TOKEN' || e.name === 'CAIRN_METRICS_TOKEN_FILE'),
        undefined,
      );
      // Secrets are read-only files, never environment values.
      assert.equal(
        container.env!.find((e) => e.name === 'CAIRN_BOOTSTRAP_ADMIN_KEY'),
        undefined,
      );
      assert.equal(fileSecretOf(podSpec(deployment)!, container, 'CAIRN_BOOTSTRAP_ADMIN_KEY'), 'cairn-cp-bootstrap');
      const shutdownMs = Number(env(container, 'CAIRN_SHUTDOWN_TIMEOUT_MS'));
      assert.ok(shutdownMs < podSpec(deployment)!.terminationGracePeriodSeconds! * 1000);
      const job = find(manifests, 'Job', '-migrate-1');
      assert.equal(job.metadata.annotations?.['helm.sh/hook'], 'pre-install,pre-upgrade');
      assert.equal(podSpec(job)!.automountServiceAccountToken, false);
      // Audit-log retention runs as the schema owner, never with the service role's Secret.
      const retention = podSpec(find(manifests, 'CronJob', '-audit-retention'))!;
      const pruner = retention.containers[0]!;
      assert.deepEqual(
        [env(pruner, 'CAIRN_CP_AUDIT_RETENTION_DAYS'), env(pruner, 'CAIRN_AUDIT_PUBLIC_KEY')],
        ['400', '6bI0sGqjq3ZrWb9b6l0w7cZQ2y4X3v3n2x1YbQm0c5E'],
      );
      assert.deepEqual(
        retention.volumes!.flatMap((v) => (v.secret?.secretName ? [v.secret.secretName] : [])),
        ['cairn-cp-database-owner'],
      );
      assert.ok(!render(controlPlane.dir, [cpCi('minimal')]).some((m) => m.kind === 'CronJob'), 'audit-log retention is opt-in');
      assert.ok(find(manifests, 'PodDisruptionBudget', 'control-plane'));
      assert.equal(find(manifests, 'Pod', '-test').metadata.annotations?.['helm.sh/hook'], 'test');
      const policy = find(manifests, 'NetworkPolicy', 'control-plane')['spec'] as { egress: Rule[] };
      assert.deepEqual(
        policy.egress.map((r) => (r.ports ?? []).map((p) => `${p.protocol}/${p.port}`).join(',')),
        ['TCP/5432', 'UDP/53,TCP/53'],
      );
      const airgapped = render(controlPlane.dir, [cpCi('airgapped')]);
      assert.equal(find(airgapped, 'Ingress', '-grpc').metadata.annotations?.['nginx.ingress.kubernetes.io/ssl-passthrough'], 'true');
      const airgappedContainer = podSpec(find(airgapped, 'Deployment', 'control-plane'))!.containers[0]!;
      assert.equal(env(airgappedContainer, 'CAIRN_CP_TRUSTED_PROXIES'), '10.0.0.0/8');
      assert.ok(fileSecretOf(podSpec(find(airgapped, 'Deployment', 'control-plane'))!, airgappedContainer, 'CAIRN_METRICS_TOKEN'));
      const airgappedPolicy = find(airgapped, 'NetworkPolicy', 'control-plane')['spec'] as { ingress: Rule[] };
      assert.deepEqual(
        airgappedPolicy.ingress.map((r) => (r.ports ?? []).map((p) => `${p.protocol}/${p.port}`).join(',')),
        ['TCP/8080', 'TCP/7233', 'TCP/9464'],
        'the metrics port admits only networkPolicy.metricsFrom',
      );
      for (const ingress of airgapped.filter((m) => m.kind === 'Ingress')) {
        assert.ok(!JSON.stringify(ingress).includes('"metrics"'), `Ingress/${ingress.metadata.name} does not publish the metrics port`);
      }
      assert.ok(find(airgapped, 'HorizontalPodAutoscaler', 'control-plane'));
    });

    it('serves HTTPS on the REST port with httpTls: the certificate as read-only files, HTTPS probes, an Ingress that re-encrypts', () => {
      const airgapped = render(controlPlane.dir, [cpCi('airgapped')]);
      const pod = podSpec(find(airgapped, 'Deployment', 'control-plane'))!;
      const c = pod.containers[0] as Container & { readinessProbe: { httpGet: { scheme?: string } } };
      assert.deepEqual(
        [env(c, 'CAIRN_CP_HTTP_TLS_CERT_FILE'), env(c, 'CAIRN_CP_HTTP_TLS_KEY_FILE')],
        ['/etc/cairn/http-tls/tls.crt', '/etc/cairn/http-tls/tls.key'],
      );
      assert.equal(mountsOf(c).find((m) => m.mountPath === '/etc/cairn/http-tls')?.readOnly, true);
      assert.equal(pod.volumes!.find((v) => v.name === 'http-tls')?.secret?.secretName, 'cairn-cp-http-tls');
      assert.equal(c.readinessProbe.httpGet.scheme, 'HTTPS');
      const rest = find(airgapped, 'Ingress', 'control-plane');
      assert.equal(rest.metadata.annotations?.['nginx.ingress.kubernetes.io/backend-protocol'], 'HTTPS');
      // Plain HTTP by default.
      const plain = podSpec(find(manifests, 'Deployment', 'control-plane'))!.containers[0] as Container & {
        readinessProbe: { httpGet: { scheme?: string } };
      };
      assert.equal(env(plain, 'CAIRN_CP_HTTP_TLS_CERT_FILE'), undefined);
      assert.equal(plain.readinessProbe.httpGet.scheme, undefined);
    });

    it('keeps serving through a preStop sleep while endpoints drop the pod, then shuts down within the rest of the grace period', () => {
      const shutdown = (set: string[]) => {
        const pod = podSpec(find(render(controlPlane.dir, [cpCi('default')], set), 'Deployment', 'control-plane'))!;
        const c = pod.containers[0] as Container & { lifecycle?: { preStop?: { sleep?: { seconds: number } } } };
        return {
          grace: pod.terminationGracePeriodSeconds,
          preStop: c.lifecycle?.preStop?.sleep?.seconds,
          shutdownMs: env(c, 'CAIRN_SHUTDOWN_TIMEOUT_MS'),
        };
      };
      // 30 s of grace: 5 s of preStop, then SIGTERM and at most 20 s of shutdown, 5 s to spare.
      assert.deepEqual(shutdown([]), { grace: 30, preStop: 5, shutdownMs: '20000' });
      assert.deepEqual(shutdown(['preStopSleepSeconds=0']), { grace: 30, preStop: undefined, shutdownMs: '25000' });
      assert.deepEqual(shutdown(['preStopSleepSeconds=10', 'terminationGracePeriodSeconds=60']), {
        grace: 60,
        preStop: 10,
        shutdownMs: '45000',
      });
      const pdb = find(manifests, 'PodDisruptionBudget', 'control-plane')['spec'] as { unhealthyPodEvictionPolicy: string };
      assert.equal(pdb.unhealthyPodEvictionPolicy, 'AlwaysAllow', 'replicas made unready by a database outage never block a node drain');
    });

    it('migrates as the schema owner and serves as the service role, which never sees the owner Secret; the signing key is a read-only file', () => {
      const jobPod = podSpec(find(manifests, 'Job', '-migrate-1'))!;
      const job = jobPod.containers[0]!;
      assert.equal(fileSecretOf(jobPod, job, 'CAIRN_CP_DATABASE_URL'), 'cairn-cp-database-owner');
      assert.equal(env(job, 'CAIRN_CP_SERVICE_ROLE'), 'cairn_cp_service');
      assert.doesNotMatch(JSON.stringify(jobPod), /"cairn-cp-database"/, 'the Job never sees the service Secret');
      const deployment = find(manifests, 'Deployment', 'control-plane');
      const server = podSpec(deployment)!.containers[0]!;
      assert.equal(fileSecretOf(podSpec(deployment)!, server, 'CAIRN_CP_DATABASE_URL'), 'cairn-cp-database');
      assert.doesNotMatch(JSON.stringify(deployment), /cairn-cp-database-owner/);
      assert.equal(env(server, 'CAIRN_AUDIT_SIGNING_KEY_FILE'), '/etc/cairn/audit/signing-key.pem');
      assert.equal(env(server, 'CAIRN_AUDIT_CHECKPOINT_INTERVAL_MS'), '3600000');
      const volumes = (deployment['spec'] as { template: { spec: { volumes: Array<{ name: string; secret?: Record<string, unknown> }> } } })
        .template.spec.volumes;
      assert.deepEqual(volumes.find((v) => v.name === 'audit-signing-key')?.secret, {
        secretName: 'cairn-cp-audit-signing-key',
        defaultMode: 0o440,
        items: [{ key: 'signing-key.pem', path: 'signing-key.pem' }],
      });
      const airgapped = podSpec(find(render(controlPlane.dir, [cpCi('airgapped')]), 'Deployment', 'control-plane'))!.containers[0]!;
      assert.equal(env(airgapped, 'CAIRN_AUDIT_SIGNING_KEY_ID'), 'acme-audit-2026');
      // The minimal install keeps one role: no Job, its replicas migrate at start (NOTES.txt warns).
      const minimal = render(controlPlane.dir, [cpCi('minimal')]);
      assert.equal(
        minimal.find((m) => m.kind === 'Job'),
        undefined,
      );
      assert.equal(env(podSpec(find(minimal, 'Deployment', 'control-plane'))!.containers[0]!, 'CAIRN_AUDIT_SIGNING_KEY_FILE'), undefined);
    });

    it('refuses bad values with a message naming the value', () => {
      const cases: Array<[string[], RegExp]> = [
        [['config.logLevel=loud'], /at '\/config\/logLevel'/],
        [
          ['database.serviceRole='],
          /database.migration.existingSecret is required with database.serviceRole|database.serviceRole is required with database.migration.existingSecret/,
        ],
        [['database.serviceRole=Bad-Role'], /at '\/database\/serviceRole'/],
        [['migration.enabled=false'], /migration.enabled must be true with database.serviceRole/],
        [['audit.signingKey.keyId=no spaces'], /at '\/audit\/signingKey\/keyId'/],
        [['replicas=0'], /at '\/replicas': minimum: got 0, want 1/],
        [['image.digest=latest'], /at '\/image\/digest'/],
        [['database.existingSecret='], /database.existingSecret is required/],
        [['config.heartbeatIntervalMs=20000'], /config.heartbeatIntervalMs \(20000\) must be below config.leaseTtlMs \(15000\)/],
        [
          ['terminationGracePeriodSeconds=20', 'preStopSleepSeconds=15'],
          /terminationGracePeriodSeconds \(20\) must be at least preStopSleepSeconds \(15\) \+ 10/,
        ],
      ];
      for (const [set, message] of cases) {
        const r = template(controlPlane.dir, [cpCi('default')], set);
        assert.notEqual(r.status, 0, `${set.join(' ')} is refused`);
        assert.match(r.stderr, message, `${set.join(' ')}: ${r.stderr}`);
      }
    });
  });
});

describe('helm charts as a platform team installs them', () => {
  const containersOf = (manifests: Manifest[]) =>
    manifests.flatMap((m) => (podSpec(m)?.containers ?? []).map((c) => ({ where: `${m.kind}/${m.metadata.name}`, image: c.image })));
  const imagesOf = (manifests: Manifest[]) => Object.fromEntries(containersOf(manifests).map((c) => [c.where, c.image]));
  const podAnnotations = (m: Manifest) =>
    (m['spec'] as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations ?? {};

  for (const chart of charts) {
    it(`${chart.name}: passes helm lint --strict with the chart's own defaults`, () => {
      const lint = helm(['lint', '--strict', chart.dir]);
      assert.equal(lint.status, 0, `helm lint failed:\n${lint.stdout}${lint.stderr}`);
    });
  }

  it('pulls every image from a registry the values name: no default repository, by tag or digest', () => {
    for (const chart of charts) {
      for (const file of ciValuesFiles(chart.dir)) {
        for (const { where, image } of containersOf(render(chart.dir, [file]))) {
          const at = `${chart.name} ${file.slice(file.lastIndexOf('/') + 1)} ${where}: ${image}`;
          // The evaluation Postgres is the Docker Official Image; everything else names its registry.
          if (/^postgres[:@]/.test(image)) continue;
          assert.match(image, /^[^/]*[.:][^/]*\/[^:@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[0-9a-f]{64})$/, at);
        }
      }
    }
    // Nothing names the Cairn images for the installer.
    for (const [set, message] of [
      [['gateway.image.repository='], /gateway.image.repository is required: the gateway image in a registry you control/],
      [['gateway.enabled=false', 'gateway.image.repository='], /gateway.image.repository is required/],
    ] as const) {
      const r = template(dataPlane.dir, [dpCi('default')], [...set]);
      assert.notEqual(r.status, 0, set.join(' '));
      assert.match(r.stderr, message, r.stderr);
    }
    // Without the gateway and the migration Job no gateway image is needed.
    assert.doesNotThrow(() => render(dataPlane.dir, [dpCi('workers-only')], ['gateway.image.repository=']));
    const cp = template(controlPlane.dir, [cpCi('default')], ['image.repository=']);
    assert.notEqual(cp.status, 0);
    assert.match(cp.stderr, /image.repository is required: the control-plane image in a registry you control/, cp.stderr);
    for (const [chartDir, values, set, at] of [
      [dataPlane.dir, dpCi('default'), 'gateway.image.repository=cairn/gateway:0.1.0', /at '\/gateway\/image\/repository'/],
      [dataPlane.dir, dpCi('default'), 'worker.image.tag=1.4.2@sha256:abc', /at '\/worker\/image\/tag'/],
      [dataPlane.dir, dpCi('default'), 'global.imageRegistry=https://registry.example.com', /at '\/global\/imageRegistry'/],
      [dataPlane.dir, dpCi('evaluation'), 'postgresql.image.digest=latest', /at '\/postgresql\/image\/digest'/],
      [controlPlane.dir, cpCi('default'), 'image.repository=registry.example.com/cairn/control-plane:0.1.0', /at '\/image\/repository'/],
    ] as const) {
      const r = template(chartDir, [values], [set]);
      assert.notEqual(r.status, 0, set);
      assert.match(r.stderr, at, r.stderr);
    }
  });

  it('puts global.imageRegistry in front of every repository, and pins by digest wherever one is given', () => {
    const registry = 'registry.internal.example:5000';
    const dp = imagesOf(
      render(
        dataPlane.dir,
        [dpCi('default')],
        [`global.imageRegistry=${registry}`, 'gateway.image.repository=cairn/gateway', 'worker.image.repository=acme/workflows'],
      ),
    );
    assert.deepEqual(dp, {
      'Deployment/cairn-cairn-data-plane-gateway': `${registry}/cairn/gateway:0.1.0`,
      'Deployment/cairn-cairn-data-plane-worker': `${registry}/acme/workflows:1.4.2`,
      'Job/cairn-cairn-data-plane-migrate-1': `${registry}/cairn/gateway:0.1.0`,
      'Pod/cairn-cairn-data-plane-test-gateway': `${registry}/cairn/gateway:0.1.0`,
    });
    const evaluation = imagesOf(
      render(
        dataPlane.dir,
        [dpCi('evaluation')],
        [`global.imageRegistry=${registry}`, 'gateway.image.repository=cairn/gateway', 'worker.image.repository=acme/workflows'],
      ),
    );
    assert.equal(
      evaluation['StatefulSet/cairn-cairn-data-plane-postgresql'] ?? evaluation['Deployment/cairn-cairn-data-plane-postgresql'],
      `${registry}/postgres:18.4-bookworm`,
    );

    const a = `sha256:${'a'.repeat(64)}`;
    const b = `sha256:${'b'.repeat(64)}`;
    const d = `sha256:${'d'.repeat(64)}`;
    assert.deepEqual(imagesOf(render(dataPlane.dir, [dpCi('keda')])), {
      'Deployment/cairn-cairn-data-plane-gateway': `registry.example.com/cairn/gateway@${a}`,
      'Deployment/cairn-cairn-data-plane-worker': `registry.example.com/acme/workflows@${b}`,
      'Job/cairn-cairn-data-plane-migrate-1': `registry.example.com/cairn/gateway@${a}`,
      'Pod/cairn-cairn-data-plane-test-gateway': `registry.example.com/cairn/gateway@${a}`,
    });
    const pg = imagesOf(render(dataPlane.dir, [dpCi('evaluation')], [`postgresql.image.digest=${d}`]));
    assert.equal(
      pg['StatefulSet/cairn-cairn-data-plane-postgresql'] ?? pg['Deployment/cairn-cairn-data-plane-postgresql'],
      `postgres@${d}`,
    );

    const c = `sha256:${'c'.repeat(64)}`;
    const cp = imagesOf(
      render(
        controlPlane.dir,
        [cpCi('default')],
        [`image.digest=${c}`, `global.imageRegistry=${registry}`, 'image.repository=cairn/control-plane'],
      ),
    );
    assert.deepEqual(cp, {
      'CronJob/cairn-cairn-control-plane-audit-retention': `${registry}/cairn/control-plane@${c}`,
      'Deployment/cairn-cairn-control-plane': `${registry}/cairn/control-plane@${c}`,
      'Job/cairn-cairn-control-plane-migrate-1': `${registry}/cairn/control-plane@${c}`,
      'Pod/cairn-cairn-control-plane-test': `${registry}/cairn/control-plane@${c}`,
    });
  });

  it('rolls the pods when a Secret the chart made changes, and only the pods that mount it', () => {
    const evaluation = (set: string[] = []) => {
      const m = render(dataPlane.dir, [dpCi('evaluation')], set);
      return { worker: podAnnotations(find(m, 'Deployment', '-worker')), gateway: podAnnotations(find(m, 'Deployment', '-gateway')) };
    };
    const before = evaluation();
    assert.match(before.worker['checksum/secrets'] ?? '', /^[0-9a-f]{64}$/);
    assert.match(before.gateway['checksum/secrets'] ?? '', /^[0-9a-f]{64}$/);
    const tokens = evaluation(['gateway.auth.tokens[0]=cgt_An0therT0kenQx7Rz2Wm9Kp3Ld8Zz9:read']);
    assert.equal(tokens.worker['checksum/secrets'], before.worker['checksum/secrets'], 'a gateway token is not the workers’ business');
    assert.notEqual(tokens.gateway['checksum/secrets'], before.gateway['checksum/secrets']);
    for (const set of [
      ['encryption.hmacKey=Zq7yAlrXw7QNsrPiIREZ5vLGmzept6xCkMwmqKMbrKb='],
      ['dataPlane.credential.value=cdp_YW5vdGhlci1jcmVkZW50aWFs'],
      ['postgresql.auth.password=another-password-0123'],
    ]) {
      const after = evaluation(set);
      assert.notEqual(after.worker['checksum/secrets'], before.worker['checksum/secrets'], set.join(' '));
      assert.notEqual(after.gateway['checksum/secrets'], before.gateway['checksum/secrets'], set.join(' '));
    }
    // Pod annotations of the values are kept beside the checksum.
    const annotated = render(dataPlane.dir, [dpCi('evaluation')], ['worker.podAnnotations.team=payments']);
    assert.equal(podAnnotations(find(annotated, 'Deployment', '-worker'))['team'], 'payments');
    // Secrets the installer made (existingSecret) are not the chart's to hash.
    const existing = render(dataPlane.dir, [dpCi('default')]);
    assert.equal(podAnnotations(find(existing, 'Deployment', '-worker'))['checksum/secrets'], undefined);

    const cp = (key: string) =>
      podAnnotations(
        find(
          render(controlPlane.dir, [cpCi('minimal')], ['bootstrap.existingSecret=', `bootstrap.adminKey=${key}`]),
          'Deployment',
          'control-plane',
        ),
      );
    assert.match(cp('a'.repeat(32))['checksum/secrets'] ?? '', /^[0-9a-f]{64}$/);
    assert.notEqual(cp('a'.repeat(32))['checksum/secrets'], cp('b'.repeat(32))['checksum/secrets']);
    assert.equal(
      podAnnotations(find(render(controlPlane.dir, [cpCi('minimal')]), 'Deployment', 'control-plane'))['checksum/secrets'],
      undefined,
    );
  });

  it('refuses a gateway Ingress its NetworkPolicy would block, unless the installer says the controller is let in otherwise', () => {
    const ingress = [
      'gateway.ingress.enabled=true',
      'gateway.ingress.className=nginx',
      'gateway.ingress.hosts[0].host=cairn-gateway.example.com',
    ];
    const refused = template(dataPlane.dir, [dpCi('default')], ingress);
    assert.notEqual(refused.status, 0, 'an Ingress with no way in is refused');
    assert.match(refused.stderr, /gateway.ingress.enabled needs networkPolicy.gateway.ingressFrom/);
    assert.match(refused.stderr, /networkPolicy.gateway.ingressControllerAllowedElsewhere=true/);
    const allowed = render(
      dataPlane.dir,
      [dpCi('default')],
      [...ingress, 'networkPolicy.gateway.ingressFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=ingress-nginx'],
    );
    const spec = find(allowed, 'NetworkPolicy', '-gateway')['spec'] as { ingress: Rule[] };
    assert.deepEqual(spec.ingress[0]!.from![1], { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } });
    // The installer's own policy lets the controller in: the chart takes their word, and says so.
    const elsewhere = template(
      dataPlane.dir,
      [dpCi('default')],
      [...ingress, 'networkPolicy.gateway.ingressControllerAllowedElsewhere=true'],
    );
    assert.equal(elsewhere.status, 0, elsewhere.stderr);
    assert.match(elsewhere.stdout, /kind: Ingress/);
    assert.equal(
      template(dataPlane.dir, [dpCi('default')], [...ingress, 'networkPolicy.enabled=false']).status,
      0,
      'no NetworkPolicy, nothing blocks',
    );
  });

  it('serves the gRPC Ingress over TLS passthrough with mutual TLS, and refuses an Ingress that would speak plaintext to a TLS port', () => {
    const airgapped = render(controlPlane.dir, [cpCi('airgapped')]);
    const grpcIngress = find(airgapped, 'Ingress', '-grpc');
    assert.deepEqual(grpcIngress.metadata.annotations, { 'nginx.ingress.kubernetes.io/ssl-passthrough': 'true' });
    assert.equal((grpcIngress['spec'] as { tls?: unknown }).tls, undefined, 'the control plane itself serves the certificate');

    const grpcOn = ['ingress.grpc.enabled=true', 'ingress.grpc.host=cairn-grpc.example.com'];
    const protocol = (set: string[]) =>
      find(render(controlPlane.dir, [cpCi('default')], [...grpcOn, ...set]), 'Ingress', '-grpc').metadata.annotations?.[
        'nginx.ingress.kubernetes.io/backend-protocol'
      ];
    assert.equal(protocol([]), 'GRPC', 'a plaintext gRPC port behind an Ingress that terminates TLS');
    assert.equal(protocol(['grpcTls.certSecret=cairn-cp-grpc-tls']), 'GRPCS', 'a TLS gRPC port: the Ingress re-encrypts');

    const cases: Array<[string, string[], RegExp]> = [
      [
        cpCi('airgapped'),
        ['ingress.grpc.tlsPassthrough=false'],
        /grpcTls.clientCaSecret \(mutual TLS\) with ingress.grpc.enabled needs ingress.grpc.tlsPassthrough=true/,
      ],
      [
        cpCi('default'),
        [...grpcOn, 'grpcTls.certSecret=tls', 'ingress.grpc.annotations.nginx\\.ingress\\.kubernetes\\.io/backend-protocol=GRPC'],
        /serves TLS \(grpcTls.certSecret\).*backend-protocol GRPC/,
      ],
      [
        cpCi('default'),
        [...grpcOn, 'ingress.grpc.annotations.nginx\\.ingress\\.kubernetes\\.io/backend-protocol=GRPCS'],
        /serves plaintext.*backend-protocol GRPCS/,
      ],
      [cpCi('default'), [...grpcOn, 'ingress.grpc.tlsPassthrough=true'], /ingress.grpc.tlsPassthrough needs grpcTls.certSecret/],
      [cpCi('airgapped'), ['ingress.grpc.tlsSecret=cairn-grpc-tls'], /ingress.grpc.tlsSecret is not used with ingress.grpc.tlsPassthrough/],
    ];
    for (const [values, set, message] of cases) {
      const r = template(controlPlane.dir, [values], set);
      assert.notEqual(r.status, 0, `${set.join(' ')} is refused`);
      assert.match(r.stderr, message, `${set.join(' ')}: ${r.stderr}`);
    }
  });
});

/** Every pod runs as non-root, read-only, with no capabilities, seccomp RuntimeDefault and no API token. */
function assertSecureDefaults(manifests: Manifest[]): void {
  for (const sa of manifests.filter((m) => m.kind === 'ServiceAccount')) {
    assert.equal(sa['automountServiceAccountToken'], false, `ServiceAccount/${sa.metadata.name}`);
  }
  for (const m of manifests) {
    const spec = podSpec(m);
    if (!spec) continue;
    const where = `${m.kind}/${m.metadata.name}`;
    assert.equal(spec.automountServiceAccountToken, false, `${where}: no service-account token`);
    assert.equal(spec.securityContext?.['runAsNonRoot'], true, `${where}: pod runs as non-root`);
    assert.deepEqual(spec.securityContext?.['seccompProfile'], { type: 'RuntimeDefault' }, `${where}: seccomp`);
    for (const c of spec.containers) {
      const sc = c.securityContext ?? {};
      assert.equal(sc['runAsNonRoot'], true, `${where}/${c.name}: non-root`);
      assert.equal(sc['readOnlyRootFilesystem'], true, `${where}/${c.name}: read-only root filesystem`);
      assert.equal(sc['allowPrivilegeEscalation'], false, `${where}/${c.name}: no privilege escalation`);
      assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where}/${c.name}: drops all capabilities`);
      assert.deepEqual(sc['seccompProfile'], { type: 'RuntimeDefault' }, `${where}/${c.name}: seccomp`);
    }
  }
}

/** No NetworkPolicy rule allows everything (a rule without peers or without ports). */
function assertNoOpenNetworkPolicy(manifests: Manifest[]): void {
  for (const m of manifests.filter((x) => x.kind === 'NetworkPolicy')) {
    const spec = m['spec'] as { ingress?: Rule[]; egress?: Rule[]; policyTypes: string[] };
    assert.deepEqual(spec.policyTypes, ['Ingress', 'Egress'], `${m.metadata.name} restricts both directions`);
    for (const rule of spec.egress ?? []) {
      assert.ok(rule.to && rule.to.length > 0, `${m.metadata.name}: an egress rule names its peers`);
      assert.ok(rule.ports && rule.ports.length > 0, `${m.metadata.name}: an egress rule names its ports`);
    }
    for (const rule of spec.ingress ?? []) {
      assert.ok(rule.from && rule.from.length > 0, `${m.metadata.name}: an ingress rule names its sources`);
      assert.ok(rule.ports && rule.ports.length > 0, `${m.metadata.name}: an ingress rule names its ports`);
    }
  }
}
