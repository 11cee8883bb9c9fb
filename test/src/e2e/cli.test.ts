// The built `cairn` CLI run as a subprocess, as a user would, against one local stack of real
// processes (control plane, gateway, a worker running cli-workflows.ts) and a fake Kubernetes API
// server that speaks the real REST protocol for `cairn doctor`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schemaDigest } from '@cairn/common';
import { freePort } from '@cairn/local-postgres';
import { greetV2Input } from '../cli-workflows.js';
import { startTestStack, type TestStack } from '../harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '../../..');
const cliMain = join(repoRoot, 'apps/cli/dist/main.js');
const workflowModule = join(repoRoot, 'test/dist/cli-workflows.js');
const workerModule = join(repoRoot, 'test/dist/cli-worker-main.js');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('the cairn CLI against a local stack', () => {
  let t: TestStack;
  let configDir: string;
  let work: string;
  let cpUrl: string;
  let gwUrl: string;
  let baseEnv: Record<string, string>;

  const cli = (args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<Ran> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cliMain, ...args], { env: { ...baseEnv, ...(options.env ?? {}) }, stdio: 'pipe' });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(options.input ?? '');
    });
  /** Runs a command with `-o json`, expects exit 0 and parses stdout. */
  const json = async <T = Record<string, unknown>>(
    args: string[],
    options: { env?: Record<string, string>; input?: string } = {},
  ): Promise<T> => {
    const r = await cli([...args, '-o', 'json'], options);
    assert.equal(r.code, 0, `cairn ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
    return JSON.parse(r.stdout) as T;
  };

  before(async () => {
    t = await startTestStack({ name: 'cli', workerModule });
    cpUrl = t.stack.controlPlanes[0]!.httpUrl;
    gwUrl = t.stack.gatewayUrl;
    work = mkdtempSync(join(tmpdir(), 'cairn-cli-'));
    configDir = join(work, 'config');
    baseEnv = { PATH: process.env['PATH'] ?? '', HOME: work, CAIRN_CONFIG_DIR: configDir, NO_COLOR: '1' };
  });

  after(async () => {
    await t?.stop();
  });

  it('logs in, stores the profile with mode 600 and shows it with secrets masked', async () => {
    const login = await json(
      ['login', '--control-plane', cpUrl, '--gateway', gwUrl, '--project', 'default', '--api-key-stdin', '--gateway-token-stdin'],
      { input: `${t.stack.secrets.apiToken}\n${t.stack.secrets.gatewayToken}\n` },
    );
    assert.equal(login['profile'], 'default');
    assert.equal(login['role'], 'admin');
    assert.equal(login['apiKey'], 'set');
    const file = join(configDir, 'config.yaml');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(readFileSync(file, 'utf8').includes(t.stack.secrets.apiToken));

    const shown = await json(['profiles', 'show']);
    assert.equal(shown['controlPlaneUrl'], cpUrl);
    assert.equal(shown['apiKey'], `${t.stack.secrets.apiToken.slice(0, 4)}…`);
    assert.deepEqual(shown['sources'], {
      controlPlaneUrl: 'profile',
      apiKey: 'profile',
      project: 'profile',
      gatewayUrl: 'profile',
      gatewayToken: 'profile',
    });
    const overridden = await json(['profiles', 'show'], { env: { CAIRN_PROJECT: 'staging' } });
    assert.equal(overridden['project'], 'staging');
    const list = await json<{ profiles: Array<{ name: string; current: boolean }> }>(['profiles', 'list']);
    assert.deepEqual(
      list.profiles.map((p) => [p.name, p.current]),
      [['default', true]],
    );
  });

  it('refuses bad arguments, missing configuration, bad keys and unreachable servers with clear errors and their exit codes', async () => {
    const missing = await cli(['runs', 'start']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing required argument 'workflow'/);
    const unknownOption = await cli(['runs', 'list', '--colour']);
    assert.equal(unknownOption.code, 2);
    assert.match(unknownOption.stderr, /unknown option '--colour'/);
    const badStatus = await cli(['runs', 'list', '--status', 'exploded']);
    assert.equal(badStatus.code, 2);
    assert.match(badStatus.stderr, /Unknown status exploded: use queued, running/);
    const badJson = await cli(['runs', 'start', 'cli-greet', '-i', '{name:']);
    assert.equal(badJson.code, 2);
    assert.match(badJson.stderr, /The input from the command line is not valid JSON/);
    const badFormat = await cli(['projects', 'list', '-o', 'xml']);
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.stderr, /argument 'xml' is invalid/);

    const noConfig = await cli(['runs', 'list'], { env: { CAIRN_CONFIG_DIR: join(work, 'empty') } });
    assert.equal(noConfig.code, 3);
    assert.match(noConfig.stderr, /No control-plane URL in profile "default"/);
    assert.match(noConfig.stderr, /hint: Run `cairn login/);

    const badKey = await cli(['projects', 'list'], { env: { CAIRN_API_KEY: 'cak_not-a-real-key-at-all' } });
    assert.equal(badKey.code, 5);
    assert.match(badKey.stderr, /control plane refused GET \/v1\/projects: .*\[CAIRN-1104\]/);

    const port = await freePort();
    const down = await cli(['projects', 'list', '--control-plane', `http://127.0.0.1:${port}`]);
    assert.equal(down.code, 4);
    assert.match(down.stderr, new RegExp(`Cannot reach the control plane at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
    const gwDown = await cli(['runs', 'start', 'cli-greet', '-i', '{}', '--gateway', `http://127.0.0.1:${port}`]);
    assert.equal(gwDown.code, 4);
    assert.match(gwDown.stderr, new RegExp(`Cannot reach the gateway at http://127\\.0\\.0\\.1:${port}`));

    const notFound = await cli(['runs', 'describe', '00000000-0000-4000-8000-000000000000']);
    assert.equal(notFound.code, 6);
    assert.match(notFound.stderr, /\[CAIRN-1105\]/);
  });

  it('lists projects and registers, lists and revokes a data plane with its helm install line', async () => {
    const projects = await json<{ projects: Array<{ name: string }> }>(['projects', 'list']);
    assert.ok(projects.projects.some((p) => p.name === 'default'));

    const created = await json<{ dataPlane: { id: string; name: string }; credential: string; helmInstall: string; secretCommand: string }>(
      ['data-planes', 'create', 'eu-test', '--namespace', 'payments'],
    );
    assert.match(created.credential, /^cdp_/);
    const port = new URL(cpUrl).hostname;
    assert.equal(
      created.helmInstall,
      `helm install cairn helm/cairn-data-plane --namespace payments --set controlPlane.address=${port}:7233 --set controlPlane.tls.enabled=false ` +
        `--set dataPlane.id=${created.dataPlane.id} --set dataPlane.credential.existingSecret=cairn-dp-credential -f values.yaml`,
    );
    assert.equal(
      created.secretCommand,
      `kubectl -n payments create secret generic cairn-dp-credential --from-literal=credential='${created.credential}'`,
    );
    // The chart's values the line sets exist in its values.yaml.
    const values = readFileSync(join(repoRoot, 'helm/cairn-data-plane/values.yaml'), 'utf8');
    assert.match(values, /^controlPlane:\n(?:.*\n)*? {2}address: ''/m);
    assert.match(values, /^dataPlane:\n(?:.*\n)*? {2}id: ''/m);

    const table = await cli(['data-planes', 'create', 'eu-test-2']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /Credential \(shown once: store it now\)\n {2}cdp_/);
    assert.match(table.stdout, /helm install cairn helm\/cairn-data-plane/);

    await json(['data-planes', 'revoke', created.dataPlane.id]);
    const list = await json<{ dataPlanes: Array<{ id: string; revokedAt: string | null }> }>(['data-planes', 'list']);
    assert.notEqual(list.dataPlanes.find((d) => d.id === created.dataPlane.id)?.revokedAt ?? null, null);
    assert.equal(list.dataPlanes.find((d) => d.id === t.stack.secrets.dataPlaneId)?.revokedAt, null);
  });

  it('registers workflow versions with their settings from the module, with a dry run, an override file and a refused change', async () => {
    const metadata = join(work, 'workflows.yaml');
    // Overrides with the names defineWorkflow uses: retry and timeouts field by field.
    writeFileSync(metadata, 'cli-greet@2:\n  retry:\n    maximumAttempts: 4\n  timeouts:\n    step: 30s\n');
    const dry = await json<{
      dryRun: boolean;
      workflows: Array<{ workflow: string; version: string; action: string; registration?: Record<string, unknown> }>;
    }>(['workflows', 'register', workflowModule, '--metadata', metadata, '--dry-run']);
    assert.equal(dry.dryRun, true);
    const actions = Object.fromEntries(dry.workflows.map((w) => [`${w.workflow}@${w.version}`, w.action]));
    // The worker announced the v1 versions (development mode registers them with their settings from code).
    assert.deepEqual(actions, {
      'cli-approval@1': 'unchanged',
      'cli-greet@1': 'unchanged',
      'cli-greet@2': 'create',
      'cli-nap@1': 'unchanged',
      'cli-signal@1': 'unchanged',
    });
    const inputDigest = schemaDigest(greetV2Input['~standard'].jsonSchema.input({ target: 'draft-2020-12' }));
    // What would be sent: the settings from code with the overrides, and the schema's digest, not the schema.
    assert.deepEqual(dry.workflows.find((w) => w.version === '2')?.registration, {
      name: 'cli-greet',
      version: '2',
      taskQueue: 'default',
      inputSchemaDigest: inputDigest,
      outputSchemaDigest: null,
      retry: { maximumAttempts: 4, initialInterval: 250, backoffCoefficient: 2, maximumInterval: 25_000 },
      timeouts: { run: 3_600_000, step: 30_000 },
      schedules: [{ cron: '0 9 * * 1-5', timezone: 'Europe/Paris' }],
    });
    const table = await cli(['workflows', 'register', workflowModule, '--metadata', metadata, '--dry-run']);
    assert.match(
      table.stdout,
      /cli-greet@2 would send:\n\s*retry\s+maximumAttempts 4, initialInterval 250 ms, backoffCoefficient 2, maximumInterval 25000 ms/,
    );
    assert.match(table.stdout, new RegExp(`input schema digest\\s+${inputDigest}`));
    const notYet = await cli(['workflows', 'show', 'cli-greet', '2']);
    assert.equal(notYet.code, 6);

    const registered = await json<{ workflows: Array<{ workflow: string; version: string; action: string }> }>([
      'workflows',
      'register',
      workflowModule,
      '--metadata',
      metadata,
    ]);
    assert.equal(registered.workflows.find((w) => w.version === '2')?.action, 'create');
    const shown = await json<{
      workflow: {
        retry: unknown;
        timeouts: { run: number; step: number };
        inputSchemaDigest: string;
        schedules: unknown[];
        source: string;
      };
    }>(['workflows', 'show', 'cli-greet', '2']);
    assert.deepEqual(shown.workflow.retry, { maximumAttempts: 4, initialInterval: 250, backoffCoefficient: 2, maximumInterval: 25_000 });
    assert.deepEqual(shown.workflow.timeouts, { run: 3_600_000, step: 30_000 });
    assert.equal(shown.workflow.inputSchemaDigest, inputDigest);
    assert.deepEqual(shown.workflow.schedules, [{ cron: '0 9 * * 1-5', timezone: 'Europe/Paris' }]);
    assert.equal(shown.workflow.source, 'api');
    const shownTable = await cli(['workflows', 'show', 'cli-greet', '2']);
    assert.match(shownTable.stdout, /run timeout\s+3600000 ms/);

    const again = await json<{ workflows: Array<{ action: string }> }>(['workflows', 'register', workflowModule, '--metadata', metadata]);
    assert.ok(again.workflows.every((w) => w.action === 'unchanged'));

    writeFileSync(metadata, 'cli-greet@2:\n  retry:\n    maximumAttempts: 9\n');
    const changedDry = await cli(['workflows', 'register', workflowModule, '--metadata', metadata, '--dry-run', '-o', 'json']);
    assert.equal(changedDry.code, 7);
    const plan = JSON.parse(changedDry.stdout) as { workflows: Array<{ version: string; action: string; differingFields: string[] }> };
    const { registration: _sent, ...v2 } = plan.workflows.find((w) => w.version === '2') as Record<string, unknown>;
    assert.deepEqual(v2, {
      workflow: 'cli-greet',
      version: '2',
      taskQueue: 'default',
      from: `${workflowModule} (greetV2)`,
      action: 'conflict',
      differingFields: ['retry', 'timeouts.step'],
    });
    const changed = await cli(['workflows', 'register', workflowModule, '--metadata', metadata]);
    assert.equal(changed.code, 7);
    assert.match(changed.stderr, /cli-greet@2 is registered with different content \(retry, timeouts\.step\); nothing was registered/);
    assert.match(changed.stderr, /hint: Registered versions are immutable/);

    writeFileSync(metadata, 'cli-greet@2:\n  retryPolicy:\n    maxAttempts: 9\n');
    const legacy = await cli(['workflows', 'register', workflowModule, '--metadata', metadata]);
    assert.equal(legacy.code, 2);
    assert.match(legacy.stderr, /retryPolicy is now retry: \{ maximumAttempts, initialInterval, backoffCoefficient, maximumInterval \}/);

    const noDefs = await cli(['workflows', 'register', join(repoRoot, 'test/dist/effects.js')]);
    assert.equal(noDefs.code, 2);
    assert.match(noDefs.stderr, /No workflow definitions are exported by/);

    await json(['workflows', 'deprecate', 'cli-greet', '2']);
    const list = await json<{ workflows: Array<{ name: string; versions: Array<{ version: string; deprecated: boolean }> }> }>([
      'workflows',
      'list',
      '--include-deprecated',
    ]);
    const greet = list.workflows.find((w) => w.name === 'cli-greet');
    assert.deepEqual(
      greet?.versions.map((v) => [v.version, v.deprecated]),
      [
        ['2', true],
        ['1', false],
      ],
    );
  });

  let greetRun = '';

  it('starts runs through the gateway with input inline or from stdin, lists, describes and watches them', async () => {
    const started = await json<{ runId: string; status: string; output: unknown }>([
      'runs',
      'start',
      'cli-greet',
      '--version',
      '1',
      '-i',
      '{"name":"Ada"}',
      '--wait',
    ]);
    greetRun = started.runId;
    assert.equal(started.status, 'completed');
    assert.deepEqual(started.output, { greeting: 'Hello, Ada' });

    const fromStdin = await json<{ runId: string; output: unknown }>(['runs', 'start', 'cli-greet', '-f', '-', '--wait'], {
      input: '{"name":"Grace"}',
    });
    assert.deepEqual(fromStdin.output, { greeting: 'Hello, Grace' });
    const inputFile = join(work, 'input.json');
    writeFileSync(inputFile, '{"name":"Linus"}');
    const fromFile = await json<{ runId: string; created: boolean }>([
      'runs',
      'start',
      'cli-greet',
      '-f',
      inputFile,
      '--idempotency-key',
      'linus-1',
    ]);
    const sameKey = await json<{ runId: string; created: boolean }>([
      'runs',
      'start',
      'cli-greet',
      '-f',
      inputFile,
      '--idempotency-key',
      'linus-1',
    ]);
    assert.equal(sameKey.runId, fromFile.runId);
    assert.equal(sameKey.created, false);

    const listed = await json<{ runs: Array<{ runId: string; workflowName: string; status: string }> }>([
      'runs',
      'list',
      '--workflow',
      'cli-greet',
      '--status',
      'completed',
    ]);
    // Every command names a run's ID runId, the control plane's list included.
    assert.ok(listed.runs.some((r) => r.runId === greetRun));
    assert.ok(listed.runs.every((r) => !('id' in r)));
    assert.ok(listed.runs.every((r) => r.workflowName === 'cli-greet' && r.status === 'completed'));

    const described = await json<{
      run: { runId: string; status: string };
      timeline: Array<{ position: number; kind: string; name: string; status: string }>;
    }>(['runs', 'describe', greetRun]);
    assert.equal(described.run.runId, greetRun);
    assert.equal(described.run.status, 'completed');
    assert.deepEqual(
      described.timeline.map((s) => [s.position, s.kind, s.name, s.status]),
      [
        [0, 'step', 'lookup', 'completed'],
        [1, 'step', 'compose', 'completed'],
      ],
    );
    const table = await cli(['runs', 'describe', greetRun]);
    assert.match(table.stdout, /│ 1 +│ step +│ compose +│ completed +│ 1 +│/);

    // A run started and watched until it ends: one JSON event per line, ending with its status.
    const watched = await cli(['runs', 'start', 'cli-greet', '-i', '{"name":"Barbara"}', '--watch', '-o', 'json']);
    assert.equal(watched.code, 0, watched.stderr);
    const events = watched.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; name?: string; status: string });
    assert.deepEqual(events.at(-1)?.event, 'end');
    assert.equal(events.at(-1)?.status, 'completed');
    assert.ok(events.some((e) => e.event === 'step' && e.name === 'compose' && e.status === 'completed'));
    assert.match(watched.stderr, /started run [0-9a-f-]{36} \(cli-greet@1\)/);
  });

  it('signals, approves, rejects, cancels, terminates and forks runs', async () => {
    const waiting = await json<{ runId: string }>(['runs', 'start', 'cli-signal']);
    await json(['runs', 'signal', waiting.runId, 'go', '-d', '{"x":1}']);
    const signalled = await json<{ status: string; output: unknown }>(['runs', 'result', waiting.runId]);
    assert.deepEqual(signalled.output, { got: { x: 1 } });

    // With an idempotency key a repeat delivers nothing new, and says so.
    const keyed = await json<{ runId: string }>(['runs', 'start', 'cli-signal']);
    const key = ['--idempotency-key', `form-${keyed.runId}`];
    const first = await json<{ signalId: string; created: boolean }>(['runs', 'signal', keyed.runId, 'go', '-d', '{"x":2}', ...key]);
    assert.equal(first.created, true);
    assert.deepEqual((await json<{ output: unknown }>(['runs', 'result', keyed.runId])).output, { got: { x: 2 } });
    const repeat = await cli(['runs', 'signal', keyed.runId, 'go', '-d', '{"x":2}', ...key]);
    assert.equal(repeat.code, 0, repeat.stderr);
    assert.match(
      repeat.stdout,
      /signal go sent to run .* \(run completed\) \(a repeat of the signal sent earlier with this idempotency key: nothing new delivered\)/,
    );
    const bad = await cli(['runs', 'signal', keyed.runId, 'go', '--idempotency-key', 'clé']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--idempotency-key must be 1 to 1024 printable ASCII characters/);

    const a = await json<{ runId: string }>(['runs', 'start', 'cli-approval', '-i', '{"doc":"q3"}']);
    const b = await json<{ runId: string }>(['runs', 'start', 'cli-approval', '-i', '{"doc":"q4"}']);
    const approved = await json<{ approved: boolean }>(['runs', 'approve', a.runId, 'publish', '--by', 'maria', '--comment', 'ok']);
    assert.equal(approved.approved, true);
    await json(['runs', 'reject', b.runId, 'publish', '--by', 'li']);
    assert.deepEqual((await json<{ output: unknown }>(['runs', 'result', a.runId])).output, { approved: true, by: 'maria' });
    assert.deepEqual((await json<{ output: unknown }>(['runs', 'result', b.runId])).output, { approved: false, by: 'li' });

    const nap1 = await json<{ runId: string }>(['runs', 'start', 'cli-nap']);
    const nap2 = await json<{ runId: string }>(['runs', 'start', 'cli-nap']);
    await t.waitForRun(nap1.runId, (r) => r.status === 'suspended');
    await t.waitForRun(nap2.runId, (r) => r.status === 'suspended');
    await json(['runs', 'cancel', nap1.runId]);
    const cancelled = await cli(['runs', 'result', nap1.runId, '-o', 'json']);
    assert.equal(cancelled.code, 11);
    assert.equal((JSON.parse(cancelled.stdout) as { status: string }).status, 'cancelled');
    const terminated = await json<{ run: { status: string } }>(['runs', 'terminate', nap2.runId]);
    assert.equal(terminated.run.status, 'terminated');
    const watchTerminated = await cli(['runs', 'watch', nap2.runId, '-o', 'json']);
    assert.equal(watchTerminated.code, 11);
    const again = await cli(['runs', 'terminate', nap2.runId]);
    assert.equal(again.code, 7);
    assert.match(again.stderr, /\[CAIRN-1108\]/);

    const forked = await cli(['runs', 'fork', greetRun, '--from-step', '1', '--watch', '-o', 'json']);
    assert.equal(forked.code, 0, forked.stderr);
    const forkId = /forked run ([0-9a-f-]{36})/.exec(forked.stderr)?.[1];
    assert.ok(forkId, forked.stderr);
    const fork = await json<{
      run: { forkedFromRunId: string; forkPosition: number; status: string };
      timeline: Array<{ position: number; copied: boolean }>;
      totals: { copiedCalls: number };
    }>(['runs', 'describe', forkId]);
    assert.equal(fork.run.forkedFromRunId, greetRun);
    assert.equal(fork.run.forkPosition, 1);
    assert.equal(fork.run.status, 'completed');
    // The call before the fork position was copied from the source, not run again, and says so.
    assert.deepEqual(
      fork.timeline.map((c) => [c.position, c.copied]),
      [
        [0, true],
        [1, false],
      ],
    );
    assert.equal(fork.totals.copiedCalls, 1);
    const forkTable = await cli(['runs', 'describe', forkId]);
    assert.match(forkTable.stdout, /2 \(2 attempts, 0 retries, 1 copied from the source run\)/);
    assert.match(forkTable.stdout, /│ 0 │ step │ lookup +│ completed \(copied\) │/);
    // A fork with a new input: stored through the gateway, the whole workflow runs again with it.
    const reForked = await cli(['runs', 'fork', greetRun, '--from-step', '0', '-i', '{"name":"Grace"}', '--watch', '-o', 'json']);
    assert.equal(reForked.code, 0, reForked.stderr);
    assert.match(reForked.stderr, /forked run [0-9a-f-]{36} from [0-9a-f-]{36} at step 0 with a new input \([0-9a-f-]{36}\)/);
    const reForkId = /forked run ([0-9a-f-]{36})/.exec(reForked.stderr)![1]!;
    assert.deepEqual((await json<{ output: unknown }>(['runs', 'result', reForkId])).output, { greeting: 'Hello, Grace' });
    const badInput = await cli(['runs', 'fork', greetRun, '--from-step', '0', '-i', '{"name":']);
    assert.equal(badInput.code, 2);
    assert.match(badInput.stderr, /The input from the command line is not valid JSON/);
    const badFork = await cli(['runs', 'fork', greetRun, '--from-step', 'three']);
    assert.equal(badFork.code, 2);
    assert.match(badFork.stderr, /--from-step must be a whole number/);
  });

  it('replays a run against the local code, and finds an introduced non-determinism', async () => {
    const env = { CAIRN_DP_HMAC_KEY: t.stack.secrets.hmacKey };
    const ok = await json<{ ok: boolean; outcome: string; replayedCalls: number; journalEntries: number }>(
      ['replay', greetRun, '-m', workflowModule],
      { env },
    );
    assert.equal(ok.ok, true);
    assert.equal(ok.outcome, 'completed');
    assert.equal(ok.replayedCalls, 2);
    const text = await cli(['replay', greetRun, '-m', workflowModule], { env });
    assert.equal(text.code, 0);
    assert.match(text.stdout, /✓ deterministic/);

    const noKey = await cli(['replay', greetRun, '-m', workflowModule]);
    assert.equal(noKey.code, 3);
    assert.match(noKey.stderr, /need the data plane's HMAC key/);

    // The same workflow version with its second step renamed: what a careless change would deploy.
    const changedDir = join(work, 'changed');
    mkdirSync(join(changedDir, 'node_modules', '@cairn'), { recursive: true });
    symlinkSync(realpathSync(join(repoRoot, 'test/node_modules/@cairn/sdk')), join(changedDir, 'node_modules', '@cairn', 'sdk'));
    const changed = join(changedDir, 'workflows.mjs');
    writeFileSync(
      changed,
      `import { defineWorkflow } from '@cairn/sdk';
export const greet = defineWorkflow({ name: 'cli-greet', version: '1' }, async (ctx, input) => {
  const person = await ctx.step('lookup', { key: input.name }, () => ({ name: input.name }));
  const greeting = await ctx.step('compose-formal', () => { throw new Error('a replay must not run steps'); });
  return { greeting };
});
`,
    );
    const diff = await cli(['replay', greetRun, '-m', changed, '-o', 'json'], { env });
    assert.equal(diff.code, 10, diff.stderr);
    const result = JSON.parse(diff.stdout) as {
      ok: boolean;
      position: number;
      expected: { kind: string; name: string };
      actual: { kind: string; name: string };
    };
    assert.equal(result.ok, false);
    assert.equal(result.position, 1);
    assert.deepEqual([result.expected.kind, result.expected.name], ['step', 'compose']);
    assert.deepEqual([result.actual.kind, result.actual.name], ['step', 'compose-formal']);
    const diffText = await cli(['replay', greetRun, '-m', changed], { env });
    assert.equal(diffText.code, 10);
    assert.match(
      diffText.stdout,
      /non-determinism.*\n {2}at position 1\n {2}- expected \(journal\): step "compose"\n {2}\+ actual {3}\(code\): {4}step "compose-formal"/,
    );

    const v2only = join(changedDir, 'v2.mjs');
    writeFileSync(
      v2only,
      `import { defineWorkflow } from '@cairn/sdk';
export const greet = defineWorkflow({ name: 'cli-greet', version: '2' }, async (ctx) => ctx.step('compose', () => 'hi'));
`,
    );
    const wrongVersion = await cli(['replay', greetRun, '-m', v2only], { env });
    assert.equal(wrongVersion.code, 2);
    assert.match(wrongVersion.stderr, /Run [0-9a-f-]{36} is on cli-greet@1, which .*v2\.mjs does not define \(they define version 2\)/);
  });

  it('creates schedules with an input stored through the gateway, pauses, resumes, triggers and backfills them', async () => {
    const created = await json<{ schedule: { id: string; name: string; inputPayloadId: string; paused: boolean } }>([
      'schedules',
      'create',
      '--name',
      'cli-yearly',
      '--workflow',
      'cli-greet',
      '--version',
      '1',
      '--cron',
      '0 0 1 1 *',
      '-i',
      '{"name":"Scheduled"}',
      '--data-plane',
      t.stack.secrets.dataPlaneId,
    ]);
    assert.equal(created.schedule.paused, false);
    // Only the payload ID reached the control plane; the gateway holds the input.
    const payload = await (await t.gateway('GET', `/v1/payloads/${created.schedule.inputPayloadId}`)).json();
    assert.deepEqual((payload as { payload: unknown }).payload, { name: 'Scheduled' });

    const list = await json<{ schedules: Array<{ name: string }> }>(['schedules', 'list']);
    assert.ok(list.schedules.some((s) => s.name === 'cli-yearly'));
    assert.equal((await json<{ schedule: { paused: boolean } }>(['schedules', 'pause', 'cli-yearly'])).schedule.paused, true);
    assert.equal((await json<{ schedule: { paused: boolean } }>(['schedules', 'resume', 'cli-yearly'])).schedule.paused, false);
    const fired = await json<{ firing: { runId: string } }>(['schedules', 'trigger', 'cli-yearly']);
    assert.deepEqual((await json<{ output: unknown }>(['runs', 'result', fired.firing.runId])).output, { greeting: 'Hello, Scheduled' });
    const backfill = await json<{ started: number; alreadyFired: number }>([
      'schedules',
      'backfill',
      'cli-yearly',
      '--from',
      '2024-12-31T00:00:00Z',
      '--to',
      '2025-01-02T00:00:00Z',
    ]);
    assert.deepEqual([backfill.started, backfill.alreadyFired], [1, 0]);
    const ambiguous = await cli(['schedules', 'create', '--workflow', 'cli-greet', '--cron', '0 0 1 1 *']);
    assert.equal(ambiguous.code, 2);
    assert.match(
      ambiguous.stderr,
      /The project has 2 data planes \(eu-test-2, local\): say which runs the schedule\.\nhint: Pass --data-plane ID/,
    );
    const badPolicy = await cli(['schedules', 'create', '--workflow', 'cli-greet', '--cron', '* * * * *', '--overlap-policy', 'sometimes']);
    assert.equal(badPolicy.code, 2);
    assert.match(badPolicy.stderr, /Unknown overlap policy "sometimes": use skip, buffer_one, allow_all, cancel_previous/);
  });

  it('reports usage and verifies the audit chain', async () => {
    const usage = await json<{ totals: { runsStarted: number; stepsExecuted: number } }>(['usage']);
    assert.ok(usage.totals.runsStarted >= 10, JSON.stringify(usage.totals));
    assert.ok(usage.totals.stepsExecuted >= 8, JSON.stringify(usage.totals));
    const audit = await json<{ ok: boolean; entries: number; head: { position: number; hash: string } }>(['audit', 'verify']);
    assert.equal(audit.ok, true);
    assert.ok(audit.entries > 0);
    assert.equal(audit.head.position, audit.entries);
    assert.match(audit.head.hash, /^[0-9a-f]{64}$/);
    const text = await cli(['audit', 'verify']);
    assert.match(text.stdout, /✓ audit chain intact: \d+ entries, head \d+ [0-9a-f]{64}/);
    const badDate = await cli(['usage', '--from', 'yesterday']);
    assert.equal(badDate.code, 2);
  });

  it('renders the residency report from the proto descriptors as Markdown and JSON', async () => {
    const report = await json<{
      problems: string[];
      messages: Array<{
        message: string;
        via: string[];
        fields: Array<{ field: string; class: string; maxLength: number | null; pattern: string | null; carries: string }>;
      }>;
    }>(['residency', 'report']);
    assert.deepEqual(report.problems, []);
    const start = report.messages.find((m) => m.message === 'cairn.gateway.v1.StartRunRequest');
    assert.deepEqual(start?.via, ['cairn.gateway.v1.GatewayService/StartRun']);
    const digest = start?.fields.find((f) => f.field === 'idempotency_digest');
    assert.equal(digest?.class, 'DIGEST');
    assert.equal(digest?.maxLength, 64);
    assert.equal(digest?.pattern, '^[0-9a-f]{64}$');
    assert.match(digest?.carries ?? '', /HMAC digest of the caller's idempotency key/);
    assert.ok(report.messages.some((m) => m.message === 'cairn.worker.v1.Hello'));
    // Messages the control plane sends back are not part of what crosses from the data plane.
    assert.ok(!report.messages.some((m) => m.message === 'cairn.worker.v1.ConnectResponse'));
    const markdown = await cli(['residency', 'report']);
    assert.equal(markdown.code, 0);
    assert.match(markdown.stdout, /^# Cairn boundary contract/);
    assert.match(
      markdown.stdout,
      /### `cairn\.gateway\.v1\.StartRunRequest`\n\nSent through `cairn\.gateway\.v1\.GatewayService\/StartRun`/,
    );
    assert.match(markdown.stdout, /\| 4 \| `idempotency_digest` \| string \| DIGEST \| ≤ 64 chars, `\^\[0-9a-f\]\{64\}\$` \|/);
  });

  describe('doctor', () => {
    let kube: Server;
    let kubeUrl: string;
    const requests: Array<{ path: string; authorization: string | undefined }> = [];
    let workerReady = true;
    const credential = Buffer.from('cdp_test-credential').toString('base64');
    const pod = (name: string, component: string, ready: boolean) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: 'cairn',
        labels: {
          'app.kubernetes.io/instance': 'cairn',
          'app.kubernetes.io/name': 'cairn-data-plane',
          'app.kubernetes.io/component': component,
        },
      },
      spec: {
        containers: [
          {
            name: component,
            image: 'registry.example.com/cairn/gateway:0.1.0',
            env: [{ name: 'CAIRN_DP_CREDENTIAL', valueFrom: { secretKeyRef: { name: 'cairn-dp-credential', key: 'credential' } } }],
          },
        ],
      },
      status: {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
        containerStatuses: [{ name: component, ready, restartCount: ready ? 0 : 3, image: 'x', imageID: 'y' }],
      },
    });

    before(async () => {
      kube = createServer((req: IncomingMessage, res) => {
        const url = new URL(req.url ?? '/', 'http://kube');
        requests.push({ path: `${url.pathname}${url.search}`, authorization: req.headers.authorization });
        const send = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (req.method === 'GET' && url.pathname === '/api/v1/namespaces/cairn/pods') {
          send(200, {
            apiVersion: 'v1',
            kind: 'PodList',
            metadata: { resourceVersion: '42' },
            items:
              url.searchParams.get('labelSelector') === 'app.kubernetes.io/instance=cairn'
                ? [pod('cairn-gateway-0', 'gateway', true), pod('cairn-worker-0', 'worker', workerReady)]
                : [],
          });
          return;
        }
        if (req.method === 'GET' && url.pathname === '/api/v1/namespaces/cairn/secrets/cairn-dp-credential') {
          send(200, {
            apiVersion: 'v1',
            kind: 'Secret',
            type: 'Opaque',
            metadata: { name: 'cairn-dp-credential', namespace: 'cairn' },
            data: { credential },
          });
          return;
        }
        send(404, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: `${url.pathname} not found`,
          reason: 'NotFound',
          code: 404,
        });
      });
      await new Promise<void>((r) => kube.listen(0, '127.0.0.1', r));
      const address = kube.address();
      kubeUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      writeFileSync(
        join(work, 'kubeconfig.yaml'),
        `apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: ${kubeUrl}
      insecure-skip-tls-verify: true
users:
  - name: tester
    user:
      token: fake-kube-token
contexts:
  - name: fake
    context:
      cluster: fake
      user: tester
      namespace: cairn
current-context: fake
`,
      );
    });

    after(async () => {
      await new Promise((r) => kube?.close(r));
    });

    it('checks both servers, versions, clock skew, and the release in Kubernetes', async () => {
      const r = await cli(['doctor', '--kubeconfig', join(work, 'kubeconfig.yaml'), '-o', 'json']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const doc = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ check: string; ok: boolean; detail: string }> };
      assert.equal(doc.ok, true);
      const byName = Object.fromEntries(doc.checks.map((c) => [c.check, c]));
      for (const name of [
        'control plane reachable',
        'control plane ready',
        'control plane clock',
        'control plane API version',
        'API key',
        'project',
        'gateway reachable',
        'gateway ready',
        'gateway clock',
        'gateway token and control-plane link',
        'kubernetes API',
        'gateway pods',
        'worker pods',
        'credential secret',
      ]) {
        assert.equal(byName[name]?.ok, true, `${name}: ${JSON.stringify(byName[name])}`);
      }
      assert.match(byName['API key']!.detail, /role admin/);
      assert.equal(byName['worker pods']!.detail, '1/1 ready');
      assert.match(byName['credential secret']!.detail, /Secret cairn-dp-credential holds "credential" \(a data-plane credential\)/);
      assert.ok(
        requests.some((q) => q.path === '/api/v1/namespaces/cairn/pods?labelSelector=app.kubernetes.io%2Finstance%3Dcairn'),
        JSON.stringify(requests),
      );
      assert.ok(requests.every((q) => q.authorization === 'Bearer fake-kube-token'));
    });

    it('fails naming a pod that is not ready, a missing release and an unreachable gateway', async () => {
      workerReady = false;
      const r = await cli(['doctor', '--kubeconfig', join(work, 'kubeconfig.yaml')]);
      assert.equal(r.code, 12);
      assert.match(r.stdout, /✗ worker pods\s+0\/1 ready; not ready: cairn-worker-0 \(Running\); 3 restart\(s\)/);
      const port = await freePort();
      const other = await cli([
        'doctor',
        '--kubeconfig',
        join(work, 'kubeconfig.yaml'),
        '--release',
        'billing',
        '--gateway',
        `http://127.0.0.1:${port}`,
        '-o',
        'json',
      ]);
      assert.equal(other.code, 12);
      const doc = JSON.parse(other.stdout) as { checks: Array<{ check: string; ok: boolean; detail: string }> };
      const failed = Object.fromEntries(doc.checks.filter((c) => !c.ok).map((c) => [c.check, c.detail]));
      assert.match(
        failed['gateway reachable'] ?? '',
        new RegExp(`Cannot reach the gateway at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`),
      );
      assert.match(failed['gateway pods'] ?? '', /no gateway pod with app\.kubernetes\.io\/instance=billing in cairn/);
      assert.match(failed['credential secret'] ?? '', /reading Secret billing-cairn-data-plane-credential in cairn failed: HTTP 404/);
    });
  });

  it('prints help with examples, completion scripts and its version', async () => {
    for (const args of [
      ['runs', 'fork', '--help'],
      ['doctor', '--help'],
      ['dev', '--help'],
      ['replay', '--help'],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Examples:\n {2}# /);
    }
    const bash = await cli(['completion', 'bash']);
    assert.match(bash.stdout, /complete -F _cairn_complete cairn/);
    assert.match(bash.stdout, /"runs"\) words="start result list describe watch signal approve reject cancel terminate fork/);
    const fish = await cli(['completion', 'fish']);
    assert.match(fish.stdout, /complete -c cairn -n '__fish_seen_subcommand_from fork; and __fish_seen_subcommand_from runs' -l from-step/);
    const zsh = await cli(['completion', 'zsh']);
    assert.match(zsh.stdout, /^#compdef cairn/);
    const version = await cli(['--version']);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
