import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { FileKeyWrapper, Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import { loadWorkerConfig } from './config.js';

const here = dirname(fileURLToPath(import.meta.url));

const good = {
  CAIRN_CP_GRPC_ADDRESS: '127.0.0.1:7233',
  CAIRN_DATA_PLANE_ID: '4f1c2b7e-9d7a-4c43-9a51-0e6f3b1d2c11',
  CAIRN_DP_CREDENTIAL: 'dp-secret-token',
  CAIRN_DP_DATABASE_URL: 'postgres://cairn@127.0.0.1:5432/cairn_dp',
  CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec(),
  CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
};

describe('worker configuration', () => {
  it('reads the environment with defaults', () => {
    const config = loadWorkerConfig(good);
    assert.equal(config.CAIRN_WORKER_SLOTS, 10);
    assert.equal(config.CAIRN_SUSPEND_THRESHOLD_MS, 5000);
    assert.equal(config.CAIRN_DRAIN_TIMEOUT_MS, 25_000);
    assert.equal(config.CAIRN_CP_TLS, false);
    assert.equal(config.CAIRN_LOG_LEVEL, 'info');
    assert.ok(Object.isFrozen(config));
    assert.equal(loadWorkerConfig({ ...good, CAIRN_WORKER_SLOTS: '3' }).CAIRN_WORKER_SLOTS, 3);
  });

  it('refuses a sampler or a sampling ratio the OpenTelemetry SDK would only warn about, naming the variable', () => {
    assert.throws(
      () => loadWorkerConfig({ ...good, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '10%' }),
      (err: unknown) => err instanceof Error && /OTEL_TRACES_SAMPLER_ARG: expected a sampling ratio between 0 and 1/.test(err.message),
    );
    assert.throws(
      () => loadWorkerConfig({ ...good, OTEL_TRACES_SAMPLER: 'ratio' }),
      (err: unknown) => err instanceof Error && /OTEL_TRACES_SAMPLER: expected one of/.test(err.message),
    );
    assert.equal(
      loadWorkerConfig({ ...good, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }).OTEL_TRACES_SAMPLER,
      'parentbased_traceidratio',
    );
  });

  it('names every bad variable without echoing secret values', () => {
    const secretKey = 'not-a-key-but-maybe-a-secret';
    assert.throws(
      () =>
        loadWorkerConfig({
          ...good,
          CAIRN_CP_GRPC_ADDRESS: 'no-port',
          CAIRN_DATA_PLANE_ID: 'local',
          CAIRN_DP_CREDENTIAL: undefined,
          CAIRN_DP_ENCRYPTION_KEYS: secretKey,
          CAIRN_DP_HMAC_KEY: 'c2hvcnQ=',
          CAIRN_WORKER_SLOTS: 'many',
        }),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /CAIRN-1001/);
        for (const name of [
          'CAIRN_CP_GRPC_ADDRESS',
          'CAIRN_DATA_PLANE_ID',
          'CAIRN_DP_CREDENTIAL',
          'CAIRN_DP_ENCRYPTION_KEYS',
          'CAIRN_DP_HMAC_KEY',
          'CAIRN_WORKER_SLOTS',
        ]) {
          assert.match(err.message, new RegExp(`${name}: `));
        }
        assert.doesNotMatch(err.message, /DATABASE_URL/);
        assert.ok(!err.message.includes(secretKey));
        return true;
      },
    );
  });
});

