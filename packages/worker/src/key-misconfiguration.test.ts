// A worker whose keys cannot open a run's data never fails the run: the execution stops without
// writing anything more (no error sealed with a key that may be wrong), and a correctly configured
// worker finishes the run afterwards.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { newId } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import { ErrorCode } from '@cairn/proto';
import { defineWorkflow, type WorkflowDefinition } from '@cairn/sdk';
import type { Engine, RunOutcome } from './engine.js';
import { SignalHub } from './signals.js';
import { FakeControlPlane, expectKind, logger } from './testing/engine-harness.js';

const K1 = randomBytes(32);
const K2 = randomBytes(32);

for (const kind of testPostgresKinds()) {
  describe(`a worker whose keys cannot open a run's data (${kind} Postgres)`, () => {
    let server: PostgresServer;
    let url: string;
    let raw: pg.Client;
    const closers: Array<() => Promise<void>> = [];
    const hasher = new Hasher(randomBytes(32));

    before(async () => {
      server = await testPostgres(kind);
      url = await server.createDatabase(uniqueDatabaseName('wkeys'));
      const first = open([['k1', K1]]);
      await first.store.migrate();
      raw = new pg.Client({ connectionString: url });
      await raw.connect();
    });
    after(async () => {
      await raw.end();
      for (const close of closers.reverse()) await close();
      await server.stop();
    });

    /** A store and an engine for one process with these keys. */
    function open(keys: Array<[string, Buffer]>): { store: PayloadStore; engine: (workflows: WorkflowDefinition[]) => Engine } {
      const store = PayloadStore.connect({ connectionString: url, keys: new KeyRing(keys.map(([id, key]) => ({ id, key }))), poolMax: 4 });
      const signals = new SignalHub(store, logger);
      closers.push(async () => {
        await signals.close();
        await store.close();
      });
      const cp = new FakeControlPlane(store, hasher, signals);
      return { store, engine: (workflows) => cp.engine(workflows, 50) };
    }

    async function stored(runId: string): Promise<{ status: string; errors: number; journal: string[] }> {
      const run = await raw.query<{ status: string }>('SELECT status FROM dp_runs WHERE run_id = $1', [runId]);
      const errors = await raw.query<{ n: number }>('SELECT count(*)::int AS n FROM dp_errors WHERE run_id = $1', [runId]);
      const journal = await raw.query<{ entry: string }>(
        "SELECT kind || ' ' || name || ' ' || status AS entry FROM dp_journal WHERE run_id = $1 ORDER BY position",
        [runId],
      );
      return { status: run.rows[0]!.status, errors: errors.rows[0]!.n, journal: journal.rows.map((r) => r.entry) };
    }

    const run = (engine: Engine, runId: string, wf: WorkflowDefinition, epoch: number): Promise<RunOutcome> =>
      engine.start({ runId, epoch, workflowName: wf.name, workflowVersion: wf.version, cancelRequested: false }).done;

    it('stops at once when the input is sealed under a key ID the worker lacks, and another worker completes the run', async () => {
      let ran = 0;
      const wf = defineWorkflow({ name: 'keys-input', version: '1' }, async (ctx, input: { n: number }) => {
        const doubled = await ctx.step('double', () => {
          ran++;
          return input.n * 2;
        });
        return { doubled };
      });
      // The gateway was rotated to k2; this worker still has only k1.
      const gateway = open([
        ['k2', K2],
        ['k1', K1],
      ]);
      const runId = newId();
      await gateway.store.createRun({ runId, workflowName: wf.name, input: { n: 21 } });

      const stale = open([['k1', K1]]);
      const outcome = expectKind(await run(stale.engine([wf]), runId, wf, 1), 'misconfigured');
      assert.equal(outcome.keyId, 'k2');
      assert.equal(outcome.error.code, 'CAIRN-3003');
      assert.equal(ran, 0);
      assert.deepEqual(await stored(runId), { status: 'open', errors: 0, journal: [] });

      expectKind(await run(gateway.engine([wf]), runId, wf, 2), 'completed');
      assert.deepEqual((await gateway.store.getRun(runId))?.output, { doubled: 42 });
      assert.equal(ran, 1);
      assert.equal((await stored(runId)).errors, 0);
    });

    it('stops mid-run at a signal body it cannot open; the next worker replays what was done and goes on', async () => {
      const calls = { before: 0, after: 0 };
      const wf = defineWorkflow({ name: 'keys-signal', version: '1' }, async (ctx) => {
        await ctx.step('before', () => ++calls.before);
        const body = await ctx.waitForSignal<{ ok: boolean }>('go');
        await ctx.step('after', () => ++calls.after);
        return body;
      });
      const stale = open([['k1', K1]]);
      const runId = newId();
      await stale.store.createRun({ runId, workflowName: wf.name, input: null });
      // The signal came through a gateway that seals with k2.
      const gateway = open([
        ['k2', K2],
        ['k1', K1],
      ]);
      await gateway.store.addSignal(runId, 'go', { ok: true });

      const outcome = expectKind(await run(stale.engine([wf]), runId, wf, 1), 'misconfigured');
      assert.equal(outcome.keyId, 'k2');
      assert.deepEqual(calls, { before: 1, after: 0 });
      const mid = await stored(runId);
      assert.equal(mid.status, 'open');
      assert.equal(mid.errors, 0, 'no error was stored for the run');
      assert.ok(!mid.journal.some((e) => e.endsWith(' failed')), mid.journal.join(', '));

      expectKind(await run(gateway.engine([wf]), runId, wf, 2), 'completed');
      assert.deepEqual((await gateway.store.getRun(runId))?.output, { ok: true });
      assert.deepEqual(calls, { before: 1, after: 1 });
    });

    it('stops when its key of the same ID is another key, sealing nothing with it', async () => {
      const wf = defineWorkflow({ name: 'keys-wrong', version: '1' }, async (ctx, input: string) => ctx.step('echo', () => input));
      const good = open([['k1', K1]]);
      const runId = newId();
      await good.store.createRun({ runId, workflowName: wf.name, input: 'hello' });

      const wrong = open([['k1', randomBytes(32)]]);
      const outcome = expectKind(await run(wrong.engine([wf]), runId, wf, 1), 'misconfigured');
      assert.equal(outcome.keyId, 'k1');
      assert.equal(outcome.error.code, 'CAIRN-3002');
      assert.deepEqual(await stored(runId), { status: 'open', errors: 0, journal: [] });

      expectKind(await run(good.engine([wf]), runId, wf, 2), 'completed');
      assert.equal((await good.store.getRun(runId))?.output, 'hello');
    });

    it('fails a run whose stored value is damaged although the key matches the store', async () => {
      const wf = defineWorkflow({ name: 'keys-damaged', version: '1' }, (_ctx, input: string) => input);
      const verified = open([['k1', K1]]);
      await verified.store.verifyKeys(hasher);
      const runId = newId();
      await verified.store.createRun({ runId, workflowName: wf.name, input: 'intact' });
      await raw.query(`UPDATE dp_runs SET input = set_byte(input, 19, get_byte(input, 19) # 255) WHERE run_id = $1`, [runId]);

      // No worker could open it: giving it back would only move it from worker to worker.
      const outcome = expectKind(await run(verified.engine([wf]), runId, wf, 1), 'failed');
      assert.equal(outcome.errorCode, ErrorCode.PAYLOAD_UNAVAILABLE);
      const error = await verified.store.getError(outcome.errorRef);
      assert.match(error?.message ?? '', /CAIRN-3002.*matches the payload store's key check: the stored value was altered/);
    });
  });
}
