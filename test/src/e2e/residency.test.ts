// Attacks on what the control plane may learn beyond the payloads themselves, with real processes on
// embedded Postgres: exact sizes that would tell a small value apart (an approval answer, `true` or
// `false`), and free text put where a name goes (a model ID that is an e-mail address).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

const execFileAsync = promisify(execFile);
const cliMain = join(dirname(fileURLToPath(import.meta.url)), '../../../apps/cli/dist/main.js');
const workflowModule = join(dirname(fileURLToPath(import.meta.url)), '../../dist/workflows.js');

describe('residency: sizes', () => {
  let t: TestStack;

  before(async () => {
    t = await startTestStack({ name: 'residency-sizes', workers: 1, suspendThresholdMs: 300 });
  });

  after(async () => {
    await t?.stop();
  });

  it('an approved and a rejected run, whose outputs are true and false, look the same size to the control plane', async () => {
    const approved = await t.start('verdict', {});
    const rejected = await t.start('verdict', {});
    for (const [runId, answer] of [
      [approved, { approved: true }],
      [rejected, { approved: false }],
    ] as const) {
      await t.waitForRun(runId, (r) => r.status === 'suspended' && r.waitingSignal === 'approval.review');
      const res = await t.gateway('POST', `/v1/runs/${runId}/approvals/review`, {
        body: JSON.stringify(answer),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 202, await res.text());
    }
    const yes = await t.result(approved);
    const no = await t.result(rejected);
    assert.deepEqual([yes.status, yes.output, no.status, no.output], ['completed', true, 'completed', false]);

    // The data plane keeps the exact sizes (4 bytes for true, 5 for false) and the gateway shows them.
    const exact = async (runId: string): Promise<number> =>
      ((await (await t.gateway('GET', `/v1/runs/${runId}`)).json()) as { run: { outputSize: number } }).run.outputSize;
    assert.deepEqual([await exact(approved), await exact(rejected)], [4, 5]);

    // Every size column the control plane's database holds for the two runs is the same.
    const cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await cp.connect();
    try {
      // Size columns of every table that holds per-run rows (keyed by run_id; `runs` by id).
      const columns = await cp.query<{ table_name: string; column_name: string; key: string }>(
        `SELECT c.table_name, c.column_name,
                CASE WHEN EXISTS (SELECT 1 FROM information_schema.columns r
                                   WHERE r.table_schema = 'public' AND r.table_name = c.table_name AND r.column_name = 'run_id')
                     THEN 'run_id' ELSE 'id' END AS key
           FROM information_schema.columns c
          WHERE c.table_schema = 'public' AND c.column_name LIKE '%size%'
            AND (c.table_name = 'runs' OR EXISTS (SELECT 1 FROM information_schema.columns r
                         WHERE r.table_schema = 'public' AND r.table_name = c.table_name AND r.column_name = 'run_id'))
          ORDER BY 1, 2`,
      );
      const seen = columns.rows.map((c) => `${c.table_name}.${c.column_name}`);
      assert.ok(
        seen.includes('runs.input_size') && seen.includes('runs.output_size') && seen.includes('run_steps.output_size'),
        seen.join(),
      );
      for (const { table_name: table, column_name: column, key } of columns.rows) {
        const sizes = async (runId: string): Promise<string[]> =>
          (
            await cp.query<{ v: string | null }>(`SELECT "${column}"::text AS v FROM "${table}" WHERE "${key}" = $1 ORDER BY 1`, [runId])
          ).rows.map((r) => r.v ?? 'null');
        const [a, b] = [await sizes(approved), await sizes(rejected)];
        assert.ok(a.length > 0, `${table}.${column} has rows for the run`);
        assert.deepEqual(a, b, `${table}.${column} tells an approval from a rejection`);
        for (const v of a) assert.ok(v === 'null' || v === '0' || Number(v) >= 64, `${table}.${column} holds an exact size ${v}`);
      }
    } finally {
      await cp.end();
    }
  });
});

/** Every row of every table of the control plane's database, as text, and its log files. */
async function controlPlaneDump(t: TestStack): Promise<{ rows: number; text: string }> {
  const cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
  await cp.connect();
  let rows = 0;
  const parts: string[] = [];
  try {
    const tables = await cp.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
    for (const { tablename } of tables.rows) {
      const r = await cp.query<{ row: string }>(`SELECT t::text AS row FROM "${tablename}" t`);
      rows += r.rows.length;
      parts.push(...r.rows.map((x) => `${tablename}: ${x.row}`));
    }
  } finally {
    await cp.end();
  }
  for (const replica of t.stack.controlPlanes) parts.push(readFileSync(replica.process.logFile, 'utf8'));
  return { rows, text: parts.join('\n') };
}

describe('residency: names', () => {
  let t: TestStack;
  let capture: string;
  const email = 'jane.doe.078051120@example.com';
  const ssn = 'Jane.Doe.SSN-078-05-1120';

  before(async () => {
    capture = join(process.env['CAIRN_TEST_DIR'] ?? tmpdir(), `cairn-residency-${randomUUID()}.bin`);
    t = await startTestStack({ name: 'residency-names', workers: 1, suspendThresholdMs: 300, captureGrpcTo: capture });
  });

  after(async () => {
    await t?.stop();
  });

  it('a model ID that is an e-mail address crosses as a keyed digest; a listed model crosses by name', async () => {
    const unlisted = await t.start('named-model', { model: email });
    const listed = await t.start('named-model', { model: 'mock-small' });
    assert.equal((await t.result(unlisted)).status, 'completed');
    assert.equal((await t.result(listed)).status, 'completed');

    const modelOf = async (runId: string) => {
      const step = (await t.describe(runId)).steps.find((s) => s.kind === 'model') as unknown as { provider: string; model: string };
      return [step.provider, step.model];
    };
    const [provider, model] = await modelOf(unlisted);
    assert.equal(provider, 'unlisted');
    assert.match(model!, /^unlisted\.[0-9a-f]{16}$/);
    assert.deepEqual(await modelOf(listed), ['mock.chat', 'mock-small'], 'CAIRN_WORKER_MODELS lists mock.chat/mock-small');
    // The data plane keeps the real name, in the call's transcript.
    const position = (await t.describe(unlisted)).steps.find((s) => s.kind === 'model')!.position;
    const transcript = await (await t.gateway('GET', `/v1/runs/${unlisted}/steps/${position}/transcript`)).text();
    assert.ok(transcript.includes(email), 'the transcript names the model');

    const usage = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default/usage`, {
      headers: { authorization: `Bearer ${t.stack.secrets.apiToken}` },
    });
    assert.match(await usage.text(), /unlisted\.[0-9a-f]{16}/, 'usage still counts the unlisted model, by its digest');
  });

  it('a signal or approval name the workflow does not declare is kept in the data plane; undeclared waits still wake', async () => {
    const runId = await t.start('signal-waiter', { delayMs: 0, signals: 2 });
    await t.waitForRun(runId, (r) => r.status === 'suspended' && r.waitingSignal === 'go');
    const odd = await t.signal(runId, ssn, { note: 'kept' });
    assert.equal(odd.status, 202);
    assert.deepEqual(
      Object.fromEntries(
        Object.entries((await odd.json()) as Record<string, unknown>).filter(([k]) => ['signal', 'waiting', 'waitingFor'].includes(k)),
      ),
      { signal: ssn, waiting: false, waitingFor: 'go' },
      'the caller is told the run waits for something else',
    );
    const approval = await t.gateway('POST', `/v1/runs/${runId}/approvals/${ssn}`, {
      body: JSON.stringify({ approved: true }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(approval.status, 202, await approval.text());
    // The name the run waits for (written in code, reported by the worker) crosses as before.
    assert.equal((await t.signal(runId, 'go', { n: 1 })).status, 202);
    await t.waitForRun(runId, (r) => r.status === 'suspended' && r.waitingSignal === 'go' && r.dispatchCount >= 2);
    assert.equal((await t.signal(runId, 'go', { n: 2 })).status, 202);
    assert.deepEqual((await t.result(runId)).output, { timedOut: false, got: [{ n: 1 }, { n: 2 }] });

    // Sent while the run waits for something else, a name it does not declare crosses as a per-run
    // digest only; the run finds the signal in the data plane when it comes to wait for it.
    const early = await t.start('review-then-signal', {});
    await t.waitForRun(early, (r) => r.status === 'suspended' && r.waitingSignal === 'approval.review');
    assert.equal((await t.signal(early, 'late', { early: true })).status, 202);
    const approved = await t.gateway('POST', `/v1/runs/${early}/approvals/review/approve`);
    assert.equal(approved.status, 202, await approved.text());
    assert.deepEqual((await t.result(early)).output, { early: true });
    const cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await cp.connect();
    try {
      const notices = await cp.query<{ signal_name: string | null; signal_digest: string | null }>(
        'SELECT signal_name, signal_digest FROM signal_notices WHERE run_id = $1',
        [early],
      );
      const late = notices.rows.filter((n) => n.signal_name !== 'approval.review');
      assert.equal(late.length, 1);
      assert.equal(late[0]!.signal_name, null);
      assert.match(late[0]!.signal_digest ?? '', /^[0-9a-f]{64}$/);
    } finally {
      await cp.end();
    }
  });

  it('none of those names is in the control plane: database, logs or gRPC bytes', async () => {
    await t.stack.stop();
    const dump = await controlPlaneDump(t);
    assert.ok(dump.rows > 10, 'the control plane did record metadata');
    const grpc = readFileSync(capture);
    assert.ok(grpc.length > 1000, 'gRPC traffic was captured');
    const found: string[] = [];
    for (const needle of [email, ssn, 'Jane.Doe', 'jane.doe', '078-05-1120', '078051120']) {
      const n = dump.text.split(needle).length - 1;
      if (n > 0) found.push(`${needle} ×${n} in the database or logs`);
      if (grpc.includes(Buffer.from(needle))) found.push(`${needle} in the gRPC bytes`);
    }
    assert.deepEqual(found, []);
  });
});

describe('residency: strict mode', () => {
  let t: TestStack;
  let capture: string;
  const workflow = 'Wombat-Tariff-Settle';
  const child = 'Platypus-Invoice-Child';
  const step = 'Quokka-Ledger-Reconcile';
  const signal = 'Heron-Payout-Release';

  before(async () => {
    capture = join(process.env['CAIRN_TEST_DIR'] ?? tmpdir(), `cairn-strict-${randomUUID()}.bin`);
    t = await startTestStack({
      name: 'residency-strict',
      workers: 1,
      suspendThresholdMs: 300,
      captureGrpcTo: capture,
      workerEnv: { CAIRN_RESIDENCY: 'strict' },
      gatewayEnv: { CAIRN_RESIDENCY: 'strict' },
    });
  });

  after(async () => {
    await t?.stop();
  });

  const cliEnv = (gateway = false): Record<string, string> => ({
    PATH: process.env['PATH'] ?? '',
    HOME: t.dir,
    CAIRN_CONTROL_PLANE_URL: t.stack.controlPlanes[0]!.httpUrl,
    CAIRN_API_KEY: t.stack.secrets.apiToken,
    CAIRN_PROJECT: 'default',
    ...(gateway ? { CAIRN_GATEWAY_URL: t.stack.gatewayUrl, CAIRN_GATEWAY_TOKEN: t.stack.secrets.gatewayToken } : {}),
  });
  // Not spawnSync: the gRPC capture proxy runs in this process and must keep forwarding.
  const cliRun = (args: string[], env: Record<string, string>) =>
    execFileAsync(process.execPath, [cliMain, ...args], { env, encoding: 'utf8', timeout: 30_000 });

  it('a schedule created through the CLI by workflow name fires the workflow by its digest, and shows under its name', async () => {
    const created = await cliRun(
      ['schedules', 'create', '--workflow', child, '--cron', '0 0 1 1 *', '-i', '{"n":5}', '--paused', '-o', 'json'],
      cliEnv(true),
    );
    const { schedule } = JSON.parse(created.stdout) as { schedule: { id: string; workflowName: string } };
    assert.equal(schedule.workflowName, child, `shown under its name (${created.stderr})`);
    const fired = await cliRun(['schedules', 'trigger', schedule.id, '-o', 'json'], cliEnv(true));
    const runId = (JSON.parse(fired.stdout) as { firing: { runId: string | null } }).firing.runId;
    assert.ok(runId, fired.stdout);
    assert.deepEqual([(await t.result(runId)).output], [5], 'the worker ran the workflow the digest stands for, with the input');
    const run = await t.describe(runId);
    assert.match(run.run.workflowName, /^h\.[0-9a-f]{40}$/, 'the control plane fired it by the digest');
    const listed = await cliRun(['schedules', 'list', '-o', 'json'], cliEnv(true));
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { schedules: Array<{ workflowName: string }> }).schedules.map((s) => s.workflowName),
      [child],
    );
    await cliRun(['schedules', 'delete', schedule.id, '-o', 'json'], cliEnv(true));
  });

  it('workflow, step, signal and child workflow names cross as keyed digests, the CLI shows them resolved, and the control plane holds them zero times', async () => {
    const runId = await t.start(workflow, {});
    const waiting = await t.waitForRun(runId, (r) => r.status === 'suspended');
    assert.equal(waiting.waitingSignal, null, 'the control plane does not learn the signal it waits for');
    assert.match(waiting.workflowName, /^h\.[0-9a-f]{40}$/, "the control plane's name for the workflow");
    const digest = waiting.workflowName;
    assert.equal((await t.signal(runId, signal, { n: 2 })).status, 202);
    assert.deepEqual([(await t.result(runId)).output], [3], 'the signal woke the run by its digest, and the child ran by its digest');

    const { steps } = await t.describe(runId);
    assert.ok(steps.length >= 3);
    for (const s of steps) assert.match(s.name, /^h\.[0-9a-f]{40}$/, `the control plane's name for ${s.kind} ${s.position}`);

    const viaGatewayRun = (await (await t.gateway('GET', `/v1/runs/${runId}`)).json()) as { run: { workflow: string } };
    assert.equal(viaGatewayRun.run.workflow, workflow, 'the gateway resolves the workflow name from the payload store');
    const viaGateway = (await (await t.gateway('GET', `/v1/runs/${runId}/steps`)).json()) as { steps: Array<{ name: string }> };
    assert.deepEqual(
      viaGateway.steps.map((s) => s.name),
      [step, signal, child],
      'the gateway resolves them from the journal',
    );

    const env = cliEnv();
    const withGateway = cliEnv(true);
    const cli = await cliRun(['runs', 'describe', runId, '-o', 'json'], withGateway);
    const described = JSON.parse(cli.stdout) as {
      run: { workflowName: string };
      steps: Array<{ kind: string; name: string }>;
      timeline: Array<{ name: string }>;
    };
    assert.equal(described.run.workflowName, workflow, `the CLI resolved the workflow name through the gateway (${cli.stderr})`);
    assert.deepEqual(
      described.steps.map((s) => [s.kind, s.name]),
      [
        ['step', step],
        ['signal', signal],
        ['child', child],
      ],
      `the CLI resolved the names through the gateway (${cli.stderr})`,
    );
    assert.deepEqual(
      described.timeline.map((c) => c.name),
      [step, signal, child],
    );

    // A filter by workflow name is translated through the gateway; the control plane knows only the digest.
    const listed = await cliRun(['runs', 'list', '--workflow', workflow, '-o', 'json'], withGateway);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { runs: Array<{ runId: string; workflowName: string }> }).runs.map((r) => [r.runId, r.workflowName]),
      [[runId, workflow]],
      `runs list --workflow found the run by the digest and showed its name (${listed.stderr})`,
    );
    const workflows = await cliRun(['workflows', 'list', '-o', 'json'], withGateway);
    assert.ok(
      (JSON.parse(workflows.stdout) as { workflows: Array<{ name: string }> }).workflows.some((w) => w.name === workflow),
      `workflows list resolved the registered digest (${workflows.stderr})`,
    );
    // Registration looks the version up under its digest: the one the worker announced is found.
    const plan = await cliRun(['workflows', 'register', workflowModule, '--dry-run', '-o', 'json'], withGateway);
    const planned = (JSON.parse(plan.stdout) as { workflows: Array<{ workflow: string; action: string }> }).workflows.find(
      (w) => w.workflow === workflow,
    );
    assert.equal(planned?.action, 'unchanged', `workflows register found ${workflow} registered under its digest (${plan.stderr})`);
    // The child run: started by the worker under the child's digest, shown under its name.
    const children = await cliRun(['runs', 'list', '--parent', runId, '-o', 'json'], withGateway);
    assert.deepEqual(
      (JSON.parse(children.stdout) as { runs: Array<{ workflowName: string }> }).runs.map((r) => r.workflowName),
      [child],
      `the child run's workflow name resolved (${children.stderr})`,
    );
    // Without a gateway the CLI shows what the control plane holds and says how to resolve it.
    const bare = await cliRun(['runs', 'list', '--workflow', digest, '-o', 'json'], env);
    assert.deepEqual(
      (JSON.parse(bare.stdout) as { runs: Array<{ workflowName: string }> }).runs.map((r) => r.workflowName),
      [digest],
    );
    assert.match(bare.stderr, /keyed digests .*strict residency mode.*CAIRN_GATEWAY_URL/s);

    await t.stack.stop();
    const dump = await controlPlaneDump(t);
    assert.ok(dump.rows > 10, 'the control plane did record metadata');
    const grpc = readFileSync(capture);
    const found: string[] = [];
    for (const needle of [workflow, child, step, signal, 'Wombat', 'Platypus', 'Quokka', 'Heron']) {
      const n = dump.text.split(needle).length - 1;
      if (n > 0) found.push(`${needle} ×${n} in the database or logs`);
      if (grpc.includes(Buffer.from(needle))) found.push(`${needle} in the gRPC bytes`);
    }
    assert.deepEqual(found, []);
  });
});
