// Runs keep the digest derivation they started with: a run started before per-purpose digest keys
// (version 1) replays against its recorded journal keys after the upgrade, and a new run digests
// with keys per purpose and workflow (version 2).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { newId } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore, approvalSignalName } from '@cairn/payload-store';
import { defineWorkflow } from '@cairn/sdk';
import { SignalHub } from './signals.js';
import { FakeControlPlane, expectKind, logger } from './testing/engine-harness.js';

const kind = testPostgresKinds()[0]!;

describe(`digest versions of runs (${kind} Postgres)`, () => {
  let server: PostgresServer;
  let raw: pg.Client;
  let store: PayloadStore;
  let signals: SignalHub;
  let cp: FakeControlPlane;
  const hasher = new Hasher(randomBytes(32));
  const email = 'jane@example.com';
  const wf = defineWorkflow({ name: 'keyed-across-upgrade', version: '1' }, async (ctx) => {
    await ctx.step('before', { key: email }, () => 1);
    const answer = await ctx.approval('confirm', { key: email });
    await ctx.step('after', { key: email }, () => 2);
    return answer.approved;
  });

  before(async () => {
    server = await testPostgres(kind);
    const url = await server.createDatabase(uniqueDatabaseName('digests'));
    store = PayloadStore.connect({ connectionString: url, keys: new KeyRing([{ id: 'k1', key: randomBytes(32) }]) });
    await store.migrate();
    raw = new pg.Client({ connectionString: url });
    await raw.connect();
    signals = new SignalHub(store, logger);
    cp = new FakeControlPlane(store, hasher, signals);
  });
  after(async () => {
    await raw.end();
    await signals.close();
    await store.close();
    await server.stop();
  });

  const keyDigests = async (runId: string): Promise<Array<{ name: string; digest: string | null }>> =>
    (await store.loadJournal(runId)).map((e) => ({ name: e.name, digest: e.keyDigest ?? null }));

  it('a run started before per-purpose keys keeps its single-key digests and completes after the upgrade', async () => {
    const runId = await cp.start(wf, null);
    // What a gateway of the previous release wrote: no digest version, so the column's default 1.
    await raw.query('UPDATE dp_runs SET digest_version = DEFAULT WHERE run_id = $1', [runId]);
    expectKind(await cp.dispatch(cp.engine([wf], 0), runId, wf).done, 'suspended');
    const legacy = hasher.digest(email);
    assert.deepEqual(await keyDigests(runId), [
      { name: 'before', digest: legacy },
      { name: approvalSignalName('confirm', legacy), digest: null },
    ]);
    // The answer, from a gateway of this release: it digests with the run's own version.
    const scope = await store.runDigestScope(runId);
    assert.deepEqual(scope, { workflowName: 'keyed-across-upgrade', digestVersion: 1, hmacKeyId: '' });
    await store.addSignal(runId, approvalSignalName('confirm', hasher.forRun(scope.workflowName, scope.digestVersion).approval(email)), {
      approved: true,
    });
    expectKind(await cp.dispatch(cp.engine([wf], 0), runId, wf).done, 'completed');
    assert.deepEqual((await keyDigests(runId)).at(-1), { name: 'after', digest: legacy });
  });

  it('a new run digests per purpose and workflow, and a fork keeps its source’s version', async () => {
    const runId = await cp.start(wf, null);
    expectKind(await cp.dispatch(cp.engine([wf], 0), runId, wf).done, 'suspended');
    const v2 = hasher.forRun('keyed-across-upgrade', 2);
    assert.deepEqual(await keyDigests(runId), [
      { name: 'before', digest: v2.step(email) },
      { name: approvalSignalName('confirm', v2.approval(email)), digest: null },
    ]);
    assert.notEqual(v2.step(email), v2.approval(email));
    assert.notEqual(v2.step(email), hasher.digest(email));

    await raw.query('UPDATE dp_runs SET digest_version = 1 WHERE run_id = $1', [runId]);
    const forkId = newId();
    await store.forkRun(forkId, 1, { runId, position: 1 });
    assert.equal((await store.runDigestScope(forkId))?.digestVersion, 1);
  });

  it('rotates the HMAC key in two phases: runs keep the key they started with, new runs take the promoted one', async () => {
    const old = randomBytes(32);
    const next = randomBytes(32);
    const before = new FakeControlPlane(store, new Hasher(old), signals);
    const phase1 = new FakeControlPlane(store, Hasher.parse(`${old.toString('base64')},h2:${next.toString('base64')}`), signals);
    const phase2 = new FakeControlPlane(store, Hasher.parse(`h2:${next.toString('base64')},${old.toString('base64')}`), signals);
    const newOnly = new FakeControlPlane(store, new Hasher([{ id: 'h2', key: next }]), signals);

    // A run started before the rotation, waiting for its approval across both rolls.
    const runId = await before.start(wf, null);
    expectKind(await before.dispatch(before.engine([wf], 0), runId, wf).done, 'suspended');
    const oldDigests = new Hasher(old).forRun('keyed-across-upgrade', 2);
    assert.equal((await keyDigests(runId))[0]?.digest, oldDigests.step(email));

    // Phase 1 (h2 added as secondary): new runs still digest with the old key.
    assert.equal(phase1.hasher.activeKeyId, '');
    // Phase 2 (h2 promoted): a new run records h2 and digests with it.
    const promoted = newId();
    await store.createRun({ runId: promoted, workflowName: wf.name, input: null, hmacKeyId: phase2.hasher.activeKeyId });
    // …and a worker not yet rolled again (phase 1: it has h2 as secondary) runs it the same way.
    expectKind(await phase1.dispatch(phase1.engine([wf], 0), promoted, wf).done, 'suspended');
    const newDigests = new Hasher(next).forRun('keyed-across-upgrade', 2);
    assert.equal((await keyDigests(promoted))[0]?.digest, newDigests.step(email));
    assert.notEqual(newDigests.step(email), oldDigests.step(email));

    // The old run completes under phase 2 with its own key; its recorded digests still match.
    const scope = await store.runDigestScope(runId);
    assert.equal(scope?.hmacKeyId, '');
    await store.addSignal(runId, approvalSignalName('confirm', phase2.hasher.forRun(wf.name, 2, scope.hmacKeyId).approval(email)), {
      approved: true,
    });
    expectKind(await phase2.dispatch(phase2.engine([wf], 0), runId, wf).done, 'completed');
    assert.equal((await keyDigests(runId)).at(-1)?.digest, oldDigests.step(email));

    // Retiring the old key while a run still needs it: the worker gives the run back, naming the key.
    const stranded = await before.start(wf, null);
    const outcome = await newOnly.dispatch(newOnly.engine([wf], 0), stranded, wf).done;
    assert.equal(outcome.kind, 'misconfigured');
    assert.deepEqual(await keyDigests(stranded), [], 'nothing was journaled with another key');

    // Each HMAC key has its own check: a wrong key under the ID h2 is refused, naming it.
    await store.verifyKeys(phase2.hasher);
    await assert.rejects(
      store.verifyKeys(Hasher.parse(`h2:${randomBytes(32).toString('base64')},${old.toString('base64')}`)),
      /The HMAC key "h2" in CAIRN_DP_HMAC_KEY does not match the payload store/,
    );
  });
});
