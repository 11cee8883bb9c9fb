// The gateway as a process: what `node dist/main.js` does, over real sockets.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing } from '@cairn/payload-store';
import { FakeControlPlane } from './testing/fake-control-plane.js';
import { DataPlaneDb } from './testing/postgres.js';

const here = dirname(fileURLToPath(import.meta.url));
const mainTs = join(here, 'main.ts');
const repoRoot = resolve(here, '../../..');
const TOKEN = `cgt_${randomUUID()}`;
const CREDENTIAL = `cdp_${randomUUID()}`;

interface Started {
  child: ChildProcess;
  port: number;
  lines: string[];
  exited: Promise<number | null>;
}

function startGatewayProcess(env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', mainTs], {
    cwd: repoRoot,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolvePort, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number };
          if (entry.msg === 'gateway listening' && typeof entry.port === 'number') resolvePort({ child, port: entry.port, lines, exited });
        } catch {
          // not a log line
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
    void exited.then((code) => reject(new Error(`gateway exited with ${code} before listening:\n${lines.join('\n')}`)));
  });
}

const kind = testPostgresKinds()[0]!;

describe(`the gateway process (${kind} Postgres)`, () => {
  let server: PostgresServer;
  let url: string;
  let cp: FakeControlPlane;
  let gw: Started;
  let base: string;
  let db: DataPlaneDb;
  let env: Record<string, string>;

  before(async () => {
    server = await testPostgres(kind);
    url = await server.createDatabase(uniqueDatabaseName('gwp'));
    cp = await FakeControlPlane.start(CREDENTIAL);
    cp.announce('order-refund');
    env = {
      CAIRN_GATEWAY_HOST: '127.0.0.1',
      CAIRN_GATEWAY_PORT: '0',
      CAIRN_CP_GRPC_ADDRESS: cp.address,
      CAIRN_DP_CREDENTIAL: CREDENTIAL,
      CAIRN_DP_DATABASE_URL: url,
      CAIRN_DP_ENCRYPTION_KEYS: KeyRing.generateSpec(),
      CAIRN_DP_HMAC_KEY: Hasher.generateSpec(),
      CAIRN_GATEWAY_TOKENS: TOKEN,
      CAIRN_GATEWAY_MAX_PAYLOAD_BYTES: '100000',
      CAIRN_LOG_LEVEL: 'info',
    };
    // Start-up migrates the payload store: the database is empty until then.
    gw = await startGatewayProcess(env);
    base = `http://127.0.0.1:${gw.port}`;
    db = await DataPlaneDb.connect(url);
  });

  after(async () => {
    if (gw && gw.child.exitCode === null) {
      gw.child.kill('SIGKILL');
      await gw.exited;
    }
    await db?.close();
    await cp?.stop();
    await server?.stop();
  });

  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

  it('logs the bound port, migrates the store, and serves health and readiness', async () => {
    assert.ok(gw.port > 0);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^cairn_dp_listener_reconnects_total 0$/m);
    assert.equal(await db.count('dp_runs'), 0);
  });

  it('starts a run over HTTP and never logs the body or the token', async () => {
    const marker = `CANARY${randomUUID()}`;
    const res = await fetch(`${base}/v1/runs`, {
      method: 'POST',
      headers: { ...auth, 'x-request-id': 'req-abc' },
      body: JSON.stringify({ workflow: 'order-refund', input: { marker }, idempotencyKey: `key-${marker}` }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal(res.headers.get('x-request-id'), 'req-abc');
    const bad = await fetch(`${base}/v1/runs`, { method: 'POST', headers: auth, body: `{"workflow": "x", "input": "${marker}` });
    assert.equal(bad.status, 400);
    await new Promise((r) => setTimeout(r, 100));
    const log = gw.lines.join('\n');
    assert.match(log, /"reqId":"req-abc"/);
    assert.ok(!log.includes(marker), 'a payload or key was logged');
    assert.ok(!log.includes(TOKEN), 'a token was logged');
    assert.ok(!log.includes(CREDENTIAL), 'the credential was logged');
  });

  it('answers an oversize body with 413 over a real socket', async () => {
    const runs = await db.count('dp_runs');
    // Just over the 100,000-byte limit: the gateway answers 413 from the Content-Length and closes
    // without reading the body, so a body far larger than the socket buffers could still be
    // uploading then and the client would see EPIPE instead of the answer.
    const res = await fetch(`${base}/v1/runs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ workflow: 'order-refund', input: { blob: 'x'.repeat(100_100) } }),
    });
    assert.equal(res.status, 413);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'CAIRN-1103');
    assert.match(body.error.message, /100000 bytes/);
    assert.equal(await db.count('dp_runs'), runs);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });

  it('shuts down cleanly on SIGTERM', async () => {
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0);
    assert.match(gw.lines.join('\n'), /"msg":"gateway stopped"/);
  });

  it('refuses to start with keys that do not match the payload store, naming the key and echoing none', () => {
    const calls = cp.recorded.length;
    const wrongKeys = KeyRing.generateSpec('k1');
    const wrongHmac = Hasher.generateSpec();
    const r = spawnSync(process.execPath, ['--import', 'tsx', mainTs], {
      cwd: repoRoot,
      // A gateway set up with keys of its own (`openssl rand`) against the data plane's store.
      env: { PATH: process.env['PATH'] ?? '', ...env, CAIRN_DP_ENCRYPTION_KEYS: wrongKeys, CAIRN_DP_HMAC_KEY: wrongHmac },
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /gateway cannot start: \[CAIRN-3006\] Encryption key "k1" in CAIRN_DP_ENCRYPTION_KEYS does not match the payload store: data sealed with k1 cannot be opened with it\. The HMAC key in CAIRN_DP_HMAC_KEY does not match/,
    );
    assert.match(r.stderr, /Use the same keys as the gateway and the other workers/);
    for (const secret of [wrongKeys.slice(3), wrongHmac, env['CAIRN_DP_ENCRYPTION_KEYS']!.slice(3), env['CAIRN_DP_HMAC_KEY']!]) {
      assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), 'a key was printed');
    }
    assert.doesNotMatch(r.stdout, /gateway listening/);
    assert.equal(cp.recorded.length, calls, 'the control plane was called');

    // The migration job (what a Helm upgrade runs first) stops the rollout the same way.
    const m = spawnSync(process.execPath, ['--import', 'tsx', mainTs, 'migrate'], {
      cwd: repoRoot,
      env: { PATH: process.env['PATH'] ?? '', CAIRN_DP_DATABASE_URL: url, CAIRN_DP_ENCRYPTION_KEYS: wrongKeys },
      encoding: 'utf8',
    });
    assert.equal(m.status, 1, m.stderr);
    assert.match(m.stderr, /\[CAIRN-3006\] Encryption key "k1"/);
    const ok = spawnSync(process.execPath, ['--import', 'tsx', mainTs, 'migrate'], {
      cwd: repoRoot,
      env: { PATH: process.env['PATH'] ?? '', CAIRN_DP_DATABASE_URL: url, CAIRN_DP_ENCRYPTION_KEYS: env['CAIRN_DP_ENCRYPTION_KEYS']! },
      encoding: 'utf8',
    });
    assert.equal(ok.status, 0, ok.stderr);
  });

  it('refuses to start with a bad environment, naming each variable and echoing no value', () => {
    const secret = Buffer.from('a-secret-but-short').toString('base64');
    const r = spawnSync(process.execPath, ['--import', 'tsx', mainTs], {
      cwd: repoRoot,
      env: {
        PATH: process.env['PATH'] ?? '',
        ...env,
        CAIRN_DP_HMAC_KEY: secret,
        CAIRN_GATEWAY_PORT: 'eighty',
        CAIRN_DP_DATABASE_URL: 'mysql://x',
      },
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /CAIRN-1001/);
    assert.match(r.stderr, /CAIRN_DP_HMAC_KEY/);
    assert.match(r.stderr, /CAIRN_GATEWAY_PORT/);
    assert.match(r.stderr, /CAIRN_DP_DATABASE_URL/);
    assert.ok(!r.stderr.includes(secret));
    assert.ok(!r.stderr.includes('mysql://x'));
  });

  it('retires a key with reencrypt and key-usage: refused while data needs it, allowed after', () => {
    const run = (args: string[], keys: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', mainTs, ...args], {
        cwd: repoRoot,
        env: { PATH: process.env['PATH'] ?? '', CAIRN_DP_DATABASE_URL: url, CAIRN_DP_ENCRYPTION_KEYS: keys, CAIRN_LOG_LEVEL: 'warn' },
        encoding: 'utf8',
      });
    const old = env['CAIRN_DP_ENCRYPTION_KEYS']!;
    const promoted = `${KeyRing.generateSpec('k2')},${old}`;
    const before = run(['key-usage', '--retire', 'k1'], promoted);
    assert.equal(before.status, 1, before.stderr);
    assert.match(before.stderr, /k1 cannot be retired yet: \d+ value\(s\) are sealed with it/);
    const usage = JSON.parse(before.stdout) as {
      activeKeyId: string;
      stillNeeded: string[];
      hmacKeys: Array<{ keyId: string; openRuns: number }>;
    };
    assert.equal(usage.activeKeyId, 'k2');
    assert.deepEqual(usage.stillNeeded, ['k1']);
    assert.equal(usage.hmacKeys[0]?.keyId, '', 'the open runs digest with the HMAC key without an ID');
    assert.ok((usage.hmacKeys[0]?.openRuns ?? 0) > 0);

    const re = run(['reencrypt', '--batch-size', '3'], promoted);
    assert.equal(re.status, 0, re.stderr);
    assert.ok((JSON.parse(re.stdout) as { rewritten: number }).rewritten > 0);
    const afterwards = run(['key-usage', '--retire', 'k1'], promoted);
    assert.equal(afterwards.status, 0, afterwards.stderr);
    assert.match(afterwards.stderr, /No value needs k1/);
    for (const out of [before, re, afterwards]) {
      for (const secret of promoted.split(',').map((e) => e.slice(3)))
        assert.ok(!out.stdout.includes(secret) && !out.stderr.includes(secret));
    }
    const bad = run(['reencrypt', '--batch-size', 'many'], promoted);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--batch-size expects a whole number/);
  });
});
