import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatEnvironment, workerEnvironment, type Endpoints } from './endpoints.js';
import { consoleSignInUrl } from './run-dev.js';
import { checkPorts, DEFAULT_PORTS, portHolder } from './ports.js';
import { loadSecrets, readSecretsFile, secretsPath, type StackSecrets } from './secrets.js';
import { resolveDevSettings } from './settings.js';
import { RestartPolicy, StartFailure, Supervision, type Service } from './supervisor.js';
import { watchProject } from './watch.js';

const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (predicate()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`timed out waiting until ${what}`);
}

describe('restart policy', () => {
  it('doubles the delay on quick exits up to a cap, starts over after a stable run, and calls three exits a minute a crash loop', () => {
    const policy = new RestartPolicy({ initialDelayMs: 1000, maxDelayMs: 8000, stableAfterMs: 30_000 });
    const delays: Array<[number, boolean]> = [];
    let now = 0;
    for (let i = 0; i < 5; i++) {
      const d = policy.onExit(now + 100, now);
      delays.push([d.delayMs, d.crashLoop]);
      now += 100 + d.delayMs;
    }
    assert.deepEqual(delays, [
      [1000, false],
      [2000, false],
      [4000, true],
      [8000, true],
      [8000, true],
    ]);
    // Up for a minute before it died again: back to the first delay, and no longer a loop.
    now += 120_000;
    assert.deepEqual(policy.onExit(now + 60_000, now), { delayMs: 1000, crashLoop: false, recentExits: 1 });
  });
});

describe('supervision', () => {
  /** A service whose incarnations end when the test says. */
  const fakeService = (failStarts = 0) => {
    const incarnations: Array<(code: number | null) => void> = [];
    let failures = failStarts;
    const service: Service & { launches: number; halts: number } = {
      name: 'thing',
      logFile: '/var/log/thing.log',
      launches: 0,
      halts: 0,
      launch() {
        service.launches++;
        if (failures-- > 0)
          return Promise.reject(new StartFailure('thing exited (code 1) during start-up', ['SyntaxError: bad'], { code: 1, signal: null }));
        return Promise.resolve({
          exited: new Promise((resolve) => incarnations.push((code) => resolve({ code, signal: code === null ? 'SIGKILL' : null }))),
        });
      },
      halt() {
        service.halts++;
        return Promise.resolve();
      },
    };
    return { service, end: (code: number | null) => incarnations.at(-1)!(code) };
  };

  it('restarts a process that exits and says so in one line each way', async () => {
    const lines: string[] = [];
    const { service, end } = fakeService();
    const s = new Supervision(service, (l) => lines.push(l), { policy: { initialDelayMs: 10 } });
    await s.start();
    assert.equal(s.state, 'running');
    end(null);
    await until(() => s.state === 'running' && service.launches === 2, 'it runs again');
    assert.deepEqual(lines, ['thing exited (SIGKILL); restarting in 10ms', 'thing is back']);
    await s.stop();
    end(0);
    assert.equal(s.state, 'stopped');
    assert.equal(service.launches, 2, 'an exit after stop() is not restarted');
  });

  it('backs off further when a process keeps exiting, and calls it a crash loop', async () => {
    const lines: string[] = [];
    const { service, end } = fakeService();
    const s = new Supervision(service, (l) => lines.push(l), { policy: { initialDelayMs: 5 } });
    await s.start();
    for (let i = 1; i <= 3; i++) {
      end(1);
      await until(() => service.launches === i + 1 && s.state === 'running', `start ${i + 1}`);
    }
    await s.stop();
    assert.deepEqual(lines, [
      'thing exited (code 1); restarting in 5ms',
      'thing is back',
      'thing exited (code 1); restarting in 10ms',
      'thing is back',
      'thing exited (code 1) 3 times within a minute: crash loop, backing off; restarting in 20ms (see /var/log/thing.log)',
      'thing is back',
    ]);
  });

  it('waits for a change when a worker does not start, printing its error, and starts it on restart()', async () => {
    const lines: string[] = [];
    const { service } = fakeService(1);
    const s = new Supervision(service, (l) => lines.push(l), { onStartFailure: 'wait' });
    await s.start();
    assert.equal(s.state, 'waiting');
    assert.deepEqual(lines, [
      'thing failed to start: thing exited (code 1) during start-up',
      '  SyntaxError: bad',
      'waiting for a file change to start thing again',
    ]);
    await s.restart('src/worker.ts changed');
    assert.equal(s.state, 'running');
    assert.deepEqual(lines.slice(3), ['src/worker.ts changed; restarting thing', 'thing restarted']);
    await s.stop();
  });

  it('fails the first start of a process that must run', async () => {
    const { service } = fakeService(1);
    const s = new Supervision(service, () => undefined);
    await assert.rejects(s.start(), /thing exited \(code 1\) during start-up/);
  });
});

