// Run management against a real control-plane process: list filters and keyset pagination under
// concurrent inserts, the step timeline with totals, cancel, terminate (queued, suspended, and
// running with a worker holding the run) and fork lineage.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { ErrorCode, LeaseState, RejectionReason, StepKind, StepStatus, SuspendReason, type StepInfo } from '@cairn/proto';
import { startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, type ServiceClient } from './testing/grpc.js';

interface RunJson {
  id: string;
  status: string;
  workflowName: string;
  workflowVersion: string;
  createdAt: string;
  parentRunId: string | null;
  forkedFromRunId: string | null;
  forkPosition: number | null;
  epoch: number;
}
interface Page {
  runs: RunJson[];
  nextCursor: string | null;
}
interface ErrorBody {
  error: { code: string; message: string };
}

// Each test uses workflows of its own, so runs a test leaves queued are never claimed by another test's worker.
const WORKFLOWS = [
  ['greet', 'v1'],
  ['greet', 'v2'],
  ['other', 'v1'],
  ['pager', 'v1'],
  ['desc', 'v1'],
  ['term', 'v1'],
  ['termchild', 'v1'],
  ['forky', 'v1'],
  ['forky', 'v2'],
  ['inbox', 'v1'],
].map(([name, version]) => ({ name: name!, version: version!, taskQueue: 'default' }));
const only = (...refs: string[]) => WORKFLOWS.filter((w) => refs.includes(`${w.name}@${w.version}`));

function step(fields: Partial<StepInfo> & { position: number; name: string }): StepInfo {
  return {
    $typeName: 'cairn.run.v1.StepInfo',
    copied: false,
    kind: StepKind.STEP,
    keyDigest: '',
    attempt: 1,
    status: StepStatus.COMPLETED,
    errorCode: ErrorCode.UNSPECIFIED,
    retryable: false,
    errorRef: '',
    startedAt: BigInt(Date.now() - 20),
    endedAt: BigInt(Date.now()),
    dueAt: 0n,
    outputSize: 2n,
    inputTokens: 0n,
    outputTokens: 0n,
    provider: '',
    model: '',
    ...fields,
  };
}

