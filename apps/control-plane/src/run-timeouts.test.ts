// Registered run timeouts and step defaults against a real control-plane process: every way a run
// is created records its deadline, the sweeper ends runs past it `timed_out` in any state (queued,
// running with a worker holding it, suspended), the holder loses its lease, a parent waiting on a
// timed-out child goes on, and RunTasks carry the version's retry policy and step timeout.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import {
  ErrorCode,
  LeaseState,
  RejectionReason,
  RunStatus,
  StepKind,
  StepStatus,
  SuspendReason,
  WakeReason,
  type RunInfo,
} from '@cairn/proto';
import { startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, type ServiceClient } from './testing/grpc.js';

interface RunJson {
  id: string;
  status: string;
  errorCode: string | null;
  createdAt: string;
  endedAt: string | null;
  deadlineAt: string | null;
  wakeReason: string | null;
}

const RUN_TIMEOUT_MS = 2000;
const POLICY = { maximumAttempts: 5, initialInterval: 200, maximumInterval: 1500, backoffCoefficient: 1.5 };
const STEP_TIMEOUT_MS = 1500;

for (const kind of testPostgresKinds()) {
  describe(`registered run timeouts and step defaults on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;
    let gateway: ServiceClient;
    let dataPlaneId: string;
    let credential: string;
    const streams: WorkerStream[] = [];

    const worker = async (slots: number, workflows: Array<{ name: string; version: string }>): Promise<WorkerStream> => {
      const w = new WorkerStream(new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure()), credential);
      streams.push(w);
      await w.hello({ dataPlaneId, slots, workflows: workflows.map((x) => ({ ...x, taskQueue: 'default' })) });
      return w;
    };
    const register = async (name: string, version: string, extra: Record<string, unknown>): Promise<void> => {
      const res = await cp.api('POST', '/v1/projects/default/workflows', { body: { name, version, taskQueue: 'default', ...extra } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    };
    const startRun = async (workflowName: string, workflowVersion: string): Promise<string> => {
      const runId = randomUUID();
      await gatewayCall(gateway, 'startRun', { runId, workflowName, workflowVersion, inputSize: 3n }, credential);
      return runId;
    };
    const describeRun = async (id: string): Promise<RunJson> => {
      const res = await cp.api<{ run: RunJson }>('GET', `/v1/projects/default/runs/${id}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.run;
    };
    const runInfo = async (runId: string): Promise<RunInfo> =>
      (await gatewayCall<{ run: RunInfo }>(gateway, 'describeRun', { runId }, credential)).run;
    /** Polls until the run has one of these statuses (no fixed wait: the sweeper decides when). */
    const waitForStatus = async (id: string, statuses: readonly string[]): Promise<RunJson> => {
      const giveUp = Date.now() + 60_000;
      for (;;) {
        const run = await describeRun(id);
        if (statuses.includes(run.status)) return run;
        if (Date.now() > giveUp) assert.fail(`run ${id} never reached ${statuses.join('/')}; last: ${JSON.stringify(run)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const outcome = async (w: WorkerStream, message: Parameters<WorkerStream['send']>[0]) => {
      const seq = w.send(message);
      const acked = w.next('ack', (a) => a.sequence === seq).then(() => 'ack' as const);
      const rejected = w.next('rejection', (r) => r.sequence === seq).then((r) => r.reason);
      acked.catch(() => undefined);
      rejected.catch(() => undefined);
      return Promise.race([acked, rejected]);
    };
    const deadlineOffset = (run: RunJson): number | null =>
      run.deadlineAt === null ? null : Date.parse(run.deadlineAt) - Date.parse(run.createdAt);

    before(async () => {
      server = await testPostgres(kind);
      cp = await startControlPlaneProcess(server, { env: { CAIRN_SWEEP_INTERVAL_MS: '100' } });
      ({ id: dataPlaneId, credential } = await cp.dataPlane('default', 'timeouts-dp'));
      gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
      const timed = { retry: POLICY, timeouts: { run: RUN_TIMEOUT_MS, step: STEP_TIMEOUT_MS } };
      await register('slow', 'v1', timed);
      // No worker announces v2: its runs stay queued.
      await register('slow', 'v2', timed);
      await register('parent', 'v1', {});
      await register('plain', 'v1', {});
    });

    after(async () => {
      for (const w of streams) w.close();
      gateway?.close();
      await cp?.close();
      await server?.stop();
    });

    test('runs past their deadline end timed_out whether queued, running or suspended; the holder loses its lease', async () => {
      const w = await worker(4, [
        { name: 'slow', version: 'v1' },
        { name: 'plain', version: 'v1' },
      ]);
      const queued = await startRun('slow', 'v2');
      const running = await startRun('slow', 'v1');
      const runningTask = await w.next('runTask', (t) => t.runId === running);
      const sleeping = await startRun('slow', 'v1');
      const sleepTask = await w.next('runTask', (t) => t.runId === sleeping);
      const untimed = await startRun('plain', 'v1');
      const untimedTask = await w.next('runTask', (t) => t.runId === untimed);

      // The deadline is the creation plus the registered run timeout, in the REST view and in RunInfo.
      for (const id of [queued, running, sleeping]) {
        const run = await describeRun(id);
        assert.equal(deadlineOffset(run), RUN_TIMEOUT_MS, `deadline of ${id}`);
        assert.equal((await runInfo(id)).deadlineAt, BigInt(Date.parse(run.deadlineAt!)));
      }
      assert.equal((await describeRun(untimed)).deadlineAt, null, 'a version without a run timeout has no deadline');
      assert.equal((await runInfo(untimed)).deadlineAt, 0n);

      // The RunTask carries the registered retry policy and step timeout; a version without them carries zeros.
      assert.deepEqual(
        [
          runningTask.defaultRetryMaxAttempts,
          runningTask.defaultRetryInitialIntervalMs,
          runningTask.defaultRetryMaxIntervalMs,
          runningTask.defaultRetryBackoffCoefficient,
          runningTask.defaultStepTimeoutMs,
        ],
        [
          POLICY.maximumAttempts,
          BigInt(POLICY.initialInterval),
          BigInt(POLICY.maximumInterval),
          POLICY.backoffCoefficient,
          BigInt(STEP_TIMEOUT_MS),
        ],
      );
      assert.deepEqual(
        [untimedTask.defaultRetryMaxAttempts, untimedTask.defaultRetryInitialIntervalMs, untimedTask.defaultStepTimeoutMs],
        [0, 0n, 0n],
      );

      assert.equal(
        await outcome(w, {
          case: 'suspended',
          value: {
            $typeName: 'cairn.worker.v1.RunSuspended',
            signalDigest: '',
            runId: sleeping,
            epoch: sleepTask.epoch,
            reason: SuspendReason.SLEEP,
            wakeAt: BigInt(Date.now() + 3_600_000),
            signalName: '',
            signalsConsumed: 0,
            consumedSignalIds: [],
            childRunId: '',
          },
        }),
        'ack',
      );
      assert.equal((await describeRun(sleeping)).status, 'suspended');

      for (const id of [queued, running, sleeping]) {
        const run = await waitForStatus(id, ['timed_out', 'completed', 'failed', 'cancelled', 'terminated']);
        assert.equal(run.status, 'timed_out', `run ${id}`);
        assert.equal(run.errorCode, 'run_timed_out');
        assert.ok(Date.parse(run.endedAt!) >= Date.parse(run.deadlineAt!), 'ended at or after its deadline');
        const info = await runInfo(id);
        assert.deepEqual([info.status, info.errorCode], [RunStatus.TIMED_OUT, ErrorCode.RUN_TIMED_OUT]);
      }

      // The worker holding the running one is told its lease is lost; its later reports and outcome are refused.
      const lost = await w.next('leaseUpdate', (u) => u.leases.some((l) => l.runId === running));
      assert.deepEqual(
        lost.leases.filter((l) => l.runId === running).map((l) => [l.epoch, l.state]),
        [[runningTask.epoch, LeaseState.LOST]],
      );
      const now = BigInt(Date.now());
      const seq = w.send({
        case: 'stepReports',
        value: {
          $typeName: 'cairn.worker.v1.StepReportBatch',
          journalHeads: [],
          reports: [
            {
              $typeName: 'cairn.worker.v1.StepReport',
              runId: running,
              epoch: runningTask.epoch,
              step: {
                $typeName: 'cairn.run.v1.StepInfo',
                copied: false,
                position: 0,
                kind: StepKind.STEP,
                name: 'late',
                keyDigest: '',
                attempt: 1,
                status: StepStatus.COMPLETED,
                errorCode: ErrorCode.UNSPECIFIED,
                retryable: false,
                errorRef: '',
                startedAt: now,
                endedAt: now + 5n,
                dueAt: 0n,
                outputSize: 1n,
                inputTokens: 0n,
                outputTokens: 0n,
                provider: '',
                model: '',
              },
            },
          ],
        },
      });
      await w.next('ack', (a) => a.sequence === seq);
      const view = await cp.api<{ steps: unknown[] }>('GET', `/v1/projects/default/runs/${running}`);
      assert.deepEqual(view.body.steps, [], 'no step report is accepted after the run timed out');
      assert.equal(
        await outcome(w, {
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: running, epoch: runningTask.epoch, outputSize: 1n },
        }),
        RejectionReason.LEASE_NOT_HELD,
      );
      assert.equal((await describeRun(running)).status, 'timed_out');

      // The run of a version without a run timeout, started with them, is still held.
      assert.equal((await describeRun(untimed)).status, 'running');

      // The audit log records the transition as the control plane's.
      const audit = await cp.sql.query<{ actor_type: string }>(
        `SELECT actor_type FROM audit_log WHERE target_id = $1 AND action = 'run.timed_out'`,
        [running],
      );
      assert.deepEqual(
        audit.rows.map((r) => r.actor_type),
        ['system'],
      );
      w.close();
    });

    test('a parent suspended on a child that times out is queued and dispatched with wake reason child', async () => {
      const w = await worker(2, [
        { name: 'parent', version: 'v1' },
        // The child's version is announced by no worker here, so the child stays queued until its deadline.
      ]);
      const parent = await startRun('parent', 'v1');
      const task = await w.next('runTask', (t) => t.runId === parent);
      const child = randomUUID();
      assert.equal(
        await outcome(w, {
          case: 'startChild',
          value: {
            $typeName: 'cairn.worker.v1.StartChild',
            parentRunId: parent,
            parentEpoch: task.epoch,
            position: 0,
            childRunId: child,
            workflowName: 'slow',
            workflowVersion: 'v2',
            inputSize: 1n,
          },
        }),
        'ack',
      );
      assert.equal(deadlineOffset(await describeRun(child)), RUN_TIMEOUT_MS, 'a child run gets the deadline of its version');
      assert.equal(
        await outcome(w, {
          case: 'suspended',
          value: {
            $typeName: 'cairn.worker.v1.RunSuspended',
            signalDigest: '',
            runId: parent,
            epoch: task.epoch,
            reason: SuspendReason.CHILD,
            wakeAt: 0n,
            signalName: '',
            signalsConsumed: 0,
            consumedSignalIds: [],
            childRunId: child,
          },
        }),
        'ack',
      );
      const woken = await w.next('runTask', (t) => t.runId === parent && t.epoch > task.epoch);
      assert.equal(woken.reason, WakeReason.CHILD);
      // The task names the timed-out child: its data plane holds no outcome for the parent to read.
      assert.deepEqual(woken.timedOutChildRunIds, [child]);
      assert.equal((await describeRun(child)).status, 'timed_out');
      w.close();
    });

    test('forks and schedule firings record the deadline of their version', async () => {
      // A fork of a timed-out run is a new run with its own deadline.
      const w = await worker(0, [{ name: 'slow', version: 'v1' }]);
      const source = await startRun('slow', 'v2');
      await waitForStatus(source, ['timed_out']);
      const forked = await cp.api<{ run: RunJson }>('POST', `/v1/projects/default/runs/${source}/fork`, {
        body: { fromStep: 0, workflowVersion: 'v1' },
      });
      assert.equal(forked.status, 201, JSON.stringify(forked.body));
      assert.equal(deadlineOffset(forked.body.run), RUN_TIMEOUT_MS);

      const schedule = await cp.api<{ schedule: { id: string } }>('POST', '/v1/projects/default/schedules', {
        body: { dataPlaneId, workflowName: 'slow', workflowVersion: 'v2', cron: '0 0 1 1 *', paused: true },
      });
      assert.equal(schedule.status, 201, JSON.stringify(schedule.body));
      const fired = await cp.api<{ firing: { runId: string | null; outcome: string } }>(
        'POST',
        `/v1/projects/default/schedules/${schedule.body.schedule.id}/trigger`,
        { body: {} },
      );
      assert.equal(fired.status, 201, JSON.stringify(fired.body));
      const runId = fired.body.firing.runId!;
      assert.equal(deadlineOffset(await describeRun(runId)), RUN_TIMEOUT_MS);
      assert.equal((await waitForStatus(runId, ['timed_out'])).errorCode, 'run_timed_out');
      w.close();
    });
  });
}