describe('settings', () => {
  const project = () => {
    const dir = tmp('cairn-settings-');
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src/worker.ts'), '');
    writeFileSync(join(dir, 'src/other.ts'), '');
    return dir;
  };

  it('take flags over environment over cairn.config.json over package.json over the defaults, with paths relative to where they were written', () => {
    const dir = project();
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ cairn: { dev: { worker: 'src/other.ts', ports: { gateway: 9001, modelServer: 9002 } } } }),
    );
    writeFileSync(
      join(dir, 'cairn.config.json'),
      JSON.stringify({ dev: { worker: 'src/worker.ts', ports: { gateway: 9101 } }, other: 'kept for others' }),
    );
    const sub = join(dir, 'src');
    const s = resolveDevSettings({ cpGrpcPort: '9201' }, { CAIRN_DEV_CP_GRPC_PORT: '9301', CAIRN_DEV_PG_PORT: '0' }, sub);
    assert.equal(s.projectDir, dir);
    assert.equal(s.worker, join(dir, 'src/worker.ts'));
    assert.equal(s.dir, join(dir, '.cairn'));
    assert.deepEqual(s.ports, {
      postgres: 0,
      controlPlaneHttp: DEFAULT_PORTS.controlPlaneHttp,
      controlPlaneGrpc: 9201,
      gateway: 9101,
      modelServer: 9002,
    });
    assert.deepEqual(
      [
        s.sources['worker'],
        s.sources['ports.controlPlaneGrpc'],
        s.sources['ports.postgres'],
        s.sources['ports.gateway'],
        s.sources['ports.modelServer'],
      ],
      ['cairn.config.json', 'flag', 'env', 'cairn.config.json', 'package.json'],
    );
    // A flag's path is relative to the current folder.
    assert.equal(resolveDevSettings({ worker: 'other.ts' }, {}, sub).worker, join(dir, 'src/other.ts'));
    assert.equal(resolveDevSettings({ watch: false }, {}, dir).watch, false);
  });

  it('default to the stable ports and .cairn in the project folder', () => {
    const dir = project();
    const s = resolveDevSettings({}, {}, dir);
    assert.deepEqual(s.ports, { postgres: 7432, controlPlaneHttp: 7280, controlPlaneGrpc: 7233, gateway: 7281, modelServer: 7282 });
    assert.equal(s.worker, undefined);
    assert.equal(s.dir, join(dir, '.cairn'));
  });

  it('refuse a bad setting naming where it is and what to do', () => {
    const dir = project();
    writeFileSync(join(dir, 'cairn.config.json'), JSON.stringify({ dev: { prots: {}, ports: { gateway: 'x', gatway: 1 } } }));
    assert.throws(
      () => resolveDevSettings({}, {}, dir),
      (err: Error) =>
        err.message.startsWith('[CAIRN-1130] ') &&
        err.message.includes('"prots" is not a setting (the settings are worker, dir, modelScript, watch, ports)') &&
        err.message.includes('dev.ports.gateway: expected a port number') &&
        err.message.includes('"gatway" is not a setting (the settings are postgres, controlPlaneHttp'),
    );
    writeFileSync(join(dir, 'cairn.config.json'), '{');
    assert.throws(() => resolveDevSettings({}, {}, dir), /cairn\.config\.json is not valid JSON/);
    writeFileSync(join(dir, 'cairn.config.json'), '{}');
    assert.throws(
      () => resolveDevSettings({ worker: 'src/missing.ts' }, {}, dir),
      /The worker file src\/missing\.ts \(from --worker\) does not exist/,
    );
    assert.throws(() => resolveDevSettings({ gatewayPort: '70000' }, {}, dir), /--gateway-port must be a port number from 0 to 65535/);
    assert.throws(() => resolveDevSettings({}, { CAIRN_DEV_PG_PORT: 'five' }, dir), /CAIRN_DEV_PG_PORT must be a port number/);
  });
});

