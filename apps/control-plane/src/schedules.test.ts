// Schedules: the ticker driven in process with a clock the test moves (daylight-saving changes,
// catch-up after downtime, overlap policies, pause/resume, trigger-now, backfill, two tickers on
// one database), and the REST API and two real control-plane processes on one database.
//
// The in-process tests drive the tsc-built code in dist/ (see control-plane.test.ts for why).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import pg from 'pg';
import { createLogger, ErrorCodes, type CairnError } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import type * as AccessServiceModule from './tenancy/access.service.js';
import type * as AppModuleModule from './app.module.js';
import type * as ConfigModule from './config.js';
import type * as DataPlaneServiceModule from './tenancy/data-plane.service.js';
import type * as DatabaseModule from './db/database.js';
import type * as QuotaServiceModule from './metering/quota.service.js';
import type * as MigrationRepositoryModule from './db/migration.repository.js';
import type * as MigrationsModule from './db/migrations.js';
import type * as RunServiceModule from './runs/run.service.js';
import type * as ScheduleServiceModule from './schedules/schedule.service.js';
import type * as ScheduleTickerModule from './schedules/schedule-ticker.service.js';
import type * as WorkflowRepositoryModule from './workflows/workflow.repository.js';
import { BOOTSTRAP_KEY, controlPlaneMain, ensureBuilt, startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';
import { WorkerClient, WorkerStream } from './testing/grpc.js';

const distDir = join(controlPlaneMain, '..');
const silent = createLogger('schedules-test', 'silent');
const load = async <T>(file: string): Promise<T> => (await import(pathToFileURL(join(distDir, file)).href)) as T;

interface Dist {
  access: typeof AccessServiceModule;
  app: typeof AppModuleModule;
  config: typeof ConfigModule;
  dataPlanes: typeof DataPlaneServiceModule;
  database: typeof DatabaseModule;
  quotas: typeof QuotaServiceModule;
  migrationRepository: typeof MigrationRepositoryModule;
  migrations: typeof MigrationsModule;
  runService: typeof RunServiceModule;
  scheduleService: typeof ScheduleServiceModule;
  ticker: typeof ScheduleTickerModule;
  workflows: typeof WorkflowRepositoryModule;
}

async function dist(): Promise<Dist> {
  ensureBuilt();
  return {
    access: await load('tenancy/access.service.js'),
    app: await load('app.module.js'),
    config: await load('config.js'),
    dataPlanes: await load('tenancy/data-plane.service.js'),
    database: await load('db/database.js'),
    quotas: await load('metering/quota.service.js'),
    migrationRepository: await load('db/migration.repository.js'),
    migrations: await load('db/migrations.js'),
    runService: await load('runs/run.service.js'),
    scheduleService: await load('schedules/schedule.service.js'),
    ticker: await load('schedules/schedule-ticker.service.js'),
    workflows: await load('workflows/workflow.repository.js'),
  };
}

/** A clock the test moves by hand. */
class ManualClock {
  constructor(private time: number) {}
  now(): Date {
    return new Date(this.time);
  }
  set(iso: string | number): void {
    this.time = typeof iso === 'number' ? iso : Date.parse(iso);
  }
  advance(ms: number): void {
    this.time += ms;
  }
}

/** Polls until `check` holds (a wait, not a timing assertion). */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function rejectsWithCode(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: CairnError) => {
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

const MINUTE = 60_000;
const WORKFLOW = { name: 'report', version: 'v1', taskQueue: 'default' };
const ACTOR = { type: 'system' } as const;

interface FiringRow {
  tick_at: Date;
  kind: string;
  outcome: string;
  run_id: string | null;
  cancelled_runs: number;
}

for (const kind of testPostgresKinds()) {
  describe(`schedules on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let d: Dist;
    const databases: string[] = [];

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

    describe('the ticker, with a clock the test moves', () => {
      let url: string;
      let sql: pg.Pool;
      const clock = new ManualClock(Date.parse('2026-01-05T09:00:00Z'));
      let projectId: string;

      /** One control plane's services in this process, on the shared database and clock. */
      interface Replica {
        readonly ctx: INestApplicationContext;
        readonly ticker: ScheduleTickerModule.ScheduleTicker;
        readonly schedules: ScheduleServiceModule.ScheduleService;
        readonly runs: RunServiceModule.RunService;
        close(): Promise<void>;
      }
      const replicas: Replica[] = [];
      const replica = async (): Promise<Replica> => {
        const config = d.config.loadControlPlaneConfig({
          CAIRN_CP_DATABASE_URL: url,
          CAIRN_LOG_LEVEL: 'silent',
          CAIRN_SCHEDULE_TICK_INTERVAL_MS: '1000',
        });
        // NestJS types these options as a class and documents passing a literal.
        // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
        const ctx = await NestFactory.createApplicationContext(d.app.AppModule.forRoot(config, silent, { clock }), { logger: false });
        const r: Replica = {
          ctx,
          ticker: ctx.get(d.ticker.ScheduleTicker),
          schedules: ctx.get(d.scheduleService.ScheduleService),
          runs: ctx.get(d.runService.RunService),
          close: async () => {
            replicas.splice(replicas.indexOf(r), 1);
            await ctx.close();
            await ctx.get(d.database.Database).close();
          },
        };
        replicas.push(r);
        return r;
      };
      let main: Replica;

      /** A data plane whose worker announced the workflow, so firings can pin a version. */
      const dataPlane = async (): Promise<string> => {
        const id = (await main.ctx.get(d.dataPlanes.DataPlaneService).create(projectId, { name: 'dp' })).id;
        await main.ctx.get(d.workflows.WorkflowRepository).upsertAnnounced(id, [WORKFLOW]);
        return id;
      };
      const createSchedule = async (
        fields: Partial<ScheduleServiceModule.NewSchedule> & { cron: string },
      ): Promise<{ id: string; dataPlaneId: string }> => {
        const dataPlaneId = fields.dataPlaneId ?? (await dataPlane());
        const s = await main.schedules.create(projectId, ACTOR, { workflowName: WORKFLOW.name, ...fields, dataPlaneId });
        return { id: s.id, dataPlaneId };
      };
      const firings = async (scheduleId: string): Promise<FiringRow[]> =>
        (
          await sql.query<FiringRow>(
            'SELECT tick_at, kind, outcome, run_id, cancelled_runs FROM schedule_firings WHERE schedule_id = $1 ORDER BY tick_at, fired_at',
            [scheduleId],
          )
        ).rows;
      const ticks = async (scheduleId: string): Promise<string[]> => (await firings(scheduleId)).map((f) => f.tick_at.toISOString());
      const runsOf = async (
        scheduleId: string,
      ): Promise<Array<{ id: string; status: string; schedule_tick_at: Date; input_payload_id: string | null }>> =>
        (
          await sql.query<{ id: string; status: string; schedule_tick_at: Date; input_payload_id: string | null }>(
            'SELECT id, status, schedule_tick_at, input_payload_id FROM runs WHERE schedule_id = $1 ORDER BY schedule_tick_at, created_at',
            [scheduleId],
          )
        ).rows;
      const auditCount = async (): Promise<number> =>
        Number((await sql.query<{ n: string }>('SELECT count(*) AS n FROM audit_log WHERE project_id = $1', [projectId])).rows[0]!.n);
      /** Moves the clock to `iso` and lets the ticker pass there. */
      const passAt = async (iso: string, r: Replica = main): Promise<void> => {
        clock.set(iso);
        await r.ticker.pass(clock.now());
      };
      /** Moves the clock in steps from its time to `untilIso`, with a ticker pass at each step. */
      const walk = async (untilIso: string, stepMs: number): Promise<void> => {
        const end = Date.parse(untilIso);
        while (clock.now().getTime() < end) {
          clock.advance(Math.min(stepMs, end - clock.now().getTime()));
          await main.ticker.pass(clock.now());
        }
      };

      before(async () => {
        const name = uniqueDatabaseName('sched');
        databases.push(name);
        url = await server.createDatabase(name);
        sql = new pg.Pool({ connectionString: url, max: 2 });
        main = await replica();
        await main.ctx.get(d.migrationRepository.MigrationRepository).apply(d.migrations.migrations);
        projectId = (await main.ctx.get(d.access.AccessService).ensureProject('test', 'schedules')).id;
      });

      after(async () => {
        for (const r of [...replicas]) await r.close();
        await sql.end();
      });

      test('expressions and time zones are validated with clear errors', async () => {
        const dataPlaneId = await dataPlane();
        const base = { dataPlaneId, workflowName: WORKFLOW.name };
        await rejectsWithCode(
          main.schedules.create(projectId, ACTOR, { ...base, cron: '61 * * * *' }),
          ErrorCodes.INVALID_ARGUMENT,
          /cron: .*minute/,
        );
        await rejectsWithCode(
          main.schedules.create(projectId, ACTOR, { ...base, cron: 'every day' }),
          ErrorCodes.INVALID_ARGUMENT,
          /not a valid cron expression/,
        );
        await rejectsWithCode(
          main.schedules.create(projectId, ACTOR, { ...base, cron: '0 0 30 2 *' }),
          ErrorCodes.INVALID_ARGUMENT,
          /never fires/,
        );
        await rejectsWithCode(
          main.schedules.create(projectId, ACTOR, { ...base, cron: '0 9 * * *', timeZone: 'Mars/Olympus_Mons' }),
          ErrorCodes.INVALID_ARGUMENT,
          /timeZone: "Mars\/Olympus_Mons" is not an IANA time zone/,
        );
        await rejectsWithCode(
          main.schedules.create(projectId, ACTOR, { ...base, cron: '0 9 * * *', dataPlaneId: randomUUID() }),
          ErrorCodes.INVALID_ARGUMENT,
          /dataPlaneId: .* is not registered in this project/,
        );
        await main.schedules.create(projectId, ACTOR, { ...base, cron: '0 9 * * *', name: 'nightly' });
        await rejectsWithCode(
          main.schedules.create(projectId, ACTOR, { ...base, cron: '0 9 * * *', name: 'nightly' }),
          ErrorCodes.CONFLICT,
          /named nightly/,
        );
        await main.schedules.pause(projectId, ACTOR, 'nightly');
      });

      test('daylight saving in Europe/Berlin: 02:30 fires at 03:00 on the spring-forward day and once on the fall-back day', async () => {
        // Spring forward: on 2026-03-29 clocks jump from 02:00 to 03:00 CEST; 02:30 does not exist.
        clock.set('2026-03-27T12:00:00Z');
        const daily = await createSchedule({ cron: '30 2 * * *', timeZone: 'Europe/Berlin', overlapPolicy: 'allow_all' });
        await walk('2026-03-31T12:00:00Z', 15 * MINUTE);
        assert.deepEqual(await ticks(daily.id), [
          '2026-03-28T01:30:00.000Z', // 02:30 CET
          '2026-03-29T01:00:00.000Z', // the skipped 02:30 fires at 03:00 CEST, the first time after the gap
          '2026-03-30T00:30:00.000Z', // 02:30 CEST
          '2026-03-31T00:30:00.000Z',
        ]);

        // Fall back: on 2026-10-25 clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
        clock.set('2026-10-23T12:00:00Z');
        const autumn = await createSchedule({ cron: '30 2 * * *', timeZone: 'Europe/Berlin', overlapPolicy: 'allow_all' });
        const hourly = await createSchedule({ cron: '30 * * * *', timeZone: 'Europe/Berlin', overlapPolicy: 'allow_all' });
        await walk('2026-10-26T12:00:00Z', 15 * MINUTE);
        assert.deepEqual(await ticks(autumn.id), [
          '2026-10-24T00:30:00.000Z', // 02:30 CEST
          '2026-10-25T00:30:00.000Z', // the first 02:30 (CEST); the repeated 02:30 CET (01:30Z) does not fire again
          '2026-10-26T01:30:00.000Z', // 02:30 CET
        ]);
        // An expression that is not a fixed time fires at both occurrences of the repeated hour.
        const fallBackNight = (await ticks(hourly.id)).filter((t) => t >= '2026-10-24T23:00' && t < '2026-10-25T03:00');
        assert.deepEqual(fallBackNight, [
          '2026-10-24T23:30:00.000Z', // 01:30 CEST
          '2026-10-25T00:30:00.000Z', // 02:30 CEST
          '2026-10-25T01:30:00.000Z', // 02:30 CET, the repeated hour
          '2026-10-25T02:30:00.000Z', // 03:30 CET
        ]);
        // Every firing started a run recording its tick.
        const runs = await runsOf(autumn.id);
        assert.deepEqual(
          runs.map((r) => r.schedule_tick_at.toISOString()),
          await ticks(autumn.id),
        );
        for (const id of [daily.id, autumn.id, hourly.id]) await main.schedules.pause(projectId, ACTOR, id);
      });

      test('catch-up after downtime: ticks within the window fire once each, older ones never', async () => {
        clock.set('2026-05-01T10:00:30Z');
        const s = await createSchedule({ cron: '* * * * *', overlapPolicy: 'allow_all', catchUpWindowSeconds: 300 });
        await passAt('2026-05-01T10:01:00.400Z');
        assert.deepEqual(await ticks(s.id), ['2026-05-01T10:01:00.000Z']);

        // Every control plane stops; nothing ticks from 10:02 to 10:20.
        await main.close();
        clock.set('2026-05-01T10:20:30Z');
        // Two replicas come back at once and both tick, several times.
        main = await replica();
        const other = await replica();
        await Promise.all([main.ticker.tick(), other.ticker.tick(), main.ticker.pass(clock.now()), other.ticker.pass(clock.now())]);
        await main.ticker.tick();
        await other.close();
        // Window 300 s plus one ticker interval (1 s) before 10:20:30 reaches back to 10:15:29.
        assert.deepEqual(await ticks(s.id), [
          '2026-05-01T10:01:00.000Z',
          '2026-05-01T10:16:00.000Z',
          '2026-05-01T10:17:00.000Z',
          '2026-05-01T10:18:00.000Z',
          '2026-05-01T10:19:00.000Z',
          '2026-05-01T10:20:00.000Z',
        ]);
        assert.equal((await runsOf(s.id)).length, 6, 'one run per firing');
        // Then ticking goes on as usual.
        await passAt('2026-05-01T10:21:00.100Z');
        assert.equal((await ticks(s.id)).at(-1), '2026-05-01T10:21:00.000Z');

        // A window of 0: after downtime nothing missed fires, only the ticks that follow.
        const strict = await createSchedule({ cron: '* * * * *', overlapPolicy: 'allow_all', catchUpWindowSeconds: 0 });
        clock.set('2026-05-01T10:40:30Z');
        await main.ticker.pass(clock.now());
        assert.deepEqual(await ticks(strict.id), []);
        await passAt('2026-05-01T10:41:00.500Z');
        assert.deepEqual(await ticks(strict.id), ['2026-05-01T10:41:00.000Z']);
        for (const id of [s.id, strict.id]) await main.schedules.pause(projectId, ACTOR, id);
      });

      test('overlap policies: skip, buffer_one, allow_all and cancel_previous', async () => {
        clock.set('2026-06-01T08:00:30Z');
        const skip = await createSchedule({ cron: '* * * * *', overlapPolicy: 'skip' });
        const buffer = await createSchedule({ cron: '* * * * *', overlapPolicy: 'buffer_one' });
        const all = await createSchedule({ cron: '* * * * *', overlapPolicy: 'allow_all' });
        const cancel = await createSchedule({ cron: '* * * * *', overlapPolicy: 'cancel_previous' });
        const endRuns = async (scheduleId: string, dataPlaneId: string): Promise<void> => {
          for (const run of await runsOf(scheduleId)) if (run.status === 'queued') await main.runs.cancel(dataPlaneId, run.id);
        };

        await passAt('2026-06-01T08:01:00.200Z'); // first tick: every policy starts a run
        await passAt('2026-06-01T08:02:00.200Z'); // the first run is still queued
        await passAt('2026-06-01T08:03:00.200Z');

        const outcomes = async (id: string): Promise<string[]> => (await firings(id)).map((f) => f.outcome);
        assert.deepEqual(await outcomes(skip.id), ['started', 'skipped', 'skipped']);
        assert.deepEqual(await outcomes(buffer.id), ['started', 'buffered', 'skipped']);
        assert.deepEqual(await outcomes(all.id), ['started', 'started', 'started']);
        assert.equal((await runsOf(all.id)).filter((r) => r.status === 'queued').length, 3, 'allow_all: all three runs are open');
        const cancelFirings = await firings(cancel.id);
        assert.deepEqual(
          cancelFirings.map((f) => [f.outcome, f.cancelled_runs]),
          [
            ['started', 0],
            ['started', 1],
            ['started', 1],
          ],
        );
        assert.deepEqual(
          (await runsOf(cancel.id)).map((r) => r.status),
          ['cancelled', 'cancelled', 'queued'],
          'cancel_previous: only the newest run is left',
        );

        // The open runs end: skip fires again at the next tick; buffer_one starts the buffered
        // firing at once (its run records the buffered tick), then ticks as usual.
        await endRuns(skip.id, skip.dataPlaneId);
        await endRuns(buffer.id, buffer.dataPlaneId);
        await passAt('2026-06-01T08:03:30Z');
        const buffered = await firings(buffer.id);
        assert.deepEqual(
          buffered.map((f) => [f.tick_at.toISOString(), f.outcome]),
          [
            ['2026-06-01T08:01:00.000Z', 'started'],
            ['2026-06-01T08:02:00.000Z', 'started'],
            ['2026-06-01T08:03:00.000Z', 'skipped'],
          ],
        );
        const bufferRuns = await runsOf(buffer.id);
        assert.equal(bufferRuns.at(-1)!.schedule_tick_at.toISOString(), '2026-06-01T08:02:00.000Z');
        assert.equal(bufferRuns.at(-1)!.id, buffered[1]!.run_id);
        await passAt('2026-06-01T08:04:00.200Z');
        assert.deepEqual((await outcomes(skip.id)).at(-1), 'started');
        assert.deepEqual((await outcomes(buffer.id)).at(-1), 'buffered', 'the buffered tick’s run is still open');
        for (const s of [skip, buffer, all, cancel]) await main.schedules.pause(projectId, ACTOR, s.id);
      });

      test('pause and resume: nothing fires while paused, and no missed tick fires on resume', async () => {
        clock.set('2026-07-01T12:00:30Z');
        const s = await createSchedule({ cron: '* * * * *', overlapPolicy: 'allow_all', catchUpWindowSeconds: 3600 });
        await passAt('2026-07-01T12:01:00.100Z');
        await main.schedules.pause(projectId, ACTOR, s.id);
        await walk('2026-07-01T12:10:30Z', 20_000);
        assert.deepEqual(await ticks(s.id), ['2026-07-01T12:01:00.000Z']);
        const detail = await main.schedules.describe(projectId, s.id);
        assert.equal(detail.schedule.paused, true);
        assert.deepEqual(detail.nextFireTimes, []);

        const resumed = await main.schedules.resume(projectId, ACTOR, s.id);
        assert.equal(resumed.nextTickAt?.toISOString(), '2026-07-01T12:11:00.000Z');
        await main.ticker.pass(clock.now());
        assert.equal(
          (await ticks(s.id)).length,
          1,
          'the nine ticks that fell while paused do not fire, despite the hour-long catch-up window',
        );
        await passAt('2026-07-01T12:11:00.300Z');
        assert.deepEqual(await ticks(s.id), ['2026-07-01T12:01:00.000Z', '2026-07-01T12:11:00.000Z']);
        const shown = await main.schedules.describe(projectId, s.id);
        assert.deepEqual(
          shown.nextFireTimes.map((t) => t.toISOString()),
          [
            '2026-07-01T12:12:00.000Z',
            '2026-07-01T12:13:00.000Z',
            '2026-07-01T12:14:00.000Z',
            '2026-07-01T12:15:00.000Z',
            '2026-07-01T12:16:00.000Z',
          ],
        );
        assert.deepEqual(
          shown.recentFirings.map((f) => [f.tickAt.toISOString(), f.outcome, f.runId !== null]),
          [
            ['2026-07-01T12:11:00.000Z', 'started', true],
            ['2026-07-01T12:01:00.000Z', 'started', true],
          ],
        );
        await main.schedules.pause(projectId, ACTOR, s.id);
      });

      test('trigger now obeys the overlap policy unless told otherwise, and works while paused', async () => {
        clock.set('2026-08-01T09:00:10Z');
        const payload = randomUUID();
        const s = await createSchedule({ cron: '0 0 1 1 *', overlapPolicy: 'skip', inputPayloadId: payload, paused: true });
        const first = await main.schedules.trigger(projectId, ACTOR, s.id, undefined);
        assert.equal(first.outcome, 'started');
        assert.equal(first.kind, 'trigger');
        assert.equal(first.tickAt.toISOString(), '2026-08-01T09:00:10.000Z');
        clock.advance(1_000);
        const skipped = await main.schedules.trigger(projectId, ACTOR, s.id, undefined);
        assert.equal(skipped.outcome, 'skipped', 'the first run is still queued');
        assert.equal(skipped.runId, null);
        const forced = await main.schedules.trigger(projectId, ACTOR, s.id, 'allow_all');
        assert.equal(forced.outcome, 'started');
        const runs = await runsOf(s.id);
        assert.deepEqual(
          runs.map((r) => [r.id, r.schedule_tick_at.toISOString(), r.input_payload_id, r.status]),
          [
            [first.runId, '2026-08-01T09:00:10.000Z', payload, 'queued'],
            [forced.runId, '2026-08-01T09:00:11.000Z', payload, 'queued'],
          ],
        );
        const replaced = await main.schedules.trigger(projectId, ACTOR, s.id, 'cancel_previous');
        assert.equal(replaced.cancelledRuns, 2);
        assert.deepEqual(
          (await runsOf(s.id)).map((r) => r.status),
          ['cancelled', 'cancelled', 'queued'],
        );
      });

      test('backfill fires one run per tick in [from, to), once, within bounds', async () => {
        clock.set('2026-09-10T00:00:00Z');
        const s = await createSchedule({ cron: '0 * * * *', overlapPolicy: 'skip', paused: true });
        const result = await main.schedules.backfill(
          projectId,
          ACTOR,
          s.id,
          new Date('2026-09-09T02:00:00Z'),
          new Date('2026-09-09T12:00:00Z'),
        );
        assert.equal(result.alreadyFired, 0);
        assert.deepEqual(
          result.firings.map((f) => [f.kind, f.outcome, f.tickAt.toISOString()]),
          Array.from({ length: 10 }, (_, i) => ['backfill', 'started', `2026-09-09T${String(2 + i).padStart(2, '0')}:00:00.000Z`]),
          'one run per tick although the policy is skip',
        );
        const runs = await runsOf(s.id);
        assert.deepEqual(
          runs.map((r) => r.schedule_tick_at.toISOString()),
          result.firings.map((f) => f.tickAt.toISOString()),
        );
        // Overlapping ranges do not fire a tick twice.
        const again = await main.schedules.backfill(
          projectId,
          ACTOR,
          s.id,
          new Date('2026-09-09T10:00:00Z'),
          new Date('2026-09-09T14:00:00Z'),
        );
        assert.equal(again.alreadyFired, 2);
        assert.deepEqual(
          again.firings.map((f) => f.tickAt.toISOString()),
          ['2026-09-09T12:00:00.000Z', '2026-09-09T13:00:00.000Z'],
        );
        await rejectsWithCode(
          main.schedules.backfill(projectId, ACTOR, s.id, new Date('2026-07-01T00:00:00Z'), new Date('2026-09-01T00:00:00Z')),
          ErrorCodes.INVALID_ARGUMENT,
          /holds more than 1000 ticks .*split the range/,
        );
        await rejectsWithCode(
          main.schedules.backfill(projectId, ACTOR, s.id, new Date('2026-09-09T00:00:00Z'), new Date('2026-09-11T00:00:00Z')),
          ErrorCodes.INVALID_ARGUMENT,
          /later than now/,
        );
        await rejectsWithCode(
          main.schedules.backfill(projectId, ACTOR, s.id, new Date('2026-09-09T05:00:00Z'), new Date('2026-09-09T05:00:00Z')),
          ErrorCodes.INVALID_ARGUMENT,
          /earlier than to/,
        );
        assert.equal((await runsOf(s.id)).length, 12);
      });

      test('a backfill preview lists the ticks a backfill would fire, marks those already fired, and fires nothing', async () => {
        clock.set('2026-09-10T00:00:00Z');
        const s = await createSchedule({ cron: '30 */6 * * *', timeZone: 'Europe/Berlin', overlapPolicy: 'skip', paused: true });
        const from = new Date('2026-09-08T00:00:00Z');
        const to = new Date('2026-09-09T00:00:00Z');
        await main.schedules.backfill(projectId, ACTOR, s.id, new Date('2026-09-08T10:00:00Z'), new Date('2026-09-08T11:00:00Z'));
        const auditBefore = await auditCount();
        const preview = await main.schedules.previewBackfill(projectId, s.id, from, to);
        // Berlin is UTC+2 in September: 00:30, 06:30, 12:30 and 18:30 local time.
        assert.deepEqual(
          preview.ticks.map((t) => [t.tickAt.toISOString(), t.alreadyFired]),
          [
            ['2026-09-08T04:30:00.000Z', false],
            ['2026-09-08T10:30:00.000Z', true],
            ['2026-09-08T16:30:00.000Z', false],
            ['2026-09-08T22:30:00.000Z', false],
          ],
        );
        assert.equal((await runsOf(s.id)).length, 1, 'the preview started no run');
        assert.equal(await auditCount(), auditBefore, 'the preview recorded nothing');
        // The ticks a backfill then fires are the ticks the preview showed.
        const fired = await main.schedules.backfill(projectId, ACTOR, s.id, from, to);
        assert.deepEqual(
          fired.ticks.map((t) => [t.tickAt.toISOString(), t.alreadyFired]),
          preview.ticks.map((t) => [t.tickAt.toISOString(), t.alreadyFired]),
        );
        await rejectsWithCode(
          main.schedules.previewBackfill(projectId, s.id, new Date('2025-09-01T00:00:00Z'), new Date('2026-09-09T00:00:00Z')),
          ErrorCodes.INVALID_ARGUMENT,
          /holds more than 1000 ticks .*split the range/,
        );
        await rejectsWithCode(
          main.schedules.previewBackfill(projectId, s.id, from, new Date('2026-09-11T00:00:00Z')),
          ErrorCodes.INVALID_ARGUMENT,
          /later than now/,
        );
      });

      test("a firing over the project's concurrent-run quota records quota_exceeded and starts nothing", async () => {
        const project = await main.ctx.get(d.access.AccessService).ensureProject('test', 'quota-limited');
        const principal = { keyId: randomUUID(), organizationId: project.organizationId, keyProjectId: null, role: 'admin' as const };
        await main.ctx.get(d.quotas.QuotaService).set(principal, project, { maxConcurrentRuns: 1, maxStepsPerMonth: null });
        const dataPlaneId = (await main.ctx.get(d.dataPlanes.DataPlaneService).create(project.id, { name: 'dp' })).id;
        await main.ctx.get(d.workflows.WorkflowRepository).upsertAnnounced(dataPlaneId, [WORKFLOW]);
        clock.set('2026-09-20T06:00:30Z');
        const s = await main.schedules.create(project.id, ACTOR, {
          dataPlaneId,
          workflowName: WORKFLOW.name,
          cron: '* * * * *',
          overlapPolicy: 'allow_all',
        });
        await passAt('2026-09-20T06:01:00.100Z');
        await passAt('2026-09-20T06:02:00.100Z');
        const [first] = await runsOf(s.id);
        await main.runs.cancel(dataPlaneId, first!.id);
        await passAt('2026-09-20T06:03:00.100Z');
        assert.deepEqual(
          (await firings(s.id)).map((f) => [f.tick_at.toISOString(), f.outcome, f.run_id !== null]),
          [
            ['2026-09-20T06:01:00.000Z', 'started', true],
            ['2026-09-20T06:02:00.000Z', 'quota_exceeded', false],
            ['2026-09-20T06:03:00.000Z', 'started', true],
          ],
        );
        assert.equal((await runsOf(s.id)).length, 2);
        await main.schedules.pause(project.id, ACTOR, s.id);
      });

      test('two replicas ticking at once fire each tick exactly once', async () => {
        clock.set('2026-10-01T00:00:00.500Z');
        const schedules = await Promise.all(
          ['skip', 'allow_all', 'buffer_one', 'cancel_previous'].map((overlapPolicy) =>
            createSchedule({ cron: '* * * * * *', overlapPolicy: overlapPolicy as ScheduleServiceModule.NewSchedule['overlapPolicy'] }),
          ),
        );
        const second = await replica();
        for (let i = 0; i < 30; i++) {
          clock.advance(1_000);
          // Both without the ticker lock, so only the row locks and the unique firing rows decide.
          await Promise.all([main.ticker.pass(clock.now()), second.ticker.pass(clock.now()), main.ticker.pass(clock.now())]);
        }
        await second.close();
        for (const s of schedules) {
          const list = await ticks(s.id);
          assert.equal(list.length, 30);
          assert.equal(new Set(list).size, 30, 'no tick fired twice');
          const started = (await firings(s.id)).filter((f) => f.outcome === 'started').map((f) => f.run_id);
          const runs = await runsOf(s.id);
          assert.deepEqual(runs.map((r) => r.id).sort(), [...started].sort(), 'exactly the started firings have runs');
          await main.schedules.pause(projectId, ACTOR, s.id);
        }
      });
    });

    describe('REST API and two control-plane processes', () => {
      let cp: ControlPlaneFixture;
      let second: ChildProcess | null = null;
      let dataPlaneId: string;
      let worker: WorkerStream;

      before(async () => {
        cp = await startControlPlaneProcess(server, {
          env: { CAIRN_DEV_MODE: 'true', CAIRN_SCHEDULE_TICK_INTERVAL_MS: '100', CAIRN_LOG_LEVEL: 'info' },
        });
        const plane = await cp.dataPlane();
        dataPlaneId = plane.id;
        // A worker announces the workflow (it takes no runs: zero slots).
        worker = new WorkerStream(new WorkerClient(cp.grpcAddress, grpc.credentials.createInsecure()), plane.credential);
        await worker.hello({ dataPlaneId, slots: 0, workflows: [WORKFLOW] });
      });

      after(async () => {
        worker.close();
        if (second && second.exitCode === null) {
          const exited = new Promise((resolve) => second!.once('exit', resolve));
          second.kill('SIGTERM');
          await exited;
        }
        await cp.close();
      });

      test('create, list, show, update, pause, resume, trigger, backfill and delete, each with its role', async () => {
        const viewer = await cp.key('viewer');
        const operator = await cp.key('operator');
        const developer = await cp.key('developer');
        const base = '/v1/projects/default/schedules';
        const body = {
          name: 'nightly-report',
          dataPlaneId,
          workflowName: WORKFLOW.name,
          cron: '0 3 * * *',
          timeZone: 'Europe/Berlin',
          overlapPolicy: 'buffer_one',
          inputPayloadId: randomUUID(),
        };

        assert.equal((await cp.api('POST', base, { key: viewer, body })).status, 403);
        assert.equal((await cp.api('POST', base, { key: operator, body })).status, 403);
        const bad = await cp.api<{ error: { code: string; message: string } }>('POST', base, {
          key: developer,
          body: { ...body, cron: '0 3 * *' },
        });
        assert.equal(bad.status, 400);
        assert.match(bad.body.error.message, /cron: "0 3 \* \*" is not a valid cron expression/);
        const badPolicy = await cp.api<{ error: { message: string } }>('POST', base, {
          key: developer,
          body: { ...body, overlapPolicy: 'queue' },
        });
        assert.equal(badPolicy.status, 400);
        assert.match(badPolicy.body.error.message, /overlapPolicy: expected one of skip, buffer_one, allow_all, cancel_previous/);

        const created = await cp.api<{ schedule: Record<string, unknown> }>('POST', base, { key: developer, body });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const schedule = created.body.schedule;
        assert.match(String(schedule['id']), /^[0-9a-f-]{36}$/);
        assert.deepEqual(
          {
            ...schedule,
            id: undefined,
            createdAt: undefined,
            updatedAt: undefined,
            nextTickAt: undefined,
            createdBy: undefined,
            projectId: undefined,
          },
          {
            ...body,
            id: undefined,
            workflowVersion: null,
            catchUpWindowSeconds: 300,
            paused: false,
            bufferedFiringId: null,
            createdAt: undefined,
            updatedAt: undefined,
            nextTickAt: undefined,
            createdBy: undefined,
            projectId: undefined,
          },
        );
        // 03:00 in Berlin is 01:00 or 02:00 UTC.
        assert.match(String(schedule['nextTickAt']), /T0[12]:00:00\.000Z$/);

        const listed = await cp.api<{ schedules: Array<{ id: string }> }>('GET', base, { key: viewer });
        assert.deepEqual(
          listed.body.schedules.map((s) => s.id),
          [schedule['id']],
        );

        const byName = await cp.api<{ schedule: { id: string }; nextFireTimes: string[]; recentFirings: unknown[] }>(
          'GET',
          `${base}/nightly-report`,
          {
            key: viewer,
          },
        );
        assert.equal(byName.status, 200);
        assert.equal(byName.body.schedule.id, schedule['id']);
        assert.equal(byName.body.nextFireTimes.length, 5);
        assert.deepEqual(byName.body.recentFirings, []);

        const path = `${base}/${String(schedule['id'])}`;
        assert.equal((await cp.api('PATCH', path, { key: operator, body: { cron: '0 4 * * *' } })).status, 403);
        const updated = await cp.api<{ schedule: { cron: string; nextTickAt: string } }>('PATCH', path, {
          key: developer,
          body: { cron: '*/10 * * * * *', overlapPolicy: 'allow_all', timeZone: 'UTC' },
        });
        assert.equal(updated.status, 200, JSON.stringify(updated.body));
        assert.equal(updated.body.schedule.cron, '*/10 * * * * *');

        assert.equal((await cp.api('POST', `${path}/pause`, { key: viewer })).status, 403);
        const paused = await cp.api<{ schedule: { paused: boolean; nextTickAt: null } }>('POST', `${path}/pause`, { key: operator });
        assert.deepEqual([paused.status, paused.body.schedule.paused, paused.body.schedule.nextTickAt], [200, true, null]);

        // Trigger now (operator), also while paused; the run view carries the schedule and tick.
        const triggered = await cp.api<{ firing: { runId: string; outcome: string; tickAt: string; kind: string } }>(
          'POST',
          `${path}/trigger`,
          {
            key: operator,
            body: {},
          },
        );
        assert.equal(triggered.status, 201, JSON.stringify(triggered.body));
        assert.equal(triggered.body.firing.outcome, 'started');
        const run = await cp.api<{ run: { scheduleId: string; scheduleTickAt: string; status: string; workflowVersion: string } }>(
          'GET',
          `/v1/projects/default/runs/${triggered.body.firing.runId}`,
          { key: viewer },
        );
        assert.equal(run.status, 200, JSON.stringify(run.body));
        assert.deepEqual(
          [run.body.run.scheduleId, run.body.run.scheduleTickAt, run.body.run.status, run.body.run.workflowVersion],
          [schedule['id'], triggered.body.firing.tickAt, 'queued', WORKFLOW.version],
        );

        const from = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000);
        const backfilled = await cp.api<{ started: number; alreadyFired: number; firings: Array<{ tickAt: string; runId: string }> }>(
          'POST',
          `${path}/backfill`,
          { key: operator, body: { from: from.toISOString(), to: new Date(from.getTime() + 60_000).toISOString() } },
        );
        assert.equal(backfilled.status, 201, JSON.stringify(backfilled.body));
        assert.deepEqual([backfilled.body.started, backfilled.body.alreadyFired], [6, 0]);
        const preview = await cp.api<{
          dryRun: boolean;
          started: number;
          alreadyFired: number;
          ticks: Array<{ tickAt: string; alreadyFired: boolean }>;
        }>('POST', `${path}/backfill`, {
          key: operator,
          body: { from: from.toISOString(), to: new Date(from.getTime() + 120_000).toISOString(), dryRun: true },
        });
        assert.equal(preview.status, 200, JSON.stringify(preview.body));
        assert.equal(preview.body.dryRun, true);
        assert.equal(preview.body.started, 0);
        assert.deepEqual(
          preview.body.ticks.map((t) => t.alreadyFired),
          [...Array.from({ length: 6 }, () => true), ...Array.from({ length: 6 }, () => false)],
          'the ticks of the first minute were backfilled above; those of the second were not',
        );
        assert.equal(preview.body.alreadyFired, 6);
        assert.equal(
          (
            await cp.api('POST', `${path}/backfill`, {
              key: viewer,
              body: { from: from.toISOString(), to: from.toISOString(), dryRun: true },
            })
          ).status,
          403,
        );
        const tooMany = await cp.api<{ error: { message: string } }>('POST', `${path}/backfill`, {
          key: operator,
          body: { from: new Date(from.getTime() - 86_400_000).toISOString(), to: from.toISOString() },
        });
        assert.equal(tooMany.status, 400);
        assert.match(tooMany.body.error.message, /more than 1000 ticks/);

        const shown = await cp.api<{ recentFirings: Array<{ kind: string; runId: string }> }>('GET', path, { key: viewer });
        assert.deepEqual(shown.body.recentFirings.map((f) => f.kind).sort(), [
          'backfill',
          'backfill',
          'backfill',
          'backfill',
          'backfill',
          'backfill',
          'trigger',
        ]);
        assert.ok(shown.body.recentFirings.every((f) => /^[0-9a-f-]{36}$/.test(f.runId)));

        const resumed = await cp.api<{ schedule: { paused: boolean } }>('POST', `${path}/resume`, { key: operator });
        assert.equal(resumed.body.schedule.paused, false);
        await cp.api('POST', `${path}/pause`, { key: operator });

        assert.equal((await cp.api('DELETE', path, { key: operator })).status, 403);
        assert.equal((await cp.api('DELETE', path, { key: developer })).status, 200);
        assert.equal((await cp.api('GET', path, { key: viewer })).status, 404);
        // The runs it fired are kept.
        assert.equal((await cp.api('GET', `/v1/projects/default/runs/${triggered.body.firing.runId}`, { key: viewer })).status, 200);
        // Every change is in the audit log, by the key that made it.
        const audit = await cp.api<{ entries: Array<{ action: string; actor: { type: string } }> }>(
          'GET',
          `/v1/projects/default/audit?targetType=schedule&targetId=${String(schedule['id'])}&limit=50`,
        );
        assert.equal(audit.status, 200, JSON.stringify(audit.body));
        assert.deepEqual(audit.body.entries.map((e) => e.action).reverse(), [
          'schedule.created',
          'schedule.updated',
          'schedule.paused',
          'schedule.triggered',
          'schedule.backfilled',
          'schedule.resumed',
          'schedule.paused',
          'schedule.deleted',
        ]);
        assert.ok(audit.body.entries.every((e) => e.actor.type === 'api_key'));
      });

      test('two control-plane processes on one database fire each tick of a per-second schedule once', async () => {
        // A second replica on the same database.
        second = spawn(process.execPath, [controlPlaneMain], {
          env: {
            PATH: process.env['PATH'] ?? '',
            CAIRN_CP_DATABASE_URL: cp.databaseUrl,
            CAIRN_CP_HOST: '127.0.0.1',
            CAIRN_CP_HTTP_PORT: '0',
            CAIRN_CP_GRPC_PORT: '0',
            CAIRN_BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY,
            CAIRN_DEV_MODE: 'true',
            CAIRN_SCHEDULE_TICK_INTERVAL_MS: '100',
            CAIRN_LOG_LEVEL: 'info',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        second.stderr!.resume();
        await new Promise<void>((resolve, reject) => {
          createInterface({ input: second!.stdout! }).on('line', (line) => {
            if (line.includes('"control plane listening"')) resolve();
          });
          second!.once('exit', (code) => reject(new Error(`second control plane exited with ${code}`)));
        });

        const created = await cp.api<{ schedule: { id: string } }>('POST', '/v1/projects/default/schedules', {
          body: { dataPlaneId, workflowName: WORKFLOW.name, cron: '* * * * * *', overlapPolicy: 'allow_all' },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const id = created.body.schedule.id;
        const count = async (): Promise<number> =>
          Number((await cp.sql.query<{ n: string }>('SELECT count(*) AS n FROM schedule_firings WHERE schedule_id = $1', [id])).rows[0]!.n);
        await until('eight firings', async () => (await count()) >= 8);
        await cp.api('POST', `/v1/projects/default/schedules/${id}/pause`);

        const rows = (
          await cp.sql.query<{ tick_at: Date; run_id: string }>(
            'SELECT tick_at, run_id FROM schedule_firings WHERE schedule_id = $1 ORDER BY tick_at',
            [id],
          )
        ).rows;
        const seconds = rows.map((r) => r.tick_at.getTime() / 1000);
        assert.equal(new Set(seconds).size, seconds.length, 'no tick fired twice');
        for (let i = 1; i < seconds.length; i++)
          assert.equal(seconds[i]! - seconds[i - 1]!, 1, 'no tick missed between the first and the last');
        const runs = await cp.sql.query<{ id: string; schedule_tick_at: Date }>(
          'SELECT id, schedule_tick_at FROM runs WHERE schedule_id = $1',
          [id],
        );
        assert.equal(runs.rowCount, rows.length, 'one run per firing');
        assert.deepEqual(runs.rows.map((r) => r.schedule_tick_at.getTime()).sort(), rows.map((r) => r.tick_at.getTime()).sort());
      });
    });
  });
}
