import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createLogger } from '@cairn/common';
import { freePort, testPostgres, testPostgresKinds, uniqueDatabaseName } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import { defineWorkflow } from '@cairn/sdk';
import { Worker, type WorkerOptions } from './worker.js';

const logger = createLogger('worker-test', 'silent');

async function options(overrides: Partial<WorkerOptions> = {}): Promise<WorkerOptions> {
  return {
    controlPlaneAddress: `127.0.0.1:${await freePort()}`,
    credential: 'token',
    dataPlaneId: '4f1c2b7e-9d7a-4c43-9a51-0e6f3b1d2c11',
    // Unreachable unless a test gives its own.
    store: PayloadStore.connect({
      connectionString: 'postgres://nobody@127.0.0.1:1/none',
      keys: new KeyRing([{ id: 'k1', key: randomBytes(32) }]),
    }),
    hasher: new Hasher(randomBytes(32)),
    workflows: [defineWorkflow({ name: 'noop', version: '1' }, () => null)],
    logger,
    ...overrides,
  };
}

describe('Worker', () => {
  it('rejects invalid options naming each problem', async () => {
    assert.throws(
      () => new Worker({ ...({} as WorkerOptions), ...({ dataPlaneId: 'local', slots: 0, workflows: [] } as Partial<WorkerOptions>) }),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /dataPlaneId must be a lowercase UUID/);
        assert.match(err.message, /slots must be a whole number of at least 1/);
        assert.match(err.message, /credential is required/);
        assert.match(err.message, /workflows must list at least one workflow/);
        return true;
      },
    );
    const twice = defineWorkflow({ name: 'dup', version: '1' }, () => 1);
    await assert.rejects(async () => new Worker(await options({ workflows: [twice, twice] })), /registered twice/);
  });

  it('start() waits for the control plane, and shutdown() ends that wait', async () => {
    const server = await testPostgres(testPostgresKinds()[0]!);
    const store = PayloadStore.connect({
      connectionString: await server.createDatabase(uniqueDatabaseName('worker')),
      keys: new KeyRing([{ id: 'k1', key: randomBytes(32) }]),
    });
    try {
      await store.migrate();
      const worker = new Worker(await options({ drainTimeoutMs: 1000, store }));
      const started = assert.rejects(worker.start(), /shut down before it connected/);
      // The schemas are catalogued, then the worker keeps dialling a control plane that is not there.
      for (const giveUp = Date.now() + 10_000; (await store.catalogue('noop')).length === 0 && Date.now() < giveUp;) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(worker.connected, false);
      await worker.shutdown();
      await started;
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('start() fails when the payload store cannot be reached to catalogue the schemas', async () => {
    const worker = new Worker(await options());
    await assert.rejects(worker.start(), /CAIRN-1110.*could not catalogue its workflow schemas.*CAIRN_DP_DATABASE_URL/);
    await worker.shutdown();
  });
});