describe('ports', () => {
  it('a taken port is an error naming the port, the process holding it and how to choose another', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      assert.equal(portHolder(port)?.pid, process.pid);
      await assert.rejects(
        checkPorts({ postgres: 0, controlPlaneHttp: 0, controlPlaneGrpc: 0, gateway: port, modelServer: 0 }),
        (err: Error) =>
          err.message.startsWith('[CAIRN-1131] The local stack cannot listen on a port it needs:\n') &&
          err.message.includes(`port ${port} (gateway) is in use by pid ${process.pid} (`) &&
          err.message.includes('choose another with --gateway-port N or CAIRN_DEV_GATEWAY_PORT=N') &&
          err.message.includes('0 picks a free port'),
      );
      await assert.rejects(
        checkPorts({ postgres: 0, controlPlaneHttp: 9999, controlPlaneGrpc: 9999, gateway: 0, modelServer: 0 }),
        /\[CAIRN-1130\] The control-plane gRPC and the control-plane HTTP are both set to port 9999/,
      );
    } finally {
      server.close();
    }
  });
});

describe('secrets file', () => {
  const url = (role: string, password: string, database = role) =>
    `postgres://${role}:${encodeURIComponent(password)}@127.0.0.1:7432/${database}`;

  it('rewrites the first format under the worker variable names, keeping every value and adding the service role and signing key', () => {
    const dir = tmp('cairn-secrets-');
    const legacy = {
      cpDbPassword: 'cp-pass',
      dpDbPassword: 'dp-pass',
      apiToken: 'cak_api',
      gatewayToken: 'cgt_gw',
      dataPlaneId: '0b7f5c3e-2a51-4f0e-9a43-7d3c5e8f1a20',
      dataPlaneCredential: 'cdp_cred',
      encryptionKeys: 'k1:AAAA',
      hmacKey: 'HMAC',
    };
    writeFileSync(secretsPath(dir), JSON.stringify(legacy));
    const secrets = loadSecrets(dir, url);
    const { cpServiceDbPassword, auditSigningKey, ...kept } = secrets;
    assert.deepEqual(kept, legacy);
    assert.match(cpServiceDbPassword, /^[A-Za-z0-9_-]{24}$/);
    assert.match(auditSigningKey, /^-----BEGIN PRIVATE KEY-----/);
    const written = JSON.parse(readFileSync(secretsPath(dir), 'utf8')) as Record<string, string>;
    assert.deepEqual(written, {
      CAIRN_DATA_PLANE_ID: legacy.dataPlaneId,
      CAIRN_DP_CREDENTIAL: 'cdp_cred',
      CAIRN_DP_DATABASE_URL: 'postgres://cairn_dp:dp-pass@127.0.0.1:7432/cairn_dp',
      CAIRN_DP_ENCRYPTION_KEYS: 'k1:AAAA',
      CAIRN_DP_HMAC_KEY: 'HMAC',
      CAIRN_CP_DATABASE_URL: `postgres://cairn_cp_service:${cpServiceDbPassword}@127.0.0.1:7432/cairn_cp`,
      CAIRN_CP_MIGRATION_DATABASE_URL: 'postgres://cairn_cp:cp-pass@127.0.0.1:7432/cairn_cp',
      CAIRN_AUDIT_SIGNING_KEY: auditSigningKey,
      CAIRN_BOOTSTRAP_ADMIN_KEY: 'cak_api',
      CAIRN_GATEWAY_TOKENS: 'cgt_gw',
    });
    assert.equal(statSync(secretsPath(dir)).mode & 0o777, 0o600);
    // Read back in the new format: the same secrets; another Postgres port only changes the URLs.
    assert.deepEqual(readSecretsFile(dir)?.secrets, secrets);
    loadSecrets(dir, (role, password, database = role) => `postgres://${role}:${password}@127.0.0.1:15432/${database}`);
    assert.equal(
      (JSON.parse(readFileSync(secretsPath(dir), 'utf8')) as Record<string, string>)['CAIRN_DP_DATABASE_URL'],
      'postgres://cairn_dp:dp-pass@127.0.0.1:15432/cairn_dp',
    );
  });

  it("reads a file from before the service role: its CAIRN_CP_DATABASE_URL is the owner's, kept as the migration URL", () => {
    const dir = tmp('cairn-secrets-');
    const first = loadSecrets(dir, url);
    const file = JSON.parse(readFileSync(secretsPath(dir), 'utf8')) as Record<string, string>;
    const { CAIRN_CP_MIGRATION_DATABASE_URL: owner, CAIRN_AUDIT_SIGNING_KEY: _key, ...before } = file;
    writeFileSync(secretsPath(dir), JSON.stringify({ ...before, CAIRN_CP_DATABASE_URL: owner }));
    const again = loadSecrets(dir, url);
    assert.equal(again.cpDbPassword, first.cpDbPassword);
    assert.notEqual(again.cpServiceDbPassword, first.cpDbPassword);
    assert.match(again.auditSigningKey, /^-----BEGIN PRIVATE KEY-----/);
    const rewritten = JSON.parse(readFileSync(secretsPath(dir), 'utf8')) as Record<string, string>;
    assert.equal(rewritten['CAIRN_CP_MIGRATION_DATABASE_URL'], owner);
    assert.match(rewritten['CAIRN_CP_DATABASE_URL']!, /^postgres:\/\/cairn_cp_service:/);
    assert.deepEqual(loadSecrets(dir, url), again);
  });

  it('are generated once, and a damaged file is an error, not a silent new set of keys', () => {
    const dir = tmp('cairn-secrets-');
    const first = loadSecrets(dir, url);
    assert.deepEqual(loadSecrets(dir, url), first);
    assert.match(first.apiToken, /^cak_/);
    writeFileSync(secretsPath(dir), '{"CAIRN_DATA_PLANE_ID": 1}');
    assert.throws(
      () => loadSecrets(dir, url),
      /\[CAIRN-1130\] .*secrets\.json has no CAIRN_DATA_PLANE_ID\. It holds the local stack's keys/,
    );
  });
});

