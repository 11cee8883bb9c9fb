// Envelope mode as real processes: the data key is wrapped by a key-encryption key the customer
// holds (here the local file implementation of the KeyWrapper interface). The gateway gets only the
// wrapped key; the attack looks for the data key itself in the process's environment, on disk and
// in the payload store, and finds it nowhere, while the gateway seals and the key opens the data.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { FileKeyWrapper, Hasher, KeyRing, PayloadStore, parseWrappedKeys } from '@cairn/payload-store';
import { FakeControlPlane } from './testing/fake-control-plane.js';
import { DataPlaneDb } from './testing/postgres.js';

const here = dirname(fileURLToPath(import.meta.url));
const mainTs = join(here, 'main.ts');
const repoRoot = resolve(here, '../../..');
const TOKEN = `cgt_${randomUUID()}`;
const CREDENTIAL = `cdp_${randomUUID()}`;
const kind = testPostgresKinds()[0]!;

function startGateway(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; lines: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', mainTs], {
    cwd: repoRoot,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  return new Promise((resolvePort, reject) => {
    let buffer = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number };
          if (entry.msg === 'gateway listening' && typeof entry.port === 'number') resolvePort({ child, port: entry.port, lines });
        } catch {
          // not a log line
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before listening:\n${lines.join('\n')}`)));
  });
}

/** Every way a 32-byte key could be written down. */
const spellings = (key: Buffer): string[] => [key.toString('base64'), key.toString('hex'), key.toString('base64url')];

describe(`envelope mode (${kind} Postgres)`, () => {
  let server: PostgresServer;
  let url: string;
  let cp: FakeControlPlane;
  let dir: string;
  let gateway: { child: ChildProcess; port: number; lines: string[] } | undefined;

  before(async () => {
    server = await testPostgres(kind);
    url = await server.createDatabase(uniqueDatabaseName('env'));
    cp = await FakeControlPlane.start(CREDENTIAL);
    cp.announce('order-refund');
    dir = mkdtempSync(join(tmpdir(), 'cairn-envelope-'));
  });
  after(async () => {
    if (gateway && gateway.child.exitCode === null) {
      const exited = new Promise((r) => gateway!.child.once('exit', r));
      gateway.child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    await cp?.stop();
    await server?.stop();
  });

  it('runs with a wrapped data key that is never unwrapped on disk, in the environment or in the store', async () => {
    const kek = randomBytes(32);
    const kekFile = join(dir, 'kek');
    writeFileSync(kekFile, `${kek.toString('base64')}\n`, { mode: 0o600 });
    const kms = { CAIRN_DP_KMS: 'file', CAIRN_DP_KMS_KEY_FILE: kekFile };

    // The operator makes the wrapped key: the data key is generated and wrapped, never shown.
    const made = spawnSync(process.execPath, ['--import', 'tsx', mainTs, 'wrap-key', 'k1'], {
      cwd: repoRoot,
      env: { PATH: process.env['PATH'] ?? '', ...kms },
      encoding: 'utf8',
    });
    assert.equal(made.status, 0, made.stderr);
    const wrappedSpec = made.stdout.trim();
    assert.match(wrappedSpec, /^k1:[A-Za-z0-9+/=]+$/);
    // What the attack looks for (the test holds the key-encryption key, so it can unwrap).
    const dataKey = await new FileKeyWrapper(kek).unwrap(parseWrappedKeys(wrappedSpec)[0]!.wrapped, 'k1');
    assert.equal(dataKey.length, 32);

    const env = {
      CAIRN_GATEWAY_HOST: '127.0.0.1',
      CAIRN_GATEWAY_PORT: '0',
      CAIRN_CP_GRPC_ADDRESS: cp.address,
      CAIRN_DP_CREDENTIAL: CREDENTIAL,
      CAIRN_DP_DATABASE_URL: url,
      CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: wrappedSpec,
      ...kms,
      CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
      CAIRN_GATEWAY_TOKENS: TOKEN,
    };
    gateway = await startGateway(env);
    const marker = `CANARY${randomUUID()}`;
    const res = await fetch(`http://127.0.0.1:${gateway.port}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ workflow: 'order-refund', input: { marker } }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    const { runId } = (await res.json()) as { runId: string };

    // The data key is not in the gateway process's environment…
    const environ = readFileSync(`/proc/${gateway.child.pid}/environ`, 'latin1');
    for (const s of spellings(dataKey)) assert.ok(!environ.includes(s), 'the data key is in the environment');
    assert.ok(environ.includes(wrappedSpec), 'only its wrapped form is');
    // …nor in any file the install wrote (the key-encryption key file holds only that key)…
    for (const name of readdirSync(dir)) {
      const bytes = readFileSync(join(dir, name));
      assert.equal(bytes.indexOf(dataKey), -1);
      for (const s of spellings(dataKey)) assert.ok(!bytes.toString('latin1').includes(s), `the data key is in ${name}`);
    }
    // …nor in the payload store, which holds the input sealed (the marker is not readable there).
    const db = await DataPlaneDb.connect(url);
    try {
      const dump = await db.dumpTables();
      assert.ok(dump.get('dp_runs')?.includes(runId), 'the dump holds the run');
      for (const [table, text] of dump) {
        for (const s of [...spellings(dataKey), `\\x${dataKey.toString('hex')}`])
          assert.ok(!text.includes(s), `the data key is in ${table}`);
        assert.ok(!text.includes(marker), `the input is readable in ${table}`);
      }
    } finally {
      await db.close();
    }
    // And it is the data key that sealed the input: the store opens it with the unwrapped key.
    const store = PayloadStore.connect({ connectionString: url, keys: new KeyRing([{ id: 'k1', key: dataKey }]) });
    try {
      assert.deepEqual((await store.getRun(runId))?.input, { marker });
    } finally {
      await store.close();
    }
    const log = gateway.lines.join('\n');
    for (const s of spellings(dataKey)) assert.ok(!log.includes(s), 'the data key was logged');
  });

  it('refuses to start when the key-encryption key does not unwrap the data key, printing neither', () => {
    const otherKek = join(dir, 'other-kek');
    writeFileSync(otherKek, randomBytes(32).toString('base64'), { mode: 0o600 });
    const wrappedSpec = `k1:${Buffer.concat([Buffer.from([1]), randomBytes(60)]).toString('base64')}`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', mainTs], {
      cwd: repoRoot,
      env: {
        PATH: process.env['PATH'] ?? '',
        CAIRN_CP_GRPC_ADDRESS: cp.address,
        CAIRN_DP_CREDENTIAL: CREDENTIAL,
        CAIRN_DP_DATABASE_URL: url,
        CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: wrappedSpec,
        CAIRN_DP_KMS: 'file',
        CAIRN_DP_KMS_KEY_FILE: otherKek,
        CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
        CAIRN_GATEWAY_TOKENS: TOKEN,
      },
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /Wrapped encryption key "k1" does not unwrap with the key-encryption key/);
    assert.ok(!r.stderr.includes(readFileSync(otherKek, 'utf8')));
    const neither = spawnSync(process.execPath, ['--import', 'tsx', mainTs], {
      cwd: repoRoot,
      env: {
        PATH: process.env['PATH'] ?? '',
        CAIRN_CP_GRPC_ADDRESS: cp.address,
        CAIRN_DP_CREDENTIAL: CREDENTIAL,
        CAIRN_DP_DATABASE_URL: url,
        CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
        CAIRN_GATEWAY_TOKENS: TOKEN,
        CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: wrappedSpec,
      },
      encoding: 'utf8',
    });
    assert.equal(neither.status, 1);
    assert.match(neither.stderr, /CAIRN_DP_KMS: is required with CAIRN_DP_WRAPPED_ENCRYPTION_KEYS/);
  });
});
