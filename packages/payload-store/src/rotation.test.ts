import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import pg from 'pg';
import { ErrorCodes, newId } from '@cairn/common';
import { testPostgres, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore, keysStillNeeded } from './index.js';
import { SEALED_COLUMNS } from './reencrypt.js';

const now = () => Date.now();
const K1 = randomBytes(32);
const K2 = randomBytes(32);
const HMAC = new Hasher(randomBytes(32));
const ring = (...ids: Array<'k1' | 'k2'>): KeyRing => new KeyRing(ids.map((id) => ({ id, key: id === 'k1' ? K1 : K2 })));

describe('key rotation and re-encryption', () => {
  let server: PostgresServer;
  let url: string;
  let raw: pg.Client;
  const stores: PayloadStore[] = [];
  const open = async (keys: KeyRing): Promise<PayloadStore> => {
    const store = PayloadStore.connect({ connectionString: url, keys });
    stores.push(store);
    await store.migrate();
    await store.verifyKeys(HMAC);
    return store;
  };
  /** A run with an input, a step result, a signal body and an output, written by `store`. */
  const writeRun = async (store: PayloadStore, marker: string): Promise<string> => {
    const runId = newId();
    await store.createRun({ runId, workflowName: 'wf', input: { marker, part: 'input' } });
    await store.acquire(runId, 1);
    await store.append(runId, 1, [
      { position: 0, kind: 'step', name: 's', status: 'completed', value: { marker, part: 'step' }, startedAt: now(), endedAt: now() },
    ]);
    await store.addSignal(runId, 'approve', { marker, part: 'signal' });
    assert.ok(await store.takeSignal(runId, 1, 1, 'approve', now()));
    await store.completeRun(runId, 1, { marker, part: 'output' });
    return runId;
  };
  /** Reads back everything `writeRun` wrote, through `store`. */
  const readRun = async (store: PayloadStore, runId: string, marker: string): Promise<void> => {
    const run = await store.getRun(runId);
    assert.deepEqual(run?.input, { marker, part: 'input' });
    assert.deepEqual(run?.output, { marker, part: 'output' });
    const journal = await store.loadJournal(runId);
    assert.deepEqual(journal[0]?.value, { marker, part: 'step' });
    assert.deepEqual(journal[1]?.value, { marker, part: 'signal' });
  };
  const keyIdsOf = async (runId: string): Promise<string[]> =>
    (
      await raw.query<{ k: string }>(
        `SELECT input_key_id AS k FROM dp_runs WHERE run_id = $1 UNION ALL SELECT output_key_id FROM dp_runs WHERE run_id = $1
         UNION ALL SELECT key_id FROM dp_journal WHERE run_id = $1 UNION ALL SELECT key_id FROM dp_signals WHERE run_id = $1`,
        [runId],
      )
    ).rows.flatMap((r) => (r.k === null ? [] : [r.k]));

  before(async () => {
    server = await testPostgres('system');
    url = await server.createDatabase(uniqueDatabaseName('rot'));
    raw = new pg.Client({ connectionString: url });
    await raw.connect();
  });
  after(async () => {
    for (const s of stores) await s.close();
    await raw.end();
    await server.stop();
  });

  it('rotates in two phases with every value readable by every process at every step, then retires the old key', async () => {
    const old = await open(ring('k1'));
    const before = await writeRun(old, 'before');

    // Phase 1: k2 added as secondary. Rolled processes still seal with k1, so the processes not yet
    // rolled (k1 only) read what they write.
    const phase1 = await open(ring('k1', 'k2'));
    const during1 = await writeRun(phase1, 'during1');
    assert.deepEqual(await keyIdsOf(during1), ['k1', 'k1', 'k1', 'k1']);
    await readRun(old, during1, 'during1');

    // Phase 2: k2 promoted. Every process already has k2 (phase 1 rolled), so the ones not yet
    // rolled again read what the promoted ones write; old data stays readable.
    const phase2 = await open(ring('k2', 'k1'));
    const during2 = await writeRun(phase2, 'during2');
    assert.deepEqual(await keyIdsOf(during2), ['k2', 'k2', 'k2', 'k2']);
    await readRun(phase1, during2, 'during2');
    await readRun(phase2, before, 'before');
    await readRun(phase2, during1, 'during1');

    // The check tells that k1 is still needed, and a process without k1 cannot read its data.
    const usage = await phase2.keyUsage();
    assert.deepEqual(keysStillNeeded(usage, phase2.keys).keyIds, ['k1']);
    const withoutK1 = await open(ring('k2'));
    await assert.rejects(withoutK1.getRun(before), (err: { code?: string }) => err.code === ErrorCodes.UNKNOWN_KEY);

    // A run sealed before per-run keys (format 1: AES-GCM under the data key itself) is rewritten too.
    const legacy = await writeRun(old, 'legacy');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', K1, iv);
    cipher.setAAD(Buffer.from(`${legacy}:input`, 'utf8'));
    const body = Buffer.concat([cipher.update(Buffer.from(JSON.stringify({ marker: 'legacy', part: 'input' }))), cipher.final()]);
    await raw.query('UPDATE dp_runs SET input = $2 WHERE run_id = $1', [legacy, Buffer.concat([iv, cipher.getAuthTag(), body])]);
    await readRun(phase2, legacy, 'legacy');
    assert.equal(keysStillNeeded(await phase2.keyUsage(), phase2.keys).format1, 1);

    // Re-encryption, in batches of 2, resumable: a second pass finds nothing left.
    const batches: number[] = [];
    const first = await phase2.reencrypt({ batchSize: 2, onBatch: (b) => batches.push(b.rewritten) });
    assert.equal(first.skipped, 0);
    assert.equal(first.rewritten, 12, 'three runs of four values each were sealed with k1');
    assert.ok(batches.every((n) => n <= 2));
    assert.deepEqual(await phase2.reencrypt({ batchSize: 2 }), { rewritten: 0, skipped: 0 });
    const after = keysStillNeeded(await phase2.keyUsage(), phase2.keys);
    assert.deepEqual(after, { keyIds: [], format1: 0 });

    // k1 retired: a process holding only k2 reads every run.
    for (const [runId, marker] of [
      [before, 'before'],
      [during1, 'during1'],
      [during2, 'during2'],
      [legacy, 'legacy'],
    ] as const) {
      await readRun(withoutK1, runId, marker);
    }
  });

  it('leaves a value another process rewrote between the job’s read and write as that process wrote it', async () => {
    const old = await open(ring('k1'));
    const runId = await writeRun(old, 'raced');
    const promoted = await open(ring('k2', 'k1'));
    let raced = false;
    const result = await promoted.reencrypt({
      batchSize: 1000,
      betweenReadAndWrite: async (table, column) => {
        if (table !== 'dp_runs' || column !== 'output' || raced) return;
        raced = true;
        // A worker that holds k1 and k2 rewrites the run's output meanwhile (sealed with k1 here, so
        // the job would have rewritten it too had it not changed).
        const sealed = ring('k1').seal(Buffer.from(JSON.stringify({ marker: 'raced', part: 'rewritten' })), `${runId}:output`);
        await raw.query('UPDATE dp_runs SET output = $2, output_key_id = $3 WHERE run_id = $1', [runId, sealed.blob, sealed.keyId]);
      },
    });
    assert.ok(raced);
    assert.ok(result.skipped >= 1, 'the raced value was skipped');
    assert.deepEqual((await promoted.getRun(runId))?.output, { marker: 'raced', part: 'rewritten' }, 'the other write survived');
    // A second pass (resumable) finishes the job.
    await promoted.reencrypt();
    assert.deepEqual(keysStillNeeded(await promoted.keyUsage(), promoted.keys).keyIds, []);
  });

  it('knows every sealed column of the schema (the job and the check miss none)', async () => {
    await open(ring('k2', 'k1'));
    const bytea = await raw.query<{ t: string; c: string }>(
      `SELECT table_name AS t, column_name AS c FROM information_schema.columns
        WHERE table_schema = 'public' AND data_type = 'bytea' AND table_name LIKE 'dp\\_%' ORDER BY 1, 2`,
    );
    // The run's seed, its journal chain salt and the key checks are not sealed values: the seed and
    // the salt are random, a check is public.
    const sealed = bytea.rows
      .filter((r) => !(r.t === 'dp_runs' && (r.c === 'seed' || r.c === 'chain_salt')) && r.t !== 'dp_key_checks')
      .map((r) => `${r.t}.${r.c}`);
    assert.deepEqual(sealed, SEALED_COLUMNS.map((s) => `${s.table}.${s.blobColumn}`).sort());
  });

  it('refuses run A’s ciphertext copied into run B, and a value swapped between slots of one run', async () => {
    const store = await open(ring('k2', 'k1'));
    const a = await writeRun(store, 'run-a');
    const b = await writeRun(store, 'run-b');
    await raw.query('UPDATE dp_runs SET input = (SELECT input FROM dp_runs WHERE run_id = $1) WHERE run_id = $2', [a, b]);
    await assert.rejects(store.getRun(b), (err: { code?: string; message?: string }) => {
      assert.equal(err.code, ErrorCodes.DECRYPT_FAILED);
      assert.doesNotMatch(String(err.message), /run-a/);
      return true;
    });
    await raw.query('UPDATE dp_runs SET output = input WHERE run_id = $1', [a]);
    await assert.rejects(store.getRun(a), (err: { code?: string }) => err.code === ErrorCodes.DECRYPT_FAILED);
  });
});
