import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { CairnError, schemaDigest } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { KeyRing, PayloadStore, type CatalogueSchema, type CatalogueVersion } from './index.js';

const input = { type: 'object', properties: { amount: { type: 'number', minimum: 0 } }, required: ['amount'] };
const approval = { type: 'object', properties: { approved: { type: 'boolean' } }, required: ['approved'] };
const schema = (kind: CatalogueSchema['kind'], json: Record<string, unknown>, signalName?: string): CatalogueSchema => ({
  kind,
  ...(signalName === undefined ? {} : { signalName }),
  schema: json,
  digest: schemaDigest(json),
});

for (const kind of testPostgresKinds()) {
  describe(`schema catalogue on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let url: string;
    let store: PayloadStore;
    const keys = new KeyRing([{ id: 'k1', key: Buffer.alloc(32, 1) }]);
    const count = async (table: string): Promise<number> => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
      } finally {
        await client.end();
      }
    };

    before(async () => {
      server = await testPostgres(kind);
      url = await server.createDatabase(uniqueDatabaseName('catalogue'));
      store = PayloadStore.connect({ connectionString: url, keys });
      await store.migrate();
    });
    after(async () => {
      await store.close();
      await server.stop();
    });

    it('adds versions once, with their schemas or none, and reads them back per workflow', async () => {
      const refund1: CatalogueVersion = {
        name: 'refund',
        version: '1',
        schemas: [schema('input', input), schema('signal', approval, 'approval')],
      };
      const bare: CatalogueVersion = { name: 'refund', version: '0', schemas: [] };
      const first = await store.catalogueSchemas([refund1, bare]);
      assert.deepEqual(first, { added: ['refund@1', 'refund@0'], unchanged: [], replaced: [] });
      // The same schemas again, keys in another order: unchanged (the digest is over canonical JSON).
      const reordered = { required: ['amount'], properties: { amount: { minimum: 0, type: 'number' } }, type: 'object' };
      const again = await store.catalogueSchemas([
        { ...refund1, schemas: [schema('signal', approval, 'approval'), schema('input', reordered)] },
        bare,
      ]);
      assert.deepEqual(again, { added: [], unchanged: ['refund@1', 'refund@0'], replaced: [] });

      const catalogue = await store.catalogue('refund');
      assert.deepEqual(
        catalogue.map((v) => [v.version, v.schemas.map((s) => [s.kind, s.signalName ?? null, s.digest === schemaDigest(s.schema)])]),
        [
          ['0', []],
          [
            '1',
            [
              ['input', null, true],
              ['signal', 'approval', true],
            ],
          ],
        ],
      );
      assert.deepEqual(catalogue[1]!.schemas[0]!.schema, input);
      assert.deepEqual(await store.catalogue('nothing-here'), []);
    });

    it('refuses changed schemas of a catalogued version, naming the workflow and what differs, and writes nothing', async () => {
      await store.catalogueSchemas([{ name: 'ship', version: '1', schemas: [schema('input', input)] }]);
      await store.catalogueSchemas([{ name: 'ship', version: '2', schemas: [] }]);
      const before = await count('dp_schemas');
      const changed = { ...input, properties: { amount: { type: 'integer' } } };
      await assert.rejects(
        store.catalogueSchemas([
          { name: 'ship', version: '3', schemas: [] },
          { name: 'ship', version: '1', schemas: [schema('input', changed), schema('signal', approval, 'approval')] },
          { name: 'ship', version: '2', schemas: [schema('output', input)] },
        ]),
        (err: unknown) => {
          assert.ok(err instanceof CairnError);
          assert.equal(err.code, 'CAIRN-1117');
          assert.match(
            err.message,
            /workflow ship@1: the input schema changed \(digest [0-9a-f]{12}… → [0-9a-f]{12}…\); the schema of signal "approval" is new/,
          );
          assert.match(err.message, /workflow ship@2: the output schema is new/);
          assert.match(err.message, /give the changed workflow a new version/);
          return true;
        },
      );
      assert.equal(await count('dp_schemas'), before, 'nothing was written');
      assert.deepEqual(
        (await store.catalogue('ship')).map((v) => v.version),
        ['1', '2'],
        'ship@3 was not added either',
      );
      await assert.rejects(store.catalogueSchemas([{ name: 'ship', version: '1', schemas: [] }]), /the input schema was removed/);
    });

    it('replaces changed schemas when asked (development), and tells listeners which workflow changed', async () => {
      const heard: string[] = [];
      const stop = await store.onSchemasChanged((name) => heard.push(name));
      try {
        await store.catalogueSchemas([{ name: 'draft', version: 'dev', schemas: [schema('input', input)] }]);
        const changed = { type: 'object', properties: { amount: { type: 'string' } } };
        const result = await store.catalogueSchemas([{ name: 'draft', version: 'dev', schemas: [schema('input', changed)] }], {
          replaceChanged: true,
        });
        assert.deepEqual(result.replaced, ['draft@dev']);
        assert.deepEqual((await store.catalogue('draft'))[0]!.schemas[0]!.schema, changed);
        // Unchanged versions are not announced.
        await store.catalogueSchemas([{ name: 'draft', version: 'dev', schemas: [schema('input', changed)] }]);
        for (const giveUp = Date.now() + 5000; heard.length < 2 && Date.now() < giveUp;) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(heard, ['draft', 'draft']);
      } finally {
        await stop();
      }
    });

    it('checks what it is given: digests that match, one schema per kind and signal', async () => {
      await assert.rejects(
        store.catalogueSchemas([{ name: 'x', version: '1', schemas: [{ kind: 'input', schema: input, digest: '0'.repeat(64) }] }]),
        /the input schema of workflow x@1: the digest does not match the schema/,
      );
      await assert.rejects(
        store.catalogueSchemas([{ name: 'x', version: '1', schemas: [schema('signal', approval)] }]),
        /a signal schema names its signal/,
      );
      await assert.rejects(
        store.catalogueSchemas([{ name: 'x', version: '1', schemas: [schema('input', input), schema('input', approval)] }]),
        /the input schema of workflow x@1 is given twice/,
      );
    });

    it("knows a run's workflow without opening its input", async () => {
      const runId = '6a0a1f0e-2d7b-4a39-9c57-1f2e3d4c5b6a';
      await store.createRun({ runId, workflowName: 'refund', input: { amount: 1 } });
      assert.equal(await store.runWorkflowName(runId), 'refund');
      assert.equal(await store.runWorkflowName('00000000-0000-4000-8000-000000000000'), undefined);
    });
  });
}