for (const kind of testPostgresKinds()) {
  describe(`run management on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;
    let gateway: ServiceClient;
    let dataPlaneId: string;
    let credential: string;
    const streams: WorkerStream[] = [];

    const worker = async (slots: number, workflows = WORKFLOWS): Promise<WorkerStream> => {
      const w = new WorkerStream(new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure()), credential);
      streams.push(w);
      await w.hello({ dataPlaneId, slots, workflows });
      return w;
    };
    const startRun = async (workflowName: string, workflowVersion = ''): Promise<string> => {
      const runId = randomUUID();
      await gatewayCall(gateway, 'startRun', { runId, workflowName, workflowVersion, inputSize: 3n }, credential);
      return runId;
    };
    const reports = async (w: WorkerStream, runId: string, epoch: number, steps: StepInfo[]): Promise<void> => {
      const seq = w.send({
        case: 'stepReports',
        value: {
          $typeName: 'cairn.worker.v1.StepReportBatch',
          journalHeads: [],
          reports: steps.map((s) => ({ $typeName: 'cairn.worker.v1.StepReport' as const, runId, epoch, step: s })),
        },
      });
      await w.next('ack', (a) => a.sequence === seq);
    };
    const outcome = async (w: WorkerStream, message: Parameters<WorkerStream['send']>[0]) => {
      const seq = w.send(message);
      // One of the two answers comes; the other wait gives up later and must not become an unhandled rejection.
      const acked = w.next('ack', (a) => a.sequence === seq).then(() => 'ack' as const);
      const rejected = w.next('rejection', (r) => r.sequence === seq).then((r) => r.reason);
      acked.catch(() => undefined);
      rejected.catch(() => undefined);
      return Promise.race([acked, rejected]);
    };
    const list = (query: string) => cp.api<Page & ErrorBody>('GET', `/v1/projects/default/runs?${query}`);
    const describeRun = (id: string) =>
      cp.api<{ run: RunJson; steps: unknown[]; timeline: Array<Record<string, unknown>>; totals: Record<string, unknown> }>(
        'GET',
        `/v1/projects/default/runs/${id}`,
      );

    before(async () => {
      server = await testPostgres(kind);
      // Development mode lets workers register the versions they announce.
      cp = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true' } });
      ({ id: dataPlaneId, credential } = await cp.dataPlane('default', 'runs-dp'));
      gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
      // Announces the workflows without taking runs.
      await worker(0);
    });

    after(async () => {
      for (const w of streams) w.close();
      gateway?.close();
      await cp?.close();
      await server?.stop();
    });

    test('list filters: several statuses, workflow, version, parent run, creation time range; bad filters are 400', async () => {
      const v1: string[] = [];
      for (let i = 0; i < 4; i++) v1.push(await startRun('greet', 'v1'));
      const v2: string[] = [];
      for (let i = 0; i < 3; i++) v2.push(await startRun('greet', 'v2'));
      const others: string[] = [];
      for (let i = 0; i < 3; i++) others.push(await startRun('other', 'v1'));

      // A worker for "other" takes those three: one starts two children, two complete, one fails.
      const w = await worker(3, only('other@v1'));
      const tasks = [await w.next('runTask'), await w.next('runTask'), await w.next('runTask')];
      assert.deepEqual(new Set(tasks.map((t) => t.runId)), new Set(others));
      const [a, b, c] = tasks as [(typeof tasks)[0], (typeof tasks)[0], (typeof tasks)[0]];
      const children = [randomUUID(), randomUUID()];
      for (const [i, childRunId] of children.entries()) {
        const answer = await outcome(w, {
          case: 'startChild',
          value: {
            $typeName: 'cairn.worker.v1.StartChild',
            parentRunId: a.runId,
            parentEpoch: a.epoch,
            position: i,
            childRunId,
            workflowName: 'greet',
            workflowVersion: 'v1',
            inputSize: 1n,
          },
        });
        assert.equal(answer, 'ack');
      }
      for (const t of [a, b]) {
        const answer = await outcome(w, {
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: t.runId, epoch: t.epoch, outputSize: 1n },
        });
        assert.equal(answer, 'ack');
      }
      assert.equal(
        await outcome(w, {
          case: 'failed',
          value: { $typeName: 'cairn.worker.v1.RunFailed', runId: c.runId, epoch: c.epoch, errorCode: ErrorCode.STEP_FAILED, errorRef: '' },
        }),
        'ack',
      );

      const ids = (page: Page): string[] => page.runs.map((r) => r.id);
      const ended = await list('status=completed,failed&limit=200');
      assert.equal(ended.status, 200, JSON.stringify(ended.body));
      assert.deepEqual(new Set(ids(ended.body)), new Set(others));
      assert.deepEqual(new Set(ids((await list('status=completed&status=failed&limit=200')).body)), new Set(others));
      assert.deepEqual(ids((await list('status=failed')).body), [c.runId]);
      // Several statuses are merged newest first across pages, each run once (a status named twice too).
      const mixed = (await list('status=queued,completed,failed&limit=200')).body.runs;
      const everything = (await list('limit=200')).body.runs;
      assert.deepEqual(
        mixed.map((r) => r.id),
        everything.filter((r) => ['queued', 'completed', 'failed'].includes(r.status)).map((r) => r.id),
      );
      assert.ok(mixed.length >= 11, `${mixed.length} runs`);
      const walked: RunJson[] = [];
      let next: string | null = null;
      do {
        const page: { status: number; body: Page } = await list(
          `status=failed,queued,completed,queued&limit=3${next ? `&cursor=${next}` : ''}`,
        );
        assert.equal(page.status, 200, JSON.stringify(page.body));
        walked.push(...page.body.runs);
        next = page.body.nextCursor;
      } while (next !== null);
      assert.deepEqual(
        walked.map((r) => r.id),
        mixed.map((r) => r.id),
        'pages of three walk the same runs in the same order as one page',
      );
      for (let i = 1; i < mixed.length; i++) {
        const [p, q] = [mixed[i - 1]!, mixed[i]!];
        assert.ok(p.createdAt > q.createdAt || (p.createdAt === q.createdAt && p.id > q.id), 'newest first');
      }
      const queuedGreet = await list('status=queued&workflow=greet&limit=200');
      assert.deepEqual(new Set(ids(queuedGreet.body)), new Set([...v1, ...v2, ...children]));
      assert.deepEqual(new Set(ids((await list('workflow=greet&version=v2')).body)), new Set(v2));
      const kids = (await list(`parentRunId=${a.runId}`)).body;
      assert.deepEqual(new Set(ids(kids)), new Set(children));
      assert.ok(kids.runs.every((r) => r.parentRunId === a.runId));
      const scheduled = await list(`scheduleId=${randomUUID()}`);
      assert.deepEqual([scheduled.status, scheduled.body.runs], [200, []], 'no run was fired by that schedule');
      w.close();

      // Time range: createdAfter is inclusive, createdBefore exclusive.
      const all = (await list('workflow=greet&limit=200')).body.runs.filter((r) => v1.includes(r.id) || v2.includes(r.id)).reverse();
      const from = all[2]!;
      const to = all[5]!;
      const window = await list(`workflow=greet&createdAfter=${from.createdAt}&createdBefore=${to.createdAt}&limit=200`);
      const expected = all.filter((r) => r.createdAt >= from.createdAt && r.createdAt < to.createdAt).map((r) => r.id);
      const got = ids(window.body).filter((id) => v1.includes(id) || v2.includes(id));
      assert.deepEqual(new Set(got), new Set(expected));
      assert.ok(got.includes(from.id) && !got.includes(to.id));

      for (const bad of [
        'status=sleeping',
        'status=queued,bogus',
        'createdAfter=yesterday',
        `createdAfter=${to.createdAt}&createdBefore=${from.createdAt}`,
        'parentRunId=not-a-uuid',
        'workflow=9bad',
        'version=-x',
        'limit=500',
        'cursor=garbage',
        'colour=blue',
      ]) {
        const res = await list(bad);
        assert.equal(res.status, 400, `${bad}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error.code, 'CAIRN-1101');
      }
      const named = await list('status=sleeping');
      assert.match(named.body.error.message, /status/);
    });

    test('waiting=approval lists only the runs suspended on a ctx.approval, newest first, paged', async () => {
      const w = await worker(6, only('inbox@v1'));
      const suspend = async (signalName: string, reason = SuspendReason.SIGNAL): Promise<string> => {
        const runId = await startRun('inbox', 'v1');
        const task = await w.next('runTask', (t) => t.runId === runId);
        const answer = await outcome(w, {
          case: 'suspended',
          value: {
            $typeName: 'cairn.worker.v1.RunSuspended',
            signalDigest: '',
            runId,
            epoch: task.epoch,
            reason,
            wakeAt: BigInt(Date.now() + 3_600_000),
            signalName,
            signalsConsumed: 0,
            consumedSignalIds: [],
            childRunId: '',
          },
        });
        assert.equal(answer, 'ack');
        return runId;
      };
      const review = await suspend('approval.review');
      const keyed = await suspend(`approval.confirm.${'0123456789abcdef'.repeat(2)}`);
      const note = await suspend('note');
      const lookalike = await suspend('approvals-pending');
      const sleeping = await suspend('', SuspendReason.SLEEP);
      const queued = await startRun('inbox', 'v1');
      const ids = (page: Page): string[] => page.runs.map((r) => r.id);

      const inbox = await list('waiting=approval&workflow=inbox&limit=200');
      assert.equal(inbox.status, 200, JSON.stringify(inbox.body));
      assert.deepEqual(ids(inbox.body), [keyed, review], 'newest first, and only the approvals');
      for (const other of [note, lookalike, sleeping, queued]) assert.ok(!ids(inbox.body).includes(other));
      const waiting = inbox.body.runs as Array<RunJson & { waitingSignal: string; suspendReason: string }>;
      assert.deepEqual(
        waiting.map((r) => [r.status, r.suspendReason, r.waitingSignal]),
        [
          ['suspended', 'signal', `approval.confirm.${'0123456789abcdef'.repeat(2)}`],
          ['suspended', 'signal', 'approval.review'],
        ],
      );

      // Paged like every list; combined with the other filters.
      const first = await list('waiting=approval&workflow=inbox&limit=1');
      assert.deepEqual(ids(first.body), [keyed]);
      assert.ok(first.body.nextCursor !== null);
      const second = await list(`waiting=approval&workflow=inbox&limit=1&cursor=${encodeURIComponent(first.body.nextCursor)}`);
      assert.deepEqual(ids(second.body), [review]);
      assert.equal((await list('waiting=approval&workflow=inbox&status=completed')).body.runs.length, 0);

      // Answered: the run is queued again and leaves the inbox.
      await gatewayCall(gateway, 'signalRun', { runId: review, signalName: 'approval.review', signalId: randomUUID() }, credential);
      assert.deepEqual(ids((await list('waiting=approval&workflow=inbox')).body), [keyed]);

      // The list's condition for waiting=approval (as RunRepository.list spells it) matches the partial
      // index's predicate, so the planner can prove one from the other: with sequential scans off,
      // that index is the plan.
      const client = await cp.sql.connect();
      try {
        await client.query('BEGIN');
        await client.query('SET LOCAL enable_seqscan = off');
        const plan = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN SELECT id FROM runs WHERE project_id = (SELECT id FROM projects WHERE name = 'default')
             AND status = 'suspended' AND suspend_reason = 'signal' AND waiting_signal LIKE 'approval.%'
           ORDER BY created_at DESC, id DESC LIMIT 51`,
        );
        assert.match(plan.rows.map((r) => r['QUERY PLAN']).join('\n'), /runs_project_waiting_approval/);
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }

      const bad = await list('waiting=signal');
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'CAIRN-1101');
      assert.match(bad.body.error.message, /waiting=approval/);
      w.close();
    });

    test('keyset pagination with a filter stays correct over several pages while runs are inserted', async () => {
      const before: string[] = [];
      for (let i = 0; i < 9; i++) before.push(await startRun('pager', 'v1'));
      const seen: RunJson[] = [];
      let cursor: string | null = null;
      let pages = 0;
      const inserted: string[] = [];
      do {
        const page: { status: number; body: Page } = await list(`workflow=pager&status=queued&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(page.status, 200);
        seen.push(...page.body.runs);
        cursor = page.body.nextCursor;
        pages++;
        // New runs arrive between page reads; they are newer than every cursor, so they never show up later.
        inserted.push(await startRun('pager', 'v1'));
      } while (cursor !== null);
      assert.ok(pages >= 5, `walked ${pages} pages`);
      const ids = seen.map((r) => r.id);
      assert.equal(new Set(ids).size, ids.length, 'no run appears twice');
      for (const id of before) assert.ok(ids.includes(id), `run ${id} that existed before paging is listed`);
      assert.ok(!ids.includes(inserted[inserted.length - 1]!));
      for (let i = 1; i < seen.length; i++) {
        const [p, q] = [seen[i - 1]!, seen[i]!];
        assert.ok(p.createdAt >= q.createdAt, 'newest first');
      }
      assert.ok(seen.every((r) => r.workflowName === 'pager' && r.status === 'queued'));
    });

    test('describe: per durable call its attempts, durations and tokens; run totals', async () => {
      const w = await worker(1, only('desc@v1'));
      const runId = await startRun('desc', 'v1');
      const task = await w.next('runTask', (t) => t.runId === runId);
      const t0 = Date.now() - 1000;
      const at = (ms: number) => BigInt(t0 + ms);
      await reports(w, runId, task.epoch, [
        step({ position: 0, name: 'fetch', startedAt: at(0), endedAt: at(100) }),
        step({
          position: 1,
          name: 'ask',
          kind: StepKind.MODEL,
          attempt: 1,
          status: StepStatus.RETRYING,
          errorCode: ErrorCode.STEP_FAILED,
          retryable: true,
          startedAt: at(100),
          endedAt: at(150),
          inputTokens: 10n,
          outputTokens: 0n,
          provider: 'mock.chat',
          model: 'small',
        }),
        step({
          position: 1,
          name: 'ask',
          kind: StepKind.MODEL,
          attempt: 2,
          startedAt: at(200),
          endedAt: at(400),
          inputTokens: 12n,
          outputTokens: 30n,
          provider: 'mock.chat',
          model: 'small',
        }),
        step({
          position: 2,
          name: 'judge',
          kind: StepKind.MODEL,
          startedAt: at(400),
          endedAt: at(450),
          inputTokens: 5n,
          outputTokens: 1n,
          provider: 'mock.chat',
          model: 'large',
        }),
      ]);
      const view = await describeRun(runId);
      assert.equal(view.status, 200);
      assert.equal(view.body.steps.length, 4);
      const [fetchCall, ask, judge] = view.body.timeline as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
      assert.deepEqual(
        [fetchCall['name'], fetchCall['attemptCount'], fetchCall['durationMs'], fetchCall['inputTokens']],
        ['fetch', 1, 100, null],
      );
      assert.deepEqual(
        [ask['kind'], ask['status'], ask['attemptCount'], ask['retries'], ask['durationMs'], ask['inputTokens'], ask['outputTokens']],
        ['model', 'completed', 2, 1, 300, 22, 30],
      );
      const attempts = ask['attempts'] as Array<Record<string, unknown>>;
      assert.deepEqual(
        attempts.map((x) => [x['attempt'], x['status'], x['errorCode'], x['retryable'], x['durationMs']]),
        [
          [1, 'retrying', 'step_failed', true, 50],
          [2, 'completed', null, false, 200],
        ],
      );
      assert.equal(judge['outputTokens'], 1);
      const totals = view.body.totals;
      assert.deepEqual(
        [
          totals['durableCalls'],
          totals['attempts'],
          totals['retries'],
          totals['failedAttempts'],
          totals['inputTokens'],
          totals['outputTokens'],
        ],
        [3, 4, 1, 1, 27, 31],
      );
      assert.deepEqual(totals['tokensByModel'], [
        { provider: 'mock.chat', model: 'small', attempts: 2, inputTokens: 22, outputTokens: 30 },
        { provider: 'mock.chat', model: 'large', attempts: 1, inputTokens: 5, outputTokens: 1 },
      ]);
      assert.equal(typeof totals['wallTimeMs'], 'number');
      assert.equal(
        await outcome(w, {
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId, epoch: task.epoch, outputSize: 1n },
        }),
        'ack',
      );
    });

    test('cancel and terminate over REST: queued, suspended, running with a worker holding it, children; roles and 409s', async () => {
      const viewer = await cp.key('viewer');
      const operator = await cp.key('operator');
      const post = (path: string, key?: string) =>
        cp.api<{ run: RunJson } & ErrorBody>('POST', `/v1/projects/default/runs/${path}`, key ? { key } : {});

      // Cancel: a queued run that never ran ends at once; a viewer may not.
      const toCancel = await startRun('term', 'v1');
      assert.equal((await post(`${toCancel}/cancel`, viewer)).status, 403);
      const cancelled = await post(`${toCancel}/cancel`, operator);
      assert.deepEqual([cancelled.status, cancelled.body.run.status], [200, 'cancelled']);
      assert.equal((await post(`${toCancel}/cancel`, operator)).status, 200, 'cancelling again returns the run');
      assert.equal((await post(`${randomUUID()}/cancel`, operator)).status, 404);

      // Terminate a queued run.
      const queued = await startRun('term', 'v1');
      assert.equal((await post(`${queued}/terminate`, viewer)).status, 403);
      const terminated = await post(`${queued}/terminate`, operator);
      assert.deepEqual([terminated.status, terminated.body.run.status], [200, 'terminated']);
      const again = await post(`${queued}/terminate`, operator);
      assert.equal(again.status, 409);
      assert.match(again.body.error.message, /already ended \(terminated\)/);
      assert.equal((await post(`${queued}/cancel`, operator)).status, 409);

      // Terminate a suspended run: no dispatch happens for it later.
      const w = await worker(2, only('term@v1'));
      const sleeping = await startRun('term', 'v1');
      const sleepTask = await w.next('runTask', (t) => t.runId === sleeping);
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
      assert.equal((await describeRun(sleeping)).body.run.status, 'suspended');
      assert.equal((await post(`${sleeping}/terminate`)).body.run.status, 'terminated');

      // Terminate a running run held by a worker, with a child: the worker is told its lease is lost,
      // its later step reports and outcomes are refused, and the child is terminated too.
      const running = await startRun('term', 'v1');
      const task = await w.next('runTask', (t) => t.runId === running);
      await reports(w, running, task.epoch, [step({ position: 0, name: 'before' })]);
      const child = randomUUID();
      assert.equal(
        await outcome(w, {
          case: 'startChild',
          value: {
            $typeName: 'cairn.worker.v1.StartChild',
            parentRunId: running,
            parentEpoch: task.epoch,
            position: 1,
            childRunId: child,
            workflowName: 'termchild',
            workflowVersion: 'v1',
            inputSize: 1n,
          },
        }),
        'ack',
      );
      const childTerminate = await post(`${child}/terminate`);
      assert.equal(childTerminate.status, 409, 'a child of a live parent is terminated through its parent');
      assert.match(childTerminate.body.error.message, /terminate the parent/);

      const stopped = await post(`${running}/terminate`, operator);
      assert.deepEqual([stopped.status, stopped.body.run.status], [200, 'terminated']);
      const lost = await w.next('leaseUpdate', (u) => u.leases.some((l) => l.runId === running));
      assert.deepEqual(
        lost.leases.filter((l) => l.runId === running).map((l) => [l.epoch, l.state]),
        [[task.epoch, LeaseState.LOST]],
      );
      assert.equal((await describeRun(child)).body.run.status, 'terminated');

      await reports(w, running, task.epoch, [
        step({ position: 1, name: 'after', startedAt: BigInt(Date.now()), endedAt: BigInt(Date.now() + 5) }),
      ]);
      const view = await describeRun(running);
      assert.deepEqual(
        (view.body.steps as Array<{ name: string }>).map((s) => s.name),
        ['before'],
        'no step report is accepted after termination',
      );
      assert.equal(
        await outcome(w, {
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: running, epoch: task.epoch, outputSize: 1n },
        }),
        RejectionReason.LEASE_NOT_HELD,
      );
      assert.equal((await describeRun(running)).body.run.status, 'terminated');
      // The slot came back: the worker is given the next run.
      const next = await startRun('term', 'v1');
      await w.next('runTask', (t) => t.runId === next);
      w.close();
    });

    test('fork: lineage on the new run and its task, position bounds, version, project isolation', async () => {
      const w = await worker(2, only('forky@v1', 'forky@v2'));
      const source = await startRun('forky', 'v1');
      const task = await w.next('runTask', (t) => t.runId === source);
      assert.equal(task.forkSourceRunId, '');
      await reports(w, source, task.epoch, [
        step({ position: 0, name: 'a' }),
        step({ position: 1, name: 'b' }),
        step({ position: 2, name: 'c', status: StepStatus.RUNNING, endedAt: 0n }),
      ]);
      const fork = (body: unknown, key?: string) =>
        cp.api<{ run: RunJson } & ErrorBody>('POST', `/v1/projects/default/runs/${source}/fork`, { body, ...(key ? { key } : {}) });

      // While it runs, only settled positions can be copied.
      const early = await fork({ fromStep: 3 });
      assert.equal(early.status, 409, JSON.stringify(early.body));
      assert.match(early.body.error.message, /position 2 \(c\) has not finished/);
      await reports(w, source, task.epoch, [step({ position: 2, name: 'c' })]);
      assert.equal(
        await outcome(w, {
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: source, epoch: task.epoch, outputSize: 1n },
        }),
        'ack',
      );

      const beyond = await fork({ fromStep: 4 });
      assert.equal(beyond.status, 400);
      assert.match(beyond.body.error.message, /fromStep 4 is beyond the journal .* 3 position/);
      assert.equal((await fork({ fromStep: -1 })).status, 400);
      assert.equal((await fork({})).status, 400);
      assert.equal((await fork({ fromStep: 1, workflowVersion: 'v9' })).status, 404);
      assert.equal((await fork({ fromStep: 1 }, await cp.key('viewer'))).status, 403);

      const forked = await fork({ fromStep: 2, workflowVersion: 'v2' }, await cp.key('operator'));
      assert.equal(forked.status, 201, JSON.stringify(forked.body));
      const run = forked.body.run;
      assert.deepEqual(
        [run.status, run.workflowName, run.workflowVersion, run.forkedFromRunId, run.forkPosition],
        ['queued', 'forky', 'v2', source, 2],
      );
      const forkTask = await w.next('runTask', (t) => t.runId === run.id);
      assert.deepEqual([forkTask.forkSourceRunId, forkTask.forkPosition, forkTask.workflowVersion], [source, 2, 'v2']);
      const shown = await describeRun(run.id);
      assert.deepEqual([shown.body.run.forkedFromRunId, shown.body.run.forkPosition], [source, 2]);
      const described = await gatewayCall<{ run: { forkedFromRunId: string; forkPosition: number } }>(
        gateway,
        'describeRun',
        { runId: run.id },
        credential,
      );
      assert.deepEqual([described.run.forkedFromRunId, described.run.forkPosition], [source, 2]);

      // Another project cannot see the source, so it cannot fork it.
      assert.equal((await cp.api('POST', '/v1/projects', { body: { name: 'staging' } })).status, 201);
      const elsewhere = await cp.key('operator', { project: 'staging' });
      const foreign = await cp.api('POST', `/v1/projects/staging/runs/${source}/fork`, { key: elsewhere, body: { fromStep: 1 } });
      assert.equal(foreign.status, 404);
      const sideways = await cp.api('POST', `/v1/projects/default/runs/${source}/fork`, { key: elsewhere, body: { fromStep: 1 } });
      assert.equal(sideways.status, 404);
    });
  });
}
