// Integration tests of the control plane against real Postgres (embedded 18 and system 15).
//
// The tests drive the tsc-built code in dist/: the test runner transforms TypeScript with tsx,
// which reads the workspace root's tsconfig and so cannot compile Nest's parameter decorators.
// `ensureBuilt` rebuilds this package first when dist/ is older than src/.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { globSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import pg from 'pg';
import { ErrorCodes, createLogger, type CairnError } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import {
  ErrorCode,
  LeaseState,
  RejectionReason,
  RunStatus,
  StepKind,
  StepStatus,
  SuspendReason,
  WakeReason,
  WorkerService,
  grpcServiceDefinition,
  type ConnectRequest,
  type ConnectResponse,
  type RunInfo,
  type StepInfo,
} from '@cairn/proto';
import type * as AdminModule from './admin.js';
import type * as AppModuleModule from './app.module.js';
import type * as ConfigModule from './config.js';
import type * as ControlPlaneModule from './control-plane.js';
import type * as DatabaseModule from './db/database.js';
import type * as MigrationRepositoryModule from './db/migration.repository.js';
import type * as MigrationsModule from './db/migrations.js';
import type * as RunRepositoryModule from './runs/run.repository.js';
import type * as WorkflowRepositoryModule from './workflows/workflow.repository.js';
import type * as DataPlaneServiceModule from './tenancy/data-plane.service.js';
import type * as AccessServiceModule from './tenancy/access.service.js';
import type * as LeaseServiceModule from './dispatch/lease.service.js';
import type * as RunServiceModule from './runs/run.service.js';
import type * as SweeperServiceModule from './dispatch/sweeper.service.js';
import { GatewayClient, WorkerClient, WorkerStream, bearer, gatewayCall, rejectsWith, type ServiceClient } from './testing/grpc.js';

const here = dirname(fileURLToPath(import.meta.url));
const packageDir = dirname(here);
const distDir = join(packageDir, 'dist');
const silent = createLogger('control-plane-test', 'silent');

/** Builds the package when dist/ is missing or older than any source file. */
function ensureBuilt(): void {
  const stale = globSync('**/*.ts', { cwd: here }).some((file) => {
    if (file.endsWith('.test.ts')) return false;
    const out = join(distDir, file.replace(/\.ts$/, '.js'));
    try {
      return statSync(out).mtimeMs < statSync(join(here, file)).mtimeMs;
    } catch {
      return true;
    }
  });
  if (!stale) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const built = spawnSync(process.execPath, [tsc, '-b', packageDir], { encoding: 'utf8' });
  assert.equal(built.status, 0, `building apps/control-plane failed:\n${built.stdout}${built.stderr}`);
}

async function load<T>(file: string): Promise<T> {
  return (await import(pathToFileURL(join(distDir, file)).href)) as T;
}

interface Dist {
  admin: typeof AdminModule;
  app: typeof AppModuleModule;
  config: typeof ConfigModule;
  cp: typeof ControlPlaneModule;
  database: typeof DatabaseModule;
  migrationRepository: typeof MigrationRepositoryModule;
  migrations: typeof MigrationsModule;
  runRepository: typeof RunRepositoryModule;
  workflowRepository: typeof WorkflowRepositoryModule;
  dataPlaneService: typeof DataPlaneServiceModule;
  accessService: typeof AccessServiceModule;
  leaseService: typeof LeaseServiceModule;
  runService: typeof RunServiceModule;
  sweeperService: typeof SweeperServiceModule;
}

let distPromise: Promise<Dist> | null = null;
function dist(): Promise<Dist> {
  distPromise ??= (async () => {
    ensureBuilt();
    return {
      admin: await load('admin.js'),
      app: await load('app.module.js'),
      config: await load('config.js'),
      cp: await load('control-plane.js'),
      database: await load('db/database.js'),
      migrationRepository: await load('db/migration.repository.js'),
      migrations: await load('db/migrations.js'),
      runRepository: await load('runs/run.repository.js'),
      workflowRepository: await load('workflows/workflow.repository.js'),
      dataPlaneService: await load('tenancy/data-plane.service.js'),
      accessService: await load('tenancy/access.service.js'),
      leaseService: await load('dispatch/lease.service.js'),
      runService: await load('runs/run.service.js'),
      sweeperService: await load('dispatch/sweeper.service.js'),
    };
  })();
  return distPromise;
}

function env(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CAIRN_CP_DATABASE_URL: databaseUrl,
    CAIRN_CP_HOST: '127.0.0.1',
    CAIRN_CP_HTTP_PORT: '0',
    CAIRN_CP_GRPC_PORT: '0',
    CAIRN_BOOTSTRAP_ADMIN_KEY: 'test-bootstrap-admin-key',
    CAIRN_LOG_LEVEL: 'silent',
    // Workers in these tests announce versions nobody registered: development mode registers them.
    CAIRN_DEV_MODE: 'true',
    ...extra,
  };
}

/** Polls until `check` holds (a wait, not a timing assertion). */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------

