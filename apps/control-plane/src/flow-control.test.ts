// Flow control against real control-plane processes: concurrency limits (per workflow and per
// concurrency key), suspended runs not holding a slot, rate limits, priorities, and a limit holding
// with two control-plane replicas on one database.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { SuspendReason, type RunInfo } from '@cairn/proto';
import { BOOTSTRAP_KEY, controlPlaneMain, startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { GatewayClient, WorkerClient, WorkerStream, gatewayCall, rejectsWith, type ServiceClient } from './testing/grpc.js';

interface ErrorBody {
  error: { code: string; message: string };
}
type Task = { runId: string; epoch: number };

const K1 = 'a'.repeat(64);
const K2 = 'b'.repeat(64);

/** Polls until `check` holds (a wait, not a timing assertion). */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A second control-plane process on the same database (another replica). */
async function startReplica(databaseUrl: string): Promise<{ grpcAddress: string; stop: () => Promise<void> }> {
  const proc: ChildProcess = spawn(process.execPath, [controlPlaneMain], {
    env: {
      PATH: process.env['PATH'] ?? '',
      CAIRN_CP_DATABASE_URL: databaseUrl,
      CAIRN_CP_HOST: '127.0.0.1',
      CAIRN_CP_HTTP_PORT: '0',
      CAIRN_CP_GRPC_PORT: '0',
      CAIRN_BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY,
      CAIRN_DEV_MODE: 'true',
      CAIRN_SHUTDOWN_TIMEOUT_MS: '1000',
      CAIRN_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  proc.stderr!.on('data', (b: Buffer) => lines.push(b.toString('utf8')));
  const grpcPort = await new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      lines.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; grpcPort?: number };
        if (entry.msg === 'control plane listening') resolve(entry.grpcPort!);
      } catch {
        // not JSON
      }
    });
    proc.once('exit', (code) => reject(new Error(`replica exited with ${code}:\n${lines.slice(-20).join('\n')}`)));
  });
  return {
    grpcAddress: `127.0.0.1:${grpcPort}`,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

for (const kind of testPostgresKinds()) {
  describe(`flow control on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;
    let gateway: ServiceClient;
    let dataPlaneId: string;
    let credential: string;
    const streams: WorkerStream[] = [];
    const clients: ServiceClient[] = [];

    const worker = async (address: string, slots: number, name: string): Promise<WorkerStream> => {
      const client = new WorkerClient(address, grpc.credentials.createInsecure());
      clients.push(client);
      const w = new WorkerStream(client, credential);
      streams.push(w);
      await w.hello({ dataPlaneId, slots, workflows: [{ name, version: '1', taskQueue: 'q' }] });
      return w;
    };
    const register = async (name: string): Promise<void> => {
      const res = await cp.api('POST', '/v1/projects/default/workflows', { body: { name, version: '1', taskQueue: 'q' } });
      assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
    };
    const setFlow = async (name: string, body: Record<string, unknown>): Promise<void> => {
      const res = await cp.api('PUT', `/v1/projects/default/workflows/${name}/flow-control`, { body });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    const startRun = async (name: string, extra: { priority?: number; concurrencyKeyDigest?: string } = {}): Promise<RunInfo> => {
      const answer = await gatewayCall<{ run: RunInfo }>(
        gateway,
        'startRun',
        { runId: randomUUID(), workflowName: name, workflowVersion: '1', inputSize: 2n, ...extra },
        credential,
      );
      return answer.run;
    };
    const complete = async (w: WorkerStream, task: Task): Promise<void> => {
      const seq = w.send({
        case: 'completed',
        value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: task.runId, epoch: task.epoch, outputSize: 1n },
      });
      await w.next('ack', (a) => a.sequence === seq);
    };
    const status = async (runId: string): Promise<string> =>
      (await cp.sql.query<{ status: string }>('SELECT status FROM runs WHERE id = $1', [runId])).rows[0]!.status;
    /** Running runs of a workflow per concurrency key ('' for none). */
    const runningByKey = async (name: string): Promise<Map<string, number>> => {
      const result = await cp.sql.query<{ k: string; n: number }>(
        `SELECT coalesce(concurrency_key_digest, '') AS k, count(*)::int AS n FROM runs
         WHERE workflow_name = $1 AND status = 'running' GROUP BY 1`,
        [name],
      );
      return new Map(result.rows.map((r) => [r.k, r.n]));
    };
    const runningCount = async (name: string): Promise<number> => [...(await runningByKey(name)).values()].reduce((a, b) => a + b, 0);
    /** Collects run tasks pushed to the workers until `held` has at least `count`. */
    const collect = async (held: Map<string, Task & { worker: WorkerStream }>, workers: WorkerStream[], count: number): Promise<void> => {
      await until(`${count} runs held`, () => {
        for (const w of workers) for (const t of w.takeAll('runTask')) held.set(t.runId, { runId: t.runId, epoch: t.epoch, worker: w });
        return held.size >= count;
      });
    };

    before(async () => {
      server = await testPostgres(kind);
      cp = await startControlPlaneProcess(server, { env: { CAIRN_SHUTDOWN_TIMEOUT_MS: '1000' } });
      ({ id: dataPlaneId, credential } = await cp.dataPlane('default', 'flow-dp'));
      gateway = new GatewayClient(cp.grpcAddress, grpc.credentials.createInsecure());
    });

    after(async () => {
      for (const s of streams) s.close();
      for (const c of [...clients, gateway]) c?.close();
      await cp?.close();
      await server?.stop();
    });

    test('flow control is set per workflow name: validated, shown, and only by developers and admins', async () => {
      await register('configured');
      const viewer = await cp.key('viewer');
      const put = (body: unknown, key?: string) =>
        cp.api<ErrorBody & { flowControl: Record<string, unknown> }>('PUT', '/v1/projects/default/workflows/configured/flow-control', {
          body,
          ...(key === undefined ? {} : { key }),
        });
      const set = await put({ concurrency: { limit: 3, perKey: true }, rateLimit: { limit: 10, periodMs: 60_000 } });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      assert.deepEqual(set.body.flowControl['concurrency'], { limit: 3, perKey: true });
      assert.deepEqual(set.body.flowControl['rateLimit'], { limit: 10, periodMs: 60_000, perKey: false });
      const shown = await cp.api<{ workflow: { flowControl: Record<string, unknown> } }>(
        'GET',
        '/v1/projects/default/workflows/configured',
        {
          key: viewer,
        },
      );
      assert.deepEqual(shown.body.workflow.flowControl['concurrency'], { limit: 3, perKey: true });
      assert.equal((await put({ concurrency: { limit: 1 } }, viewer)).status, 403);
      const bad = await put({ concurrency: { limit: 0 } });
      assert.equal(bad.status, 400);
      assert.match(bad.body.error.message, /concurrency\.limit/);
      assert.equal((await put({ rateLimit: { limit: 1, periodMs: 10 } })).status, 400);
      const unknown = await cp.api<ErrorBody>('PUT', '/v1/projects/default/workflows/never-registered/flow-control', {
        body: { concurrency: { limit: 1 } },
      });
      assert.equal(unknown.status, 404);
      // Clearing both limits makes the workflow unlimited again.
      const cleared = await put({});
      assert.deepEqual(cleared.body.flowControl, { concurrency: null, rateLimit: null, updatedAt: null });
    });

    test('a concurrency limit of 2: six runs, never more than 2 running at once', async () => {
      await register('conc');
      await setFlow('conc', { concurrency: { limit: 2 } });
      const w = await worker(cp.grpcAddress, 10, 'conc');
      for (let i = 0; i < 6; i++) await startRun('conc');
      const held = new Map<string, Task & { worker: WorkerStream }>();
      for (let completed = 0; completed < 6; completed++) {
        await collect(held, [w], Math.min(2, 6 - completed));
        assert.ok(held.size <= 2, `${held.size} runs held at once with a limit of 2`);
        assert.ok((await runningCount('conc')) <= 2);
        const first = held.values().next().value!;
        await complete(w, first);
        held.delete(first.runId);
      }
      const done = await cp.sql.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM runs WHERE workflow_name = 'conc' AND status = 'completed'`,
      );
      assert.equal(done.rows[0]!.n, 6);
    });

    test('per-key concurrency limits are independent across keys (runs without a key share one bucket)', async () => {
      await register('keyed');
      await setFlow('keyed', { concurrency: { limit: 1, perKey: true } });
      const a1 = await startRun('keyed', { concurrencyKeyDigest: K1 });
      const a2 = await startRun('keyed', { concurrencyKeyDigest: K1 });
      const b1 = await startRun('keyed', { concurrencyKeyDigest: K2 });
      const b2 = await startRun('keyed', { concurrencyKeyDigest: K2 });
      const c1 = await startRun('keyed');
      const c2 = await startRun('keyed');
      const w = await worker(cp.grpcAddress, 10, 'keyed');
      const held = new Map<string, Task & { worker: WorkerStream }>();
      await collect(held, [w], 3);
      assert.deepEqual(new Set(held.keys()), new Set([a1.runId, b1.runId, c1.runId]), 'the oldest run of each key runs');
      for (const n of (await runningByKey('keyed')).values()) assert.equal(n, 1);

      // Ending the run of one key lets that key's next run go; the others' do not move.
      await complete(w, held.get(a1.runId)!);
      held.delete(a1.runId);
      await collect(held, [w], 3);
      assert.deepEqual(new Set(held.keys()), new Set([a2.runId, b1.runId, c1.runId]));
      assert.equal(await status(b2.runId), 'queued');
      assert.equal(await status(c2.runId), 'queued');

      for (const [done, next] of [
        [b1, b2],
        [c1, c2],
      ] as const) {
        await complete(w, held.get(done.runId)!);
        held.delete(done.runId);
        await collect(held, [w], 3);
        assert.ok(held.has(next.runId));
        for (const n of (await runningByKey('keyed')).values()) assert.equal(n, 1);
      }
      assert.equal(held.size, 3);
    });

    test('suspended runs do not hold a concurrency slot; a woken run waits for one', async () => {
      await register('sleepy');
      await setFlow('sleepy', { concurrency: { limit: 1 } });
      const w = await worker(cp.grpcAddress, 10, 'sleepy');
      const a = await startRun('sleepy');
      const taskA = await w.next('runTask', (t) => t.runId === a.runId);
      const seq = w.send({
        case: 'suspended',
        value: {
          $typeName: 'cairn.worker.v1.RunSuspended',
          signalDigest: '',
          runId: a.runId,
          epoch: taskA.epoch,
          reason: SuspendReason.SIGNAL,
          signalName: 'approve',
          signalsConsumed: 0,
          consumedSignalIds: [],
          wakeAt: 0n,
          childRunId: '',
        },
      });
      await w.next('ack', (ack) => ack.sequence === seq);
      assert.equal(await status(a.runId), 'suspended');

      // While A waits for its signal, B takes the only slot.
      const b = await startRun('sleepy');
      const taskB = await w.next('runTask', (t) => t.runId === b.runId);
      assert.equal(await status(a.runId), 'suspended');

      // A's signal queues it, but B holds the slot: A waits.
      await gatewayCall(gateway, 'signalRun', { runId: a.runId, signalName: 'approve', signalId: randomUUID() }, credential);
      assert.equal(await status(a.runId), 'queued');
      assert.equal(await runningCount('sleepy'), 1);

      await complete(w, taskB);
      const resumed = await w.next('runTask', (t) => t.runId === a.runId);
      assert.equal(resumed.epoch, taskA.epoch + 1);
      assert.equal(await status(b.runId), 'completed');
      await complete(w, resumed);
    });

    test('a rate limit spaces first dispatches: at most 2 per 1.5 s', async () => {
      await register('rated');
      await setFlow('rated', { rateLimit: { limit: 2, periodMs: 1500 } });
      const runs: RunInfo[] = [];
      for (let i = 0; i < 4; i++) runs.push(await startRun('rated'));
      const w = await worker(cp.grpcAddress, 10, 'rated');
      const held = new Map<string, Task & { worker: WorkerStream }>();
      await collect(held, [w], 2);
      assert.deepEqual(new Set(held.keys()), new Set([runs[0]!.runId, runs[1]!.runId]));
      // Ending them does not let more start: the limit counts starts, not running runs.
      for (const t of [...held.values()]) await complete(w, t);
      await collect(held, [w], 4);
      const gap = async (later: RunInfo, earlier: RunInfo): Promise<number> =>
        (
          await cp.sql.query<{ ms: number }>(
            `SELECT (extract(epoch FROM (l.started_at - e.started_at)) * 1000)::float8 AS ms FROM runs l, runs e WHERE l.id = $1 AND e.id = $2`,
            [later.runId, earlier.runId],
          )
        ).rows[0]!.ms;
      assert.ok((await gap(runs[2]!, runs[0]!)) >= 1500, 'the third start waited until the first left the window');
      assert.ok((await gap(runs[3]!, runs[1]!)) >= 1500, 'the fourth start waited until the second left the window');
      for (const id of [runs[2]!.runId, runs[3]!.runId]) await complete(w, held.get(id)!);
    });

    test('priorities: higher first, then oldest, on the unlimited and the limited path', async () => {
      await rejectsWith(startRun('conc', { priority: 101 }), grpc.status.INVALID_ARGUMENT, /priority must be from 0 to 100/);
      for (const [name, limited] of [
        ['prio', false],
        ['prio-limited', true],
      ] as const) {
        await register(name);
        if (limited) await setFlow(name, { concurrency: { limit: 1 } });
        const started: RunInfo[] = [];
        for (const priority of [10, 90, 50, 90, 0]) started.push(await startRun(name, { priority }));
        assert.deepEqual(
          started.map((r) => r.priority),
          [10, 90, 50, 90, 0],
        );
        assert.equal((await startRun(name)).priority, 50, 'the default priority');
        // One slot (or a limit of 1): the order of dispatch is the order of priority.
        const w = await worker(cp.grpcAddress, limited ? 5 : 1, name);
        const order: string[] = [];
        for (let i = 0; i < 6; i++) {
          const task = await w.next('runTask');
          order.push(task.runId);
          await complete(w, task);
        }
        const priorities = await cp.sql.query<{ id: string; priority: number }>(
          `SELECT id, priority FROM runs WHERE id = ANY($1::uuid[])`,
          [order],
        );
        const byId = new Map(priorities.rows.map((r) => [r.id, r.priority]));
        assert.deepEqual(
          order.map((id) => byId.get(id)),
          [90, 90, 50, 50, 10, 0],
          `${name}: dispatched by priority`,
        );
        assert.deepEqual(order.slice(0, 2), [started[1]!.runId, started[3]!.runId], 'equal priorities: the oldest first');
        assert.equal(order[2], started[2]!.runId, 'equal priorities: the oldest first');
      }
    });

    test('a concurrency limit holds with two control-plane replicas on one database', async () => {
      const replica = await startReplica(cp.databaseUrl);
      try {
        await register('shared');
        await setFlow('shared', { concurrency: { limit: 3 } });
        for (let i = 0; i < 8; i++) await startRun('shared');
        // Replica 1's worker can take 2; replica 2's worker then gets only the one slot left.
        const w1 = await worker(cp.grpcAddress, 2, 'shared');
        const held = new Map<string, Task & { worker: WorkerStream }>();
        await collect(held, [w1], 2);
        const w2 = await worker(replica.grpcAddress, 5, 'shared');
        await collect(held, [w1, w2], 3);
        assert.equal(held.size, 3);
        assert.equal([...held.values()].filter((t) => t.worker === w2).length, 1, 'replica 2 dispatched the one slot left');
        let completed = 0;
        while (completed < 8) {
          await collect(held, [w1, w2], Math.min(3, 8 - completed));
          assert.ok(held.size <= 3, `${held.size} runs held at once across replicas with a limit of 3`);
          assert.ok((await runningCount('shared')) <= 3);
          const first = held.values().next().value!;
          await complete(first.worker, first);
          held.delete(first.runId);
          completed++;
        }
      } finally {
        await replica.stop();
      }
    });
  });
}
