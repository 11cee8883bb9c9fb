// Metering and quotas against a real control-plane process: usage counters written in the
// transactions that start runs and record step reports, the usage API by day, and quotas that
// refuse starts with a clear error without being overshot by parallel starts (two replicas).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { RejectionReason, StepInfoSchema, StepKind, StepStatus, create, type RunInfo, type StepInfo } from '@cairn/proto';
import { startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, rejectsWith, type ServiceClient } from './testing/grpc.js';

interface TokenRow {
  provider: string;
  model: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
}
interface UsageDay {
  day: string;
  runsStarted: number;
  stepsExecuted: number;
  inputTokens: number;
  outputTokens: number;
  tokens: TokenRow[];
  workflows: Array<{
    workflow: string;
    runsStarted: number;
    stepsExecuted: number;
    modelCalls: number;
    inputTokens: number;
    outputTokens: number;
  }>;
}
interface Usage {
  from: string;
  to: string;
  days: UsageDay[];
  totals: Omit<UsageDay, 'day'>;
}

const today = (): string => new Date().toISOString().slice(0, 10);
const dayBefore = (day: string, n: number): string => new Date(Date.parse(`${day}T00:00:00Z`) - n * 86_400_000).toISOString().slice(0, 10);

const step = (
  fields: Omit<Partial<StepInfo>, '$typeName' | '$unknown'> & { position: number; attempt: number; kind: StepKind; status: StepStatus },
): StepInfo => create(StepInfoSchema, { name: 'work', startedAt: BigInt(Date.now() - 5), endedAt: BigInt(Date.now()), ...fields });