for (const kind of testPostgresKinds()) {
  describe(`control plane on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let d: Dist;
    const databases: string[] = [];
    const newDatabase = async (): Promise<string> => {
      const name = uniqueDatabaseName('cp');
      databases.push(name);
      return server.createDatabase(name);
    };

    before(async () => {
      d = await dist();
      server = await testPostgres(kind);
    });

    after(async () => {
      if (server.kind === 'system') {
        for (const name of databases) await server.admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      }
      await server.stop();
    });

    describe('database and services', () => {
      let url: string;
      let ctx: INestApplicationContext;
      let sql: pg.Pool;
      let runs: RunRepositoryModule.RunRepository;
      let leases: LeaseServiceModule.LeaseService;
      let runService: RunServiceModule.RunService;
      let sweeper: SweeperServiceModule.SweeperService;
      let dataPlaneId: string;
      let projectId: string;
      let planes: DataPlaneServiceModule.DataPlaneService;
      let workflows: WorkflowRepositoryModule.WorkflowRepository;
      const workflow = { name: 'wf', version: '1.0.0', taskQueue: 'q' };
      /** Each test works in its own data plane, so runs queued by another test are not claimed. */
      const freshDataPlane = async (): Promise<void> => {
        dataPlaneId = (await planes.create(projectId, { name: 'services' })).id;
        await workflows.upsertAnnounced(dataPlaneId, [workflow]);
      };
      const session = (): { sessionId: string; workerId: string } => ({ sessionId: randomUUID(), workerId: randomUUID() });
      const startRun = async (extra: Partial<RunServiceModule.StartRunInput> = {}): Promise<string> => {
        const { run } = await runService.start(dataPlaneId, {
          runId: randomUUID(),
          workflowName: workflow.name,
          workflowVersion: null,
          idempotencyDigest: null,
          inputSize: 10,
          ...extra,
        });
        return run.id;
      };
      const claimOne = async (
        runId: string,
        s = session(),
        leaseTtlMs = 60_000,
      ): Promise<RunRepositoryModule.ClaimRequest & { epoch: number }> => {
        const request = { dataPlaneId, ...s, workflows: [workflow], limit: 1, leaseTtlMs };
        const [claimed] = await runs.claim(request);
        assert.equal(claimed?.id, runId, 'the claim takes the run just queued');
        return { ...request, epoch: claimed.epoch };
      };
      const row = async (runId: string): Promise<Record<string, unknown>> => {
        const result = await sql.query('SELECT * FROM runs WHERE id = $1', [runId]);
        return result.rows[0] as Record<string, unknown>;
      };

      before(async () => {
        url = await newDatabase();
        sql = new pg.Pool({ connectionString: url, max: 2 });
        const config = d.config.loadControlPlaneConfig(
          env(url, {
            CAIRN_LEASE_TTL_MS: '300',
            CAIRN_HEARTBEAT_INTERVAL_MS: '100',
            CAIRN_SWEEP_INTERVAL_MS: '50',
            CAIRN_STARTUP_GRACE_MS: '300',
          }),
        );
        // NestJS types these options as a class and documents passing a literal.
        // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
        ctx = await NestFactory.createApplicationContext(d.app.AppModule.forRoot(config, silent), { logger: false });
        runs = ctx.get(d.runRepository.RunRepository);
        leases = ctx.get(d.leaseService.LeaseService);
        runService = ctx.get(d.runService.RunService);
        sweeper = ctx.get(d.sweeperService.SweeperService);
        planes = ctx.get(d.dataPlaneService.DataPlaneService);
        workflows = ctx.get(d.workflowRepository.WorkflowRepository);
        await ctx.get(d.migrationRepository.MigrationRepository).apply(d.migrations.migrations);
        projectId = (await ctx.get(d.accessService.AccessService).ensureProject('test', 'services')).id;
      });

      beforeEach(freshDataPlane);

      after(async () => {
        await ctx.close();
        await ctx.get(d.database.Database).close();
        await sql.end();
      });

      test('migrations apply twice, and concurrently from two pools', async () => {
        const fresh = await newDatabase();
        const pools = [0, 1].map(() => new d.database.Database(fresh, 2, silent));
        try {
          const outcomes = await Promise.all(
            pools.map((db) => new d.migrationRepository.MigrationRepository(db).apply(d.migrations.migrations)),
          );
          const all = d.migrations.migrations.map((m) => m.version);
          assert.deepEqual(
            outcomes.map((o) => o.applied).sort((a, b) => b.length - a.length),
            [all, []],
          );
          const again = await new d.migrationRepository.MigrationRepository(pools[0]!).apply(d.migrations.migrations);
          assert.deepEqual(again, { applied: [], unknown: [] });
          assert.deepEqual(await new d.migrationRepository.MigrationRepository(pools[1]!).appliedVersions(), all);
        } finally {
          await Promise.all(pools.map((p) => p.close()));
        }
      });

      test('concurrent claims from many sessions never hand a run to two sessions; epochs grow', async () => {
        const ids = new Set<string>();
        for (let i = 0; i < 120; i++) ids.add(await startRun());
        const claimedBy = new Map<string, string>();
        const claimAll = (): Promise<unknown> =>
          Promise.all(
            Array.from({ length: 8 }, async () => {
              const s = session();
              for (;;) {
                const got = await runs.claim({ dataPlaneId, ...s, workflows: [workflow], limit: 4, leaseTtlMs: 60_000 });
                if (got.length === 0) return;
                for (const run of got) {
                  assert.ok(!claimedBy.has(run.id), `run ${run.id} was handed to two sessions`);
                  claimedBy.set(run.id, s.sessionId);
                }
              }
            }),
          );
        await claimAll();
        assert.equal([...ids].filter((id) => claimedBy.has(id)).length, ids.size, 'every run was claimed');
        assert.ok(new Set(claimedBy.values()).size > 1, 'the work was spread over several sessions');
        for (const id of ids) {
          const result = await leases.applyOutcome(dataPlaneId, { kind: 'released', lease: { runId: id, epoch: 1 } });
          assert.equal(result.kind, 'applied');
        }
        claimedBy.clear();
        await claimAll();
        const epochs = await sql.query<{ epoch: number; n: number }>(
          'SELECT epoch, count(*)::int AS n FROM runs WHERE id = ANY($1::uuid[]) GROUP BY epoch',
          [[...ids]],
        );
        assert.deepEqual(epochs.rows, [{ epoch: 2, n: ids.size }]);
        // The lease history: per run, epochs 1 and 2, the first ended before the second began.
        const overlaps = await sql.query(
          `SELECT a.run_id FROM run_leases a JOIN run_leases b ON a.run_id = b.run_id AND a.epoch < b.epoch
           WHERE a.run_id = ANY($1::uuid[]) AND (a.ended_at IS NULL OR a.ended_at > b.acquired_at)`,
          [[...ids]],
        );
        assert.equal(overlaps.rowCount, 0, 'no run was held by two leases at once');
      });

      describe('child workflows', () => {
        const child = (parentRunId: string, parentEpoch: number, childRunId = randomUUID()) => ({
          parentRunId,
          parentEpoch,
          childRunId,
          workflowName: workflow.name,
          workflowVersion: null,
          inputSize: 5,
        });
        const suspendOnChild = (runId: string, epoch: number, childRunId: string) =>
          leases.applyOutcome(dataPlaneId, {
            kind: 'suspended',
            lease: { runId, epoch },
            suspension: { wakeAt: null, waitingSignal: null, signalsConsumed: 0, suspendReason: 'child', waitingChild: childRunId },
          });

        test('StartChild creates the child queued, idempotently; unknown workflows and stale epochs are refused', async () => {
          const parent = await startRun();
          const { epoch } = await claimOne(parent);
          const input = child(parent, epoch);
          assert.equal(await runService.startChild(dataPlaneId, input), 'started');
          assert.equal(await runService.startChild(dataPlaneId, input), 'started', 'a resend is acknowledged again');
          const created = await runService.get(dataPlaneId, input.childRunId);
          assert.equal(created.status, 'queued');
          assert.equal(created.parentRunId, parent);
          assert.equal(created.workflowVersion, workflow.version);
          assert.equal(await runService.startChild(dataPlaneId, { ...child(parent, epoch), workflowName: 'nope' }), 'workflow_not_found');
          assert.equal(
            await runService.startChild(dataPlaneId, child(parent, epoch + 1)),
            'not_held',
            'a stale or future epoch is refused',
          );
          assert.equal(await runService.startChild(dataPlaneId, child(parent, epoch - 1)), 'not_held');
        });

        test('a child ending wakes the parent suspended on it, in the same transaction', async () => {
          const parent = await startRun();
          const { epoch } = await claimOne(parent);
          const input = child(parent, epoch);
          await runService.startChild(dataPlaneId, input);
          assert.equal((await suspendOnChild(parent, epoch, input.childRunId)).kind, 'applied');
          let row0 = await runService.get(dataPlaneId, parent);
          assert.equal(row0.status, 'suspended');
          assert.equal(row0.waitingChild, input.childRunId);
          const childClaim = await claimOne(input.childRunId);
          const done = await leases.applyOutcome(dataPlaneId, {
            kind: 'completed',
            lease: { runId: input.childRunId, epoch: childClaim.epoch },
            outputSize: 3,
          });
          assert.equal(done.kind, 'applied');
          row0 = await runService.get(dataPlaneId, parent);
          assert.equal(row0.status, 'queued');
          assert.equal(row0.wakeReason, 'child');
          assert.equal(row0.waitingChild, null);
        });

        test('a child that ended before the parent suspends on it requeues the parent at once', async () => {
          const parent = await startRun();
          const { epoch } = await claimOne(parent);
          const input = child(parent, epoch);
          await runService.startChild(dataPlaneId, input);
          const childClaim = await claimOne(input.childRunId);
          await leases.applyOutcome(dataPlaneId, {
            kind: 'failed',
            lease: { runId: input.childRunId, epoch: childClaim.epoch },
            errorCode: 1,
            errorRef: null,
          });
          assert.equal((await suspendOnChild(parent, epoch, input.childRunId)).kind, 'applied');
          const after = await runService.get(dataPlaneId, parent);
          assert.equal(after.status, 'queued');
          assert.equal(after.wakeReason, 'child');
        });

        // The interleaving the chaos suite found: the parent's suspension checked that its child had
        // not ended and has not committed yet when the child's end commits. The test holds the
        // parent's lease history row, so the suspension stops just before it commits (its check done,
        // the parent's row written and locked); the child then ends, and the suspension goes on.
        for (const end of ['completes', 'is cancelled before it ran', 'times out'] as const) {
          test(`a child that ${end} while its parent is suspending on it wakes the parent`, async () => {
            const parent = await startRun();
            const { epoch } = await claimOne(parent);
            const input = child(parent, epoch);
            await runService.startChild(dataPlaneId, input);
            const childEpoch = end === 'completes' ? (await claimOne(input.childRunId)).epoch : 0;
            const lockWaiters = async (): Promise<number> => {
              const result = await sql.query<{ n: number }>(
                `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
              );
              return result.rows[0]!.n;
            };
            const holder = new pg.Client({ connectionString: url });
            await holder.connect();
            try {
              await holder.query('BEGIN');
              await holder.query('SELECT 1 FROM run_leases WHERE run_id = $1 FOR UPDATE', [parent]);
              const suspending = suspendOnChild(parent, epoch, input.childRunId);
              await until('the suspension to wait for the lease history row', async () => (await lockWaiters()) >= 1);
              let ended = false;
              const ending = (async (): Promise<void> => {
                if (end === 'completes') {
                  const done = await leases.applyOutcome(dataPlaneId, {
                    kind: 'completed',
                    lease: { runId: input.childRunId, epoch: childEpoch },
                    outputSize: 3,
                  });
                  assert.equal(done.kind, 'applied');
                } else if (end === 'is cancelled before it ran') {
                  await runService.cancel(dataPlaneId, input.childRunId);
                } else {
                  await sql.query("UPDATE runs SET deadline_at = now() - interval '1 second' WHERE id = $1", [input.childRunId]);
                  await sweeper.sweep();
                }
              })().finally(() => (ended = true));
              // The child's end either commits now or waits for the parent's row lock.
              while (!ended && (await lockWaiters()) < 2) await sleep(10);
              await holder.query('COMMIT');
              assert.equal((await suspending).kind, 'applied');
              await ending;
            } finally {
              await holder.end();
            }
            const childRun = await runService.get(dataPlaneId, input.childRunId);
            assert.ok(['completed', 'cancelled', 'timed_out'].includes(childRun.status), `the child ended (${childRun.status})`);
            await until(
              'the parent to be queued',
              async () => (await runService.get(dataPlaneId, parent)).status === 'queued',
              3_000,
            ).catch(async (error: unknown) => {
              const p = await runService.get(dataPlaneId, parent);
              assert.fail(`the parent is ${p.status} (waiting for child ${p.waitingChild}), not queued: ${String(error)}`);
            });
            assert.equal((await runService.get(dataPlaneId, parent)).wakeReason, 'child');
          });
        }

        test('parents suspending on children that complete at the same moment are all woken', async () => {
          const n = 100;
          const request = { dataPlaneId, ...session(), workflows: [workflow], limit: n, leaseTtlMs: 60_000 };
          for (let i = 0; i < n; i++) await startRun();
          const parents = await runs.claim(request);
          assert.equal(parents.length, n);
          const children = parents.map((p) => child(p.id, p.epoch));
          for (const c of children) assert.equal(await runService.startChild(dataPlaneId, c), 'started');
          const claimedChildren = new Map((await runs.claim(request)).map((c) => [c.id, c.epoch]));
          assert.equal(claimedChildren.size, n);
          await Promise.all(
            parents.map(async (p, i) => {
              const c = children[i]!;
              const [suspended, completed] = await Promise.all([
                suspendOnChild(p.id, p.epoch, c.childRunId),
                leases.applyOutcome(dataPlaneId, {
                  kind: 'completed',
                  lease: { runId: c.childRunId, epoch: claimedChildren.get(c.childRunId)! },
                  outputSize: 1,
                }),
              ]);
              assert.equal(suspended.kind, 'applied');
              assert.equal(completed.kind, 'applied');
            }),
          );
          const left = await sql.query<{ id: string }>("SELECT id FROM runs WHERE id = ANY($1::uuid[]) AND status <> 'queued'", [
            parents.map((p) => p.id),
          ]);
          assert.deepEqual(
            left.rows.map((r) => r.id),
            [],
            'every parent is queued again',
          );
        });

        test('a migration queues the parents an earlier build left suspended on a child that had ended', async () => {
          const parents: Array<{ parent: string; epoch: number }> = [];
          for (let i = 0; i < 2; i++) {
            const parent = await startRun();
            parents.push({ parent, epoch: (await claimOne(parent)).epoch });
          }
          const [stuck, waiting] = await Promise.all(
            parents.map(async ({ parent, epoch }) => {
              const input = child(parent, epoch);
              await runService.startChild(dataPlaneId, input);
              assert.equal((await suspendOnChild(parent, epoch, input.childRunId)).kind, 'applied');
              return { parent, childRunId: input.childRunId };
            }),
          );
          assert.ok(stuck && waiting);
          // The child's end as the race left it: committed, and the parent not queued.
          await sql.query("UPDATE runs SET status = 'completed', ended_at = now() WHERE id = $1", [stuck.childRunId]);
          const repair = d.migrations.migrations.find((m) => m.name === 'parents left suspended on a child that had ended go on');
          assert.ok(repair, 'the repair migration exists');
          await sql.query('DELETE FROM schema_migrations WHERE version = $1', [repair.version]);
          const outcome = await ctx.get(d.migrationRepository.MigrationRepository).apply(d.migrations.migrations);
          assert.deepEqual(outcome.applied, [repair.version]);
          const woken = await runService.get(dataPlaneId, stuck.parent);
          assert.equal(woken.status, 'queued');
          assert.equal(woken.wakeReason, 'child');
          assert.equal(woken.waitingChild, null);
          const still = await runService.get(dataPlaneId, waiting.parent);
          assert.equal(still.status, 'suspended', 'a parent whose child has not ended stays suspended');
          assert.equal(still.waitingChild, waiting.childRunId);
        });

        test('cancelling a parent cancels its children that have not ended, recursively', async () => {
          const parent = await startRun();
          const { epoch } = await claimOne(parent);
          const a = child(parent, epoch);
          const b = child(parent, epoch);
          await runService.startChild(dataPlaneId, a);
          await runService.startChild(dataPlaneId, b);
          // Child a runs and starts a grandchild; child b stays queued.
          const aClaim = await claimOne(a.childRunId);
          const grandchild = child(a.childRunId, aClaim.epoch);
          await runService.startChild(dataPlaneId, grandchild);
          await suspendOnChild(parent, epoch, a.childRunId);
          await runService.cancel(dataPlaneId, parent);
          assert.equal((await runService.get(dataPlaneId, b.childRunId)).status, 'cancelled', 'the queued child is cancelled at once');
          assert.equal((await runService.get(dataPlaneId, grandchild.childRunId)).status, 'cancelled', 'the grandchild too');
          const running = await runService.get(dataPlaneId, a.childRunId);
          assert.equal(running.status, 'running');
          assert.equal(running.cancelRequested, true, 'the running child gets a cancellation request');
          const p = await runService.get(dataPlaneId, parent);
          assert.equal(p.cancelRequested, true);
          assert.equal(p.status, 'queued', 'the suspended parent is dispatched to cancel');
        });
      });

      test('the lease history orders a release and the next grant as they happened, not as their transactions began', async () => {
        const runId = await startRun();
        await claimOne(runId);
        // A claim whose transaction began before the release committed (a dispatch pass under load).
        const early = new pg.Client({ connectionString: url });
        await early.connect();
        try {
          await early.query('BEGIN');
          await early.query('SELECT 1');
          await sleep(50);
          const released = await leases.applyOutcome(dataPlaneId, { kind: 'released', lease: { runId, epoch: 1 } });
          assert.equal(released.kind, 'applied');
          await sleep(50);
          const next = session();
          await early.query('INSERT INTO run_leases (run_id, epoch, session_id, worker_id) VALUES ($1, 2, $2, $3)', [
            runId,
            next.sessionId,
            next.workerId,
          ]);
          await early.query('COMMIT');
        } finally {
          await early.end();
        }
        const history = await sql.query<{ epoch: number; acquired_at: Date; ended_at: Date | null }>(
          'SELECT epoch, acquired_at, ended_at FROM run_leases WHERE run_id = $1 ORDER BY epoch',
          [runId],
        );
        const [first, second] = history.rows;
        assert.ok(first?.ended_at && second, JSON.stringify(history.rows));
        assert.ok(
          first.ended_at < second.acquired_at,
          `lease 1 ended ${first.ended_at.toISOString()}, lease 2 began ${second.acquired_at.toISOString()}`,
        );
      });

      test('an expired lease is requeued by the sweep and the next claim has epoch + 1', async () => {
        const runId = await startRun();
        const first = await claimOne(runId, session(), 100);
        assert.equal(first.epoch, 1);
        await until('the lease to expire and the start-up grace to pass', async () => {
          const r = await sql.query<{ expired: boolean }>('SELECT lease_expires_at < now() AS expired FROM runs WHERE id = $1', [runId]);
          return r.rows[0]!.expired && !sweeper.inGracePeriod;
        });
        await sweeper.sweep();
        const swept = await row(runId);
        assert.equal(swept['status'], 'queued');
        assert.equal(swept['wake_reason'], 'recovery');
        const history = await sql.query('SELECT end_reason FROM run_leases WHERE run_id = $1 AND epoch = 1', [runId]);
        assert.equal((history.rows[0] as { end_reason: string }).end_reason, 'expired');
        const [again] = await runs.claim({ dataPlaneId, ...session(), workflows: [workflow], limit: 1, leaseTtlMs: 60_000 });
        assert.equal(again?.id, runId);
        assert.equal(again.epoch, 2);
        assert.equal(again.wakeReason, 'recovery');
        // The old holder can no longer complete the run.
        const stale = await leases.applyOutcome(dataPlaneId, { kind: 'completed', lease: { runId, epoch: 1 }, outputSize: 1 });
        assert.equal(stale.kind, 'not_held');
      });

      test('a suspended run with a due timer is queued by the sweep (TIMER, or RETRY after a backoff)', async () => {
        for (const [reason, expected] of [
          ['sleep', 'timer'],
          ['retry_backoff', 'retry'],
        ] as const) {
          const runId = await startRun();
          const { epoch } = await claimOne(runId);
          const wakeAt = new Date(Date.now() + 200);
          const suspended = await leases.applyOutcome(dataPlaneId, {
            kind: 'suspended',
            lease: { runId, epoch },
            suspension: { wakeAt, waitingSignal: null, signalsConsumed: 0, suspendReason: reason },
          });
          assert.equal(suspended.kind, 'applied');
          assert.equal((await row(runId))['status'], 'suspended');
          await until('the timer to be due', async () => {
            const r = await sql.query<{ due: boolean }>('SELECT wake_at <= now() AS due FROM runs WHERE id = $1', [runId]);
            return r.rows[0]!.due;
          });
          await sweeper.sweep();
          const woken = await row(runId);
          assert.equal(woken['status'], 'queued');
          assert.equal(woken['wake_reason'], expected);
          const next = await claimOne(runId);
          assert.equal(next.epoch, epoch + 1);
        }
      });

      test('a notice that carries only the digest of a signal name wakes the run that waits for that digest', async () => {
        // The gateway kept an undeclared name in the data plane; the worker reports the same per-run digest.
        const digest = 'ab'.repeat(32);
        const runId = await startRun();
        const { epoch } = await claimOne(runId);
        const during = await runService.signal(dataPlaneId, runId, { name: null, digest }, randomUUID());
        assert.equal(during.status, 'running');
        const raced = await leases.applyOutcome(dataPlaneId, {
          kind: 'suspended',
          lease: { runId, epoch },
          suspension: { wakeAt: null, waitingSignal: 'go', waitingSignalDigest: digest, signalsConsumed: 0, suspendReason: 'signal' },
        });
        assert.equal(raced.kind === 'applied' && raced.run.status, 'queued', 'the notice sent before the suspend was counted');

        const second = await claimOne(runId);
        await leases.applyOutcome(dataPlaneId, {
          kind: 'suspended',
          lease: { runId, epoch: second.epoch },
          suspension: { wakeAt: null, waitingSignal: 'go', waitingSignalDigest: digest, signalsConsumed: 1, suspendReason: 'signal' },
        });
        // Another digest (another name) does not wake it; its own digest does.
        assert.equal(
          (await runService.signal(dataPlaneId, runId, { name: null, digest: 'cd'.repeat(32) }, randomUUID())).status,
          'suspended',
        );
        assert.equal((await runService.signal(dataPlaneId, runId, { name: null, digest }, randomUUID())).status, 'queued');
        const stored = await sql.query<{ signal_name: string | null }>('SELECT signal_name FROM signal_notices WHERE run_id = $1', [runId]);
        assert.deepEqual(
          stored.rows.map((r) => r.signal_name),
          [null, null, null],
          'no notice holds a name',
        );
      });

      test('a signal that races the suspend is never lost', async () => {
        // The notice is recorded while the run still runs; the suspend that follows requeues it at once.
        const runId = await startRun();
        const { epoch } = await claimOne(runId);
        const during = await runService.signal(dataPlaneId, runId, { name: 'approve', digest: null }, randomUUID());
        assert.equal(during.status, 'running');
        const result = await leases.applyOutcome(dataPlaneId, {
          kind: 'suspended',
          lease: { runId, epoch },
          suspension: { wakeAt: null, waitingSignal: 'approve', signalsConsumed: 0, suspendReason: 'signal' },
        });
        assert.equal(result.kind, 'applied');
        assert.equal(result.kind === 'applied' && result.run.status, 'queued');
        assert.equal((await row(runId))['wake_reason'], 'signal');

        // Having consumed that signal, the run waits for the next one; a repeated signal ID counts once.
        const second = await claimOne(runId);
        assert.equal(second.epoch, epoch + 1);
        await leases.applyOutcome(dataPlaneId, {
          kind: 'suspended',
          lease: { runId, epoch: second.epoch },
          suspension: { wakeAt: null, waitingSignal: 'approve', signalsConsumed: 1, suspendReason: 'signal' },
        });
        assert.equal((await row(runId))['status'], 'suspended');
        const signalId = randomUUID();
        assert.equal((await runService.signal(dataPlaneId, runId, { name: 'approve', digest: null }, signalId)).status, 'queued');
        assert.equal((await runService.signal(dataPlaneId, runId, { name: 'approve', digest: null }, signalId)).status, 'queued');
        const notices = await sql.query('SELECT 1 FROM signal_notices WHERE run_id = $1', [runId]);
        assert.equal(notices.rowCount, 2);
        // Once consumed, the same ID again (a gateway repeating a signal sent with an idempotency
        // key) does not wake the run that waits for the next signal of that name.
        const third = await claimOne(runId);
        await leases.applyOutcome(dataPlaneId, {
          kind: 'suspended',
          lease: { runId, epoch: third.epoch },
          suspension: { wakeAt: null, waitingSignal: 'approve', signalsConsumed: 2, suspendReason: 'signal' },
        });
        assert.equal((await runService.signal(dataPlaneId, runId, { name: 'approve', digest: null }, signalId)).status, 'suspended');
        assert.equal((await row(runId))['status'], 'suspended');

        // Signal and suspend at the same moment, many times: the run always ends up queued.
        for (let i = 0; i < 15; i++) {
          await freshDataPlane();
          const raced = await startRun();
          const claim = await claimOne(raced);
          await Promise.all([
            runService.signal(dataPlaneId, raced, { name: 'go', digest: null }, randomUUID()),
            leases.applyOutcome(dataPlaneId, {
              kind: 'suspended',
              lease: { runId: raced, epoch: claim.epoch },
              suspension: { wakeAt: null, waitingSignal: 'go', signalsConsumed: 0, suspendReason: 'signal' },
            }),
          ]);
          const after = await row(raced);
          assert.deepEqual([after['status'], after['wake_reason']], ['queued', 'signal'], `race ${i}`);
        }
      });

      test('a start with the same idempotency digest returns the first run', async () => {
        const digest = 'a'.repeat(64);
        const first = await runService.start(dataPlaneId, {
          runId: randomUUID(),
          workflowName: workflow.name,
          workflowVersion: null,
          idempotencyDigest: digest,
          inputSize: 3,
        });
        assert.equal(first.created, true);
        assert.equal(first.run.workflowVersion, workflow.version);
        const second = await runService.start(dataPlaneId, {
          runId: randomUUID(),
          workflowName: workflow.name,
          workflowVersion: null,
          idempotencyDigest: digest,
          inputSize: 3,
        });
        assert.deepEqual([second.created, second.run.id], [false, first.run.id]);
        // A retried start with the same run ID is idempotent too.
        const retried = await runService.start(dataPlaneId, {
          runId: first.run.id,
          workflowName: workflow.name,
          workflowVersion: null,
          idempotencyDigest: null,
          inputSize: 3,
        });
        assert.deepEqual([retried.created, retried.run.id], [false, first.run.id]);
        await assert.rejects(
          runService.start(dataPlaneId, {
            runId: randomUUID(),
            workflowName: 'nope',
            workflowVersion: null,
            idempotencyDigest: null,
            inputSize: 0,
          }),
          (error: CairnError) => error.code === ErrorCodes.WORKFLOW_NOT_FOUND && /workflow nope is not registered/.test(error.message),
        );
      });
    });

    describe('gRPC and REST', () => {
      let cp: ControlPlaneModule.ControlPlane;
      let url: string;
      let sql: pg.Pool;
      let token: string;
      let dataPlaneId: string;
      let worker: ServiceClient;
      let gateway: ServiceClient;
      const streams: WorkerStream[] = [];
      const open = (t: string | null = token): WorkerStream => {
        const s = new WorkerStream(worker, t);
        streams.push(s);
        return s;
      };
      const startRun = async (fields: { runId?: string; workflowName?: string; workflowVersion?: string } = {}): Promise<RunInfo> => {
        const response = await gatewayCall<{ run: RunInfo; created: boolean }>(
          gateway,
          'startRun',
          { runId: randomUUID(), workflowName: 'greet', workflowVersion: '', idempotencyDigest: '', inputSize: 5n, ...fields },
          token,
        );
        return response.run;
      };
      /** A worker's RunSuspended for the run at `epoch`: no signal, child or wake time unless `fields` gives one. */
      const suspension = (
        runId: string,
        epoch: number,
        fields: { reason: SuspendReason; wakeAt?: bigint; signalName?: string; signalsConsumed?: number; consumedSignalIds?: string[] },
      ): ConnectRequest['message'] => ({
        case: 'suspended',
        value: {
          $typeName: 'cairn.worker.v1.RunSuspended',
          signalDigest: '',
          childRunId: '',
          runId,
          epoch,
          wakeAt: 0n,
          signalName: '',
          signalsConsumed: 0,
          consumedSignalIds: [],
          ...fields,
        },
      });
      /** A worker's RunCancelled for the run at `epoch`. */
      const cancellation = (runId: string, epoch: number): ConnectRequest['message'] => ({
        case: 'cancelled',
        value: { $typeName: 'cairn.worker.v1.RunCancelled', runId, epoch },
      });
      const api = async (
        path: string,
        apiToken: string | null = 'test-bootstrap-admin-key',
      ): Promise<{ status: number; body: Record<string, unknown> }> => {
        const response = await fetch(`http://127.0.0.1:${cp.httpPort}${path}`, {
          headers: apiToken === null ? {} : { authorization: `Bearer ${apiToken}` },
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };

      before(async () => {
        url = await newDatabase();
        sql = new pg.Pool({ connectionString: url, max: 2 });
        const config = d.config.loadControlPlaneConfig(env(url));
        const created = await d.admin.createDataPlane(config, silent, { name: 'grpc-test' });
        token = created.token;
        dataPlaneId = created.id;
        cp = await d.cp.startControlPlane(config, { logger: silent });
        worker = new WorkerClient(`127.0.0.1:${cp.grpcPort}`, grpc.credentials.createInsecure());
        gateway = new GatewayClient(`127.0.0.1:${cp.grpcPort}`, grpc.credentials.createInsecure());
        // A worker with no slots announces the workflow (self-registration), so runs can start.
        await open().hello({ dataPlaneId, slots: 0 });
      });

      after(async () => {
        for (const s of streams) s.close();
        worker.close();
        gateway.close();
        await cp.close();
        await sql.end();
      });

      test('the first message must be a Hello', async () => {
        const s = open();
        const sequence = s.send({ case: 'heartbeat', value: { $typeName: 'cairn.worker.v1.Heartbeat', sentAt: 1n } });
        const rejection = await s.next('rejection');
        assert.deepEqual([rejection.reason, rejection.sequence], [RejectionReason.HELLO_REQUIRED, sequence]);
        const status = await s.ended();
        assert.equal(status.code, grpc.status.FAILED_PRECONDITION);
        assert.match(status.details, /send Hello first/);
      });

      test('an unknown token is UNAUTHENTICATED on both services', async () => {
        const s = open('cdp_not-a-real-token');
        s.send({ case: 'heartbeat', value: { $typeName: 'cairn.worker.v1.Heartbeat', sentAt: 1n } });
        const status = await s.ended();
        assert.equal(status.code, grpc.status.UNAUTHENTICATED);
        assert.match(status.details, /unknown or revoked data-plane credential/);
        assert.equal((await open(null).ended()).code, grpc.status.UNAUTHENTICATED);
        await rejectsWith(gatewayCall(gateway, 'describeRun', { runId: randomUUID() }, 'wrong'), grpc.status.UNAUTHENTICATED);
      });

      test('free text in a NAME field is rejected as INVALID_FIELD', async () => {
        const s = open();
        s.send({
          case: 'hello',
          value: {
            $typeName: 'cairn.worker.v1.Hello',
            dataPlaneId,
            workerId: randomUUID(),
            workflows: [
              { $typeName: 'cairn.worker.v1.WorkflowRef', name: 'send email to jane@example.com', version: 'v1', taskQueue: 'q' },
            ],
            slots: 1,
            freeSlots: 1,
            heldLeases: [],
            sdkVersion: '0.1.0',
            protocolVersion: 1,
          },
        });
        const rejection = await s.next('rejection');
        assert.deepEqual([rejection.reason, rejection.field], [RejectionReason.INVALID_FIELD, 'name']);
        assert.equal((await s.ended()).code, grpc.status.INVALID_ARGUMENT);
        await rejectsWith(
          gatewayCall(gateway, 'signalRun', { runId: randomUUID(), signalName: 'not a name!', signalId: randomUUID() }, token),
          grpc.status.INVALID_ARGUMENT,
          /signal_name/,
        );
      });

      test('a Hello for another data plane or protocol is refused', async () => {
        const other = open();
        other.sendHello({ dataPlaneId: randomUUID(), slots: 1 });
        assert.equal((await other.next('rejection')).reason, RejectionReason.DATA_PLANE_MISMATCH);
        assert.equal((await other.ended()).code, grpc.status.PERMISSION_DENIED);
        const old = open();
        old.send({
          case: 'hello',
          value: {
            $typeName: 'cairn.worker.v1.Hello',
            dataPlaneId,
            workerId: randomUUID(),
            workflows: [],
            slots: 1,
            freeSlots: 1,
            heldLeases: [],
            sdkVersion: '0.1.0',
            protocolVersion: 2,
          },
        });
        assert.equal((await old.next('rejection')).reason, RejectionReason.UNSUPPORTED_PROTOCOL);
        assert.equal((await old.ended()).code, grpc.status.FAILED_PRECONDITION);
      });

      test('a malformed frame ends only its own stream', async () => {
        const raw = Object.fromEntries(
          Object.entries(grpcServiceDefinition(WorkerService)).map(([name, method]) => [
            name,
            { ...method, requestSerialize: (b: Buffer) => b },
          ]),
        );
        const RawClient = grpc.makeGenericClientConstructor(raw, 'WorkerService');
        const client = new RawClient(`127.0.0.1:${cp.grpcPort}`, grpc.credentials.createInsecure());
        try {
          const connect = client['connect'] as (metadata: grpc.Metadata) => grpc.ClientDuplexStream<Buffer, ConnectResponse>;
          const call = connect.call(client, bearer(token));
          call.on('error', () => undefined);
          const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
          // A Hello field that says 5 bytes follow, then ends.
          call.write(Buffer.from([0x12, 0x05, 0x01]));
          const ended = await status;
          assert.equal(ended.code, grpc.status.INVALID_ARGUMENT);
          assert.match(ended.details, /malformed frame/);
        } finally {
          client.close();
        }
        const healthy = open();
        assert.ok((await healthy.hello({ dataPlaneId, slots: 0 })).sessionId);
      });

      test("the Welcome and every heartbeat's reply carry the control plane's time", async () => {
        const w = open();
        const before = Date.now();
        const welcome = await w.hello({ dataPlaneId, slots: 0 });
        assert.ok(welcome.serverTimeMs >= BigInt(before) && welcome.serverTimeMs <= BigInt(Date.now()), 'Welcome.server_time_ms');
        // The worker's own clock, a minute behind, changes nothing in the answer.
        for (let i = 0; i < 2; i++) {
          const sentAt = Date.now();
          const sequence = w.send({
            case: 'heartbeat',
            value: { $typeName: 'cairn.worker.v1.Heartbeat', sentAt: BigInt(sentAt - 60_000) },
          });
          const reply = await w.next('heartbeatReply', (r) => r.sequence === sequence);
          assert.ok(reply.serverTimeMs >= BigInt(sentAt) && reply.serverTimeMs <= BigInt(Date.now()), 'HeartbeatReply.server_time_ms');
        }
      });

      test('a started run is pushed to a worker; outcomes are fenced by epoch and idempotent', async () => {
        await rejectsWith(startRun({ workflowName: 'unknown-workflow' }), grpc.status.NOT_FOUND, /is not registered/);
        const started = await startRun();
        assert.deepEqual([started.status, started.workflowVersion, started.epoch], [RunStatus.QUEUED, 'v1', 0]);

        const w = open();
        const welcome = await w.hello({ dataPlaneId, slots: 2 });
        assert.equal(welcome.leaseTtlMs, 15_000);
        const task = await w.next('runTask', (t) => t.runId === started.runId);
        assert.deepEqual(
          [task.epoch, task.reason, task.workflowName, task.workflowVersion, task.taskQueue],
          [1, WakeReason.START, 'greet', 'v1', 'default'],
        );
        assert.ok(task.leaseExpiresAt > BigInt(Date.now()));

        const stale = w.send({
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: started.runId, epoch: 0, outputSize: 1n },
        });
        const rejection = await w.next('rejection', (r) => r.sequence === stale);
        assert.deepEqual([rejection.reason, rejection.runId], [RejectionReason.LEASE_NOT_HELD, started.runId]);

        const step: StepInfo = {
          $typeName: 'cairn.run.v1.StepInfo',
          copied: false,
          position: 0,
          kind: StepKind.STEP,
          name: 'fetch',
          keyDigest: 'b'.repeat(64),
          attempt: 1,
          status: StepStatus.COMPLETED,
          errorCode: ErrorCode.UNSPECIFIED,
          retryable: false,
          errorRef: '',
          startedAt: BigInt(Date.now() - 30),
          endedAt: BigInt(Date.now()),
          dueAt: 0n,
          outputSize: 12n,
          inputTokens: 0n,
          outputTokens: 0n,
          provider: '',
          model: '',
        };
        const reports = w.send({
          case: 'stepReports',
          value: {
            $typeName: 'cairn.worker.v1.StepReportBatch',
            journalHeads: [],
            reports: [{ $typeName: 'cairn.worker.v1.StepReport', runId: started.runId, epoch: 1, step }],
          },
        });
        await w.next('ack', (a) => a.sequence === reports);
        const unknown = w.send({
          case: 'stepReports',
          value: {
            $typeName: 'cairn.worker.v1.StepReportBatch',
            journalHeads: [],
            reports: [{ $typeName: 'cairn.worker.v1.StepReport', runId: randomUUID(), epoch: 1, step }],
          },
        });
        assert.equal((await w.next('rejection', (r) => r.sequence === unknown)).reason, RejectionReason.UNKNOWN_RUN);

        const completed = { $typeName: 'cairn.worker.v1.RunCompleted', runId: started.runId, epoch: 1, outputSize: 42n } as const;
        const done = w.send({ case: 'completed', value: completed });
        await w.next('ack', (a) => a.sequence === done);
        const resent = w.send({ case: 'completed', value: completed });
        await w.next('ack', (a) => a.sequence === resent);

        const waited = await gatewayCall<{ run: RunInfo }>(gateway, 'waitRun', { runId: started.runId, timeoutMs: 5_000 }, token);
        assert.deepEqual([waited.run.status, waited.run.outputSize, waited.run.dispatchCount], [RunStatus.COMPLETED, 64n, 1]);
        const described = await gatewayCall<{ run: RunInfo; steps: StepInfo[] }>(gateway, 'describeRun', { runId: started.runId }, token);
        assert.deepEqual(
          described.steps.map((s) => [s.position, s.attempt, s.name, s.status]),
          [[0, 1, 'fetch', StepStatus.COMPLETED]],
        );
        await rejectsWith(gatewayCall(gateway, 'describeRun', { runId: randomUUID() }, token), grpc.status.NOT_FOUND);
        await rejectsWith(
          gatewayCall(gateway, 'signalRun', { runId: started.runId, signalName: 'late', signalId: randomUUID() }, token),
          grpc.status.FAILED_PRECONDITION,
          /already ended/,
        );
        w.close();
      });

      test('a run started while a connected worker has a free slot goes to it from the insert, with the audit trail and lease history of a claim', async () => {
        const workflows = [{ name: 'direct', version: 'v1', taskQueue: 'default' }];
        const w = open();
        const workerId = randomUUID();
        await w.hello({ dataPlaneId, workerId, slots: 2, workflows });
        const started = await startRun({ workflowName: 'direct' });
        // Already leased in the StartRun answer: no claim came between the insert and the task.
        assert.deepEqual([started.status, started.epoch, started.dispatchCount], [RunStatus.RUNNING, 1, 1]);
        const task = await w.next('runTask', (t) => t.runId === started.runId);
        assert.deepEqual([task.epoch, task.reason, task.workflowName], [1, WakeReason.START, 'direct']);

        const audit = await sql.query<{ action: string; actor_type: string; metadata: Record<string, unknown> }>(
          `SELECT action, actor_type, metadata FROM audit_log WHERE target_id = $1 ORDER BY id`,
          [started.runId],
        );
        assert.deepEqual(
          audit.rows.map((r) => [
            r.action,
            r.actor_type,
            r.metadata['from'] ?? null,
            r.metadata['epoch'],
            r.metadata['wakeReason'] ?? null,
          ]),
          [
            ['run.queued', 'data_plane', null, 0, 'start'],
            ['run.running', 'data_plane', 'queued', 1, null],
          ],
        );
        assert.equal(audit.rows[1]!.metadata['workerId'], workerId);
        const leases = await sql.query<{ epoch: number; ended_at: Date | null }>(
          'SELECT epoch, ended_at FROM run_leases WHERE run_id = $1',
          [started.runId],
        );
        assert.deepEqual(
          leases.rows.map((l) => [l.epoch, l.ended_at]),
          [[1, null]],
        );

        // Both slots taken: the next start queues, and the worker gets it once a slot frees.
        const second = await startRun({ workflowName: 'direct' });
        assert.equal(second.status, RunStatus.RUNNING);
        await w.next('runTask', (t) => t.runId === second.runId);
        const third = await startRun({ workflowName: 'direct' });
        assert.deepEqual([third.status, third.epoch], [RunStatus.QUEUED, 0]);
        const done = w.send({
          case: 'completed',
          value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: started.runId, epoch: 1, outputSize: 1n },
        });
        await w.next('ack', (a) => a.sequence === done);
        const claimed = await w.next('runTask', (t) => t.runId === third.runId);
        assert.equal(claimed.epoch, 1);
        w.close();
      });

      test('model call attempts carry provider, model and token counts to the timeline, and nothing else', async () => {
        const started = await startRun();
        const w = open();
        await w.hello({ dataPlaneId, slots: 1 });
        const task = await w.next('runTask', (t) => t.runId === started.runId);
        const now = Date.now();
        const attempt = (n: number, status: StepStatus, extra: Partial<StepInfo>): StepInfo => ({
          $typeName: 'cairn.run.v1.StepInfo',
          copied: false,
          position: 0,
          kind: StepKind.MODEL,
          name: 'summarize',
          keyDigest: '',
          attempt: n,
          status,
          errorCode: ErrorCode.UNSPECIFIED,
          retryable: false,
          errorRef: '',
          startedAt: BigInt(now - 100 + n),
          endedAt: BigInt(now - 50 + n),
          dueAt: 0n,
          outputSize: 0n,
          inputTokens: 0n,
          outputTokens: 0n,
          provider: 'mistral.chat',
          model: 'mistral-large-latest',
          ...extra,
        });
        const batch = (steps: StepInfo[]) =>
          w.send({
            case: 'stepReports',
            value: {
              $typeName: 'cairn.worker.v1.StepReportBatch',
              journalHeads: [],
              reports: steps.map((step) => ({
                $typeName: 'cairn.worker.v1.StepReport' as const,
                runId: task.runId,
                epoch: task.epoch,
                step,
              })),
            },
          });
        const sent = batch([
          attempt(1, StepStatus.RETRYING, {
            errorCode: ErrorCode.STEP_FAILED,
            retryable: true,
            errorRef: randomUUID(),
            dueAt: BigInt(now),
          }),
          attempt(2, StepStatus.COMPLETED, {
            inputTokens: 1234n,
            outputTokens: 56n,
            outputSize: 300n,
            provider: 'openai-compatible.chat',
            model: 'accounts/acme/models/llama-3.1:8b',
          }),
        ]);
        await w.next('ack', (a) => a.sequence === sent);

        // Free text in a model name is refused like in any NAME field.
        const leaky = batch([attempt(3, StepStatus.COMPLETED, { model: 'summarize this for jane@example.com' })]);
        const rejection = await w.next('rejection', (r) => r.sequence === leaky);
        assert.deepEqual([rejection.reason, rejection.field], [RejectionReason.INVALID_FIELD, 'model']);

        const described = await gatewayCall<{ steps: StepInfo[] }>(gateway, 'describeRun', { runId: task.runId }, token);
        assert.deepEqual(
          described.steps.map((s) => [s.attempt, s.kind, s.status, s.provider, s.model, s.inputTokens, s.outputTokens]),
          [
            [1, StepKind.MODEL, StepStatus.RETRYING, 'mistral.chat', 'mistral-large-latest', 0n, 0n],
            [2, StepKind.MODEL, StepStatus.COMPLETED, 'openai-compatible.chat', 'accounts/acme/models/llama-3.1:8b', 1234n, 56n],
          ],
        );
        const stored = await sql.query<{ input_tokens: string; output_tokens: string; provider: string; model: string }>(
          'SELECT input_tokens, output_tokens, provider, model FROM run_steps WHERE run_id = $1 AND attempt = 2',
          [task.runId],
        );
        assert.deepEqual(stored.rows, [
          { input_tokens: '1234', output_tokens: '56', provider: 'openai-compatible.chat', model: 'accounts/acme/models/llama-3.1:8b' },
        ]);

        const rest = await api(`/v1/projects/default/runs/${task.runId}`);
        const steps = rest.body['steps'] as Array<Record<string, unknown>>;
        assert.deepEqual(
          steps.map((s) => [s['kind'], s['attempt'], s['provider'], s['model'], s['inputTokens'], s['outputTokens']]),
          [
            ['model', 1, 'mistral.chat', 'mistral-large-latest', 0, 0],
            ['model', 2, 'openai-compatible.chat', 'accounts/acme/models/llama-3.1:8b', 1234, 56],
          ],
        );
        w.close();
      });

      test('leases renew, survive a reconnect, and cancellation reaches the holder', async () => {
        const workerId = randomUUID();
        const first = open();
        await first.hello({ dataPlaneId, workerId, slots: 1 });
        const run = await startRun();
        const task = await first.next('runTask', (t) => t.runId === run.runId);

        first.send({
          case: 'leaseRenewal',
          value: {
            $typeName: 'cairn.worker.v1.LeaseRenewal',
            leases: [
              { $typeName: 'cairn.worker.v1.HeldLease', runId: run.runId, epoch: task.epoch },
              { $typeName: 'cairn.worker.v1.HeldLease', runId: run.runId, epoch: task.epoch + 5 },
            ],
          },
        });
        const update = await first.next('leaseUpdate');
        assert.deepEqual(
          update.leases.map((l) => [l.epoch, l.state]),
          [
            [task.epoch, LeaseState.RENEWED],
            [task.epoch + 5, LeaseState.LOST],
          ],
        );

        // The stream drops; the worker reconnects and re-attaches the lease it still holds.
        first.close();
        await first.ended();
        const second = open();
        const bogus = { runId: randomUUID(), epoch: 3 };
        const welcome = await second.hello({
          dataPlaneId,
          workerId,
          slots: 1,
          heldLeases: [{ runId: run.runId, epoch: task.epoch }, bogus],
        });
        assert.deepEqual(
          welcome.lostLeases.map((l) => [l.runId, l.epoch]),
          [[bogus.runId, bogus.epoch]],
        );
        const history = await sql.query<{ session_id: string }>('SELECT session_id FROM run_leases WHERE run_id = $1', [run.runId]);
        assert.deepEqual(
          history.rows.map((r) => r.session_id),
          [welcome.sessionId],
        );

        const cancelled = await gatewayCall<{ run: RunInfo }>(gateway, 'cancelRun', { runId: run.runId }, token);
        assert.deepEqual([cancelled.run.status, cancelled.run.cancelRequested], [RunStatus.RUNNING, true]);
        const cancel = await second.next('cancel');
        assert.deepEqual([cancel.runId, cancel.epoch], [run.runId, task.epoch]);
        const ack = second.send(cancellation(run.runId, task.epoch));
        await second.next('ack', (a) => a.sequence === ack);
        const waited = await gatewayCall<{ run: RunInfo }>(gateway, 'waitRun', { runId: run.runId, timeoutMs: 5_000 }, token);
        assert.equal(waited.run.status, RunStatus.CANCELLED);

        // A queued run is cancelled at once.
        second.send({ case: 'slots', value: { $typeName: 'cairn.worker.v1.SlotsUpdate', freeSlots: 0, draining: true } });
        await second.next('ack');
        const queued = await startRun();
        const now = await gatewayCall<{ run: RunInfo }>(gateway, 'cancelRun', { runId: queued.runId }, token);
        assert.equal(now.run.status, RunStatus.CANCELLED);
        second.close();
      });

      test('a suspended run waiting for a signal is woken by SignalRun', async () => {
        const w = open();
        await w.hello({ dataPlaneId, slots: 1 });
        const run = await startRun();
        const task = await w.next('runTask', (t) => t.runId === run.runId);
        const suspend = w.send(
          suspension(run.runId, task.epoch, {
            reason: SuspendReason.SIGNAL,
            wakeAt: BigInt(Date.now() + 3_600_000),
            signalName: 'approve',
          }),
        );
        await w.next('ack', (a) => a.sequence === suspend);
        const waitedShort = await gatewayCall<{ run: RunInfo }>(gateway, 'waitRun', { runId: run.runId, timeoutMs: 50 }, token);
        assert.deepEqual([waitedShort.run.status, waitedShort.run.waitingSignal], [RunStatus.SUSPENDED, 'approve']);
        const signalled = await gatewayCall<{ run: RunInfo }>(
          gateway,
          'signalRun',
          { runId: run.runId, signalName: 'approve', signalId: randomUUID() },
          token,
        );
        assert.equal(signalled.run.status, RunStatus.QUEUED);
        const woken = await w.next('runTask', (t) => t.runId === run.runId);
        assert.deepEqual([woken.epoch, woken.reason], [task.epoch + 1, WakeReason.SIGNAL]);
        const failed = w.send({
          case: 'failed',
          value: {
            $typeName: 'cairn.worker.v1.RunFailed',
            runId: run.runId,
            epoch: woken.epoch,
            errorCode: ErrorCode.STEP_FAILED,
            errorRef: randomUUID(),
          },
        });
        await w.next('ack', (a) => a.sequence === failed);
        w.close();
      });

      test('a signal the run consumed without a notice (SignalRun failed) still lets the next signal wake it', async () => {
        // The gateway stored the first signal and could not tell the control plane; the run consumed
        // it from the payload store all the same. The suspension names it among the consumed signals.
        const w = open();
        await w.hello({ dataPlaneId, slots: 2 });
        const suspendOnSecond = (runId: string, epoch: number, consumed: string): bigint =>
          w.send(
            suspension(runId, epoch, { reason: SuspendReason.SIGNAL, signalName: 'go', signalsConsumed: 1, consumedSignalIds: [consumed] }),
          );
        const signal = (runId: string): Promise<{ run: RunInfo }> =>
          gatewayCall<{ run: RunInfo }>(gateway, 'signalRun', { runId, signalName: 'go', signalId: randomUUID() }, token);

        // The second signal arrives while the run still runs: the suspension itself queues it.
        const early = await startRun();
        const earlyTask = await w.next('runTask', (t) => t.runId === early.runId);
        assert.equal((await signal(early.runId)).run.status, RunStatus.RUNNING);
        const raced = suspendOnSecond(early.runId, earlyTask.epoch, randomUUID());
        await w.next('ack', (a) => a.sequence === raced);
        const afterSuspend = await sql.query<{ status: string }>('SELECT status FROM runs WHERE id = $1', [early.runId]);
        assert.notEqual(afterSuspend.rows[0]?.status, 'suspended', 'the suspension counted the second signal');
        const woken = await w.next('runTask', (t) => t.runId === early.runId);
        assert.deepEqual([woken.epoch, woken.reason], [earlyTask.epoch + 1, WakeReason.SIGNAL]);

        // The second signal arrives after the run suspended: SignalRun wakes it.
        const later = await startRun();
        const task = await w.next('runTask', (t) => t.runId === later.runId);
        const suspended = suspendOnSecond(later.runId, task.epoch, randomUUID());
        await w.next('ack', (a) => a.sequence === suspended);
        assert.equal((await signal(later.runId)).run.status, RunStatus.QUEUED, 'the second signal wakes the run');
        const laterWoken = await w.next('runTask', (t) => t.runId === later.runId);
        assert.equal(laterWoken.reason, WakeReason.SIGNAL);

        // Each consumed signal counts once: reported again (and notified late) it adds nothing, so
        // the run that consumed both waits for a third.
        const consumed = (
          await sql.query<{ signal_id: string }>('SELECT signal_id FROM signal_notices WHERE run_id = $1', [early.runId])
        ).rows.map((r) => r.signal_id);
        assert.equal(consumed.length, 2, 'the notice SignalRun made and the one the suspension added');
        const twice = w.send(
          suspension(early.runId, woken.epoch, {
            reason: SuspendReason.SIGNAL,
            signalName: 'go',
            signalsConsumed: 2,
            consumedSignalIds: consumed,
          }),
        );
        await w.next('ack', (a) => a.sequence === twice);
        const repeated = await gatewayCall<{ run: RunInfo }>(
          gateway,
          'signalRun',
          { runId: early.runId, signalName: 'go', signalId: consumed[0] },
          token,
        );
        assert.equal(repeated.run.status, RunStatus.SUSPENDED);
        assert.equal((await signal(early.runId)).run.status, RunStatus.QUEUED, 'a third signal wakes it');
        const third = await w.next('runTask', (t) => t.runId === early.runId);
        for (const [runId, epoch] of [
          [later.runId, laterWoken.epoch],
          [early.runId, third.epoch],
        ] as const) {
          const done = w.send(cancellation(runId, epoch));
          await w.next('ack', (a) => a.sequence === done);
        }
        w.close();
      });

      test('a suspension naming more consumed signals than the bound is refused, saying what to send', async () => {
        const w = open();
        await w.hello({ dataPlaneId, slots: 1 });
        const run = await startRun();
        const task = await w.next('runTask', (t) => t.runId === run.runId);
        const tooMany = w.send(
          suspension(run.runId, task.epoch, {
            reason: SuspendReason.SIGNAL,
            signalName: 'go',
            signalsConsumed: 1001,
            consumedSignalIds: Array.from({ length: 1001 }, () => randomUUID()),
          }),
        );
        const rejection = await w.next('rejection', (r) => r.sequence === tooMany);
        assert.deepEqual([rejection.reason, rejection.field], [RejectionReason.INVALID_FIELD, 'consumed_signal_ids']);
        const done = w.send(cancellation(run.runId, task.epoch));
        await w.next('ack', (a) => a.sequence === done);
        w.close();
      });

      test('cancelling a suspended run dispatches it once more so its compensations can run', async () => {
        const w = open();
        await w.hello({ dataPlaneId, slots: 1 });
        const run = await startRun();
        const task = await w.next('runTask', (t) => t.runId === run.runId);
        const suspend = w.send(suspension(run.runId, task.epoch, { reason: SuspendReason.SLEEP, wakeAt: BigInt(Date.now() + 3_600_000) }));
        await w.next('ack', (a) => a.sequence === suspend);
        const cancelled = await gatewayCall<{ run: RunInfo }>(gateway, 'cancelRun', { runId: run.runId }, token);
        assert.deepEqual([cancelled.run.status, cancelled.run.cancelRequested], [RunStatus.QUEUED, true]);
        const again = await w.next('runTask', (t) => t.runId === run.runId);
        assert.deepEqual([again.epoch, again.reason, again.cancelRequested], [task.epoch + 1, WakeReason.CANCEL, true]);
        const done = w.send(cancellation(run.runId, again.epoch));
        await w.next('ack', (a) => a.sequence === done);
        const waited = await gatewayCall<{ run: RunInfo }>(gateway, 'waitRun', { runId: run.runId, timeoutMs: 5_000 }, token);
        assert.equal(waited.run.status, RunStatus.CANCELLED);
        w.close();
      });

      test('several workers share a backlog without a run going to two of them', async () => {
        const workers = await Promise.all(
          [0, 1, 2, 3].map(async () => {
            const w = open();
            await w.hello({ dataPlaneId, slots: 3 });
            return w;
          }),
        );
        const ids = new Set<string>();
        for (let i = 0; i < 30; i++) ids.add((await startRun()).runId);
        const got = new Map<string, number>();
        await until('every run to be dispatched', () => {
          for (const w of workers) {
            for (const task of w.takeAll('runTask')) {
              got.set(task.runId, (got.get(task.runId) ?? 0) + 1);
              assert.equal(task.epoch, 1);
              w.send({
                case: 'completed',
                value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: task.runId, epoch: task.epoch, outputSize: 0n },
              });
            }
          }
          return got.size >= ids.size;
        });
        assert.equal(got.size, ids.size);
        assert.ok(
          [...got.values()].every((n) => n === 1),
          'each run was dispatched once',
        );
        await until('all runs to complete', async () => {
          const r = await sql.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM runs WHERE id = ANY($1::uuid[]) AND status = 'completed'",
            [[...ids]],
          );
          return r.rows[0]!.n === ids.size;
        });
        for (const w of workers) w.close();
      });

      test('REST lists and describes runs for the API token only', async () => {
        assert.equal((await api('/healthz', null)).status, 200);
        assert.deepEqual(await api('/readyz', null), { status: 200, body: { status: 'ready' } });
        const unauthorized = await api('/v1/projects/default/runs', null);
        assert.equal(unauthorized.status, 401);
        assert.equal((unauthorized.body['error'] as { code: string }).code, 'CAIRN-1104');
        assert.equal((await api('/v1/projects/default/runs', 'wrong-token')).status, 401);

        const page1 = await api('/v1/projects/default/runs?limit=2');
        assert.equal(page1.status, 200);
        const runs1 = page1.body['runs'] as Array<Record<string, unknown>>;
        assert.equal(runs1.length, 2);
        assert.equal(typeof page1.body['nextCursor'], 'string');
        const page2 = await api(`/v1/projects/default/runs?limit=2&cursor=${page1.body['nextCursor'] as string}`);
        const runs2 = page2.body['runs'] as Array<Record<string, unknown>>;
        assert.ok(
          runs2.every((r) => !runs1.some((p) => p['id'] === r['id'])),
          'pages do not overlap',
        );
        assert.ok(String(runs1[1]!['createdAt']) >= String(runs2[0]!['createdAt']), 'newest first');

        const failed = await api('/v1/projects/default/runs?status=failed');
        const failedRun = (failed.body['runs'] as Array<Record<string, unknown>>)[0]!;
        assert.deepEqual([failedRun['status'], failedRun['errorCode']], ['failed', 'step_failed']);

        const completed = await api('/v1/projects/default/runs?status=completed&workflow=greet&limit=200');
        const withSteps = await Promise.all(
          (completed.body['runs'] as Array<{ id: string }>).map(async (r) => (await api(`/v1/projects/default/runs/${r.id}`)).body),
        );
        const described = withSteps.find((b) => (b['steps'] as unknown[]).length > 0)!;
        const step = (described['steps'] as Array<Record<string, unknown>>)[0]!;
        assert.deepEqual([step['name'], step['status'], step['kind'], step['outputSize']], ['fetch', 'completed', 'step', 64]);
        // Token counts and model names belong to model calls only.
        assert.deepEqual([step['inputTokens'], step['outputTokens'], step['provider'], step['model']], [null, null, null, null]);
        assert.equal(typeof step['durationMs'], 'number');
        assert.equal((described['run'] as Record<string, unknown>)['status'], 'completed');

        assert.equal((await api(`/v1/projects/default/runs/${randomUUID()}`)).status, 404);
        assert.equal((await api('/v1/projects/default/runs/not-a-uuid')).status, 400);
        assert.equal((await api(`/v1/projects/default/runs/${randomUUID()}`, null)).status, 401);
        const badLimit = await api('/v1/projects/default/runs?limit=500');
        assert.equal(badLimit.status, 400);
        assert.match((badLimit.body['error'] as { message: string }).message, /limit/);
        assert.equal((await api('/v1/projects/default/runs?status=sleeping')).status, 400);
        assert.equal((await api('/v1/projects/default/runs?cursor=garbage')).status, 400);
      });

      test("REST lists a data plane's workers (SDK version, slots, connected, last seen) and the versions they announced", async () => {
        const workerId = randomUUID();
        const s = open();
        await s.hello({ dataPlaneId, slots: 3, workerId, workflows: [{ name: 'greet', version: 'v7', taskQueue: 'reports' }] });
        type Workers = {
          workers: Array<{
            workerId: string;
            connected: boolean;
            sdkVersion: string;
            slots: number;
            workflows: number;
            disconnectedAt: string | null;
          }>;
          workflowVersions: Array<{ name: string; version: string; taskQueue: string }>;
        };
        const listed = async (): Promise<Workers> => {
          const res = await api(`/v1/projects/default/data-planes/${dataPlaneId}/workers`);
          assert.equal(res.status, 200, JSON.stringify(res.body));
          return res.body as unknown as Workers;
        };
        const mine = (w: Workers) => w.workers.find((x) => x.workerId === workerId);
        const open1 = await listed();
        assert.deepEqual(
          (({ connected, sdkVersion, slots, workflows, disconnectedAt }) => ({ connected, sdkVersion, slots, workflows, disconnectedAt }))(
            mine(open1)!,
          ),
          { connected: true, sdkVersion: '0.1.0', slots: 3, workflows: 1, disconnectedAt: null },
        );
        assert.ok(open1.workflowVersions.some((v) => v.name === 'greet' && v.version === 'v7' && v.taskQueue === 'reports'));
        s.close();
        await s.ended();
        const deadline = Date.now() + 5_000;
        while (mine(await listed())?.connected !== false) {
          assert.ok(Date.now() < deadline, 'the closed stream is shown as disconnected');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(typeof mine(await listed())!.disconnectedAt, 'string');
        assert.equal((await api(`/v1/projects/default/data-planes/${randomUUID()}/workers`)).status, 404);
        assert.equal((await api(`/v1/projects/default/data-planes/${dataPlaneId}/workers`, null)).status, 401);
      });

      test('REST serves the residency report the CLI renders, built from the enforced descriptors', async () => {
        const res = await api('/v1/residency');
        assert.equal(res.status, 200);
        const report = res.body as {
          problems: string[];
          neverCrosses: string[];
          messages: Array<{ message: string; fields: Array<{ field: string; class: string }> }>;
        };
        assert.deepEqual(report.problems, []);
        assert.ok(report.neverCrosses.includes('signal bodies and approval comments'));
        const hello = report.messages.find((m) => m.message === 'cairn.worker.v1.Hello')!;
        assert.equal(hello.fields.find((f) => f.field === 'sdk_version')!.class, 'NAME');
        assert.equal((await api('/v1/residency', null)).status, 401);
      });
    });

    describe('two replicas on one database', () => {
      test('dispatch, cancellation and run ends cross replicas; a shutdown keeps leases for re-attachment', async () => {
        const url = await newDatabase();
        const config = d.config.loadControlPlaneConfig(env(url));
        const { id: dataPlaneId, token } = await d.admin.createDataPlane(config, silent, { name: 'replicas' });
        const [a, b] = await Promise.all([
          d.cp.startControlPlane(config, { logger: silent }),
          d.cp.startControlPlane(config, { logger: silent }),
        ]);
        const clients: ServiceClient[] = [];
        const client = (Ctor: typeof WorkerClient, port: number): ServiceClient => {
          const c = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
          clients.push(c);
          return c;
        };
        const gatewayB = client(GatewayClient, b.grpcPort);
        const start = async (): Promise<RunInfo> =>
          (
            await gatewayCall<{ run: RunInfo }>(
              gatewayB,
              'startRun',
              { runId: randomUUID(), workflowName: 'greet', workflowVersion: '', idempotencyDigest: '', inputSize: 0n },
              token,
            )
          ).run;
        try {
          const workerId = randomUUID();
          const onA = new WorkerStream(client(WorkerClient, a.grpcPort), token);
          await onA.hello({ dataPlaneId, workerId, slots: 2 });

          // Started on B, dispatched by A (NOTIFY cairn_dispatch).
          const first = await start();
          const task = await onA.next('runTask', (t) => t.runId === first.runId);
          // Cancelled on B, pushed by A (NOTIFY cairn_cancel).
          await gatewayCall(gatewayB, 'cancelRun', { runId: first.runId }, token);
          assert.equal((await onA.next('cancel')).runId, first.runId);
          // A wait on B returns when the run ends on A (NOTIFY cairn_run_ended).
          const waiting = gatewayCall<{ run: RunInfo }>(gatewayB, 'waitRun', { runId: first.runId, timeoutMs: 10_000 }, token);
          onA.send({ case: 'cancelled', value: { $typeName: 'cairn.worker.v1.RunCancelled', runId: first.runId, epoch: task.epoch } });
          assert.equal((await waiting).run.status, RunStatus.CANCELLED);

          // A shuts down: the worker's stream ends UNAVAILABLE and its lease stays.
          const second = await start();
          const held = await onA.next('runTask', (t) => t.runId === second.runId);
          await a.close();
          const ended = await onA.ended();
          assert.equal(ended.code, grpc.status.UNAVAILABLE);
          assert.match(ended.details, /shutting down; reconnect/);
          const onB = new WorkerStream(client(WorkerClient, b.grpcPort), token);
          const welcome = await onB.hello({ dataPlaneId, workerId, slots: 2, heldLeases: [{ runId: second.runId, epoch: held.epoch }] });
          assert.deepEqual(welcome.lostLeases, []);
          const done = onB.send({
            case: 'completed',
            value: { $typeName: 'cairn.worker.v1.RunCompleted', runId: second.runId, epoch: held.epoch, outputSize: 1n },
          });
          await onB.next('ack', (x) => x.sequence === done);
          onB.close();
        } finally {
          for (const c of clients) c.close();
          await Promise.all([a.close(), b.close()]);
        }
      });
    });

    describe('command line', () => {
      const main = join(distDir, 'main.js');
      const run = (args: string[], environment: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> =>
        new Promise((resolve) => {
          const child = spawn(process.execPath, [main, ...args], { env: { PATH: process.env['PATH'] ?? '', ...environment } });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
          child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
          child.on('close', (code) => resolve({ code, stdout, stderr }));
        });

      test('migrate (twice at once), data-planes create, and serve until SIGTERM', async () => {
        const url = await newDatabase();
        const migrated = await Promise.all([run(['migrate'], env(url)), run(['migrate'], env(url))]);
        assert.deepEqual(
          migrated.map((m) => m.code),
          [0, 0],
          migrated.map((m) => m.stderr).join('\n'),
        );

        const created = await run(['data-planes', 'create', '--name', 'local'], env(url));
        assert.equal(created.code, 0, created.stderr);
        const plane = JSON.parse(created.stdout) as { id: string; projectId: string; name: string; token: string };
        assert.equal(plane.name, 'local');
        assert.match(plane.token, /^cdp_[A-Za-z0-9_-]{43}$/);
        const rotated = await run(['data-planes', 'create', '--name', 'local', '--id', plane.id, '--token', 'dev-token-123'], env(url));
        assert.deepEqual(JSON.parse(rotated.stdout), { id: plane.id, projectId: plane.projectId, name: 'local', token: 'dev-token-123' });
        const stored = new pg.Pool({ connectionString: url, max: 1 });
        try {
          const rows = await stored.query<{ token_sha256: string }>('SELECT token_sha256 FROM data_planes');
          assert.equal(rows.rowCount, 1);
          assert.doesNotMatch(rows.rows[0]!.token_sha256, /dev-token/);
        } finally {
          await stored.end();
        }

        const bad = await run([], env(url, { CAIRN_BOOTSTRAP_ADMIN_KEY: 'too short', CAIRN_LEASE_TTL_MS: 'soon' }));
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /CAIRN_BOOTSTRAP_ADMIN_KEY/);
        assert.doesNotMatch(bad.stderr, /too short/);
        assert.match(bad.stderr, /CAIRN_LEASE_TTL_MS/);
        assert.doesNotMatch(bad.stderr, /soon/);

        const child = spawn(process.execPath, [main], {
          env: { PATH: process.env['PATH'] ?? '', ...env(url, { CAIRN_LOG_LEVEL: 'info' }) },
        });
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        const lines = createInterface({ input: child.stdout });
        let listening: { httpPort: number; grpcPort: number } | null = null;
        for await (const line of lines) {
          const entry = JSON.parse(line) as { msg?: string; httpPort?: number; grpcPort?: number };
          if (entry.msg === 'control plane listening') {
            listening = { httpPort: entry.httpPort!, grpcPort: entry.grpcPort! };
            break;
          }
        }
        assert.ok(listening && listening.httpPort > 0 && listening.grpcPort > 0);
        const ready = await fetch(`http://127.0.0.1:${listening.httpPort}/readyz`);
        assert.equal(ready.status, 200);
        child.kill('SIGTERM');
        child.stdout.resume();
        assert.equal(await exited, 0);
      });
    });
  });
}