describe('worker environment', () => {
  it('uses the names the worker reads, and prints as sh, dotenv or JSON', () => {
    const endpoints: Endpoints = {
      project: 'default',
      dataPlaneId: 'dp',
      controlPlane: { httpUrl: 'http://127.0.0.1:7280', grpcAddress: '127.0.0.1:7233' },
      gatewayUrl: 'http://127.0.0.1:7281',
      modelServerUrl: 'http://127.0.0.1:7282',
      postgres: { host: '127.0.0.1', port: 7432 },
      pid: 1,
      startedAt: '',
    };
    const env = workerEnvironment(endpoints, {
      CAIRN_DATA_PLANE_ID: 'dp',
      CAIRN_DP_CREDENTIAL: "cdp_it's",
      CAIRN_DP_DATABASE_URL: 'postgres://u:p@127.0.0.1:7432/cairn_dp',
      CAIRN_DP_ENCRYPTION_KEYS: 'k1:a+b/c=',
      CAIRN_DP_HMAC_KEY: 'h',
      CAIRN_BOOTSTRAP_ADMIN_KEY: 'not for workers',
      CAIRN_GATEWAY_TOKENS: 'cgt_one:read+start,cgt_two',
    });
    assert.deepEqual(Object.keys(env), [
      'CAIRN_CP_GRPC_ADDRESS',
      'CAIRN_DATA_PLANE_ID',
      'CAIRN_DP_CREDENTIAL',
      'CAIRN_DP_DATABASE_URL',
      'CAIRN_DP_ENCRYPTION_KEYS',
      'CAIRN_DP_HMAC_KEY',
      'CAIRN_MOCK_LLM_URL',
      'CAIRN_DEV_MODE',
      'CAIRN_GATEWAY_URL',
      'CAIRN_GATEWAY_TOKEN',
    ]);
    assert.match(formatEnvironment(env, 'sh'), /^export CAIRN_DP_CREDENTIAL='cdp_it'\\''s'$/m);
    assert.match(formatEnvironment(env, 'dotenv'), /^CAIRN_DP_ENCRYPTION_KEYS=k1:a\+b\/c=$/m);
    assert.match(formatEnvironment(env, 'dotenv'), /^CAIRN_DP_CREDENTIAL="cdp_it's"$/m);
    assert.deepEqual(JSON.parse(formatEnvironment(env, 'json')), env);
    assert.equal(env['CAIRN_GATEWAY_TOKEN'], 'cgt_one', 'one token of the list, without its scopes, for @cairn/client');
    assert.equal(env['CAIRN_GATEWAY_URL'], 'http://127.0.0.1:7281');
  });
});

describe('project watcher', () => {
  it('reports a burst of changes once, and ignores dependencies, build output, git and the state folder', async () => {
    const dir = tmp('cairn-watch-');
    chmodSync(dir, 0o755);
    for (const d of ['src', 'node_modules/x', 'dist', '.git', '.cairn/pg', 'state']) mkdirSync(join(dir, d), { recursive: true });
    const batches: string[][] = [];
    const watcher = watchProject(dir, (paths) => batches.push(paths), { debounceMs: 200, ignore: [join(dir, 'state')] });
    await watcher.ready;
    try {
      for (const f of ['node_modules/x/index.js', 'dist/worker.js', '.git/HEAD', '.cairn/pg/data', 'state/log'])
        writeFileSync(join(dir, f), 'x');
      writeFileSync(join(dir, 'src/a.ts'), 'a');
      writeFileSync(join(dir, 'src/b.ts'), 'b');
      for (let i = 0; i < 100 && batches.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual(batches, [['src/a.ts', 'src/b.ts']]);
    } finally {
      await watcher.close();
    }
  });
});

describe('the console link', () => {
  const secrets = (apiToken: string, gatewayToken: string, dataPlaneId: string): StackSecrets => ({
    cpDbPassword: 'cp',
    cpServiceDbPassword: 'cp-service',
    auditSigningKey: 'pem',
    dpDbPassword: 'dp',
    apiToken,
    gatewayToken,
    dataPlaneId,
    dataPlaneCredential: 'credential',
    encryptionKeys: 'keys',
    hmacKey: 'hmac',
  });

  it('carries the key, the gateway, its token and the data plane in the fragment only, which browsers never send', () => {
    const link = new URL(
      consoleSignInUrl('http://127.0.0.1:7400', {
        gatewayUrl: 'http://127.0.0.1:7401',
        secrets: secrets('ck_local+key/=', 'gw token', '9cea0b47-34d0-4c43-901b-1d3aa0c0e513'),
      }),
    );
    assert.equal(`${link.origin}${link.pathname}${link.search}`, 'http://127.0.0.1:7400/');
    const fragment = new URLSearchParams(link.hash.slice(1));
    assert.deepEqual(Object.fromEntries(fragment), {
      key: 'ck_local+key/=',
      gateway: 'http://127.0.0.1:7401',
      gatewayToken: 'gw token',
      dataPlane: '9cea0b47-34d0-4c43-901b-1d3aa0c0e513',
    });
  });

  it('signs in without a gateway when the stack runs none', () => {
    const link = new URL(consoleSignInUrl('http://127.0.0.1:7400', { gatewayUrl: '', secrets: secrets('ck_local', 'unused', 'unused') }));
    assert.deepEqual(Object.fromEntries(new URLSearchParams(link.hash.slice(1))), { key: 'ck_local' });
  });
});
