import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { newId } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import {
  FencedError,
  Hasher,
  KeyRing,
  MAX_STREAM_PLAINTEXT_BYTES,
  PayloadStore,
  packStreamEvents,
  unpackStreamEvents,
  type SequencedStreamEvent,
  type StreamEvent,
  type UnnotifiedSignal,
} from './index.js';

const now = () => Date.now();
const KEY1 = Buffer.alloc(32, 1);

for (const kind of testPostgresKinds()) {
  describe(`payload store on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let url: string;
    let store: PayloadStore;
    const keys = new KeyRing([{ id: 'k1', key: KEY1 }]);

    before(async () => {
      server = await testPostgres(kind);
      url = await server.createDatabase(uniqueDatabaseName('dp'));
      store = PayloadStore.connect({ connectionString: url, keys });
      await store.migrate();
    });
    after(async () => {
      await store.close();
      await server.stop();
    });

    it('migrates idempotently, also from several processes at once', async () => {
      const others = [0, 1, 2].map(() => PayloadStore.connect({ connectionString: url, keys }));
      const applied = await Promise.all(others.map((s) => s.migrate()));
      assert.deepEqual(applied, [[], [], []]);
      await Promise.all(others.map((s) => s.close()));
    });

    it('encrypts payloads at rest with the key id stored beside them', async () => {
      const runId = newId();
      const marker = `secret-${newId()}`;
      await store.createRun({ runId, workflowName: 'wf', input: { marker } });
      await store.acquire(runId, 1);
      await store.append(runId, 1, [
        { position: 0, kind: 'step', name: 's', status: 'completed', value: { marker }, startedAt: now(), endedAt: now() },
      ]);
      await store.addSignal(runId, 'approve', { marker });
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      const dump = await raw.query(
        `SELECT (SELECT string_agg(encode(input, 'escape'), '') FROM dp_runs) || (SELECT string_agg(encode(payload, 'escape'), '') FROM dp_journal) || (SELECT string_agg(encode(body, 'escape'), '') FROM dp_signals) AS all`,
      );
      const keyIds = await raw.query<{ input_key_id: string }>('SELECT input_key_id FROM dp_runs WHERE run_id = $1', [runId]);
      await raw.end();
      assert.ok(!(dump.rows[0] as { all: string }).all.includes(marker), 'plaintext found in the database');
      assert.equal(keyIds.rows[0]?.input_key_id, 'k1');
      const journal = await store.loadJournal(runId);
      assert.deepEqual(journal[0]?.value, { marker });
    });

    it('reads data sealed with an older key after rotation, and refuses an unknown key clearly', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: 'before rotation' });
      const rotated = PayloadStore.connect({
        connectionString: url,
        keys: new KeyRing([
          { id: 'k2', key: Buffer.alloc(32, 7) },
          { id: 'k1', key: KEY1 },
        ]),
      });
      assert.equal((await rotated.getRun(runId))?.input, 'before rotation');
      const run2 = newId();
      await rotated.createRun({ runId: run2, workflowName: 'wf', input: 'after rotation' });
      await assert.rejects(store.getRun(run2), /CAIRN-3003.*k2.*not in CAIRN_DP_ENCRYPTION_KEYS/);
      await rotated.close();
    });

    it('fences journal writes by lease epoch', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: null });
      await store.acquire(runId, 1);
      await store.append(runId, 1, [{ position: 0, kind: 'step', name: 'a', status: 'completed', value: 1, startedAt: now() }]);
      await store.acquire(runId, 2);
      await assert.rejects(
        store.append(runId, 1, [{ position: 1, kind: 'step', name: 'b', status: 'completed', value: 2, startedAt: now() }]),
        (e: unknown) => e instanceof FencedError && /held under epoch 2/.test(e.message),
      );
      await assert.rejects(store.acquire(runId, 1), FencedError);
      await assert.rejects(store.completeRun(runId, 1, 'x'), FencedError);
      await store.append(runId, 2, [{ position: 1, kind: 'step', name: 'b', status: 'completed', value: 2, startedAt: now() }]);
      const journal = await store.loadJournal(runId);
      assert.deepEqual(
        journal.map((e) => [e.position, e.value, e.epoch]),
        [
          [0, 1, 1],
          [1, 2, 2],
        ],
      );
    });

    it("writes nothing when a new run's first lease takes it, and still fences the epochs after it", async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: { n: 1 } });
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      try {
        const version = async (): Promise<{ xmin: string; epoch: number }> =>
          (await raw.query<{ xmin: string; epoch: number }>('SELECT xmin::text, epoch FROM dp_runs WHERE run_id = $1', [runId])).rows[0]!;
        const created = await version();
        const { run, journal } = await store.acquire(runId, 1, { workflowName: 'wf' });
        assert.deepEqual([run.epoch, journal.length], [1, 0]);
        // The row is the one the insert wrote: the first acquire committed no change to it.
        assert.deepEqual(await version(), created);
        await store.append(runId, 1, [{ position: 0, kind: 'step', name: 'a', status: 'completed', value: 1, startedAt: now() }]);
        assert.equal((await store.acquire(runId, 1)).journal.length, 1, 'the same lease takes it again, with its journal');
        await store.acquire(runId, 2);
        assert.equal((await version()).epoch, 2);
        await assert.rejects(store.acquire(runId, 1), FencedError);
        await assert.rejects(
          store.append(runId, 1, [{ position: 1, kind: 'step', name: 'b', status: 'completed', value: 2, startedAt: now() }]),
          FencedError,
        );
      } finally {
        await raw.end();
      }
    });

    it('never overwrites a final journal entry', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: null });
      await store.acquire(runId, 1);
      await store.append(runId, 1, [{ position: 0, kind: 'step', name: 'a', status: 'completed', value: 'first', startedAt: now() }]);
      await store.append(runId, 1, [{ position: 0, kind: 'step', name: 'a', status: 'completed', value: 'second', startedAt: now() }]);
      assert.equal((await store.readEntry(runId, 0))?.value, 'first');
    });

    it('keeps retry errors, with message and stack, in the data plane', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: null });
      await store.acquire(runId, 1);
      const { errorRefs } = await store.append(runId, 1, [
        {
          position: 0,
          kind: 'step',
          name: 'a',
          status: 'retrying',
          attempt: 1,
          error: { name: 'Error', message: 'card declined', stack: 'at x' },
          dueAt: now() + 1000,
          startedAt: now(),
        },
      ]);
      const ref = errorRefs.get(0);
      if (!ref) throw new Error('no error ref returned');
      const stored = await store.getError(ref);
      assert.equal(stored?.message, 'card declined');
      assert.equal(stored?.position, 0);
      const entry = await store.readEntry(runId, 0);
      assert.equal(entry?.status, 'retrying');
      assert.equal(entry?.error?.message, 'card declined');
    });

    it('keeps a signal sent before the wait and consumes signals in arrival order, once', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: null });
      await store.addSignal(runId, 'approve', { n: 1 });
      await store.addSignal(runId, 'approve', { n: 2 });
      await store.addSignal(runId, 'other', { n: 3 });
      await store.acquire(runId, 1);
      assert.deepEqual((await store.takeSignal(runId, 1, 0, 'approve', now()))?.body, { n: 1 });
      assert.deepEqual((await store.takeSignal(runId, 1, 1, 'approve', now()))?.body, { n: 2 });
      assert.equal(await store.takeSignal(runId, 1, 2, 'approve', now()), undefined);
      const journal = await store.loadJournal(runId);
      assert.deepEqual(
        journal.map((e) => [e.kind, e.name, e.value]),
        [
          ['signal', 'approve', { n: 1 }],
          ['signal', 'approve', { n: 2 }],
        ],
      );
      await store.acquire(runId, 2);
      await assert.rejects(store.takeSignal(runId, 1, 2, 'other', now()), FencedError);
    });

    it('stores a signal ID once: a repeat with an equal body stores nothing, another body is refused', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: null });
      const signalId = newId();
      assert.equal((await store.addSignal(runId, 'approve', { a: 1, b: [2] }, signalId)).created, true);
      // Equal JSON, keys in another order.
      assert.equal((await store.addSignal(runId, 'approve', { b: [2], a: 1 }, signalId)).created, false);
      await assert.rejects(store.addSignal(runId, 'approve', { a: 2, b: [2] }, signalId), /CAIRN-1108.*another body/);
      await assert.rejects(store.addSignal(runId, 'other', { a: 1, b: [2] }, signalId), /CAIRN-1108.*another run or name/);
      await store.acquire(runId, 1);
      assert.deepEqual((await store.takeSignal(runId, 1, 0, 'approve', now()))?.body, { a: 1, b: [2] });
      assert.equal((await store.addSignal(runId, 'approve', { a: 1, b: [2] }, signalId)).created, false, 'consumed: still a repeat');
      assert.equal(await store.takeSignal(runId, 1, 1, 'approve', now()), undefined);
      // Deleted (its sending failed): the ID is free again.
      const retried = newId();
      await store.addSignal(runId, 'approve', null, retried);
      assert.equal(await store.deleteSignalIfUnconsumed(retried), true);
      assert.equal((await store.addSignal(runId, 'approve', null, retried)).created, true);
      await assert.rejects(store.addSignal(newId(), 'approve', null, newId()), /CAIRN-3004/);
    });

    it('lists the signals the control plane was not told of, oldest first and paged, until they are marked told', async () => {
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      const age = (signalId: string, seconds: number) =>
        raw.query('UPDATE dp_signals SET received_at = received_at - make_interval(secs => $2) WHERE signal_id = $1', [signalId, seconds]);
      try {
        const runId = newId();
        await store.createRun({ runId, workflowName: 'wf', input: null });
        const [older, old, young] = [newId(), newId(), newId()];
        for (const id of [older, old, young]) await store.addSignal(runId, 'approve', { id }, id);
        await age(older, 120);
        await age(old, 60);
        const owed = async (after?: UnnotifiedSignal) =>
          (await store.unnotifiedSignals(30_000, 1000, after)).filter((s) => s.runId === runId);
        const listed = await owed();
        assert.deepEqual(
          listed.map((s) => [s.signalId, s.name, s.consumed]),
          [
            [older, 'approve', false],
            [old, 'approve', false],
          ],
          'older than the age, oldest first; the young one is left to its request',
        );
        assert.deepEqual(
          (await owed(listed[0])).map((s) => s.signalId),
          [old],
          'the next page starts after the last one listed',
        );
        await store.acquire(runId, 1);
        await store.takeSignal(runId, 1, 0, 'approve', now());
        assert.deepEqual(
          (await owed()).map((s) => s.consumed),
          [true, false],
        );
        await store.markSignalsNotified([older]);
        assert.deepEqual(
          (await owed()).map((s) => s.signalId),
          [old],
        );
        // A fork's copies of consumed signals are its journal, owed to nobody.
        const fork = newId();
        await store.forkRun(fork, 1, { runId, position: 1 });
        await raw.query('UPDATE dp_signals SET received_at = received_at - make_interval(mins => 5) WHERE run_id = $1', [fork]);
        assert.equal((await store.unnotifiedSignals(30_000, 1000)).filter((s) => s.runId === fork).length, 0);
      } finally {
        await raw.end();
      }
    });

    it('notifies listeners of new signals', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: null });
      const seen: string[] = [];
      const got = new Promise<void>((resolve) => {
        void store
          .onSignal((r, name) => {
            if (r === runId) {
              seen.push(name);
              resolve();
            }
          })
          .then((stop) => got.finally(() => stop()));
      });
      // The listener connects asynchronously; send until it hears one.
      for (let i = 0; i < 50 && seen.length === 0; i++) {
        await store.addSignal(runId, 'ping', i);
        await new Promise((r) => setTimeout(r, 20));
      }
      await got;
      assert.equal(seen[0], 'ping');
    });

    it('completes and fails idempotently for the same epoch', async () => {
      const a = newId();
      await store.createRun({ runId: a, workflowName: 'wf', input: null });
      await store.acquire(a, 1);
      const first = await store.completeRun(a, 1, { ok: true });
      assert.deepEqual(await store.completeRun(a, 1, { ok: true }), first);
      assert.deepEqual((await store.getRun(a))?.output, { ok: true });
      const b = newId();
      await store.createRun({ runId: b, workflowName: 'wf', input: null });
      await store.acquire(b, 3);
      const f1 = await store.failRun(b, 3, { name: 'Error', message: 'nope' });
      const f2 = await store.failRun(b, 3, { name: 'Error', message: 'nope' });
      assert.equal(f1.errorRef, f2.errorRef);
      assert.equal((await store.getError(f1.errorRef))?.message, 'nope');
    });

    it('journals model calls with their state between attempts and one sealed transcript', async () => {
      const runId = newId();
      const marker = `prompt-${newId()}`;
      await store.createRun({ runId, workflowName: 'wf', input: null });
      await store.acquire(runId, 1);
      const state = { modelIndex: 1, attempts: [{ attempt: 1, text: marker }] };
      await store.append(runId, 1, [
        {
          position: 0,
          kind: 'model',
          name: 'answer',
          status: 'retrying',
          attempt: 1,
          value: state,
          error: { name: 'AI_APICallError', message: 'Service Unavailable' },
          dueAt: now() + 1000,
          startedAt: now(),
        },
      ]);
      const retrying = await store.readEntry(runId, 0);
      assert.deepEqual([retrying?.kind, retrying?.status, retrying?.value], ['model', 'retrying', state]);
      assert.equal(await store.getTranscript(runId, 0), undefined);

      const transcript = { request: { prompt: marker }, response: { text: 'ok' }, attempts: 2 };
      const { sizes } = await store.append(runId, 1, [
        {
          position: 0,
          kind: 'model',
          name: 'answer',
          status: 'completed',
          attempt: 2,
          value: { text: 'ok' },
          transcript,
          startedAt: now(),
        },
      ]);
      assert.ok((sizes.get(0) ?? 0) > 0);
      // A second final write (a retried commit) keeps the first transcript.
      await store.append(runId, 1, [
        {
          position: 0,
          kind: 'model',
          name: 'answer',
          status: 'completed',
          attempt: 2,
          value: { text: 'no' },
          transcript: { other: 1 },
          startedAt: now(),
        },
      ]);
      const stored = await store.getTranscript(runId, 0);
      assert.deepEqual(stored?.transcript, transcript);
      assert.equal(stored?.size, Buffer.byteLength(JSON.stringify(transcript)));
      assert.deepEqual((await store.readEntry(runId, 0))?.value, { text: 'ok' });

      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      const dump = await raw.query<{ all: string }>(
        `SELECT (SELECT string_agg(encode(payload, 'escape'), '') FROM dp_transcripts WHERE run_id = $1) ||
                (SELECT string_agg(encode(payload, 'escape'), '') FROM dp_journal WHERE run_id = $1) AS all`,
        [runId],
      );
      await raw.end();
      assert.ok(!dump.rows[0]!.all.includes(marker), 'plaintext found in the database');
      await store.acquire(runId, 2);
      await assert.rejects(
        store.append(runId, 1, [
          { position: 1, kind: 'model', name: 'b', status: 'completed', value: 1, transcript: {}, startedAt: now() },
        ]),
        FencedError,
      );
      assert.equal(await store.getTranscript(runId, 1), undefined);
    });

    it('publishes live output sealed, in order, split under the NOTIFY limit', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: null });
      const marker = `delta-${newId()}`;
      const received: SequencedStreamEvent[] = [];
      let notifications = 0;
      const stop = await store.onStream((r, events) => {
        if (r !== runId) return;
        notifications++;
        received.push(...events);
      });
      const raw = new pg.Client({ connectionString: url });
      const payloads: string[] = [];
      raw.on('notification', (n) => payloads.push(n.payload ?? ''));
      await raw.connect();
      await raw.query('LISTEN cairn_dp_stream');
      try {
        const long = `${marker} ${'é😀"\\'.repeat(3000)}`;
        await store.publishStream(runId, [{ type: 'delta', position: 2, name: 'story', attempt: 1, text: 'Hello, ' }]);
        await store.publishStream(runId, [
          { type: 'delta', position: 2, name: 'story', attempt: 1, text: long },
          { type: 'model-done', position: 2, name: 'story', attempt: 1 },
        ]);
        // Both listeners have heard every notification once the last event is in and the counts match.
        for (let i = 0; i < 200 && (received.at(-1)?.type !== 'model-done' || payloads.length < notifications); i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        const text = received.map((e) => (e.type === 'delta' ? e.text : '')).join('');
        assert.equal(text, `Hello, ${long}`);
        assert.equal(received.at(-1)?.type, 'model-done');
        assert.ok(received.length > 3, 'the long delta was split');
        assert.equal(payloads.length, notifications);
        assert.ok(payloads.length > 2 && payloads.every((p) => Buffer.byteLength(p) < 8000));
        assert.ok(!payloads.some((p) => p.includes(marker) || p.includes('Hello')), 'stream payloads are sealed');
        assert.deepEqual(
          received.map((e) => e.seq),
          received.map((_, i) => i + 1),
          'every event heard carries the next sequence number',
        );
        // What was heard is what is stored, sealed: a late reader gets the same events with the same numbers.
        assert.deepEqual(await store.readStream(runId, 0), received);
        assert.deepEqual(await store.readStream(runId, 2, 3), received.slice(2, 5));
        assert.deepEqual(await store.readStream(runId, received.length), []);
        const stored = await raw.query<{ all: string }>(
          "SELECT string_agg(encode(payload, 'escape'), '') AS all FROM dp_stream_events WHERE run_id = $1",
          [runId],
        );
        assert.ok(stored.rows[0]!.all.length > 0);
        assert.equal(stored.rows[0]!.all.includes(marker), false, 'stored stream events are sealed');
      } finally {
        await stop();
        await raw.end();
      }
    });

    it('numbers the stream events of concurrent publishers of one run without gaps, in commit order', async () => {
      const runId = newId();
      await store.createRun({ runId, workflowName: 'wf', input: null });
      const heard: SequencedStreamEvent[] = [];
      const stop = await store.onStream((r, events) => {
        if (r === runId) heard.push(...events);
      });
      try {
        const publishers = Array.from({ length: 8 }, (_, p) =>
          (async () => {
            for (let i = 0; i < 10; i++) {
              await store.publishStream(runId, [{ type: 'delta', position: p, name: `call-${p}`, attempt: 1, text: `${p}.${i} ` }]);
            }
          })(),
        );
        const given = await Promise.all(publishers);
        assert.equal(given.length, 8);
        for (let i = 0; i < 200 && heard.length < 80; i++) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual(
          heard.map((e) => e.seq),
          Array.from({ length: 80 }, (_, i) => i + 1),
          'heard in sequence order',
        );
        const stored = await store.readStream(runId, 0, 1000);
        assert.deepEqual(stored, heard);
        // Each publisher's own events keep their order.
        for (let p = 0; p < 8; p++) {
          const texts = stored.filter((e) => e.position === p).map((e) => (e.type === 'delta' ? e.text : ''));
          assert.deepEqual(
            texts,
            Array.from({ length: 10 }, (_, i) => `${p}.${i} `),
          );
        }
        // The events go with the run.
        await store.deleteRun(runId);
        assert.deepEqual(await store.readStream(runId, 0), []);
      } finally {
        await stop();
      }
    });

    it('refuses to publish for a run it does not hold', async () => {
      await assert.rejects(store.publishStream(newId(), [{ type: 'model-done', position: 0, name: 'x', attempt: 1 }]));
    });

    it('lists and deletes only old runs no worker took, re-checking as it deletes', async () => {
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      const age = (runId: string, minutes: number) =>
        raw.query('UPDATE dp_runs SET created_at = created_at - make_interval(mins => $2) WHERE run_id = $1', [runId, minutes]);
      try {
        const [orphan, journaled, later, young, ended, child] = [newId(), newId(), newId(), newId(), newId(), newId()];
        for (const runId of [orphan, journaled, later, young, ended]) await store.createRun({ runId, workflowName: 'wf', input: { n: 1 } });
        await store.createRun({ runId: child, workflowName: 'wf', input: { n: 1 } }, { idempotent: true });
        await store.append(journaled, 1, [
          { position: 0, kind: 'step', name: 's', status: 'completed', value: 1, startedAt: now(), endedAt: now() },
        ]);
        await store.acquire(later, 2);
        await store.acquire(ended, 1);
        await store.completeRun(ended, 1, 'done');
        for (const runId of [orphan, journaled, later, ended, child]) await age(runId, 30);
        await age(young, 5);
        const cutoff = 10 * 60_000;
        const listed = (await store.orphanRunCandidates(cutoff, 1000)).map((c) => c.runId);
        assert.deepEqual(
          [orphan, journaled, later, young, ended, child].filter((r) => listed.includes(r)),
          [orphan, child],
        );
        // Paged: the page after the orphan goes on with the child.
        const first = (await store.orphanRunCandidates(cutoff, 1000)).find((c) => c.runId === orphan);
        assert.ok(first);
        assert.ok((await store.orphanRunCandidates(cutoff, 1000, first)).every((c) => c.runId !== orphan));
        // The parent replays its child call after the list was taken: the repeat create keeps the row.
        await store.createRun({ runId: child, workflowName: 'wf', input: { n: 1 } }, { idempotent: true });
        // Runs that do not qualify (any more) are not deleted even when named.
        assert.equal(await store.deleteOrphanRuns([orphan, journaled, later, young, ended, child], cutoff), 1);
        assert.equal(await store.getRun(orphan), undefined);
        for (const runId of [journaled, later, young, ended, child]) assert.ok(await store.getRun(runId), runId);
        assert.equal(await store.deleteOrphanRuns([orphan], cutoff), 0, 'deleting twice deletes nothing');
      } finally {
        await raw.end();
      }
    });

    it('says clearly when a run is unknown', async () => {
      await assert.rejects(store.acquire(newId(), 1), /CAIRN-3004.*no input in this data plane/);
      await assert.rejects(store.addSignal(newId(), 'x', 1), /CAIRN-3004/);
    });
  });
}

describe('live output packing', () => {
  it('packs small events together and splits long text between code points', () => {
    const small: StreamEvent[] = [
      { type: 'delta', position: 0, name: 'a', attempt: 1, text: 'one' },
      { type: 'model-done', position: 0, name: 'a', attempt: 1 },
    ];
    assert.deepEqual(packStreamEvents(small).map(unpackStreamEvents), [small]);
    const text = '😀'.repeat(5000) + '\n"'.repeat(2000);
    const payloads = packStreamEvents([{ type: 'delta', position: 1, name: 'b', attempt: 2, text }]);
    assert.ok(payloads.length > 1);
    assert.ok(payloads.every((p) => Buffer.byteLength(p) <= MAX_STREAM_PLAINTEXT_BYTES));
    const back = payloads.flatMap(unpackStreamEvents);
    assert.equal(back.map((e) => (e.type === 'delta' ? e.text : '')).join(''), text);
    assert.deepEqual(unpackStreamEvents('not json'), []);
    assert.deepEqual(unpackStreamEvents('[{"type":"delta"}]'), []);
  });
});

describe('keys', () => {
  it('rejects malformed key specs with a clear message', () => {
    assert.throws(() => KeyRing.parse('nocolon'), /id:base64key/);
    assert.throws(() => KeyRing.parse('k1:' + Buffer.alloc(16).toString('base64')), /must be 32 bytes/);
    assert.throws(() => Hasher.parse(Buffer.alloc(8).toString('base64')), /at least 32 bytes/);
  });

  it('detects tampering', () => {
    const ring = KeyRing.parse(KeyRing.generateSpec());
    const sealed = ring.seal(Buffer.from('hello'), 'run:input');
    assert.equal(ring.open(sealed, 'run:input').toString(), 'hello');
    assert.throws(() => ring.open(sealed, 'other:input'), /CAIRN-3002/);
    const flipped = Buffer.from(sealed.blob);
    flipped[flipped.length - 1]! ^= 1;
    assert.throws(() => ring.open({ keyId: sealed.keyId, blob: flipped }, 'run:input'), /CAIRN-3002/);
  });

  it('hashes user keys with HMAC-SHA256', () => {
    const h = new Hasher(Buffer.alloc(32, 1));
    assert.match(h.digest('jane@example.com'), /^[0-9a-f]{64}$/);
    assert.equal(h.digest('a'), h.digest('a'));
    assert.notEqual(h.digest('a'), new Hasher(Buffer.alloc(32, 2)).digest('a'));
  });
});
