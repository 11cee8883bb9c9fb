// Attacks on the data plane's front door and on the local stack, with real processes on embedded
// Postgres: gateway tokens that are weak, that try what their scopes do not allow, or that are
// guessed; and a local stack restarted as `cairn dev` restarts it, which must not look like a
// credential rotation in the audit log.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CairnClient, CairnClientError } from '@cairn/client';
import { startStack } from '@cairn/dev';
import { startEmbeddedPostgres } from '@cairn/local-postgres';
import { startTestStack, type TestStack } from '../harness.js';
import { signalWaiter } from '../workflows.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '../../..');
const cliMain = join(repoRoot, 'apps/cli/dist/main.js');
const gatewayMain = join(repoRoot, 'apps/gateway/dist/main.js');

const token = (): string => `cgt_${randomBytes(32).toString('base64url')}`;

interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

describe('gateway tokens', () => {
  let t: TestStack;
  const reader = token();
  const starter = token();
  const approver = token();

  before(async () => {
    t = await startTestStack({
      name: 'trust',
      workers: 1,
      suspendThresholdMs: 300,
      gatewayTokens: [`${reader}:read`, `${starter}:read+start`, `${approver}:read+signal`],
      // Clients are told apart by X-Forwarded-For from this (local) proxy.
      gatewayEnv: { CAIRN_GATEWAY_TRUSTED_PROXIES: 'loopback' },
    });
  });

  after(async () => {
    await t?.stop();
  });

  it('a weak token stops the gateway at start, saying which entry and why, never quoting it', () => {
    const ran = spawnSync(process.execPath, [gatewayMain], {
      env: {
        PATH: process.env['PATH'] ?? '',
        CAIRN_CP_GRPC_ADDRESS: '127.0.0.1:1',
        CAIRN_DP_CREDENTIAL: 'cdp_unused-here',
        CAIRN_DP_DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db',
        CAIRN_DP_ENCRYPTION_KEYS: t.stack.secrets.encryptionKeys,
        CAIRN_DP_HMAC_KEY: t.stack.secrets.hmacKey,
        CAIRN_GATEWAY_TOKENS: `${reader}:read,x`,
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(ran.status, 1);
    assert.match(ran.stderr, /CAIRN_GATEWAY_TOKENS: token 2 of 2: is too weak \(CAIRN-1143\): the token is 1 characters long/);
    assert.match(ran.stderr, /openssl rand/);
    assert.ok(!ran.stderr.includes(reader));
  });

  it('a token does only what its scopes allow: 403 naming the scope, through @cairn/client and the CLI', async () => {
    const gatewayUrl = t.stack.gatewayUrl;
    const own = new CairnClient({ gatewayUrl, token: t.stack.secrets.gatewayToken });
    const asStarter = new CairnClient({ gatewayUrl, token: starter });
    const asReader = new CairnClient({ gatewayUrl, token: reader });
    const asApprover = new CairnClient({ gatewayUrl, token: approver });

    const refused = async (call: Promise<unknown>, scope: string): Promise<void> => {
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof CairnClientError, String(err));
        assert.equal(err.status, 403);
        assert.equal(err.code, 'CAIRN-1144');
        assert.match(err.message, new RegExp(`needs the scope ${scope}`));
        return true;
      });
    };

    // A read+start token starts and reads, but cannot signal or cancel.
    const run = await asStarter.start(signalWaiter, { delayMs: 0, timeoutMs: 60_000 });
    await refused(asStarter.run(run.runId).signal('go', { from: 'starter' }), 'signal');
    await refused(asStarter.run(run.runId).cancel(), 'admin');
    await refused(asReader.start(signalWaiter, { delayMs: 0 }), 'start');
    assert.equal((await asReader.run(run.runId).describe()).run.runId, run.runId);
    // The approver signals; the run ends; everyone with read sees the output.
    await asApprover.run(run.runId).signal('go', { from: 'approver' });
    const result = await asReader.run(run.runId).result();
    assert.deepEqual(result, { timedOut: false, got: [{ from: 'approver' }] });
    await refused(asApprover.run(run.runId).cancel(), 'admin');
    // The stack's own token (no scopes given) may do everything.
    const other = await own.start(signalWaiter, { delayMs: 0, timeoutMs: 60_000 });
    await own.run(other.runId).cancel();

    // The CLI says what is missing and how to get it.
    const cli = spawnSync(process.execPath, [cliMain, 'runs', 'start', 'signal-waiter', '--input', '{"delayMs":0}'], {
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: mkdtempSync(join(tmpdir(), 'cairn-trust-cli-')),
        CAIRN_CONTROL_PLANE_URL: t.stack.controlPlanes[0]!.httpUrl,
        CAIRN_API_KEY: t.stack.secrets.apiToken,
        CAIRN_PROJECT: 'default',
        CAIRN_GATEWAY_URL: gatewayUrl,
        CAIRN_GATEWAY_TOKEN: reader,
        NO_COLOR: '1',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.notEqual(cli.status, 0);
    assert.match(cli.stderr, /CAIRN-1144/);
    assert.match(cli.stderr, /needs the scope start/);
    assert.match(cli.stderr, /CAIRN_GATEWAY_TOKENS \(token:read\+start\+signal\)/);
  });

  it('guessed tokens are throttled per client with 429 and Retry-After; real tokens and other clients are not', async () => {
    const get = (bearer: string, from: string) =>
      fetch(`${t.stack.gatewayUrl}/v1/runs/00000000-0000-4000-8000-000000000000`, {
        headers: { authorization: `Bearer ${bearer}`, 'x-forwarded-for': from },
      });
    assert.equal((await get(reader, '203.0.113.9')).status, 404, 'a real token, from the attacked address');
    let throttled: Response | null = null;
    let checked = 0;
    for (let i = 0; i < 40 && !throttled; i++) {
      const res = await get(token(), '203.0.113.9');
      if (res.status === 429) throttled = res;
      else {
        assert.equal(res.status, 401);
        checked++;
      }
    }
    assert.ok(throttled, 'guessing is throttled');
    assert.equal(checked, 20, 'twenty guesses were checked first');
    assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
    const body = (await throttled.json()) as ErrorBody;
    assert.equal(body.error.code, 'CAIRN-1142');
    assert.equal((await get(reader, '203.0.113.9')).status, 404, 'the real token is not locked out');
    assert.equal((await get(starter, '198.51.100.3')).status, 404, 'nor is another client');
    // Through @cairn/client a throttled guess is a RATE_LIMITED-style error with the gateway's code.
    const guesser = new CairnClient({ gatewayUrl: t.stack.gatewayUrl, token: token(), headers: { 'x-forwarded-for': '203.0.113.9' } });
    await assert.rejects(guesser.run('00000000-0000-4000-8000-000000000000').describe(), (err: unknown) => {
      assert.ok(err instanceof CairnClientError);
      assert.deepEqual([err.status, err.code], [429, 'CAIRN-1142']);
      return true;
    });
  });
});

describe('the local stack restarted', () => {
  it('registers its data plane again at every start without an audit entry', async () => {
    const dir = mkdtempSync(join(process.env['CAIRN_TEST_DIR'] ?? tmpdir(), 'cairn-restart-'));
    const postgres = await startEmbeddedPostgres({ fast: true, persistent: false });
    try {
      for (let start = 0; start < 3; start++) {
        const stack = await startStack({ postgres, dir, workers: 0, logLevel: 'warn' });
        try {
          if (start < 2) continue;
          const res = await fetch(`${stack.controlPlanes[0]!.httpUrl}/v1/projects/default/audit?action=data_plane.*`, {
            headers: { authorization: `Bearer ${stack.secrets.apiToken}` },
          });
          assert.equal(res.status, 200);
          const { entries } = (await res.json()) as { entries: Array<{ action: string; target: { id: string } }> };
          assert.deepEqual(
            entries.map((e) => [e.action, e.target.id]),
            [['data_plane.created', stack.secrets.dataPlaneId]],
            'three starts, one data plane created, no credential rotated',
          );
        } finally {
          await stack.stop();
        }
      }
    } finally {
      await postgres.stop();
    }
  });
});
