// Payloads stored for schedules, and the input a scheduled run gets from one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { newId } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { KeyRing, PayloadStore } from './index.js';

const missing = { name: 'CairnError', message: '[CAIRN-3005] the payload is gone', code: 'CAIRN-3005', errorCode: 'PAYLOAD_UNAVAILABLE' };

for (const kind of testPostgresKinds()) {
  describe(`schedule payloads on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let url: string;
    let store: PayloadStore;

    before(async () => {
      server = await testPostgres(kind);
      url = await server.createDatabase(uniqueDatabaseName('dppay'));
      store = PayloadStore.connect({ connectionString: url, keys: new KeyRing([{ id: 'k1', key: Buffer.alloc(32, 7) }]) });
      await store.migrate();
    });
    after(async () => {
      await store.close();
      await server.stop();
    });

    it('stores a payload sealed, reads it back and deletes it', async () => {
      const marker = `payload-${newId()}`;
      const { payloadId, size } = await store.putPayload({ marker, list: [1, 2] });
      assert.equal(size, Buffer.byteLength(JSON.stringify({ marker, list: [1, 2] })));
      const read = await store.getPayload(payloadId);
      assert.deepEqual(read?.value, { marker, list: [1, 2] });
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      const row = await raw.query<{ text: string; key_id: string }>(
        "SELECT encode(payload, 'escape') AS text, key_id FROM dp_payloads WHERE payload_id = $1",
        [payloadId],
      );
      await raw.end();
      assert.equal(row.rows[0]?.key_id, 'k1');
      assert.doesNotMatch(row.rows[0].text, new RegExp(marker), 'sealed at rest');
      assert.equal(await store.deletePayload(payloadId), true);
      assert.equal(await store.getPayload(payloadId), undefined);
      assert.equal(await store.deletePayload(payloadId), false);
    });

    it("creates a scheduled run's input once: a re-dispatch neither duplicates nor changes it", async () => {
      const { payloadId } = await store.putPayload({ n: 1 });
      const runId = newId();
      assert.equal(await store.createRunFromPayload({ runId, workflowName: 'wf', payloadId }, missing), 'created');
      // The payload changes meaning (deleted, another one stored): the run keeps what it got first.
      await store.deletePayload(payloadId);
      assert.equal(await store.createRunFromPayload({ runId, workflowName: 'wf', payloadId }, missing), 'exists');
      const { run } = await store.acquire(runId, 1);
      assert.deepEqual([run.status, run.input], ['open', { n: 1 }]);
      // Concurrent creations of one run: one creates it, the others find it.
      const other = newId();
      const { payloadId: second } = await store.putPayload({ n: 2 });
      const outcomes = await Promise.all(
        [0, 1, 2].map(() => store.createRunFromPayload({ runId: other, workflowName: 'wf', payloadId: second }, missing)),
      );
      assert.deepEqual(outcomes.filter((o) => o === 'created').length, 1);
      // Without a payload the input is null.
      const bare = newId();
      await store.createRunFromPayload({ runId: bare, workflowName: 'wf', payloadId: undefined }, missing);
      assert.equal((await store.getRun(bare))?.input, null);
    });

    it('a run whose payload was deleted is created failed, with the error kept here', async () => {
      const runId = newId();
      assert.equal(await store.createRunFromPayload({ runId, workflowName: 'wf', payloadId: newId() }, missing), 'missing');
      const run = await store.getRun(runId);
      assert.equal(run?.status, 'failed');
      const error = await store.getError(run.errorRef!);
      assert.equal(error?.message, missing.message);
      assert.equal(await store.createRunFromPayload({ runId, workflowName: 'wf', payloadId: newId() }, missing), 'exists');
    });
  });
}
