// Attacks on run histories, with real processes on embedded Postgres: a database administrator of
// the data plane edits a recorded value (even re-sealing it with the data plane's own key) or
// deletes a journal entry; a database administrator of the control plane changes the journal head
// it recorded. `cairn runs verify` (through the gateway) must notice each one, and pass an untouched
// run. A signed export of journals verifies offline and refuses an archive edited, cut or re-signed
// with another key. Also: the gateway serves a run's seed to admin-scoped tokens only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { signJournalExport, type ExportedRun } from '@cairn/common';
import { KeyRing } from '@cairn/payload-store';
import { startTestStack, type TestStack } from '../harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const cliMain = join(here, '../../../apps/cli/dist/main.js');

interface Verification {
  readonly runId: string;
  readonly ok: boolean;
  readonly journalEntries: number;
  readonly recomputed: { entries: number; head: string | null };
  readonly controlPlane: { entries: number; head: string | null } | null;
  readonly problems: ReadonlyArray<{ position: number | null; reason: string; detail: string }>;
}

describe('run journals an auditor can trust', () => {
  let t: TestStack;
  let dp: pg.Client;
  let cp: pg.Client;
  const reader = `cgt_${randomBytes(32).toString('base64url')}`;
  const exportKey = generateKeyPairSync('ed25519');

  before(async () => {
    const keyFile = join(mkdtempSync(join(tmpdir(), 'cairn-journal-key-')), 'export.pem');
    writeFileSync(keyFile, exportKey.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    t = await startTestStack({
      name: 'journal',
      workers: 1,
      suspendThresholdMs: 200,
      gatewayTokens: [`${reader}:read`],
      gatewayEnv: { CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE: keyFile },
    });
    dp = new pg.Client({ connectionString: t.stack.dpDatabaseUrl });
    await dp.connect();
    cp = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await cp.connect();
  });

  after(async () => {
    await dp?.end();
    await cp?.end();
    await t?.stop();
  });

  // The CLI runs as a child process, awaited without blocking this process's event loop (a blocked
  // loop misses the gateway closing an idle keep-alive connection, and the next fetch reuses it).
  function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [cliMain, ...args],
        {
          env: {
            PATH: process.env['PATH'] ?? '',
            HOME: mkdtempSync(join(tmpdir(), 'cairn-journal-cli-')),
            CAIRN_GATEWAY_URL: t.stack.gatewayUrl,
            CAIRN_GATEWAY_TOKEN: reader,
            NO_COLOR: '1',
          },
          encoding: 'utf8',
          timeout: 60_000,
        },
        (err, stdout, stderr) => {
          const code = err && typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : err ? null : 0;
          resolve({ status: code, stdout, stderr });
        },
      );
    });
  }

  /** `cairn runs verify RUN` as a user runs it: its exit code, its words and its JSON. */
  async function cliVerify(runId: string): Promise<{ status: number | null; text: string; json: Verification }> {
    const text = await cli(['runs', 'verify', runId]);
    const json = await cli(['runs', 'verify', runId, '-o', 'json']);
    assert.equal(json.status, text.status, json.stderr);
    return { status: text.status, text: text.stdout + text.stderr, json: JSON.parse(json.stdout) as Verification };
  }

  /** A completed five-step run, with the head the control plane recorded for it. */
  async function completedRun(): Promise<{ runId: string; head: { entries: number; head: string } }> {
    const runId = await t.start('five-steps', { step3Ms: 0, stepMs: 0 });
    const result = await t.result(runId);
    assert.equal(result.status, 'completed');
    const row = await cp.query<{ entries: number; head: string }>('SELECT entries, head FROM run_journal_heads WHERE run_id = $1', [runId]);
    assert.ok(row.rows[0], 'the control plane recorded a journal head before the run completed');
    return { runId, head: row.rows[0] };
  }

  it('an untouched run verifies, and the head crossed as a digest of all its entries', async () => {
    const { runId, head } = await completedRun();
    assert.equal(head.entries, 5);
    assert.match(head.head, /^[0-9a-f]{64}$/);
    const v = await cliVerify(runId);
    assert.equal(v.status, 0, v.text);
    assert.match(
      v.text,
      new RegExp(`✓ journal of run ${runId} intact: 5 of 5 entries sealed and recomputed here, matching the control plane's head`),
    );
    assert.equal(v.json.ok, true);
    assert.deepEqual(v.json.controlPlane, head);
    assert.deepEqual(v.json.recomputed, head);

    // A run that suspended for a signal and resumed on another lease verifies too.
    const waiting = await t.start('signal-waiter', { delayMs: 0, timeoutMs: 60_000 });
    await t.waitForRun(waiting, (r) => r.status === 'suspended');
    const suspendedHead = await cp.query<{ entries: number }>('SELECT entries FROM run_journal_heads WHERE run_id = $1', [waiting]);
    assert.equal(suspendedHead.rows[0]?.entries, 1, 'the head of the suspended run covers its first step');
    assert.equal((await t.signal(waiting, 'go', { ok: true })).status, 202);
    assert.equal((await t.result(waiting)).status, 'completed');
    const resumed = await cliVerify(waiting);
    assert.equal(resumed.status, 0, resumed.text);
    assert.equal(resumed.json.recomputed.entries, 2);
  });

  it('detects a recorded value edited in the data plane, even re-sealed with the data plane key', async () => {
    const { runId } = await completedRun();
    // The administrator holds the encryption key too: the forged value opens cleanly.
    const keys = KeyRing.parse(t.stack.secrets.encryptionKeys);
    const forged = keys.seal(Buffer.from(JSON.stringify('done-2-but-refunded-twice')), `${runId}:journal:1`);
    await dp.query('UPDATE dp_journal SET payload = $2, key_id = $3 WHERE run_id = $1 AND position = 1', [
      runId,
      forged.blob,
      forged.keyId,
    ]);
    const v = await cliVerify(runId);
    assert.equal(v.status, 1, v.text);
    assert.match(v.text, new RegExp(`✗ journal of run ${runId} does not verify \\[CAIRN-1190\\]`));
    assert.match(v.text, /position 1: the entry at position 1 \(step "step-2"\) no longer gives the hash sealed for it/);
    assert.deepEqual(
      v.json.problems.map((p) => [p.reason, p.position]),
      [
        ['entry_changed', 1],
        ['head_mismatch', 4],
      ],
    );
  });

  it('detects an entry deleted in the data plane, even with the chain sealed again over what is left', async () => {
    const { runId } = await completedRun();
    await dp.query('DELETE FROM dp_journal WHERE run_id = $1 AND position = 2', [runId]);
    const v = await cliVerify(runId);
    assert.equal(v.status, 1, v.text);
    assert.match(v.text, /position 2: there is no journal entry at position 2: it was deleted \(entry_missing\)/);

    // Deleting the last entries and resealing the data plane's own record leaves the control plane's head unmatched.
    const second = await completedRun();
    await dp.query('DELETE FROM dp_journal WHERE run_id = $1 AND position >= 3', [second.runId]);
    await dp.query('UPDATE dp_journal SET chain_hash = NULL WHERE run_id = $1', [second.runId]);
    await dp.query('UPDATE dp_runs SET chain_entries = 0, chain_head = NULL WHERE run_id = $1', [second.runId]);
    const w = await cliVerify(second.runId);
    assert.equal(w.status, 1, w.text);
    assert.deepEqual(
      w.json.problems.map((p) => p.reason),
      ['entry_missing'],
    );
    assert.match(w.text, /the control plane recorded a journal of 5 entries, but only 3 verify here: entries were deleted/);
  });

  it("detects the control plane's recorded head changed by its database administrator", async () => {
    const { runId } = await completedRun();
    await cp.query('UPDATE run_journal_heads SET head = $2 WHERE run_id = $1', [runId, 'ab'.repeat(32)]);
    const v = await cliVerify(runId);
    assert.equal(v.status, 1, v.text);
    assert.deepEqual(
      v.json.problems.map((p) => p.reason),
      ['head_mismatch'],
    );
    assert.match(
      v.text,
      /is not the head the control plane recorded: the control plane’s record was changed, or the journal up to that entry was rewritten/,
    );

    // Deleting the control plane's record of an ended run is noticed as well.
    const other = await completedRun();
    await cp.query('DELETE FROM run_journal_heads WHERE run_id = $1', [other.runId]);
    const w = await cliVerify(other.runId);
    assert.equal(w.status, 1, w.text);
    assert.deepEqual(
      w.json.problems.map((p) => p.reason),
      ['head_missing'],
    );
  });

  it('exports runs signed, verifies the export offline, and refuses a tampered or re-signed one', async () => {
    const a = await completedRun();
    const b = await completedRun();
    const dir = mkdtempSync(join(tmpdir(), 'cairn-journal-export-'));
    const out = join(dir, 'runs.jsonl');
    const exported = await cli(['runs', 'export', a.runId, b.runId, '--out', out]);
    assert.equal(exported.status, 0, exported.stderr);
    assert.match(exported.stdout, new RegExp(`2 runs exported to ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, signed by key ed25519-`));
    assert.equal((await cli(['runs', 'export', a.runId, '--out', out])).status, 2, 'an existing file is never overwritten');
    const pinned = exportKey.publicKey.export({ format: 'jwk' }).x!;

    const good = await cli(['runs', 'verify-export', out, '--public-key', pinned]);
    assert.equal(good.status, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /✓ export .* intact: signed by key ed25519-[0-9a-f]{16} \(pinned\)/);
    assert.match(good.stdout, new RegExp(`✓ run ${a.runId}: 5 entries, chain of 5 entries matches the control plane's head`));
    const text = readFileSync(out, 'utf8');
    // The archive holds the recorded values, in the data plane's customer's hands only.
    assert.ok(text.includes(JSON.stringify(JSON.stringify('done-2')).slice(1, -1)));

    // One recorded value changed in the archive.
    const edited = join(dir, 'edited.jsonl');
    writeFileSync(edited, text.replace('done-2', 'done-9'));
    const e = await cli(['runs', 'verify-export', edited, '--public-key', pinned]);
    assert.equal(e.status, 1, e.stdout);
    assert.match(e.stdout, /✗ export .* does not verify \[CAIRN-1193\]/);
    assert.match(e.stdout, /the lines before the signature are not the ones that were signed/);
    assert.match(e.stdout, /do not give the chain head the data plane sealed/);

    // A run dropped from the archive.
    const lines = text.trimEnd().split('\n');
    const cut = join(dir, 'cut.jsonl');
    writeFileSync(cut, `${[lines[0], lines[2], lines[3]].join('\n')}\n`);
    const c = await cli(['runs', 'verify-export', cut, '--public-key', pinned]);
    assert.equal(c.status, 1, c.stdout);
    assert.match(c.stdout, /a line was changed, added or removed/);

    // Edited and signed again with another key, which carries itself: the pinned key refuses it.
    const forger = generateKeyPairSync('ed25519');
    const runs = lines.slice(1, -1).map((l) => JSON.parse(l.replace('done-2', 'done-9')) as ExportedRun);
    const forged = join(dir, 'forged.jsonl');
    writeFileSync(forged, signJournalExport(runs, { keyId: 'ed25519-0000000000000000', ...forger }));
    const f = await cli(['runs', 'verify-export', forged, '--public-key', pinned]);
    assert.equal(f.status, 1, f.stdout);
    assert.match(f.stdout, /the signature does not verify with the trusted key/);
  });

  it('serves the run seed to admin-scoped tokens only', async () => {
    const { runId } = await completedRun();
    const asReader = await fetch(`${t.stack.gatewayUrl}/v1/runs/${runId}/journal`, { headers: { authorization: `Bearer ${reader}` } });
    assert.equal(asReader.status, 200);
    const readable = (await asReader.json()) as { seed: string | null; entries: unknown[] };
    assert.equal(readable.seed, null);
    assert.equal(readable.entries.length, 5);
    const asAdmin = (await (await t.gateway('GET', `/v1/runs/${runId}/journal`)).json()) as { seed: string | null };
    assert.equal(Buffer.from(asAdmin.seed ?? '', 'base64').length, 32);
  });
});