describe(`runWorkerFromEnv against a payload store with other keys (${testPostgresKinds()[0]!} Postgres)`, () => {
  let server: PostgresServer;
  let url: string;
  const k1 = KeyRing.generateSpec('k1');
  const hmac = Hasher.generateSpec();

  before(async () => {
    server = await testPostgres(testPostgresKinds()[0]!);
    url = await server.createDatabase(uniqueDatabaseName('wenv'));
    // The gateway (or the first worker) started with the data plane's keys.
    const first = PayloadStore.connect({ connectionString: url, keys: KeyRing.parse(k1) });
    await first.migrate();
    await first.verifyKeys(Hasher.parse(hmac));
    await first.close();
  });
  after(() => server.stop());

  /** Runs a worker process the way a user's `node dist/worker.js` would. */
  async function runWorker(env: Record<string, string>): Promise<{ status: number | null; stderr: string; dialled: number }> {
    let dialled = 0;
    const cp = createServer((socket) => {
      dialled++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => cp.listen(0, '127.0.0.1', resolve));
    const script = [
      `const { runWorkerFromEnv } = await import(${JSON.stringify(pathToFileURL(join(here, 'config.ts')).href)});`,
      `const { defineWorkflow } = await import('@cairn/sdk');`,
      `await runWorkerFromEnv([defineWorkflow({ name: 'noop', version: '1' }, () => null)]);`,
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: join(here, '..'),
      env: {
        PATH: process.env['PATH'] ?? '',
        ...good,
        CAIRN_CP_GRPC_ADDRESS: `127.0.0.1:${(cp.address() as { port: number }).port}`,
        CAIRN_DP_DATABASE_URL: url,
        CAIRN_DP_ENCRYPTION_KEYS: k1,
        CAIRN_DP_HMAC_KEY: hmac,
        CAIRN_LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const status = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve) => cp.close(() => resolve()));
    return { status, stderr, dialled };
  }

  it('exits 1 naming the encryption key ID that does not match, before dialling the control plane', async () => {
    // What `CAIRN_DP_ENCRYPTION_KEYS=k1:$(openssl rand -base64 32)` on another machine gives.
    const wrong = KeyRing.generateSpec('k1');
    const r = await runWorker({ CAIRN_DP_ENCRYPTION_KEYS: wrong });
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /worker stopped: \[CAIRN-3006\] Encryption key "k1" in CAIRN_DP_ENCRYPTION_KEYS does not match the payload store/,
    );
    assert.match(r.stderr, /Use the same keys as the gateway and the other workers/);
    assert.ok(!r.stderr.includes(wrong.slice(3)), 'the key was printed');
    assert.equal(r.dialled, 0);
  });

  it('exits 1 when the HMAC key does not match, before dialling the control plane', async () => {
    const wrong = Hasher.generateSpec();
    const r = await runWorker({ CAIRN_DP_HMAC_KEY: wrong });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /\[CAIRN-3006\] The HMAC key in CAIRN_DP_HMAC_KEY does not match the payload store/);
    assert.ok(!r.stderr.includes(wrong));
    assert.equal(r.dialled, 0);
  });

  it('in envelope mode unwraps its keys through the KMS at start: the unwrapped key is compared, a wrong key-encryption key stops it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-worker-kek-'));
    try {
      const kek = randomBytes(32);
      const kekFile = join(dir, 'kek');
      writeFileSync(kekFile, kek.toString('base64'), { mode: 0o600 });
      const wrapper = new FileKeyWrapper(kek);
      // Another data key wrapped under k1: the worker unwraps it and the key check refuses it.
      const other = randomBytes(32);
      const wrapped = `k1:${(await wrapper.wrap(other, 'k1')).toString('base64')}`;
      const envelope = {
        CAIRN_DP_ENCRYPTION_KEYS: '',
        CAIRN_DP_WRAPPED_ENCRYPTION_KEYS: wrapped,
        CAIRN_DP_KMS: 'file',
        CAIRN_DP_KMS_KEY_FILE: kekFile,
      };
      const mismatch = await runWorker(envelope);
      assert.equal(mismatch.status, 1, mismatch.stderr);
      assert.match(mismatch.stderr, /\[CAIRN-3006\] Encryption key "k1"/);
      assert.ok(!mismatch.stderr.includes(other.toString('base64')) && !mismatch.stderr.includes(kek.toString('base64')));
      assert.equal(mismatch.dialled, 0);

      writeFileSync(kekFile, randomBytes(32).toString('base64'));
      const wrongKek = await runWorker(envelope);
      assert.equal(wrongKek.status, 1, wrongKek.stderr);
      assert.match(wrongKek.stderr, /worker cannot start: .*Wrapped encryption key "k1" does not unwrap with the key-encryption key/);
      assert.equal(wrongKek.dialled, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
