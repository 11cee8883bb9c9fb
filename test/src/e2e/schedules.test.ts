import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { startTestStack, type TestStack } from '../harness.js';

interface Firing {
  kind: string;
  tickAt: string;
  outcome: string;
  runId: string | null;
}
interface ScheduleDetail {
  schedule: { id: string; paused: boolean; nextTickAt: string | null; updatedAt: string };
  recentFirings: Firing[];
}

/**
 * Schedules with real processes: the input is stored through the gateway, a per-second schedule
 * on the control plane fires runs that a worker completes with that input, and the control plane's
 * database never holds the input's content.
 */
describe('schedules fire runs whose input stays in the data plane', () => {
  let t: TestStack;
  const marker = `sched-marker-${randomUUID()}`;
  before(async () => {
    t = await startTestStack({ name: 'schedules', workers: 1 });
  });
  after(async () => {
    await t?.stop();
  });

  // The caller names the shape of the JSON body it expects (a typed cast, as `res.json() as T`).
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  const cp = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}/v1/projects/default${path}`, {
      method,
      headers: {
        authorization: `Bearer ${t.stack.secrets.apiToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as T };
  };
  const storePayload = async (payload: unknown): Promise<string> => {
    const res = await t.gateway('POST', '/v1/payloads', {
      body: JSON.stringify(payload),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.status, 201, await res.clone().text());
    return ((await res.json()) as { payloadId: string }).payloadId;
  };
  const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it('a per-second schedule runs with the stored input until paused', async () => {
    const input = { marker, note: 'the schedule input', n: 42 };
    const payloadId = await storePayload(input);
    const read = await t.gateway('GET', `/v1/payloads/${payloadId}`);
    assert.equal(read.status, 200);
    assert.deepEqual(((await read.json()) as { payload: unknown }).payload, input);

    const created = await cp<{ schedule: { id: string } }>('POST', '/schedules', {
      name: 'every-second',
      dataPlaneId: t.stack.secrets.dataPlaneId,
      workflowName: 'scheduled-echo',
      cron: '* * * * * *',
      timeZone: 'UTC',
      overlapPolicy: 'allow_all',
      inputPayloadId: payloadId,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.schedule.id;

    let detail: ScheduleDetail | undefined;
    await until('three started firings', async () => {
      detail = (await cp<ScheduleDetail>('GET', `/schedules/${id}`)).body;
      return detail.recentFirings.filter((f) => f.outcome === 'started').length >= 3;
    });
    const runIds = detail!.recentFirings.filter((f) => f.runId !== null).map((f) => f.runId!);
    for (const runId of runIds.slice(0, 3)) {
      const result = await t.result(runId);
      assert.equal(result.status, 'completed', JSON.stringify(result));
      assert.deepEqual(result.output, { got: input }, 'the run got the stored payload as its input');
      const { run } = await t.describe(runId);
      const view = run as unknown as { scheduleId: string; scheduleTickAt: string; inputSize: number };
      assert.equal(view.scheduleId, id);
      assert.ok(detail!.recentFirings.some((f) => f.runId === runId && f.tickAt === view.scheduleTickAt));
    }

    const paused = await cp<ScheduleDetail>('POST', `/schedules/${id}/pause`);
    assert.equal(paused.status, 200);
    assert.deepEqual([paused.body.schedule.paused, paused.body.schedule.nextTickAt], [true, null]);
    // Every run fired before the pause ends; no tick after the pause fired.
    const all = (await cp<ScheduleDetail>('GET', `/schedules/${id}`)).body.recentFirings;
    for (const f of all) if (f.runId) assert.equal((await t.result(f.runId)).status, 'completed');
    const after = (await cp<ScheduleDetail>('GET', `/schedules/${id}`)).body;
    assert.equal(after.recentFirings.length, all.length, 'no firing while paused');
    assert.ok(after.recentFirings.every((f) => f.tickAt <= paused.body.schedule.updatedAt));
  });

  it('a run whose input payload was deleted fails with payload_unavailable, its message kept in the data plane', async () => {
    const payloadId = await storePayload({ marker, gone: true });
    const created = await cp<{ schedule: { id: string } }>('POST', '/schedules', {
      dataPlaneId: t.stack.secrets.dataPlaneId,
      workflowName: 'scheduled-echo',
      cron: '0 0 1 1 *',
      inputPayloadId: payloadId,
      paused: true,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const deleted = await t.gateway('DELETE', `/v1/payloads/${payloadId}`);
    assert.equal(deleted.status, 200);
    assert.equal((await t.gateway('GET', `/v1/payloads/${payloadId}`)).status, 404);

    const fired = await cp<{ firing: { runId: string; outcome: string } }>('POST', `/schedules/${created.body.schedule.id}/trigger`, {});
    assert.equal(fired.status, 201, JSON.stringify(fired.body));
    const result = await t.result(fired.body.firing.runId);
    assert.equal(result.status, 'failed');
    assert.match(result.error!.message, /CAIRN-3005.*it was deleted/);
    const run = await t.waitForRun(fired.body.firing.runId, (r) => r.status === 'failed');
    assert.equal(run.errorCode, 'payload_unavailable');
  });

  it("the control plane's database never holds the input's content", async () => {
    await t.stack.stop();
    const db = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await db.connect();
    const where: string[] = [];
    try {
      const tables = await db.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
      for (const { tablename } of tables.rows) {
        const r = await db.query<{ row: string }>(`SELECT t::text AS row FROM "${tablename}" t`);
        if (r.rows.some((x) => x.row.includes(marker) || x.row.includes('the schedule input'))) where.push(tablename);
      }
      const firings = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schedule_firings');
      assert.ok(firings.rows[0]!.n >= 4, 'the control plane did record the firings');
    } finally {
      await db.end();
    }
    for (const replica of t.stack.controlPlanes) {
      if (readFileSync(replica.process.logFile, 'utf8').includes(marker)) where.push(`log ${replica.process.logFile}`);
    }
    assert.deepEqual(where, [], 'the schedule input reached the control plane');
  });
});
