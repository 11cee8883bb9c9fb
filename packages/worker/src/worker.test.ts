import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { createLogger, newId } from '@cairn/common';
import { freePort, testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import {
  AckSchema,
  ConnectResponseSchema,
  HeartbeatReplySchema,
  ReleaseReason,
  RunTaskSchema,
  WelcomeSchema,
  WorkerService,
  create,
  grpcServiceDefinition,
  type ConnectRequest,
  type ConnectResponse,
} from '@cairn/proto';
import { defineWorkflow } from '@cairn/sdk';
import { Worker, type WorkerOptions } from './worker.js';

const logger = createLogger('worker-test', 'silent');
/** The real clock, for the scripted control plane while a test skews the worker's `Date.now`. */
const realNow = Date.now.bind(Date);
// A full garbage collection, for the test that shows a suspended run leaves nothing reachable.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const kind = testPostgresKinds()[0]!;
const K1 = randomBytes(32);
const HMAC = randomBytes(32);
const ring = (...keys: Array<[string, Buffer]>): KeyRing => new KeyRing(keys.map(([id, key]) => ({ id, key })));

/** A TCP listener standing in for the control plane's address: it only counts who dials it. */
async function countingListener(): Promise<{ address: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    connections: () => connections,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** How a {@link ScriptedControlPlane} tells the worker its time. */
interface ScriptedClock {
  /** Stamp the Welcome with the control plane's time. */
  readonly welcome: boolean;
  /** Answer heartbeats, sent this often, with the control plane's time. */
  readonly heartbeatIntervalMs?: number;
}

/**
 * A control plane speaking the real protocol over gRPC that welcomes the worker, acknowledges every
 * request, pushes the run tasks a test asks for and records what the worker sends. With `clock`, it
 * tells the worker its time (the real one, whatever a test does to `Date.now`) as a control plane does.
 */
class ScriptedControlPlane {
  constructor(readonly clock?: ScriptedClock) {}
  readonly server = new grpc.Server();
  readonly received: ConnectRequest[] = [];
  address = '';
  #call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse> | undefined;
  #waiters: Array<() => void> = [];

  async start(): Promise<void> {
    this.server.addService(grpcServiceDefinition(WorkerService), {
      connect: (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
        this.#call = call;
        call.on('data', (request: ConnectRequest) => {
          this.received.push(request);
          if (request.message.case === 'hello') {
            call.write(
              create(ConnectResponseSchema, {
                message: {
                  case: 'welcome',
                  value: create(WelcomeSchema, {
                    sessionId: newId(),
                    leaseTtlMs: 30_000,
                    heartbeatIntervalMs: this.clock?.heartbeatIntervalMs ?? 60_000,
                    serverTimeMs: this.clock?.welcome ? BigInt(realNow()) : 0n,
                  }),
                },
              }),
            );
          } else if (request.message.case === 'heartbeat' && this.clock?.heartbeatIntervalMs !== undefined) {
            const value = create(HeartbeatReplySchema, { sequence: request.sequence, serverTimeMs: BigInt(realNow()) });
            call.write(create(ConnectResponseSchema, { message: { case: 'heartbeatReply', value } }));
          } else {
            call.write(
              create(ConnectResponseSchema, { message: { case: 'ack', value: create(AckSchema, { sequence: request.sequence }) } }),
            );
          }
          for (const wake of this.#waiters.splice(0)) wake();
        });
        call.on('error', () => undefined);
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }

  push(runId: string, epoch: number, workflow: { name: string; version: string }): void {
    const value = create(RunTaskSchema, {
      runId,
      epoch,
      workflowName: workflow.name,
      workflowVersion: workflow.version,
      taskQueue: 'default',
    });
    this.#call!.write(create(ConnectResponseSchema, { message: { case: 'runTask', value } }));
  }

  /** Waits until the worker has sent a request matching `predicate`. */
  async waitFor(predicate: (r: ConnectRequest) => boolean): Promise<ConnectRequest> {
    for (;;) {
      const found = this.received.find(predicate);
      if (found) return found;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

describe(`Worker (${kind} Postgres)`, () => {
  let server: PostgresServer;
  let url: string;
  const stores: PayloadStore[] = [];

  /** A payload store on the test database; the first process to verify keys there uses K1 and HMAC. */
  function store(keys: KeyRing = ring(['k1', K1])): PayloadStore {
    const s = PayloadStore.connect({ connectionString: url, keys, poolMax: 4 });
    stores.push(s);
    return s;
  }

  async function options(overrides: Partial<WorkerOptions> = {}): Promise<WorkerOptions> {
    return {
      controlPlaneAddress: `127.0.0.1:${await freePort()}`,
      credential: 'token',
      dataPlaneId: '4f1c2b7e-9d7a-4c43-9a51-0e6f3b1d2c11',
      store: store(),
      hasher: new Hasher(HMAC),
      workflows: [defineWorkflow({ name: 'noop', version: '1' }, () => null)],
      logger,
      ...overrides,
    };
  }

  before(async () => {
    server = await testPostgres(kind);
    url = await server.createDatabase(uniqueDatabaseName('worker'));
    const first = store();
    await first.migrate();
    await first.verifyKeys(new Hasher(HMAC));
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await server.stop();
  });

  it('rejects invalid options naming each problem', async () => {
    assert.throws(
      () => new Worker({ ...({} as WorkerOptions), ...({ dataPlaneId: 'local', slots: 0, workflows: [] } as Partial<WorkerOptions>) }),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /dataPlaneId must be a lowercase UUID/);
        assert.match(err.message, /slots must be a whole number of at least 1/);
        assert.match(err.message, /credential is required/);
        assert.match(err.message, /workflows must list at least one workflow/);
        return true;
      },
    );
    const twice = defineWorkflow({ name: 'dup', version: '1' }, () => 1);
    await assert.rejects(async () => new Worker(await options({ workflows: [twice, twice] })), /registered twice/);
  });

  it('start() waits for the control plane, and shutdown() ends that wait', async () => {
    const worker = new Worker(await options({ drainTimeoutMs: 1000 }));
    const started = assert.rejects(worker.start(), /shut down before it connected/);
    assert.equal(worker.connected, false);
    await worker.shutdown();
    await started;
  });

  for (const [what, overrides, names] of [
    ['an encryption key', { store: () => store(ring(['k1', randomBytes(32)])) }, [/encryption key "k1" in CAIRN_DP_ENCRYPTION_KEYS/i]],
    ['the HMAC key', { hasher: new Hasher(randomBytes(32)) }, [/HMAC key in CAIRN_DP_HMAC_KEY/]],
  ] as const) {
    it(`start() refuses ${what} that does not match the payload store, without dialling the control plane`, async () => {
      const cp = await countingListener();
      try {
        const worker = new Worker(
          await options({
            controlPlaneAddress: cp.address,
            ...('store' in overrides ? { store: overrides.store() } : { hasher: overrides.hasher }),
          }),
        );
        await assert.rejects(worker.start(), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'CAIRN-3006');
          for (const n of names) assert.match(err.message, n);
          assert.ok(!err.message.includes(K1.toString('base64')));
          return true;
        });
        assert.equal(worker.connected, false);
        await worker.shutdown();
        assert.equal(cp.connections(), 0, 'the control plane was dialled');
      } finally {
        await cp.close();
      }
    });
  }

  it('gives back a run whose data it cannot open, says why, and takes no more runs', async () => {
    const cp = new ScriptedControlPlane();
    await cp.start();
    let ran = 0;
    const wf = defineWorkflow({ name: 'count', version: '1' }, async (ctx) => ctx.step('count', () => ++ran));
    // Sealed by a gateway rotated to k2; this worker has only k1.
    const rotated = store(ring(['k2', randomBytes(32)], ['k1', K1]));
    await rotated.verifyKeys(new Hasher(HMAC));
    const unreadable = newId();
    await rotated.createRun({ runId: unreadable, workflowName: wf.name, input: null });
    const readable = newId();
    await store().createRun({ runId: readable, workflowName: wf.name, input: null });

    const worker = new Worker(await options({ controlPlaneAddress: cp.address, workflows: [wf] }));
    try {
      await worker.start();
      assert.equal(worker.misconfiguration, undefined);
      cp.push(unreadable, 1, wf);
      const released = await cp.waitFor((r) => r.message.case === 'released' && r.message.value.runId === unreadable);
      assert.equal(released.message.case === 'released' && released.message.value.reason, ReleaseReason.KEY_UNAVAILABLE);
      // The control plane heard "no more runs" before the run came back, so it does not push it here again.
      const noMore = cp.received.findIndex(
        (r) => r.message.case === 'slots' && r.message.value.draining && r.message.value.freeSlots === 0,
      );
      assert.ok(noMore >= 0 && noMore < cp.received.indexOf(released), 'no-more-runs sent before the release');
      assert.match(worker.misconfiguration ?? '', new RegExp(`Run ${unreadable}: its data cannot be opened with encryption key "k2"`));
      assert.match(worker.misconfiguration ?? '', /same CAIRN_DP_ENCRYPTION_KEYS as the gateway/);
      // Nothing crossed but IDs and the closed reason; the run was not failed.
      assert.ok(!cp.received.some((r) => r.message.case === 'failed'));

      // A task pushed before the control plane saw the update is handed back untried.
      cp.push(readable, 1, wf);
      const second = await cp.waitFor((r) => r.message.case === 'released' && r.message.value.runId === readable);
      assert.equal(second.message.case === 'released' && second.message.value.reason, ReleaseReason.NO_SLOT);
      assert.equal(ran, 0);
      assert.equal((await store().getRun(readable))?.status, 'open');
    } finally {
      await worker.shutdown();
      cp.server.forceShutdown();
    }
  });

  it('refuses a forged task naming another workflow than the stored run, running and writing nothing', async () => {
    const cp = new ScriptedControlPlane();
    await cp.start();
    const seen: string[] = [];
    const payroll = defineWorkflow({ name: 'payroll', version: '1' }, async (ctx, input: { salary: number }) =>
      ctx.step('pay', () => input.salary),
    );
    // The code a forged task tries to run over payroll's data.
    const exfiltrate = defineWorkflow({ name: 'exfiltrate', version: '1' }, async (ctx, input: unknown) =>
      ctx.step('leak', () => {
        seen.push(JSON.stringify(input));
        return null;
      }),
    );
    const runId = newId();
    await store().createRun({ runId, workflowName: payroll.name, input: { salary: 91_000 } });
    const lines: string[] = [];
    let refused!: () => void;
    const refusedLogged = new Promise<void>((resolve) => (refused = resolve));
    const captured = pino(
      { level: 'info', formatters: { level: (label) => ({ level: label }) } },
      {
        write: (line: string) => {
          lines.push(line);
          if (line.includes('run task refused')) refused();
        },
      },
    );
    const worker = new Worker(await options({ controlPlaneAddress: cp.address, workflows: [payroll, exfiltrate], logger: captured }));
    try {
      await worker.start();
      cp.push(runId, 1, exfiltrate);
      await refusedLogged;
      // Draining waits for every execution and its outcome, so whatever the worker would send is sent.
      await worker.shutdown();

      assert.deepEqual(seen, [], "the other workflow's code never saw the run's input");
      const refusal = lines
        .map((l) => JSON.parse(l) as { level: string; msg: string; err?: { message: string } })
        .find((l) => l.msg.startsWith('run task refused'));
      assert.equal(refusal?.level, 'error');
      assert.match(
        refusal?.err?.message ?? '',
        /\[CAIRN-1191\] A run task for run .* names workflow "exfiltrate", but the run was stored in this data plane as workflow "payroll"/,
      );
      // Nothing was written for the run and nothing crossed about it: its lease simply expires.
      const stored = await store().getRun(runId);
      assert.equal(stored?.epoch, 1, 'the fence did not move from where the gateway stored the run');
      assert.deepEqual(await store().loadJournal(runId), []);
      assert.ok(!cp.received.some((r) => 'runId' in (r.message.value ?? {}) && (r.message.value as { runId: string }).runId === runId));
    } finally {
      await worker.shutdown();
      cp.server.forceShutdown();
    }
  });
  it('answers replay checks for the versions it runs; a check for a version it does not run stays for another worker', async () => {
    const cp = new ScriptedControlPlane();
    await cp.start();
    const steps = (version: string, order: readonly string[]) =>
      defineWorkflow({ name: 'ledger', version }, async (ctx, input: { n: number }) => {
        let total = input.n;
        for (const name of order) total = await ctx.step(name, () => total + 1);
        return total;
      });
    const v1 = steps('1', ['debit', 'credit']);
    const v2 = steps('2', ['debit', 'credit']);
    const v3 = steps('3', ['credit', 'debit']);
    const runId = newId();
    await store().createRun({ runId, workflowName: 'ledger', input: { n: 1 } });
    const worker = new Worker(await options({ controlPlaneAddress: cp.address, workflows: [v1, v2, v3] }));
    const other = store();
    const answer = async (checkId: string) => {
      for (;;) {
        const check = await other.getReplayCheck(checkId);
        if (check?.status === 'done' || check?.status === 'failed') return check;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await worker.start();
      cp.push(runId, 1, v1);
      await cp.waitFor((r) => r.message.case === 'completed' && r.message.value.runId === runId);

      const clean = await answer((await other.requestReplayCheck(runId, '2')).checkId);
      assert.equal(clean.status, 'done');
      assert.equal(clean.claimedBy, worker.workerId);
      assert.deepEqual(clean.result, { ok: true, outcome: 'completed', replayedCalls: 2, journalEntries: 2 });

      const diverging = await answer((await other.requestReplayCheck(runId, '3')).checkId);
      const result = diverging.result as { ok: boolean; outcome: string; position: number; expected: unknown; actual: unknown };
      assert.equal(result.ok, false);
      assert.equal(result.outcome, 'non_determinism');
      assert.equal(result.position, 0);
      assert.deepEqual(result.expected, { kind: 'step', name: 'debit', keyDigest: null });
      assert.deepEqual(result.actual, { kind: 'step', name: 'credit', keyDigest: null });

      // Nobody here runs version 9: the check is left pending, then expires.
      const unknown = await other.requestReplayCheck(runId, '9');
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal((await other.getReplayCheck(unknown.checkId))?.status, 'pending');
      assert.equal(await other.expireReplayChecks(0), 1);
      assert.equal((await other.getReplayCheck(unknown.checkId))?.status, 'expired');
      // The answers are sealed: no call name in clear in the table.
      const db = new pg.Client({ connectionString: url });
      await db.connect();
      try {
        const rows = await db.query<{ result: Buffer }>('SELECT result FROM dp_replay_checks WHERE result IS NOT NULL');
        assert.equal(rows.rows.length, 2);
        for (const row of rows.rows) assert.ok(!row.result.includes('debit'), 'the replay outcome is stored sealed');
      } finally {
        await db.end();
      }
      await assert.rejects(other.requestReplayCheck(newId(), '2'), /is not in this data plane's payload store/);
    } finally {
      await worker.shutdown();
      cp.server.forceShutdown();
    }
  });

  for (const skewMs of [-60_000, 60_000]) {
    for (const via of ['welcome', 'heartbeat'] as const) {
      it(`keeps a durable sleep on the control plane's time when the worker's clock is ${skewMs / 1000} s off (measured on the ${via})`, async () => {
        const cp = new ScriptedControlPlane(via === 'welcome' ? { welcome: true } : { welcome: false, heartbeatIntervalMs: 50 });
        await cp.start();
        const sleeper = defineWorkflow({ name: 'sleeper', version: '1' }, async (ctx) => {
          await ctx.sleep(1000);
          return ctx.now().getTime();
        });
        const runId = newId();
        await store().createRun({ runId, workflowName: sleeper.name, input: null });
        Date.now = () => realNow() + skewMs;
        const worker = new Worker(await options({ controlPlaneAddress: cp.address, workflows: [sleeper], suspendThresholdMs: 100 }));
        try {
          await worker.start();
          if (via === 'heartbeat') {
            // The offset the worker measured, as its metrics show it.
            for (;;) {
              const gauge = (await worker.metrics.registry.getSingleMetric('cairn_worker_clock_offset_seconds')?.get())?.values[0]?.value;
              if (gauge !== undefined && gauge !== 0) {
                assert.ok(Math.abs(gauge * 1000 + skewMs) < 1000, `offset ${gauge} s for a clock ${skewMs} ms off`);
                break;
              }
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
          }
          const pushedAt = realNow();
          cp.push(runId, 1, sleeper);
          const suspended = await cp.waitFor((r) => r.message.case === 'suspended' && r.message.value.runId === runId);
          const receivedAt = realNow();
          assert.ok(suspended.message.case === 'suspended');
          // The control plane wakes the run at this time on its own clock: a second after the
          // sleep began, not a minute off.
          const wakeAt = Number(suspended.message.value.wakeAt);
          assert.ok(
            wakeAt >= pushedAt + 1000 - 200 && wakeAt <= receivedAt + 1000 + 200,
            `wake_at is ${wakeAt - receivedAt} ms from the control plane's now; expected about 1000`,
          );
        } finally {
          Date.now = realNow;
          await worker.shutdown();
          cp.server.forceShutdown();
        }
      });
    }
  }

  it('keeps nothing for a suspended run once the control plane acknowledged the suspension', async () => {
    const cp = new ScriptedControlPlane();
    await cp.start();
    // Half sleep, half wait for a signal: both waits are longer than the suspend threshold. Each
    // execution's frame holds an object it uses after the wait; once the run has suspended, nothing
    // may reach that frame any more (the pending wait included), so garbage collection frees it.
    const frames: Array<WeakRef<{ signal: boolean }>> = [];
    const waits = defineWorkflow({ name: 'waits', version: '1' }, async (ctx, input: { signal: boolean }) => {
      const frame = { signal: input.signal };
      frames.push(new WeakRef(frame));
      await ctx.step('first', () => 1);
      if (input.signal) await ctx.waitForSignal('go', { timeout: '1h' });
      else await ctx.sleep('1h');
      return ctx.step('second', () => (frame.signal ? 2 : 3));
    });
    const probe = defineWorkflow({ name: 'probe', version: '1' }, () => null);
    const runs = Array.from({ length: 60 }, (_, i) => ({ runId: newId(), signal: i % 2 === 1 }));
    for (const run of runs) await store().createRun({ runId: run.runId, workflowName: waits.name, input: { signal: run.signal } });
    const probeRun = newId();
    await store().createRun({ runId: probeRun, workflowName: probe.name, input: null });

    const worker = new Worker(await options({ controlPlaneAddress: cp.address, workflows: [waits, probe], slots: runs.length }));
    try {
      await worker.start();
      for (const run of runs) cp.push(run.runId, 1, waits);
      for (const run of runs) {
        const suspended = await cp.waitFor((r) => r.message.case === 'suspended' && r.message.value.runId === run.runId);
        assert.equal(suspended.message.case === 'suspended' && suspended.message.value.signalName, run.signal ? 'go' : '');
      }
      // The stream is ordered: once the probe (pushed after every acknowledgement) has completed,
      // the worker has handled the acknowledgements of all the suspensions.
      cp.push(probeRun, 1, probe);
      await cp.waitFor((r) => r.message.case === 'completed' && r.message.value.runId === probeRun);
      const retained = worker.retained();
      const suspendedIds = new Set(runs.map((r) => r.runId));
      for (const [where, ids] of Object.entries(retained)) {
        if (typeof ids === 'number') continue;
        assert.deepEqual(
          (ids as string[]).filter((id) => suspendedIds.has(id)),
          [],
          `suspended runs still held in the worker's ${where}`,
        );
      }
      assert.equal(retained.settling, 0);
      assert.equal(frames.length, runs.length);
      // WeakRefs hold their target until the end of the current job: collect in a later one.
      await new Promise((resolve) => setImmediate(resolve));
      collectGarbage();
      assert.equal(frames.filter((f) => f.deref() !== undefined).length, 0, 'suspended executions still reachable in the worker');
    } finally {
      await worker.shutdown();
      cp.server.forceShutdown();
    }
  });
});
