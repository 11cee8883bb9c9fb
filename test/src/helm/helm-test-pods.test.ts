// The control-plane chart's `helm test` pod, run as helm renders it — its script, its environment
// and its mounted Secrets (as local files) — against real control-plane processes: one serving gRPC
// in plaintext, one with mutual TLS. A check that only opened a TCP socket passed against both
// whatever the certificates; this one must dial as a data plane does.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManagedProcess, entryPoints } from '@cairn/dev';
import { startTestStack, type TestStack } from '../harness.js';
import { charts, find, render, type Manifest } from './helm.js';

const controlPlane = charts[1];
const airgapped = join(controlPlane.dir, 'ci', 'airgapped-values.yaml');
const defaults = join(controlPlane.dir, 'ci', 'default-values.yaml');
/** The gRPC host of ci/airgapped-values.yaml: the name data planes dial, which the certificate names. */
const GRPC_HOST = 'cairn-grpc.internal.example';
/** The REST Service's name, which helm test checks the REST port's certificate (httpTls) for. */
const SERVICE_HOST = 'cairn-cairn-control-plane.cairn.svc';

type Files = Record<string, string>;
interface Certificates {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherClientCert: string;
  otherClientKey: string;
}

/** A CA, a server certificate for GRPC_HOST, a client certificate it signed and one another CA signed. */
function makeCertificates(dir: string): Certificates {
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const sign = (name: string, ca: string, ext?: string): void => {
    ssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
    const extArgs = ext ? ['-extfile', f(ext)] : [];
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f(`${ca}.pem`),
      '-CAkey',
      f(`${ca}.key`),
      '-CAcreateserial',
      '-out',
      f(`${name}.pem`),
      '-days',
      '2',
      ...extArgs,
    );
  };
  ssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=cairn-test-ca');
  ssl('req', '-x509', ...ec, '-keyout', f('other-ca.key'), '-out', f('other-ca.pem'), '-days', '2', '-subj', '/CN=other-ca');
  writeFileSync(f('server.ext'), `subjectAltName=DNS:${GRPC_HOST},DNS:${SERVICE_HOST}\n`);
  sign('server', 'ca', 'server.ext');
  sign('client', 'ca');
  sign('other-client', 'other-ca');
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherClientCert: f('other-client.pem'),
    otherClientKey: f('other-client.key'),
  };
}

interface PodContainer {
  command: string[];
  env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }>;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface PodVolume {
  name: string;
  secret: { secretName: string; optional?: boolean; items?: Array<{ key: string; path: string }> };
}

/**
 * Runs the test pod's container as Kubernetes would: Secrets (`secrets`, by name, key → content)
 * become environment values and files under a folder per volume; `cp` points the pod at a control
 * plane listening on this machine instead of the Service's name.
 */
async function runTestPod(
  pod: Manifest,
  secrets: Record<string, Files>,
  cp: { httpPort: number; grpcPort: number },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const spec = pod['spec'] as { containers: PodContainer[]; volumes?: PodVolume[] };
  const container = spec.containers[0]!;
  const root = mkdtempSync(join(process.env['CAIRN_TEST_DIR'] ?? '/tmp', 'cairn-helm-test-pod-'));
  const mounts = new Map<string, string>();
  for (const mount of container.volumeMounts ?? []) {
    const volume = spec.volumes!.find((v) => v.name === mount.name)!;
    const data = secrets[volume.secret.secretName];
    if (!data && !volume.secret.optional) throw new Error(`the pod needs Secret ${volume.secret.secretName}, which the test did not give`);
    const local = join(root, mount.name);
    mkdirSync(local);
    for (const item of volume.secret.items ?? Object.keys(data ?? {}).map((key) => ({ key, path: key }))) {
      const content = data?.[item.key];
      if (content === undefined) {
        if (volume.secret.optional) continue;
        throw new Error(`Secret ${volume.secret.secretName} has no key ${item.key}, and the volume is not optional`);
      }
      writeFileSync(join(local, item.path), content);
    }
    mounts.set(mount.mountPath, local);
  }
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
  for (const e of container.env) {
    if (e.valueFrom) {
      const value = secrets[e.valueFrom.secretKeyRef.name]?.[e.valueFrom.secretKeyRef.key];
      if (value === undefined) throw new Error(`no Secret value for ${e.name}`);
      env[e.name] = value;
      continue;
    }
    let value = e.value ?? '';
    for (const [mountPath, local] of mounts) if (value.startsWith(`${mountPath}/`)) value = local + value.slice(mountPath.length);
    env[e.name] = value;
  }
  Object.assign(env, { CP_HOST: '127.0.0.1', CP_HTTP_PORT: String(cp.httpPort), CP_GRPC_PORT: String(cp.grpcPort) });
  const [command, ...args] = container.command;
  assert.equal(command, 'node');
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  rmSync(root, { recursive: true, force: true });
  return { code, stdout, stderr };
}

