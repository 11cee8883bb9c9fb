// The built `cairn` CLI run as a subprocess, as a user would, against one local stack of real
// processes (control plane, gateway, a worker running cli-ops-workflows.ts, the local model
// server): flow control of a registered version, what schedules show and trigger say, replaying a
// run with a model call, and a start pinned to a version no connected worker serves.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@cairn/local-postgres';
import { startTestStack, type TestStack } from '../harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '../../..');
const cliMain = join(repoRoot, 'apps/cli/dist/main.js');
const workflowModule = join(repoRoot, 'test/dist/cli-ops-workflows.js');
const workerModule = join(repoRoot, 'test/dist/cli-ops-worker-main.js');
const nextWorkerModule = join(repoRoot, 'test/dist/cli-ops-next-worker-main.js');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('the cairn CLI on flow control, schedules, replay and versions without a worker', () => {
  let t: TestStack;
  let work: string;
  let baseEnv: Record<string, string>;

  const cli = (args: string[], options: { env?: Record<string, string> } = {}): Promise<Ran> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cliMain, ...args], { env: { ...baseEnv, ...(options.env ?? {}) }, stdio: 'pipe' });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end('');
    });
  const json = async <T = Record<string, unknown>>(args: string[], options: { env?: Record<string, string> } = {}): Promise<T> => {
    const r = await cli([...args, '-o', 'json'], options);
    assert.equal(r.code, 0, `cairn ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
    return JSON.parse(r.stdout) as T;
  };

  before(async () => {
    t = await startTestStack({ name: 'cli-ops', workerModule });
    work = mkdtempSync(join(tmpdir(), 'cairn-cli-ops-'));
    // No model configuration and no HMAC key: only what the CLI itself needs.
    baseEnv = {
      PATH: process.env['PATH'] ?? '',
      HOME: work,
      NO_COLOR: '1',
      CAIRN_CONTROL_PLANE_URL: t.stack.controlPlanes[0]!.httpUrl,
      CAIRN_API_KEY: t.stack.secrets.apiToken,
      CAIRN_PROJECT: 'default',
      CAIRN_GATEWAY_URL: t.stack.gatewayUrl,
      CAIRN_GATEWAY_TOKEN: t.stack.secrets.gatewayToken,
      CAIRN_CONFIG_DIR: join(work, 'config'),
    };
  });

  after(async () => {
    await t?.stop();
  });

  it('updates the flow control of a registered version, showing the change in a dry run first', async () => {
    const metadata = join(work, 'workflows.yaml');
    writeFileSync(metadata, 'ops-echo@1:\n  flowControl:\n    concurrency:\n      limit: 2\n');
    const dry = await json<{ workflows: Array<Record<string, unknown>> }>([
      'workflows',
      'register',
      workflowModule,
      '--metadata',
      metadata,
      '--dry-run',
    ]);
    const { registration: _sent, ...planned } = dry.workflows.find((w) => w['workflow'] === 'ops-echo') ?? {};
    assert.deepEqual(planned, {
      workflow: 'ops-echo',
      version: '1',
      taskQueue: 'default',
      from: `${workflowModule} (echo)`,
      action: 'update',
      differingFields: ['flowControl'],
      changes: {
        flowControl: { from: { concurrency: null, rateLimit: null }, to: { concurrency: { limit: 2, perKey: false }, rateLimit: null } },
      },
    });
    const table = await cli(['workflows', 'register', workflowModule, '--metadata', metadata, '--dry-run']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /ops-echo\s+│ 1\s+│ default\s+│ would update\s+│ flowControl/);
    assert.match(table.stdout, /ops-echo@1 would change:\n\s*flow control now\s+none\n\s*flow control after\s+concurrency 2\n/);
    type Shown = { workflow: { flowControl: { concurrency: unknown } } };
    assert.equal(
      (await json<Shown>(['workflows', 'show', 'ops-echo'])).workflow.flowControl.concurrency,
      null,
      'a dry run changes nothing',
    );

    const applied = await json<{ workflows: Array<{ workflow: string; action: string }> }>([
      'workflows',
      'register',
      workflowModule,
      '--metadata',
      metadata,
    ]);
    assert.equal(applied.workflows.find((w) => w.workflow === 'ops-echo')?.action, 'update');
    assert.deepEqual((await json<Shown>(['workflows', 'show', 'ops-echo'])).workflow.flowControl.concurrency, { limit: 2, perKey: false });
    const again = await json<{ workflows: Array<{ action: string }> }>(['workflows', 'register', workflowModule, '--metadata', metadata]);
    assert.ok(
      again.workflows.every((w) => w.action === 'unchanged'),
      JSON.stringify(again),
    );

    // What may not change for a registered version is still refused, naming the field.
    writeFileSync(metadata, 'ops-echo@1:\n  retry:\n    maximumAttempts: 9\n  flowControl:\n    concurrency:\n      limit: 3\n');
    const refused = await cli(['workflows', 'register', workflowModule, '--metadata', metadata]);
    assert.equal(refused.code, 7);
    assert.match(refused.stderr, /ops-echo@1 is registered with different content \(retry\); nothing was registered/);
    assert.deepEqual((await json<Shown>(['workflows', 'show', 'ops-echo'])).workflow.flowControl.concurrency, { limit: 2, perKey: false });
  });

  it('shows every next fire time and the recent firings, says when a trigger was skipped, and lists runs by schedule name', async () => {
    await json([
      'schedules',
      'create',
      '--name',
      'ops-hourly',
      '--workflow',
      'ops-wait',
      '--version',
      '1',
      '--cron',
      '0 * * * *',
      '--overlap-policy',
      'skip',
      '--data-plane',
      t.stack.secrets.dataPlaneId,
    ]);
    const fired = await cli(['schedules', 'trigger', 'ops-hourly']);
    assert.equal(fired.code, 0, fired.stderr);
    const runId = /✓ triggered ops-hourly: run ([0-9a-f-]{36})/.exec(fired.stdout)?.[1];
    assert.ok(runId, fired.stdout);

    // The run it fired waits for a signal, so the schedule's skip policy skips the next firing.
    const skipped = await cli(['schedules', 'trigger', 'ops-hourly']);
    assert.equal(skipped.code, 7, skipped.stdout);
    assert.doesNotMatch(skipped.stdout, /✓/);
    assert.match(skipped.stdout, /✗ ops-hourly: the firing was skipped, no run started: a run this schedule fired has not ended/);
    assert.match(skipped.stdout, /hint: .*--overlap-policy allow_all/);
    const skippedJson = await cli(['schedules', 'trigger', 'ops-hourly', '-o', 'json']);
    assert.equal(skippedJson.code, 7);
    assert.equal((JSON.parse(skippedJson.stdout) as { firing: { outcome: string; runId: null } }).firing.outcome, 'skipped');

    const detail = await json<{ nextFireTimes: string[] }>(['schedules', 'show', 'ops-hourly']);
    assert.equal(detail.nextFireTimes.length, 5);
    const shown = await cli(['schedules', 'show', 'ops-hourly']);
    assert.equal(shown.code, 0, shown.stderr);
    for (const time of detail.nextFireTimes) assert.ok(shown.stdout.includes(time), `${time} missing from:\n${shown.stdout}`);
    assert.match(shown.stdout, /Recent firings/);
    assert.equal(shown.stdout.match(/│ trigger\s+│[^\n]*│ skipped/g)?.length, 2, shown.stdout);
    assert.match(shown.stdout, new RegExp(`│ trigger\\s+│[^\\n]*│ started\\s+│ ${runId}`));

    const byName = await json<{ runs: Array<{ runId: string }> }>(['runs', 'list', '--schedule', 'ops-hourly']);
    assert.deepEqual(
      byName.runs.map((r) => r.runId),
      [runId],
    );
    const unknown = await cli(['runs', 'list', '--schedule', 'no-such-schedule']);
    assert.equal(unknown.code, 6, unknown.stderr);
    assert.match(unknown.stderr, /no-such-schedule/);

    await json(['runs', 'signal', runId, 'go']);
    assert.equal((await json<{ status: string }>(['runs', 'result', runId])).status, 'completed');
  });

  it('replays a run with a model call, and says what is missing instead of a divergence', async () => {
    const started = await json<{ runId: string; status: string }>(['runs', 'start', 'ops-model', '-i', '{"question":"why?"}', '--wait']);
    assert.equal(started.status, 'completed');
    const hmac = { CAIRN_DP_HMAC_KEY: t.stack.secrets.hmacKey };
    // The code builds its model from the environment; here it is not configured.
    const missing = await cli(['replay', started.runId, '-m', workflowModule], { env: hmac });
    assert.doesNotMatch(missing.stdout + missing.stderr, /diverged/);
    assert.equal(missing.code, 3, missing.stdout + missing.stderr);
    assert.match(
      missing.stdout,
      /✗ cannot replay: the workflow code threw Error before model call "ask" \(position 0\), which the journal holds/,
    );
    assert.match(missing.stdout, /No model configured: set CAIRN_MOCK_LLM_URL/);
    assert.match(missing.stdout, /hint: .*environment your workers have/);
    const missingJson = await cli(['replay', started.runId, '-m', workflowModule, '-o', 'json'], { env: hmac });
    assert.equal(missingJson.code, 3);
    const doc = JSON.parse(missingJson.stdout) as { ok: boolean; outcome: string; missing: string; next: { kind: string; name: string } };
    assert.deepEqual(
      [doc.ok, doc.outcome, doc.missing, doc.next.kind, doc.next.name],
      [false, 'unreplayable', 'model configuration', 'model', 'ask'],
    );

    // With the model configured (a replay calls no model, so the address is never dialled).
    const port = await freePort();
    const model = { CAIRN_MOCK_LLM_URL: `http://127.0.0.1:${port}` };
    const ok = await cli(['replay', started.runId, '-m', workflowModule], { env: { ...hmac, ...model } });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /✓ deterministic/);
    // And without the HMAC key.
    const noKey = await cli(['replay', started.runId, '-m', workflowModule], { env: model });
    assert.doesNotMatch(noKey.stdout + noKey.stderr, /diverged/);
    assert.equal(noKey.code, 0, noKey.stdout + noKey.stderr);
  });

  it('warns at start and in runs describe when no connected worker serves the version the run is pinned to', async () => {
    // A worker announces ops-echo@2, the newest version, and goes away.
    const healthPort = await freePort();
    const next = spawn(process.execPath, [nextWorkerModule], {
      env: { ...process.env, ...t.stack.workerEnv(), CAIRN_WORKER_HEALTH_PORT: String(healthPort) },
      stdio: 'ignore',
    });
    const exited = once(next, 'exit');
    for (;;) {
      const ready = await fetch(`http://127.0.0.1:${healthPort}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ready) break;
      assert.equal(next.exitCode, null, 'the worker of ops-echo@2 exited before it was ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    next.kill('SIGTERM');
    await exited;
    // Until the control plane has seen its stream end, it would still count the worker as connected.
    const connectedWorkers = async (): Promise<number> => {
      const res = await fetch(
        `${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/data-planes/${t.stack.secrets.dataPlaneId}/workers`,
        { headers: { authorization: `Bearer ${t.stack.secrets.apiToken}` } },
      );
      const body = (await res.json()) as { workers: Array<{ connected: boolean }> };
      return body.workers.filter((w) => w.connected).length;
    };
    while ((await connectedWorkers()) !== 1) await new Promise((r) => setTimeout(r, 100));

    const started = await cli(['runs', 'start', 'ops-echo', '-i', '{"text":"hi"}', '-o', 'json']);
    assert.equal(started.code, 0, started.stderr);
    const body = JSON.parse(started.stdout) as {
      runId: string;
      version: string;
      status: string;
      warnings: Array<{ code: string; message: string }>;
    };
    assert.equal(body.version, '2');
    assert.equal(body.status, 'queued');
    assert.deepEqual(
      body.warnings.map((w) => w.code),
      ['no_connected_worker'],
    );
    assert.match(body.warnings[0]!.message, /no connected worker serves ops-echo@2/);
    assert.match(started.stderr, /warning: no connected worker serves ops-echo@2: the run waits in the queue until one connects/);

    const described = await json<{ run: { status: string }; warnings: Array<{ code: string }> }>(['runs', 'describe', body.runId]);
    assert.equal(described.run.status, 'queued');
    assert.deepEqual(
      described.warnings.map((w) => w.code),
      ['no_connected_worker'],
    );
    const describedTable = await cli(['runs', 'describe', body.runId]);
    assert.match(describedTable.stdout + describedTable.stderr, /warning: no connected worker serves ops-echo@2/);
    // Application code reading the run through the gateway (as @cairn/client's describe() does) is told the same.
    const fromGateway = async (runId: string) =>
      ((await (await t.gateway('GET', `/v1/runs/${runId}`)).json()) as { warnings: Array<{ code: string; message: string }> }).warnings;
    const queuedWarnings = await fromGateway(body.runId);
    assert.deepEqual(
      queuedWarnings.map((w) => w.code),
      ['no_connected_worker'],
    );
    assert.match(queuedWarnings[0]!.message, /^no connected worker serves ops-echo@2: the run waits in the queue until one connects$/);

    // A version a connected worker serves starts without a warning.
    const served = await json<{ runId: string; warnings?: unknown[] }>([
      'runs',
      'start',
      'ops-echo',
      '--version',
      '1',
      '-i',
      '{"text":"hi"}',
      '--wait',
    ]);
    assert.deepEqual(served.warnings ?? [], []);
    const servedDescribed = await json<{ warnings: unknown[] }>(['runs', 'describe', served.runId]);
    assert.deepEqual(servedDescribed.warnings, []);
    assert.deepEqual(await fromGateway(served.runId), []);
  });
});
