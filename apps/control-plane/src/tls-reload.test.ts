// TLS on both ports of a real control-plane process, with certificates mounted the way Kubernetes
// mounts a Secret (files behind a `..data` symlink swapped in one rename, as cert-manager renewals
// arrive): a renewed certificate is served without a restart, and a broken one is not loaded.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, type PostgresServer } from '@cairn/local-postgres';
import { healthServiceDefinition } from './grpc/health.js';
import { startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';

interface Pair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly fingerprint: string;
}

/** A throwaway CA and two server certificates for 127.0.0.1 it signed (the first and the renewed one). */
function makeCertificates(dir: string): { ca: Buffer; first: Pair; renewed: Pair } {
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=cairn-test-ca');
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  const pair = (name: string): Pair => {
    ssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f(`${name}.pem`),
      '-days',
      '2',
      '-extfile',
      f('server.ext'),
    );
    const cert = readFileSync(f(`${name}.pem`));
    return { cert, key: readFileSync(f(`${name}.key`)), fingerprint: new X509Certificate(cert).fingerprint256 };
  };
  return { ca: readFileSync(f('ca.pem')), first: pair('first'), renewed: pair('renewed') };
}

/** A Secret volume as the kubelet writes it: `tls.crt` → `..data/tls.crt`, `..data` → a timestamped folder. */
class SecretMount {
  readonly dir: string;
  #version = 0;
  constructor(dir: string, cert: Buffer, key: Buffer) {
    this.dir = dir;
    this.#write(cert, key);
    symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(dir, 'tls.key'));
  }
  /** Updates both files at once: one rename of the `..data` symlink. */
  update(cert: Buffer, key: Buffer): void {
    this.#write(cert, key);
  }
  #write(cert: Buffer, key: Buffer): void {
    const version = `..2026_12_06_${++this.#version}`;
    mkdirSync(join(this.dir, version));
    writeFileSync(join(this.dir, version, 'tls.crt'), cert);
    writeFileSync(join(this.dir, version, 'tls.key'), key);
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
  }
}

/** The fingerprint of the certificate a port presents in a TLS handshake verified against `ca`. */
function servedFingerprint(port: number, ca: Buffer, alpn: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, ALPNProtocols: [alpn] }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

describe('TLS certificates reloaded without a restart', () => {
  let server: PostgresServer;
  let cp: ControlPlaneFixture;
  let dir: string;
  let certs: ReturnType<typeof makeCertificates>;
  let mount: SecretMount;
  let healthClient: grpc.Client & { check: (req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-tls-reload-'));
    certs = makeCertificates(dir);
    mkdirSync(join(dir, 'mount'));
    mount = new SecretMount(join(dir, 'mount'), certs.first.cert, certs.first.key);
    server = await testPostgres('system');
    cp = await startControlPlaneProcess(server, {
      httpsCa: certs.ca,
      env: {
        CAIRN_CP_GRPC_TLS_CERT_FILE: join(mount.dir, 'tls.crt'),
        CAIRN_CP_GRPC_TLS_KEY_FILE: join(mount.dir, 'tls.key'),
        CAIRN_CP_HTTP_TLS_CERT_FILE: join(mount.dir, 'tls.crt'),
        CAIRN_CP_HTTP_TLS_KEY_FILE: join(mount.dir, 'tls.key'),
      },
    });
    const Health = grpc.makeGenericClientConstructor(healthServiceDefinition, 'Health');
    healthClient = new Health(cp.grpcAddress, grpc.credentials.createSsl(certs.ca)) as unknown as typeof healthClient;
  });
  after(async () => {
    healthClient?.close();
    await cp?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const ports = () => ({ grpc: Number(cp.grpcAddress.split(':')[1]), http: Number(new URL(cp.httpUrl).port) });
  const served = async () => ({
    grpc: await servedFingerprint(ports().grpc, certs.ca, 'h2'),
    http: await servedFingerprint(ports().http, certs.ca, 'http/1.1'),
  });
  /** Waits (up to a generous bound) until both ports present `fingerprint`. */
  const until = async (fingerprint: string) => {
    const deadline = Date.now() + 30_000;
    let last = await served();
    while ((last.grpc !== fingerprint || last.http !== fingerprint) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      last = await served();
    }
    return last;
  };
  const healthy = () =>
    new Promise<Buffer>((resolve, reject) => healthClient.check(Buffer.alloc(0), (err, res) => (err ? reject(err) : resolve(res!))));
  const restHealthz = () =>
    new Promise<number>((resolve, reject) =>
      httpsGet({ host: '127.0.0.1', port: ports().http, path: '/healthz', ca: certs.ca }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject),
    );

  test('serves TLS on the REST port and on gRPC, with the mounted certificate', async () => {
    assert.match(cp.httpUrl, /^https:/);
    assert.deepEqual(await served(), { grpc: certs.first.fingerprint, http: certs.first.fingerprint });
    assert.deepEqual(await healthy(), Buffer.from([0x08, 0x01]), 'gRPC health: SERVING over TLS');
    assert.equal(await restHealthz(), 200);
  });

  test('a renewed certificate swapped into the mount is served by both ports, and the process keeps running', async () => {
    mount.update(certs.renewed.cert, certs.renewed.key);
    assert.deepEqual(await until(certs.renewed.fingerprint), { grpc: certs.renewed.fingerprint, http: certs.renewed.fingerprint });
    await cp.logged('the gRPC reload', (l) => l.includes('gRPC port: TLS certificate reloaded') && l.includes(certs.renewed.fingerprint));
    await cp.logged('the REST reload', (l) => l.includes('REST port: TLS certificate reloaded'));
    // New connections work with the new certificate; the process never restarted.
    healthClient.close();
    const Health = grpc.makeGenericClientConstructor(healthServiceDefinition, 'Health');
    healthClient = new Health(cp.grpcAddress, grpc.credentials.createSsl(certs.ca)) as unknown as typeof healthClient;
    assert.deepEqual(await healthy(), Buffer.from([0x08, 0x01]));
    assert.equal(await restHealthz(), 200);
    assert.equal(cp.lines.filter((l) => l.includes('"control plane listening"')).length, 1, 'started once');
  });

  test('a certificate with a key that does not match is not loaded: the previous one stays in use', async () => {
    mount.update(certs.first.cert, certs.renewed.key);
    await cp.logged(
      'the refusal',
      (l) => l.includes('the changed TLS files were not loaded') && l.includes('the key does not belong to the certificate'),
    );
    assert.deepEqual(await served(), { grpc: certs.renewed.fingerprint, http: certs.renewed.fingerprint });
    assert.equal(await restHealthz(), 200);
    // Nothing of the key reaches the logs.
    const keyBody = certs.renewed.key.toString('utf8').split('\n')[1]!;
    assert.ok(cp.lines.every((l) => !l.includes(keyBody)));
  });
});