describe("the control-plane chart's helm test", () => {
  let t: TestStack;
  let mtls: ManagedProcess;
  let dir: string;
  let certs: Certificates;
  let plaintextPorts: { httpPort: number; grpcPort: number };
  let mtlsPorts: { httpPort: number; grpcPort: number };
  const pem = (path: string): string => readFileSync(path, 'utf8');

  before(async () => {
    t = await startTestStack({ name: 'helm-test-pods', workers: 0, gateway: false });
    const replica = t.stack.controlPlanes[0]!;
    plaintextPorts = { httpPort: Number(new URL(replica.httpUrl).port), grpcPort: replica.grpcPort };
    dir = mkdtempSync(join(t.dir, 'certs-'));
    certs = makeCertificates(dir);
    // A second replica on the same database, serving gRPC with mutual TLS as ci/airgapped-values.yaml does.
    mtls = new ManagedProcess(
      'control-plane-mtls',
      process.execPath,
      [entryPoints.controlPlane],
      {
        PATH: process.env['PATH'] ?? '',
        CAIRN_CP_DATABASE_URL: t.stack.cpServiceDatabaseUrl,
        CAIRN_CP_HOST: '127.0.0.1',
        CAIRN_CP_HTTP_PORT: '0',
        CAIRN_CP_GRPC_PORT: '0',
        CAIRN_BOOTSTRAP_ADMIN_KEY: t.stack.secrets.apiToken,
        CAIRN_AUDIT_SIGNING_KEY: t.stack.secrets.auditSigningKey,
        CAIRN_CP_GRPC_TLS_CERT_FILE: certs.serverCert,
        CAIRN_CP_GRPC_TLS_KEY_FILE: certs.serverKey,
        CAIRN_CP_GRPC_TLS_CLIENT_CA_FILE: certs.ca,
        // And HTTPS on the REST port, as ci/airgapped-values.yaml's httpTls.
        CAIRN_CP_HTTP_TLS_CERT_FILE: certs.serverCert,
        CAIRN_CP_HTTP_TLS_KEY_FILE: certs.serverKey,
        CAIRN_LOG_LEVEL: 'info',
      },
      join(t.dir, 'logs', 'control-plane-mtls.log'),
    ).start();
    const line = await mtls.waitFor(/"msg":"control plane listening"/);
    mtlsPorts = JSON.parse(line) as { httpPort: number; grpcPort: number };
  });

  after(async () => {
    await mtls?.stop(10_000);
    await t?.stop();
  });

  /** The Secrets of ci/airgapped-values.yaml as the cluster holds them. */
  const airgappedSecrets = (client: { cert: string; key: string } | null, caInCertSecret = true): Record<string, Files> => ({
    'cairn-cairn-control-plane-bootstrap': { 'admin-key': t.stack.secrets.apiToken },
    'cairn-cp-grpc-tls': {
      'tls.crt': pem(certs.serverCert),
      'tls.key': pem(certs.serverKey),
      ...(caInCertSecret ? { 'ca.crt': pem(certs.ca) } : {}),
    },
    'cairn-cp-http-tls': { 'tls.crt': pem(certs.serverCert), 'tls.key': pem(certs.serverKey), 'ca.crt': pem(certs.ca) },
    ...(client ? { 'cairn-cp-test-client-cert': { 'tls.crt': pem(client.cert), 'tls.key': pem(client.key) } } : {}),
  });
  const testPod = (values: string, set: string[] = []) => find(render(controlPlane.dir, [values], set), 'Pod', '-test');

  it('passes over mutual TLS with the client certificate, checking the server certificate for the gRPC host', async () => {
    const r = await runTestPod(testPod(airgapped), airgappedSecrets({ cert: certs.clientCert, key: certs.clientKey }), mtlsPorts);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `ok: .*TLS, certificate checked for ${GRPC_HOST} against tests.grpc.caSecret, with the client certificate\\) answers SERVING`,
      ),
    );
  });

  it('checks the REST port over HTTPS for the Service name when httpTls is set, and says what to check when it cannot', async () => {
    const client = { cert: certs.clientCert, key: certs.clientKey };
    const r = await runTestPod(testPod(airgapped), airgappedSecrets(client), mtlsPorts);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`ok: the control plane is ready \\(HTTPS, certificate checked for ${SERVICE_HOST}\\)`));
    // Without ca.crt beside the certificate, the private CA is not trusted.
    const secrets = airgappedSecrets(client);
    delete secrets['cairn-cp-http-tls']!['ca.crt'];
    const noCa = await runTestPod(testPod(airgapped), secrets, mtlsPorts);
    assert.equal(noCa.code, 1);
    assert.match(
      noCa.stderr,
      /FAIL: cannot connect to https:.*check httpTls.certSecret \(its certificate must name cairn-cairn-control-plane.cairn.svc/,
    );
    // A plain-HTTP check against the HTTPS port fails too: the chart's setting must match the port.
    const plain = await runTestPod(testPod(airgapped, ['httpTls.certSecret=']), airgappedSecrets(client), mtlsPorts);
    assert.equal(plain.code, 1);
  });

  it('fails, saying what to check, when the client certificate, the CA or the name is wrong, or no certificate is given', async () => {
    const other = await runTestPod(
      testPod(airgapped),
      airgappedSecrets({ cert: certs.otherClientCert, key: certs.otherClientKey }),
      mtlsPorts,
    );
    assert.equal(other.code, 1, 'a client certificate another CA signed is refused');
    // The server ends the connection: a reset, or a close with no answer, depending on when the TLS alert lands.
    assert.match(
      other.stderr,
      /FAIL: the gRPC port .*with the client certificate\) (failed: |closed the connection without answering \(how it refuses a client certificate its CA did not sign\)).*: check grpcTls, tests.grpc.caSecret and tests.grpc.serverName, and with mutual TLS tests.grpc.clientCertSecret/,
    );

    const none = await runTestPod(testPod(airgapped, ['tests.grpc.clientCertSecret=']), airgappedSecrets(null), mtlsPorts);
    assert.equal(none.code, 1);
    assert.match(
      none.stderr,
      /FAIL: the gRPC port requires client certificates \(grpcTls.clientCaSecret\): set tests.grpc.clientCertSecret/,
    );

    const client = { cert: certs.clientCert, key: certs.clientKey };
    const noCa = await runTestPod(testPod(airgapped), airgappedSecrets(client, false), mtlsPorts);
    assert.equal(noCa.code, 1, 'without the CA the private certificate is checked against the system roots, and refused');
    assert.match(noCa.stderr, /against the system roots.* failed: .*(UNABLE_TO_VERIFY|SELF_SIGNED|unable to verify|self-signed)/i);

    const wrongName = await runTestPod(
      testPod(airgapped, ['tests.grpc.serverName=cairn.other.example']),
      airgappedSecrets(client),
      mtlsPorts,
    );
    assert.equal(wrongName.code, 1);
    assert.match(
      wrongName.stderr,
      /certificate checked for cairn.other.example.* failed: .*is not in the cert's altnames: DNS:cairn-grpc.internal.example/,
    );
  });

  it('passes in plaintext against a control plane whose gRPC port a load balancer fronts', async () => {
    const pod = testPod(defaults);
    const r = await runTestPod(pod, { 'cairn-cp-bootstrap': { 'admin-key': t.stack.secrets.apiToken } }, plaintextPorts);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\(plaintext\) answers SERVING/);
    // A TLS port is not mistaken for a plaintext one.
    const wrongPort = await runTestPod(
      pod,
      { 'cairn-cp-bootstrap': { 'admin-key': t.stack.secrets.apiToken } },
      { ...plaintextPorts, grpcPort: mtlsPorts.grpcPort },
    );
    assert.equal(wrongPort.code, 1);
    assert.match(wrongPort.stderr, /FAIL: the gRPC port .*\(plaintext\)/);
  });
});