for (const kind of testPostgresKinds()) {
  describe(`metering and quotas on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;
    let replica: ControlPlaneFixture;
    const clients: ServiceClient[] = [];
    const streams: WorkerStream[] = [];

    before(async () => {
      server = await testPostgres(kind);
      cp = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true' } });
      replica = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true' }, databaseUrl: cp.databaseUrl });
    });

    after(async () => {
      for (const s of streams) s.close();
      for (const c of clients) c.close();
      await replica?.close();
      await cp?.close();
      await server?.stop();
    });

    /** A project with a data plane, a gateway client and a worker stream (announcing `greet`) on a replica. */
    const setUp = async (name: string, on: ControlPlaneFixture = cp, slots = 0) => {
      assert.equal((await cp.api('POST', '/v1/projects', { body: { name } })).status, 201);
      const dp = await cp.dataPlane(name, `${name}-dp`);
      const gateway = new GatewayClient(on.grpcAddress, grpc.credentials.createInsecure());
      const workerClient = new WorkerClient(on.grpcAddress, grpc.credentials.createInsecure());
      clients.push(gateway, workerClient);
      const worker = new WorkerStream(workerClient, dp.credential);
      streams.push(worker);
      await worker.hello({ dataPlaneId: dp.id, slots, workflows: [{ name: 'greet', version: 'v1', taskQueue: 'default' }] });
      const start = async (runId: string = randomUUID(), client: ServiceClient = gateway) =>
        gatewayCall<{ run: RunInfo; created: boolean }>(
          client,
          'startRun',
          { runId, workflowName: 'greet', workflowVersion: '', idempotencyDigest: '', inputSize: 5n },
          dp.credential,
        );
      const report = async (stream: WorkerStream, runId: string, epoch: number, steps: StepInfo[]): Promise<void> => {
        const sequence = stream.send({
          case: 'stepReports',
          value: {
            $typeName: 'cairn.worker.v1.StepReportBatch',
            journalHeads: [],
            reports: steps.map((s) => ({ $typeName: 'cairn.worker.v1.StepReport' as const, runId, epoch, step: s })),
          },
        });
        await stream.next('ack', (a) => a.sequence === sequence);
      };
      const complete = async (stream: WorkerStream, runId: string, epoch: number): Promise<void> => {
        const sequence = stream.send({
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId, epoch, outputSize: 1n },
        });
        await stream.next('ack', (a) => a.sequence === sequence);
      };
      const open = (credential = dp.credential): WorkerStream => {
        const s = new WorkerStream(workerClient, credential);
        streams.push(s);
        return s;
      };
      return { dp, gateway, worker, start, report, complete, open };
    };

    const usage = async (project: string, query: string, key?: string) => {
      const res = await cp.api<Usage>('GET', `/v1/projects/${project}/usage${query}`, key === undefined ? {} : { key });
      return res;
    };

    test('steps and model tokens are counted once per attempt when it first ends; resent reports are not counted again', async () => {
      const p = await setUp('metered');
      const a = await p.start();
      await p.start(); // a second run, never dispatched: still a run started
      const w = p.open();
      await w.hello({ dataPlaneId: p.dp.id, slots: 1 });
      const task = await w.next('runTask', (t) => t.runId === a.run.runId);

      // Attempt 1 of a step starts; a model call's first attempt fails and is retried.
      await p.report(w, task.runId, task.epoch, [
        step({ position: 0, attempt: 1, kind: StepKind.STEP, status: StepStatus.RUNNING }),
        step({
          position: 1,
          attempt: 1,
          kind: StepKind.MODEL,
          status: StepStatus.RETRYING,
          provider: 'mistral.chat',
          model: 'mistral-large-latest',
          inputTokens: 100n,
          outputTokens: 10n,
        }),
      ]);
      const second = [
        step({ position: 0, attempt: 1, kind: StepKind.STEP, status: StepStatus.COMPLETED }),
        step({
          position: 1,
          attempt: 2,
          kind: StepKind.MODEL,
          status: StepStatus.COMPLETED,
          provider: 'mistral.chat',
          model: 'mistral-large-latest',
          inputTokens: 200n,
          outputTokens: 20n,
        }),
        step({
          position: 2,
          attempt: 1,
          kind: StepKind.MODEL,
          status: StepStatus.COMPLETED,
          provider: 'openai.chat',
          model: 'gpt-4o-mini',
          inputTokens: 5n,
          outputTokens: 7n,
        }),
      ];
      await p.report(w, task.runId, task.epoch, second);
      // The worker resends the batch (its ack was lost): nothing more is counted.
      await p.report(w, task.runId, task.epoch, second);
      // A failed step counts; a sleep is not an executed step.
      await p.report(w, task.runId, task.epoch, [
        step({ position: 3, attempt: 1, kind: StepKind.STEP, status: StepStatus.FAILED, retryable: false }),
        step({ position: 4, attempt: 1, kind: StepKind.SLEEP, status: StepStatus.COMPLETED }),
      ]);
      // The same new report sent at once on two streams (a resend racing the original) counts once.
      const other = p.open();
      await other.hello({ dataPlaneId: p.dp.id, slots: 0 });
      const racing = [step({ position: 5, attempt: 1, kind: StepKind.STEP, status: StepStatus.COMPLETED })];
      await Promise.all([p.report(w, task.runId, task.epoch, racing), p.report(other, task.runId, task.epoch, racing)]);
      await p.complete(w, task.runId, task.epoch);

      const day = today();
      const res = await usage('metered', `?from=${day}&to=${day}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const expectedTokens = [
        { provider: 'mistral.chat', model: 'mistral-large-latest', calls: 2, inputTokens: 300, outputTokens: 30 },
        { provider: 'openai.chat', model: 'gpt-4o-mini', calls: 1, inputTokens: 5, outputTokens: 7 },
      ];
      // Every run here is of workflow greet: its share is the whole project's.
      const expectedWorkflows = [
        { workflow: 'greet', runsStarted: 2, stepsExecuted: 6, modelCalls: 3, inputTokens: 305, outputTokens: 37 },
      ];
      assert.deepEqual(res.body.days, [
        {
          day,
          runsStarted: 2,
          stepsExecuted: 6,
          inputTokens: 305,
          outputTokens: 37,
          tokens: expectedTokens,
          workflows: expectedWorkflows,
        },
      ]);
      assert.deepEqual(res.body.totals, {
        runsStarted: 2,
        stepsExecuted: 6,
        inputTokens: 305,
        outputTokens: 37,
        tokens: expectedTokens,
        workflows: expectedWorkflows,
      });

      // The counters agree with the step timeline the control plane stores.
      const timeline = await cp.api<{ steps: Array<{ kind: string; status: string }> }>('GET', `/v1/projects/metered/runs/${task.runId}`);
      const ended = timeline.body.steps.filter((s) => ['step', 'model'].includes(s.kind) && s.status !== 'running');
      assert.equal(ended.length, 6);
    });

    test('the usage API answers every day of the range with totals, for readers of the project only', async () => {
      const p = await setUp('by-day');
      const project = (await cp.api<{ projects: Array<{ id: string; name: string }> }>('GET', '/v1/projects')).body.projects.find(
        (x) => x.name === 'by-day',
      )!;
      const day = today();
      // Earlier days' counters, as the triggers would have left them (two slots on one day).
      await cp.sql.query(
        `INSERT INTO usage_daily (project_id, day, slot, runs_started, steps_executed)
         VALUES ($1, $2, 0, 3, 10), ($1, $2, 5, 1, 4), ($1, $3, 2, 2, 0)`,
        [project.id, dayBefore(day, 3), dayBefore(day, 1)],
      );
      await cp.sql.query(
        `INSERT INTO usage_tokens_daily (project_id, day, provider, model, slot, calls, input_tokens, output_tokens)
         VALUES ($1, $2, 'anthropic.messages', 'claude-sonnet', 0, 2, 1000, 50), ($1, $2, 'anthropic.messages', 'claude-sonnet', 3, 1, 500, 25)`,
        [project.id, dayBefore(day, 3)],
      );
      await cp.sql.query(
        `INSERT INTO usage_workflows_daily (project_id, day, workflow_name, slot, runs_started, steps_executed, model_calls, input_tokens, output_tokens)
         VALUES ($1, $2, 'greet', 0, 3, 10, 2, 1000, 50), ($1, $2, 'greet', 4, 0, 0, 1, 500, 25), ($1, $2, 'digest', 1, 1, 4, 0, 0, 0)`,
        [project.id, dayBefore(day, 3)],
      );
      await p.start();
      const viewer = await cp.key('viewer', { project: 'by-day' });
      const res = await usage('by-day', `?from=${dayBefore(day, 4)}&to=${day}`, viewer);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(
        res.body.days.map((d) => [d.day, d.runsStarted, d.stepsExecuted, d.inputTokens, d.outputTokens]),
        [
          [dayBefore(day, 4), 0, 0, 0, 0],
          [dayBefore(day, 3), 4, 14, 1500, 75],
          [dayBefore(day, 2), 0, 0, 0, 0],
          [dayBefore(day, 1), 2, 0, 0, 0],
          [day, 1, 0, 0, 0],
        ],
      );
      assert.deepEqual(res.body.days[1]!.tokens, [
        { provider: 'anthropic.messages', model: 'claude-sonnet', calls: 3, inputTokens: 1500, outputTokens: 75 },
      ]);
      assert.deepEqual(
        [res.body.totals.runsStarted, res.body.totals.stepsExecuted, res.body.totals.inputTokens, res.body.totals.outputTokens],
        [7, 14, 1500, 75],
      );
      // Per workflow, slots summed, by day and over the range.
      assert.deepEqual(res.body.days[1]!.workflows, [
        { workflow: 'digest', runsStarted: 1, stepsExecuted: 4, modelCalls: 0, inputTokens: 0, outputTokens: 0 },
        { workflow: 'greet', runsStarted: 3, stepsExecuted: 10, modelCalls: 3, inputTokens: 1500, outputTokens: 75 },
      ]);
      assert.deepEqual(res.body.days[0]!.workflows, []);
      assert.deepEqual(res.body.totals.workflows, [
        { workflow: 'digest', runsStarted: 1, stepsExecuted: 4, modelCalls: 0, inputTokens: 0, outputTokens: 0 },
        { workflow: 'greet', runsStarted: 4, stepsExecuted: 10, modelCalls: 3, inputTokens: 1500, outputTokens: 75 },
      ]);
      // The default range is the last 30 days up to today.
      const recent = await usage('by-day', '');
      assert.deepEqual([recent.body.days.length, recent.body.to, recent.body.from], [30, day, dayBefore(day, 29)]);

      const bad = await usage('by-day', `?from=${day}&to=${dayBefore(day, 1)}`);
      assert.equal(bad.status, 400);
      assert.match(JSON.stringify(bad.body), /from must not be after to/);
      assert.equal((await usage('by-day', '?from=2026-02-30')).status, 400);
      assert.equal((await usage('by-day', `?from=2020-01-01&to=${day}`)).status, 400);
      // A key of another project does not see this one.
      const outsider = await cp.key('admin', { project: 'metered' });
      assert.equal((await usage('by-day', '', outsider)).status, 404);
    });

    test('the concurrent-run quota refuses starts with a clear error and is never overshot by parallel starts on two replicas', async () => {
      const p = await setUp('capped', cp, 0);
      const viewer = await cp.key('viewer', { project: 'capped' });
      const refused = await cp.api('PUT', '/v1/projects/capped/quotas', {
        key: viewer,
        body: { maxConcurrentRuns: 3, maxStepsPerMonth: null },
      });
      assert.equal(refused.status, 403);
      assert.equal(
        (await cp.api('PUT', '/v1/projects/capped/quotas', { body: { maxConcurrentRuns: -1, maxStepsPerMonth: null } })).status,
        400,
      );
      const set = await cp.api<{ quotas: Record<string, unknown> }>('PUT', '/v1/projects/capped/quotas', {
        body: { maxConcurrentRuns: 3, maxStepsPerMonth: null },
      });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      const read = await cp.api<{ quotas: Record<string, unknown> }>('GET', '/v1/projects/capped/quotas', { key: viewer });
      assert.deepEqual([read.body.quotas['maxConcurrentRuns'], read.body.quotas['maxStepsPerMonth']], [3, null]);

      // 24 starts at once, half through each replica.
      const onReplica = new GatewayClient(replica.grpcAddress, grpc.credentials.createInsecure());
      clients.push(onReplica);
      const outcomes = await Promise.allSettled(
        Array.from({ length: 24 }, (_, i) => p.start(randomUUID(), i % 2 === 0 ? p.gateway : onReplica)),
      );
      const started = outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.value.run);
      const errors = outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason as grpc.ServiceError);
      assert.equal(started.length, 3, 'exactly the quota started');
      assert.equal(errors.length, 21);
      for (const error of errors) {
        assert.equal(error.code, grpc.status.RESOURCE_EXHAUSTED, error.details);
        assert.match(
          error.details,
          /^\[CAIRN-1112\] project capped is at its concurrent-run quota \(maxConcurrentRuns\): 3 of 3 runs have not ended/,
        );
        assert.match(error.details, /PUT \/v1\/projects\/capped\/quotas/);
      }
      const open = await cp.sql.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM runs r JOIN projects p ON p.id = r.project_id
         WHERE p.name = 'capped' AND r.status IN ('queued', 'running', 'suspended')`,
      );
      assert.equal(open.rows[0]!.n, 3);

      // A retried start of a run that exists is answered with that run, not refused.
      const again = await p.start(started[0]!.runId);
      assert.deepEqual([again.created, again.run.runId], [false, started[0]!.runId]);

      // A child run is refused too: the worker gets QUOTA_EXCEEDED for its StartChild.
      const w = p.open();
      await w.hello({ dataPlaneId: p.dp.id, slots: 1 });
      const task = await w.next('runTask');
      const child = w.send({
        case: 'startChild',
        value: {
          $typeName: 'cairn.worker.v1.StartChild',
          parentRunId: task.runId,
          parentEpoch: task.epoch,
          position: 0,
          childRunId: randomUUID(),
          workflowName: 'greet',
          workflowVersion: '',
          inputSize: 1n,
        },
      });
      const rejection = await w.next('rejection', (r) => r.sequence === child);
      assert.deepEqual([rejection.reason, rejection.runId], [RejectionReason.QUOTA_EXCEEDED, task.runId]);

      // When a run ends there is room for one more.
      await p.complete(w, task.runId, task.epoch);
      assert.equal((await p.start()).created, true);
      await rejectsWith(p.start(), grpc.status.RESOURCE_EXHAUSTED, /3 of 3 runs/);

      // No quota: starts are not limited.
      await cp.api('PUT', '/v1/projects/capped/quotas', { body: { maxConcurrentRuns: null, maxStepsPerMonth: null } });
      assert.equal((await p.start()).created, true);
    });

    test('the monthly step quota refuses new runs once the steps of this month reach it', async () => {
      const p = await setUp('monthly');
      assert.equal(
        (await cp.api('PUT', '/v1/projects/monthly/quotas', { body: { maxConcurrentRuns: null, maxStepsPerMonth: 2 } })).status,
        200,
      );
      const first = await p.start();
      const w = p.open();
      await w.hello({ dataPlaneId: p.dp.id, slots: 1 });
      const task = await w.next('runTask', (t) => t.runId === first.run.runId);
      await p.report(w, task.runId, task.epoch, [step({ position: 0, attempt: 1, kind: StepKind.STEP, status: StepStatus.COMPLETED })]);
      assert.equal((await p.start()).created, true, 'one step used of two');
      await p.report(w, task.runId, task.epoch, [step({ position: 1, attempt: 1, kind: StepKind.STEP, status: StepStatus.COMPLETED })]);
      const month = today().slice(0, 7);
      await rejectsWith(
        p.start(),
        grpc.status.RESOURCE_EXHAUSTED,
        new RegExp(
          `^\\[CAIRN-1112\\] project monthly has used its monthly step quota \\(maxStepsPerMonth\\): 2 of 2 steps executed in ${month}`,
        ),
      );
      // The run already going on is not stopped: its steps are still recorded.
      await p.report(w, task.runId, task.epoch, [step({ position: 2, attempt: 1, kind: StepKind.STEP, status: StepStatus.COMPLETED })]);
      await p.complete(w, task.runId, task.epoch);
      const res = await usage('monthly', `?from=${today()}&to=${today()}`);
      assert.equal(res.body.totals.stepsExecuted, 3);
      await cp.api('PUT', '/v1/projects/monthly/quotas', { body: { maxConcurrentRuns: null, maxStepsPerMonth: 100 } });
      assert.equal((await p.start()).created, true);
    });
  });
}
