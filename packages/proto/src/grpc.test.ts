// The credentials a data-plane process dials the control plane with, against a real TLS gRPC
// server that requires client certificates: a client certificate renewed in place (a Secret
// mount whose `..data` symlink is swapped, as the kubelet does) is presented from the next
// connection on, without a restart.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { controlPlaneChannelCredentials } from './grpc.js';

interface Pair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly fingerprint: string;
}

/** A throwaway CA, a server certificate for 127.0.0.1 and two client certificates it signed. */
function makeCertificates(dir: string): { ca: Buffer; server: Pair; first: Pair; renewed: Pair } {
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=cairn-test-ca');
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const pair = (name: string, ext: string): Pair => {
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
      f(ext),
    );
    const cert = readFileSync(f(`${name}.pem`));
    return { cert, key: readFileSync(f(`${name}.key`)), fingerprint: new X509Certificate(cert).fingerprint256 };
  };
  return {
    ca: readFileSync(f('ca.pem')),
    server: pair('server', 'server.ext'),
    first: pair('first', 'client.ext'),
    renewed: pair('renewed', 'client.ext'),
  };
}

/** A Secret volume as the kubelet writes it: `tls.crt` → `..data/tls.crt`, `..data` → a timestamped folder. */
class SecretMount {
  readonly dir: string;
  #version = 0;
  constructor(dir: string, pair: Pair) {
    this.dir = dir;
    this.update(pair);
    symlinkSync('..data/tls.crt', join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(dir, 'tls.key'));
  }
  /** Updates both files at once: one rename of the `..data` symlink. */
  update(pair: Pair): void {
    const version = `..2026_12_06_${++this.#version}`;
    mkdirSync(join(this.dir, version));
    writeFileSync(join(this.dir, version, 'tls.crt'), pair.cert);
    writeFileSync(join(this.dir, version, 'tls.key'), pair.key);
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
  }
}

/** One unary method that answers with the SHA-256 fingerprint of the client certificate it saw. */
const whoAmI: grpc.MethodDefinition<Buffer, Buffer> = {
  path: '/cairn.test.Peer/WhoAmI',
  requestStream: false,
  responseStream: false,
  requestSerialize: (b) => b,
  requestDeserialize: (b) => b,
  responseSerialize: (b) => b,
  responseDeserialize: (b) => b,
};

describe('control-plane channel credentials', () => {
  let dir: string;
  let certs: ReturnType<typeof makeCertificates>;
  let server: grpc.Server;
  let address: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-client-tls-'));
    certs = makeCertificates(dir);
    server = new grpc.Server();
    server.addService(
      { whoAmI },
      {
        whoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          callback(null, Buffer.from(call.getAuthContext().sslPeerCertificate?.fingerprint256 ?? 'none'));
        },
      },
    );
    const credentials = grpc.ServerCredentials.createSsl(
      certs.ca,
      [{ cert_chain: certs.server.cert, private_key: certs.server.key }],
      true,
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    address = `127.0.0.1:${port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** The fingerprint the server saw, over a new connection made with `credentials`. */
  const presented = async (credentials: grpc.ChannelCredentials): Promise<string> => {
    const client = new grpc.Client(address, credentials);
    try {
      return await new Promise<string>((resolve, reject) =>
        client.makeUnaryRequest(whoAmI.path, whoAmI.requestSerialize, whoAmI.responseDeserialize, Buffer.alloc(0), (error, answer) =>
          error ? reject(error) : resolve(answer!.toString()),
        ),
      );
    } finally {
      client.close();
    }
  };

  it('presents a client certificate renewed in place from the next connection on', async () => {
    mkdirSync(join(dir, 'mount'));
    const mount = new SecretMount(join(dir, 'mount'), certs.first);
    writeFileSync(join(dir, 'ca-bundle.pem'), certs.ca);
    const credentials = controlPlaneChannelCredentials(
      { enabled: true, caFile: join(dir, 'ca-bundle.pem'), certFile: join(mount.dir, 'tls.crt'), keyFile: join(mount.dir, 'tls.key') },
      (path) => readFileSync(path),
      { refreshIntervalMs: 100 },
    );
    assert.equal(await presented(credentials), certs.first.fingerprint);

    mount.update(certs.renewed);
    // Re-read within the refresh interval; a generous bound for a loaded machine, not a timing claim.
    const deadline = Date.now() + 20_000;
    let seen = await presented(credentials);
    while (seen !== certs.renewed.fingerprint && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      seen = await presented(credentials);
    }
    assert.equal(seen, certs.renewed.fingerprint, 'the renewed certificate, without new credentials or a restart');
  });

  it('names the variable of a file it cannot read, and wants a certificate with its key', () => {
    assert.throws(
      () => controlPlaneChannelCredentials({ enabled: true, caFile: join(dir, 'missing.pem') }, (path) => readFileSync(path)),
      /cannot read CAIRN_CP_TLS_CA_FILE \(.*missing\.pem\)/,
    );
    assert.throws(
      () => controlPlaneChannelCredentials({ enabled: true, certFile: join(dir, 'first.pem') }, (path) => readFileSync(path)),
      /CAIRN_CP_TLS_CERT_FILE and CAIRN_CP_TLS_KEY_FILE must be set together/,
    );
  });
});
