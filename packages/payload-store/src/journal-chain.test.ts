import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { CairnError, ErrorCodes, newId } from '@cairn/common';
import { testPostgres, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { KeyRing, PayloadStore, plainDigest, type JournalChainHead } from './index.js';

const KEY1 = Buffer.alloc(32, 7);

describe('journal hash chain', () => {
  let server: PostgresServer;
  let url: string;
  let store: PayloadStore;
  let raw: pg.Client;
  const keys = new KeyRing([{ id: 'k1', key: KEY1 }]);

  before(async () => {
    server = await testPostgres('system');
    url = await server.createDatabase(uniqueDatabaseName('dpchain'));
    store = PayloadStore.connect({ connectionString: url, keys });
    await store.migrate();
    raw = new pg.Client({ connectionString: url });
    await raw.connect();
  });
  after(async () => {
    await raw.end();
    await store.close();
    await server.stop();
  });

  /** A run with three final entries (a step, a failed step, a signal wait) and one still waiting. */
  async function runWithJournal(): Promise<{ runId: string; head: JournalChainHead }> {
    const runId = newId();
    const t = Date.now();
    await store.createRun({ runId, workflowName: 'wf', input: { a: 1 } });
    await store.acquire(runId, 1);
    await store.append(runId, 1, [
      { position: 0, kind: 'step', name: 'charge', status: 'completed', value: { amount: 42 }, startedAt: t, endedAt: t + 1 },
      {
        position: 1,
        kind: 'step',
        name: 'notify',
        status: 'failed',
        error: { name: 'Error', message: 'mail server down' },
        startedAt: t + 2,
        endedAt: t + 3,
      },
      { position: 2, kind: 'signal', name: 'approve', status: 'waiting', startedAt: t + 4 },
    ]);
    await store.addSignal(runId, 'approve', { approved: true });
    await store.takeSignal(runId, 1, 2, 'approve', t + 4);
    await store.append(runId, 1, [{ position: 3, kind: 'sleep', name: 'later', status: 'waiting', dueAt: t + 60_000, startedAt: t + 5 }]);
    const head = await store.sealJournalChain(runId);
    return { runId, head };
  }

  it('seals final entries in order and verifies an untouched run', async () => {
    const { runId, head } = await runWithJournal();
    assert.equal(head.entries, 3, 'the waiting sleep at position 3 is not sealed yet');
    assert.match(head.head ?? '', /^[0-9a-f]{64}$/);
    assert.deepEqual(await store.sealJournalChain(runId), head, 'sealing again changes nothing');
    const report = await store.verifyJournalChain(runId, head);
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.deepEqual(report.recomputed, head);
    assert.equal(report.journalEntries, 4);
  });

  it('detects a value re-sealed with the right key (an administrator who holds the key)', async () => {
    const { runId, head } = await runWithJournal();
    const forged = keys.seal(Buffer.from(JSON.stringify({ amount: 1 })), `${runId}:journal:0`);
    await raw.query('UPDATE dp_journal SET payload = $3, key_id = $4 WHERE run_id = $1 AND position = $2', [
      runId,
      0,
      forged.blob,
      forged.keyId,
    ]);
    const report = await store.verifyJournalChain(runId, head);
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.problems.map((p) => [p.reason, p.position]),
      [
        ['entry_changed', 0],
        ['head_mismatch', 2],
      ],
    );
  });

  it('detects altered bytes, a changed signal body and a replaced error', async () => {
    const a = await runWithJournal();
    await raw.query(`UPDATE dp_journal SET payload = set_byte(payload, 20, get_byte(payload, 20) # 1) WHERE run_id = $1 AND position = 0`, [
      a.runId,
    ]);
    const ra = await store.verifyJournalChain(a.runId, a.head);
    assert.deepEqual(ra.problems[0]?.reason, 'entry_unreadable');
    assert.equal(ra.ok, false);

    const b = await runWithJournal();
    const sig = await raw.query<{ signal_id: string }>('SELECT signal_id FROM dp_journal WHERE run_id = $1 AND position = 2', [b.runId]);
    const forged = keys.seal(Buffer.from(JSON.stringify({ approved: false })), `${b.runId}:signal:${sig.rows[0]!.signal_id}`);
    await raw.query('UPDATE dp_signals SET body = $2 WHERE signal_id = $1', [sig.rows[0]!.signal_id, forged.blob]);
    const rb = await store.verifyJournalChain(b.runId, b.head);
    assert.deepEqual(rb.problems[0], {
      position: 2,
      reason: 'entry_changed',
      detail: rb.problems[0]?.detail,
    });

    const c = await runWithJournal();
    await raw.query('UPDATE dp_journal SET status = $2, error_ref = NULL WHERE run_id = $1 AND position = 1', [c.runId, 'completed']);
    const rc = await store.verifyJournalChain(c.runId, c.head);
    assert.deepEqual(rc.problems[0]?.reason, 'entry_changed');
    assert.equal(rc.problems[0]?.position, 1);
  });

  it('detects a deleted entry, in the middle and at the end, even with the hashes recomputed', async () => {
    const a = await runWithJournal();
    await raw.query('DELETE FROM dp_journal WHERE run_id = $1 AND position = 1', [a.runId]);
    const ra = await store.verifyJournalChain(a.runId, a.head);
    assert.deepEqual(ra.problems[0]?.reason, 'entry_missing');
    assert.equal(ra.problems[0]?.position, 1);

    const b = await runWithJournal();
    await raw.query('DELETE FROM dp_journal WHERE run_id = $1 AND position >= 2', [b.runId]);
    // The administrator also rewinds the data plane's own record of the chain and seals again.
    await raw.query('UPDATE dp_runs SET chain_entries = 0, chain_head = NULL WHERE run_id = $1', [b.runId]);
    await raw.query('UPDATE dp_journal SET chain_hash = NULL WHERE run_id = $1', [b.runId]);
    await store.sealJournalChain(b.runId);
    const rb = await store.verifyJournalChain(b.runId, b.head);
    assert.equal(rb.ok, false);
    assert.deepEqual(
      rb.problems.map((p) => p.reason),
      ['entry_missing'],
    );
  });

  it('detects a control-plane head that was changed, and a missing one for an ended run', async () => {
    const { runId, head } = await runWithJournal();
    const changed = await store.verifyJournalChain(runId, { entries: head.entries, head: 'f'.repeat(64) });
    assert.deepEqual(
      changed.problems.map((p) => p.reason),
      ['head_mismatch'],
    );
    // An open run whose head has not reached the control plane yet is fine…
    assert.equal((await store.verifyJournalChain(runId, null)).ok, true);
    // …an ended one is not.
    await raw.query(`UPDATE dp_runs SET status = 'completed' WHERE run_id = $1`, [runId]);
    const missing = await store.verifyJournalChain(runId, null);
    assert.deepEqual(
      missing.problems.map((p) => p.reason),
      ['head_missing'],
    );
  });

  it('applies retention: transcripts first (the chain still verifies), then whole runs, leaving a record of counts', async () => {
    const runId = newId();
    const open = newId();
    const t = Date.now();
    await store.createRun({ runId, workflowName: 'agent', input: { q: 'hi' } });
    await store.createRun({ runId: open, workflowName: 'agent', input: { q: 'still going' } });
    await store.acquire(runId, 1);
    await store.append(runId, 1, [
      {
        position: 0,
        kind: 'model',
        name: 'answer',
        status: 'completed',
        value: { text: 'hello' },
        transcript: { request: { prompt: 'hi' }, response: { text: 'hello' } },
        startedAt: t,
        endedAt: t + 1,
      },
    ]);
    await store.completeRun(runId, 1, 'hello');
    const head = await store.sealJournalChain(runId);
    await raw.query(`UPDATE dp_runs SET ended_at = now() - interval '40 days' WHERE run_id = $1`, [runId]);
    const exported = await store.exportRun(runId);

    const ago = (days: number) => new Date(Date.now() - days * 86_400_000);
    const first = await store.applyRetention({ transcriptsEndedBefore: ago(30) });
    assert.deepEqual(first, { runsDeleted: 0, transcriptsDeleted: 1 });
    assert.equal(await store.getTranscript(runId, 0), undefined);
    const report = await store.verifyJournalChain(runId, head);
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    // An export made after the transcript was deleted still recomputes the chain.
    const later = await store.exportRun(runId);
    assert.equal(later.entries[0]?.transcript, null);
    assert.equal(later.entries[0]?.transcriptDigest, plainDigest(Buffer.from(exported.entries[0]?.transcript ?? '', 'utf8')));

    const second = await store.applyRetention({ runsEndedBefore: ago(30), transcriptsEndedBefore: ago(30) });
    assert.deepEqual(second, { runsDeleted: 1, transcriptsDeleted: 0 });
    assert.equal(await store.getRun(runId), undefined);
    assert.ok(await store.getRun(open), 'a run that has not ended is kept');
    const records = await raw.query<{ runs_deleted: number; transcripts_deleted: number }>(
      'SELECT runs_deleted, transcripts_deleted FROM dp_retention_runs ORDER BY id DESC LIMIT 2',
    );
    assert.deepEqual(records.rows, [
      { runs_deleted: 1, transcripts_deleted: 0 },
      { runs_deleted: 0, transcripts_deleted: 1 },
    ]);
  });

  it("covers every entry of an ended run, also a wait that lost a race and stayed 'waiting'", async () => {
    const runId = newId();
    const t = Date.now();
    await store.createRun({ runId, workflowName: 'race', input: null });
    await store.acquire(runId, 1);
    await store.append(runId, 1, [
      { position: 0, kind: 'signal', name: 'approve', status: 'waiting', dueAt: t + 60_000, startedAt: t },
      { position: 1, kind: 'step', name: 'fallback', status: 'completed', value: 'auto', startedAt: t, endedAt: t + 1 },
    ]);
    assert.equal((await store.sealJournalChain(runId)).entries, 0, 'while the run is open the chain waits for position 0');
    await store.completeRun(runId, 1, 'auto');
    const head = await store.sealJournalChain(runId);
    assert.equal(head.entries, 2);
    assert.equal((await store.verifyJournalChain(runId, head)).ok, true);
    await raw.query(`UPDATE dp_journal SET status = 'completed' WHERE run_id = $1 AND position = 0`, [runId]);
    const changed = await store.verifyJournalChain(runId, head);
    assert.deepEqual(
      changed.problems.map((p) => [p.reason, p.position]),
      [
        ['entry_changed', 0],
        ['head_mismatch', 1],
      ],
    );
  });

  it('refuses to take a run for a task that names another workflow, writing nothing', async () => {
    const runId = newId();
    await store.createRun({ runId, workflowName: 'payroll', input: {} });
    const before = await raw.query<{ epoch: number }>('SELECT epoch FROM dp_runs WHERE run_id = $1', [runId]);
    await assert.rejects(
      store.acquire(runId, 3, { workflowName: 'exfiltrate' }),
      (err: unknown) =>
        err instanceof CairnError &&
        err.code === ErrorCodes.TASK_WORKFLOW_MISMATCH &&
        err.message.includes('"exfiltrate"') &&
        err.message.includes('"payroll"'),
    );
    const row = await raw.query<{ epoch: number }>('SELECT epoch FROM dp_runs WHERE run_id = $1', [runId]);
    assert.equal(row.rows[0]?.epoch, before.rows[0]?.epoch, 'the fence did not move');
    const { run } = await store.acquire(runId, 3, { workflowName: 'payroll' });
    assert.equal(run.workflowName, 'payroll');
  });
  it('seals entries as they are written, with the same hashes a seal from the database computes', async () => {
    const t = Date.now();
    const steps = (n: number, from = 0) =>
      Array.from({ length: n }, (_, i) => ({
        position: from + i,
        kind: 'step' as const,
        name: `s${from + i}`,
        keyDigest: i % 2 === 0 ? 'ab'.repeat(32) : undefined,
        status: 'completed' as const,
        value: { i: from + i, text: 'é'.repeat(from + i) },
        startedAt: t + 10 * (from + i) + 0.5,
        endedAt: t + 10 * (from + i) + 3,
      }));
    const inline = newId();
    const fromDb = newId();
    for (const runId of [inline, fromDb]) {
      await store.createRun({ runId, workflowName: 'wf', input: {} });
      await store.acquire(runId, 1);
    }
    for (const e of steps(5)) await store.append(inline, 1, [e]);
    // The reference run gets the same entries written together (never sealed inline) and sealed from the database.
    await store.append(fromDb, 1, steps(5));
    const sealedAsWritten = await raw.query<{ chain_entries: number; chain_head: string }>(
      'SELECT chain_entries, chain_head FROM dp_runs WHERE run_id = $1',
      [inline],
    );
    assert.equal(sealedAsWritten.rows[0]?.chain_entries, 5, 'each entry was sealed by the statement that wrote it');
    const headInline = await store.sealJournalChain(inline);
    const headDb = await store.sealJournalChain(fromDb);
    assert.equal(headDb.entries, 5);
    assert.equal(headInline.entries, 5);
    // Different runs have different genesis salts, so compare each with a fresh recomputation instead.
    for (const [runId, head] of [
      [inline, headInline],
      [fromDb, headDb],
    ] as const) {
      const report = await store.verifyJournalChain(runId, head);
      assert.deepEqual(report.problems, [], `run ${runId}`);
      assert.equal(report.ok, true);
    }

    // A run taken over by another process (the chain moved on elsewhere) falls back to sealing from the database.
    const other = PayloadStore.connect({ connectionString: url, keys });
    try {
      await store.append(inline, 1, steps(1, 5));
      // Another process of the same epoch (a test stand-in for a second writer) writes and seals position 6.
      await other.append(inline, 1, steps(1, 6));
      await other.sealJournalChain(inline);
      // This process's cursor still says 6: the next entry is written without an inline seal.
      await store.append(inline, 1, steps(1, 7));
      const head = await store.sealJournalChain(inline);
      assert.equal(head.entries, 8);
      const report = await store.verifyJournalChain(inline, head);
      assert.deepEqual(report.problems, []);
    } finally {
      await other.close();
    }
  });
});
