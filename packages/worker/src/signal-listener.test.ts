// Signal waits and the payload store's LISTEN connection: when the database drops it, a signal
// sent afterwards still wakes a waiting run long before its deadline, also after an outage in
// which every reconnect fails for a while.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import { StepStatus } from '@cairn/proto';
import { SignalTimeoutError, defineWorkflow } from '@cairn/sdk';
import { SignalHub } from './signals.js';
import { FakeControlPlane, expectKind, logger, pause } from './testing/engine-harness.js';

const LISTENER = 'signal-wait-test-listener';

/** Polls until `check` holds (no time limit of its own: the test's timeout bounds it). */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await pause(20);
}

// The wait's deadline is far beyond the test's timeout: a run that completes with the signal was
// woken by it, not by the deadline.
const waiting = defineWorkflow({ name: 'waits-for-go', version: '1' }, async (ctx) => {
  try {
    return await ctx.waitForSignal<string>('go', { timeout: '10m' });
  } catch (err) {
    if (err instanceof SignalTimeoutError) return 'timed out';
    throw err;
  }
});

for (const kind of testPostgresKinds()) {
  describe(`signal waits across a lost LISTEN connection on ${kind} Postgres`, { timeout: 120_000 }, () => {
    let server: PostgresServer;
    let database: string;
    let store: PayloadStore;
    let signals: SignalHub;
    let cp: FakeControlPlane;

    before(async () => {
      server = await testPostgres(kind);
      database = uniqueDatabaseName('wl');
      const url = await server.createDatabase(database);
      store = PayloadStore.connect({
        connectionString: url,
        keys: new KeyRing([{ id: 'k1', key: randomBytes(32) }]),
        applicationName: 'signal-wait-test',
        logger,
      });
      await store.migrate();
      signals = new SignalHub(store, logger);
      cp = new FakeControlPlane(store, new Hasher(randomBytes(32)), signals);
    });
    after(async () => {
      await server.admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await signals.close();
      await store.close();
      await server.stop();
    });

    /** Ends the listener's backend, as a failover, a restart or an idle-timeout proxy would. */
    const terminateListener = async (): Promise<void> => {
      const r = await server.admin('SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1', [
        LISTENER,
      ]);
      assert.equal((r.rows[0] as { n: number }).n, 1, 'the listener was connected');
    };

    /** Starts a run that waits in memory for `go`, and resolves once it is waiting. */
    const startWaiting = async () => {
      const runId = await cp.start(waiting, null);
      const execution = cp.dispatch(cp.engine([waiting], 3_600_000), runId, waiting);
      // The wait is reported once it found no signal in the store; it then waits for a notification.
      await until(() => cp.reportsFor(runId).some((r) => r.step?.status === StepStatus.WAITING));
      assert.equal(store.listenerState.connected, true);
      return { runId, execution };
    };

    it('wakes a waiting run with a signal sent after its LISTEN connection was killed', async () => {
      const { runId, execution } = await startWaiting();
      await terminateListener();
      await store.addSignal(runId, 'go', 'after the kill');
      expectKind(await execution.done, 'completed');
      assert.equal((await store.getRun(runId))?.output, 'after the kill');
    });

    it('wakes a waiting run with a signal sent during a long outage, once the connection is back', async () => {
      const { runId, execution } = await startWaiting();
      const before = store.listenerState;
      // A pooled connection stays open for the signal itself; only new connections are refused.
      await store.ping();
      await server.admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
      await terminateListener();
      await until(() => !store.listenerState.connected);
      // Its NOTIFY goes out while nobody listens: only the gap wakes the wait.
      await store.addSignal(runId, 'go', 'during the outage');
      await until(() => store.listenerState.failedAttempts >= before.failedAttempts + 3);
      await server.admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
      expectKind(await execution.done, 'completed');
      assert.equal((await store.getRun(runId))?.output, 'during the outage');
      assert.equal(store.listenerState.connected, true);
      assert.equal(store.listenerState.reconnects, before.reconnects + 1);
    });
  });
}
