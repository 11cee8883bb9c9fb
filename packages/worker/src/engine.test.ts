import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from '@cairn/payload-store';
import { ErrorCode, StepKind, StepStatus, SuspendReason } from '@cairn/proto';
import { CancelledError, ChildWorkflowFailedError, SignalTimeoutError, StepFailedError, TerminalError, defineWorkflow } from '@cairn/sdk';
import type { RunOutcome } from './engine.js';
import { SignalHub } from './signals.js';
import { FakeControlPlane, expectKind, logger, pause } from './testing/engine-harness.js';

for (const kind of testPostgresKinds()) {
  describe(`replay engine on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let store: PayloadStore;
    let signals: SignalHub;
    let cp: FakeControlPlane;

    before(async () => {
      server = await testPostgres(kind);
      const url = await server.createDatabase(uniqueDatabaseName('w'));
      store = PayloadStore.connect({ connectionString: url, keys: new KeyRing([{ id: 'k1', key: randomBytes(32) }]) });
      await store.migrate();
      signals = new SignalHub(store, logger);
      cp = new FakeControlPlane(store, new Hasher(randomBytes(32)), signals);
    });

    after(async () => {
      await signals.close();
      await store.close();
      await server.stop();
    });

    it('replays recorded step results without running the steps again', async () => {
      const calls = { a: 0, b: 0, c: 0 };
      const wf = defineWorkflow({ name: 'replay', version: '1' }, async (ctx, input: { n: number }) => {
        const a = await ctx.step('a', () => ++calls.a * input.n);
        const b = await ctx.step('b', { key: 'user@example.com' }, () => ({ doubled: a * 2, call: ++calls.b }));
        await ctx.sleep(300);
        const c = await ctx.step('c', () => ++calls.c);
        return { a, b, c };
      });
      const engine = cp.engine([wf], 20);
      const runId = await cp.start(wf, { n: 21 });
      const { outcome, outcomes } = await cp.drive(engine, runId, wf);
      assert.equal(outcomes.length, 2);
      expectKind(outcomes[0]!, 'suspended');
      expectKind(outcome, 'completed');
      assert.deepEqual(calls, { a: 1, b: 1, c: 1 });
      const run = await store.getRun(runId);
      assert.deepEqual(run?.output, { a: 21, b: { doubled: 42, call: 1 }, c: 1 });

      // The second dispatch re-reported the journal, with the key only as a digest.
      const bReports = cp.reportsFor(runId).filter((r) => r.step?.name === 'b' && r.step.status === StepStatus.COMPLETED);
      assert.ok(bReports.length >= 2);
      assert.match(bReports[0]!.step!.keyDigest, /^[0-9a-f]{64}$/);
      assert.ok(!JSON.stringify(bReports.map((r) => r.step?.keyDigest)).includes('example.com'));

      // A run already completed in the data plane reports its outcome again without running.
      const again = await cp.dispatch(engine, runId, wf).done;
      assert.equal(expectKind(again, 'completed').outputSize, (expectKind(outcome, 'completed') as { outputSize: number }).outputSize);
      assert.deepEqual(calls, { a: 1, b: 1, c: 1 });
    });

    it('gives parallel calls positions in call order', async () => {
      const wf = defineWorkflow({ name: 'parallel', version: '1' }, async (ctx) => {
        const results = await Promise.all(
          [30, 0, 10].map((ms, i) =>
            ctx.step(`p${i}`, async () => {
              await pause(ms);
              return i;
            }),
          ),
        );
        return results;
      });
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
      const journal = await store.loadJournal(runId);
      assert.deepEqual(
        journal.map((e) => [e.position, e.name]),
        [
          [0, 'p0'],
          [1, 'p1'],
          [2, 'p2'],
        ],
      );
    });

    it('ctx.child starts a child, suspends until it ends, then journals its output (and its failure)', async () => {
      const child = defineWorkflow({ name: 'eng-child', version: '1' }, async (ctx, input: { n: number }) => {
        if (input.n < 0) throw new TerminalError('negative');
        return ctx.step('double', () => input.n * 2);
      });
      const parent = defineWorkflow({ name: 'eng-parent', version: '1' }, async (ctx, input: { n: number }) => {
        try {
          return { out: await ctx.child(child, { n: input.n }) };
        } catch (err) {
          if (err instanceof ChildWorkflowFailedError) return { failed: err.causeMessage, child: err.childRunId };
          throw err;
        }
      });
      const engine = cp.engine([parent, child]);
      for (const [n, expected] of [
        [21, { out: 42 }],
        [-1, { failed: 'negative' }],
      ] as const) {
        const runId = await cp.start(parent, { n });
        const first = expectKind(await cp.dispatch(engine, runId, parent).done, 'suspended');
        assert.equal(first.reason, SuspendReason.CHILD);
        const request = cp.children.at(-1)!;
        assert.equal(request.parentRunId, runId);
        assert.equal(first.childRunId, request.childRunId);
        assert.equal((await store.getRun(request.childRunId))?.workflowName, 'eng-child');
        await cp.dispatch(engine, request.childRunId, child).done;
        // The replay names the same child and does not start another.
        const before = cp.children.length;
        expectKind(await cp.dispatch(engine, runId, parent).done, 'completed');
        assert.equal(cp.children.length, before);
        const output = (await store.getRun(runId))?.output as Record<string, unknown>;
        assert.deepEqual({ ...output, child: undefined }, { ...expected, child: undefined });
        const reports = cp.reportsFor(runId).filter((r) => r.step?.kind === StepKind.CHILD);
        assert.ok(reports.some((r) => r.step?.name === 'eng-child' && r.step.status === StepStatus.WAITING));
        // A third dispatch replays the journaled outcome.
        expectKind(await cp.dispatch(engine, runId, parent).done, 'completed');
      }
    });

    it('fails with a non-determinism error naming the expected and the actual call', async () => {
      const v1 = defineWorkflow({ name: 'nondet', version: '1' }, async (ctx) => {
        await ctx.step('load-order', () => 1);
        await ctx.step('check', () => 2);
        await ctx.step('charge-card', () => 3);
        await ctx.sleep('1h');
        return 'done';
      });
      const changed = defineWorkflow({ name: 'nondet', version: '1' }, async (ctx) => {
        await ctx.step('load-order', () => 1);
        await ctx.step('check', () => 2);
        await ctx.step('refund', () => 3);
        return 'done';
      });
      const runId = await cp.start(v1, null);
      expectKind(await cp.dispatch(cp.engine([v1]), runId, v1).done, 'suspended');
      const failed = expectKind(await cp.dispatch(cp.engine([changed]), runId, changed).done, 'failed');
      assert.equal(failed.errorCode, ErrorCode.NON_DETERMINISM);
      const stored = await store.getError(failed.errorRef);
      assert.equal(
        stored?.message,
        '[CAIRN-2001] Non-determinism at position 2: the journal has step "charge-card", the workflow now calls step "refund". ' +
          'Deploy code compatible with running runs, or start a new version.',
      );
      assert.equal((await store.getRun(runId))?.status, 'failed');
    });

    it('retries a failing step with backoff in memory, then succeeds', async () => {
      let calls = 0;
      const wf = defineWorkflow({ name: 'retry-memory', version: '1' }, async (ctx) =>
        ctx.step(
          'flaky',
          ({ attempt }) => {
            calls++;
            if (attempt < 3) throw new Error(`transient ${attempt}`);
            return { attempt };
          },
          { retry: { initialInterval: 10, maximumAttempts: 5 } },
        ),
      );
      const runId = await cp.start(wf, null);
      const { outcome, outcomes } = await cp.drive(cp.engine([wf], 1000), runId, wf);
      expectKind(outcome, 'completed');
      assert.equal(outcomes.length, 1);
      assert.equal(calls, 3);
      assert.deepEqual((await store.getRun(runId))?.output, { attempt: 3 });
      const statuses = cp.reportsFor(runId).map((r) => [r.step?.attempt, r.step?.status]);
      assert.deepEqual(
        statuses.filter(([, s]) => s !== StepStatus.RUNNING),
        [
          [1, StepStatus.RETRYING],
          [2, StepStatus.RETRYING],
          [3, StepStatus.COMPLETED],
        ],
      );
      const retrying = cp.reportsFor(runId).find((r) => r.step?.status === StepStatus.RETRYING)!;
      assert.equal(retrying.step!.errorCode, ErrorCode.STEP_FAILED);
      assert.equal(retrying.step!.retryable, true);
      assert.match(retrying.step!.errorRef, /^[0-9a-f-]{36}$/);
      assert.equal((await store.getError(retrying.step!.errorRef))?.message, 'transient 1');
    });

    it('suspends for a retry backoff above the threshold and resumes with the next attempt', async () => {
      const attempts: number[] = [];
      const wf = defineWorkflow({ name: 'retry-suspend', version: '1' }, async (ctx) =>
        ctx.step(
          'flaky',
          ({ attempt }) => {
            attempts.push(attempt);
            if (attempt < 2) throw new Error('not yet');
            return 'ok';
          },
          { retry: { initialInterval: 200 } },
        ),
      );
      const runId = await cp.start(wf, null);
      const { outcome, outcomes } = await cp.drive(cp.engine([wf], 20), runId, wf);
      expectKind(outcome, 'completed');
      assert.equal(expectKind(outcomes[0]!, 'suspended').reason, SuspendReason.RETRY_BACKOFF);
      assert.deepEqual(attempts, [1, 2]);
    });

    it('does not retry a TerminalError, and a replay rethrows the same error without running the step', async () => {
      let calls = 0;
      const seen: string[] = [];
      const wf = defineWorkflow({ name: 'terminal', version: '1' }, async (ctx) => {
        try {
          await ctx.step(
            'charge-card',
            () => {
              calls++;
              throw new TerminalError('card declined');
            },
            { retry: { maximumAttempts: 5, initialInterval: 1 } },
          );
        } catch (err) {
          assert.ok(err instanceof StepFailedError);
          assert.equal(err.nonRetryable, true);
          assert.ok(err.cause instanceof TerminalError);
          seen.push(err.message);
        }
        await ctx.sleep(200);
        return 'handled';
      });
      const runId = await cp.start(wf, null);
      const { outcome } = await cp.drive(cp.engine([wf], 20), runId, wf);
      expectKind(outcome, 'completed');
      assert.equal(calls, 1);
      assert.equal(seen.length, 2);
      assert.equal(seen[0], seen[1]);
      assert.equal(seen[0], '[CAIRN-2002] Step "charge-card" failed after 1 attempt (non-retryable error): TerminalError: card declined');

      const uncaught = defineWorkflow({ name: 'terminal-uncaught', version: '1' }, async (ctx) => {
        await ctx.step('charge-card', () => {
          throw new TerminalError('card declined');
        });
      });
      const failed = expectKind((await cp.drive(cp.engine([uncaught]), await cp.start(uncaught, null), uncaught)).outcome, 'failed');
      assert.equal(failed.errorCode, ErrorCode.STEP_TERMINAL);
    });

    it('honours nonRetryableErrorTypes and reports exhausted retries with the last error', async () => {
      class ValidationError extends Error {
        override name = 'ValidationError';
      }
      let calls = 0;
      const wf = defineWorkflow({ name: 'non-retryable', version: '1' }, async (ctx) => {
        await ctx.step(
          'validate',
          () => {
            calls++;
            throw new ValidationError('bad input');
          },
          { retry: { maximumAttempts: 5, initialInterval: 1, nonRetryableErrorTypes: ['ValidationError'] } },
        );
      });
      const failed = expectKind((await cp.drive(cp.engine([wf]), await cp.start(wf, null), wf)).outcome, 'failed');
      assert.equal(calls, 1);
      assert.equal(failed.errorCode, ErrorCode.STEP_TERMINAL);

      let exhaustedCalls = 0;
      const exhausted = defineWorkflow({ name: 'exhausted', version: '1' }, async (ctx) => {
        await ctx.step(
          'call-api',
          () => {
            exhaustedCalls++;
            throw new TypeError(`boom ${exhaustedCalls}`);
          },
          { retry: { maximumAttempts: 2, initialInterval: 1 } },
        );
      });
      const runId = await cp.start(exhausted, null);
      const result = expectKind((await cp.drive(cp.engine([exhausted]), runId, exhausted)).outcome, 'failed');
      assert.equal(exhaustedCalls, 2);
      assert.equal(result.errorCode, ErrorCode.STEP_FAILED);
      const stored = await store.getError(result.errorRef);
      assert.equal(stored?.name, 'StepFailedError');
      assert.equal(stored?.message, '[CAIRN-2002] Step "call-api" failed after 2 attempts: TypeError: boom 2');
    });

    it('fails an attempt that exceeds the step timeout and aborts its signal', async () => {
      let aborted = 0;
      const wf = defineWorkflow({ name: 'timeout', version: '1' }, async (ctx) => {
        await ctx.step(
          'hang',
          ({ signal }) =>
            new Promise<void>((resolve) => {
              signal.addEventListener('abort', () => {
                aborted++;
                resolve();
              });
            }),
          { timeout: 30, retry: { maximumAttempts: 2, initialInterval: 1 } },
        );
      });
      const runId = await cp.start(wf, null);
      const failed = expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'failed');
      assert.equal(failed.errorCode, ErrorCode.STEP_TIMEOUT);
      assert.equal(aborted, 2);
      const stored = await store.getError(failed.errorRef);
      assert.match(
        stored?.message ?? '',
        /Step "hang" failed after 2 attempts: StepTimeoutError: Step "hang" attempt 2 timed out after 30 ms/,
      );
    });

    it('sleeps in memory below the threshold and suspends above it', async () => {
      const short = defineWorkflow({ name: 'sleep-short', version: '1' }, async (ctx) => {
        await ctx.sleep('30ms');
        return 'awake';
      });
      const a = await cp.drive(cp.engine([short], 1000), await cp.start(short, null), short);
      expectKind(a.outcome, 'completed');
      assert.equal(a.outcomes.length, 1);

      let runs = 0;
      const long = defineWorkflow({ name: 'sleep-long', version: '1' }, async (ctx) => {
        runs++;
        await ctx.sleep(250);
        return 'awake';
      });
      const runId = await cp.start(long, null);
      const b = await cp.drive(cp.engine([long], 20), runId, long);
      expectKind(b.outcome, 'completed');
      assert.equal(b.outcomes.length, 2);
      const suspended = expectKind(b.outcomes[0]!, 'suspended');
      assert.equal(suspended.reason, SuspendReason.SLEEP);
      const entry = (await store.loadJournal(runId))[0]!;
      assert.equal(suspended.wakeAt, entry.dueAt);
      assert.equal(entry.status, 'completed');
      assert.equal(runs, 2);
    });

    it('consumes a signal sent before the wait, and signals of one name in arrival order', async () => {
      const wf = defineWorkflow({ name: 'signals-early', version: '1' }, async (ctx) => {
        const first = await ctx.waitForSignal<{ n: number }>('approval');
        const second = await ctx.waitForSignal<{ n: number }>('approval', { timeout: '1m' });
        return [first.n, second.n];
      });
      const runId = await cp.start(wf, null);
      await store.addSignal(runId, 'approval', { n: 1 });
      await store.addSignal(runId, 'approval', { n: 2 });
      const { outcome, outcomes } = await cp.drive(cp.engine([wf], 10), runId, wf);
      expectKind(outcome, 'completed');
      assert.equal(outcomes.length, 1);
      assert.deepEqual((await store.getRun(runId))?.output, [1, 2]);
    });

    it('wakes an in-memory signal wait when the signal arrives', async () => {
      const wf = defineWorkflow({ name: 'signals-memory', version: '1' }, async (ctx) => ctx.waitForSignal('go', { timeout: '20s' }));
      const runId = await cp.start(wf, null);
      const execution = cp.dispatch(cp.engine([wf], 60_000), runId, wf);
      await pause(100);
      await store.addSignal(runId, 'go', 'body');
      expectKind(await execution.done, 'completed');
      assert.equal((await store.getRun(runId))?.output, 'body');
    });

    it('suspends a signal wait with the count consumed so far, and resumes when the signal arrives', async () => {
      const wf = defineWorkflow({ name: 'signals-suspend', version: '1' }, async (ctx) => {
        const a = await ctx.waitForSignal<string>('go');
        const b = await ctx.waitForSignal<string>('go');
        return a + b;
      });
      const runId = await cp.start(wf, null);
      await store.addSignal(runId, 'go', 'x');
      const suspensions: RunOutcome[] = [];
      const { outcome } = await cp.drive(cp.engine([wf], 10), runId, wf, {
        beforeRedispatch: async (o) => {
          suspensions.push(o);
          await store.addSignal(runId, 'go', 'y');
        },
      });
      expectKind(outcome, 'completed');
      assert.equal(suspensions.length, 1);
      const s = expectKind(suspensions[0]!, 'suspended');
      assert.equal(s.reason, SuspendReason.SIGNAL);
      assert.equal(s.signalName, 'go');
      assert.equal(s.signalsConsumed, 1);
      assert.equal(s.wakeAt, 0);
      assert.equal((await store.getRun(runId))?.output, 'xy');
    });

    it('names in a suspension the IDs of every signal of the waited name the run consumed, under this lease and earlier ones', async () => {
      // The control plane records a notice for each consumed signal it was never told about (the
      // gateway stored it but its SignalRun failed), so its count matches signalsConsumed.
      const wf = defineWorkflow({ name: 'signals-consumed-ids', version: '1' }, async (ctx) => {
        const other = await ctx.waitForSignal<string>('other');
        const a = await ctx.waitForSignal<string>('go');
        const b = await ctx.waitForSignal<string>('go');
        const c = await ctx.waitForSignal<string>('go');
        return other + a + b + c;
      });
      const runId = await cp.start(wf, null);
      await store.addSignal(runId, 'other', 'o');
      const x = (await store.addSignal(runId, 'go', 'x')).signalId;
      const sent = [x];
      const suspensions: Array<Extract<RunOutcome, { kind: 'suspended' }>> = [];
      const { outcome } = await cp.drive(cp.engine([wf], 10), runId, wf, {
        beforeRedispatch: async (o) => {
          suspensions.push(expectKind(o, 'suspended'));
          sent.push((await store.addSignal(runId, 'go', sent.length === 1 ? 'y' : 'z')).signalId);
        },
      });
      expectKind(outcome, 'completed');
      assert.deepEqual(
        suspensions.map((s) => [s.signalName, s.signalsConsumed, s.consumedSignalIds]),
        [
          ['go', 1, [x]],
          // x was consumed under the first lease: the second one reads it from the journal.
          ['go', 2, [x, sent[1]]],
        ],
      );
      assert.equal((await store.getRun(runId))?.output, 'oxyz');
    });

    it('times out a signal wait in memory and after a suspension', async () => {
      const wf = defineWorkflow({ name: 'signals-timeout', version: '1' }, async (ctx, input: { timeout: number }) => {
        try {
          await ctx.waitForSignal('never', { timeout: input.timeout });
          return 'signalled';
        } catch (err) {
          if (err instanceof SignalTimeoutError) return 'timed-out';
          throw err;
        }
      });
      const memory = await cp.drive(cp.engine([wf], 1000), await cp.start(wf, { timeout: 30 }), wf);
      expectKind(memory.outcome, 'completed');
      assert.equal(memory.outcomes.length, 1);

      const runId = await cp.start(wf, { timeout: 200 });
      const suspended = await cp.drive(cp.engine([wf], 20), runId, wf);
      expectKind(suspended.outcome, 'completed');
      assert.equal(suspended.outcomes.length, 2);
      const first = expectKind(suspended.outcomes[0]!, 'suspended');
      assert.equal(first.reason, SuspendReason.SIGNAL);
      assert.ok(first.wakeAt > 0);
      assert.equal((await store.getRun(runId))?.output, 'timed-out');
      assert.equal((await store.loadJournal(runId))[0]?.status, 'timed_out');

      const uncaught = defineWorkflow({ name: 'signals-timeout-uncaught', version: '1' }, async (ctx) =>
        ctx.waitForSignal('never', { timeout: 10 }),
      );
      const failed = expectKind((await cp.drive(cp.engine([uncaught]), await cp.start(uncaught, null), uncaught)).outcome, 'failed');
      assert.equal(failed.errorCode, ErrorCode.SIGNAL_TIMEOUT);
    });

    it('keeps going when a race is won by a step while a signal wait is parked', async () => {
      const wf = defineWorkflow({ name: 'race', version: '1' }, async (ctx) => {
        const winner = await Promise.race([
          ctx.waitForSignal('cancel-order').then(() => 'signal'),
          ctx.step('work', async () => {
            await pause(50);
            return 'step';
          }),
        ]);
        return winner;
      });
      const runId = await cp.start(wf, null);
      const { outcome, outcomes } = await cp.drive(cp.engine([wf], 10), runId, wf);
      expectKind(outcome, 'completed');
      assert.equal(outcomes.length, 1);
      assert.equal((await store.getRun(runId))?.output, 'step');
    });

    it('returns the same now, random and uuid values on replay', async () => {
      const seen: Array<{ now: number; random: number; uuid: string; later: number }> = [];
      const wf = defineWorkflow({ name: 'determinism', version: '1' }, async (ctx) => {
        const now = ctx.now().getTime();
        const random = ctx.random();
        const uuid = ctx.uuid();
        await ctx.step('between', () => 'x');
        const later = ctx.now().getTime();
        await ctx.sleep(200);
        seen.push({ now, random, uuid, later });
        return { now, random, uuid };
      });
      const runId = await cp.start(wf, null);
      const { outcomes } = await cp.drive(cp.engine([wf], 20), runId, wf);
      assert.equal(outcomes.length, 2);
      assert.equal(seen.length, 1);
      assert.deepEqual((await store.getRun(runId))?.output, { now: seen[0]!.now, random: seen[0]!.random, uuid: seen[0]!.uuid });
      assert.match(seen[0]!.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.ok(seen[0]!.random >= 0 && seen[0]!.random < 1);
      // ctx.now() was journaled with the next writes, not in a commit of its own.
      const journal = await store.loadJournal(runId);
      assert.deepEqual(
        journal.map((e) => e.kind),
        ['now', 'step', 'now', 'sleep'],
      );
      assert.equal(journal[0]!.value, seen[0]!.now);
      assert.equal(journal[2]!.value, seen[0]!.later);
    });

    it('stops a run whose epoch was taken by another worker; the new one continues from the journal', async () => {
      const calls = { first: 0, slow: 0 };
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const wf = defineWorkflow({ name: 'fenced', version: '1' }, async (ctx) => {
        await ctx.step('first', () => ++calls.first);
        await ctx.step('slow', async () => {
          calls.slow++;
          if (calls.slow === 1) await gate;
          return calls.slow;
        });
        return 'done';
      });
      const engine = cp.engine([wf]);
      const runId = await cp.start(wf, null);
      const stale = cp.dispatch(engine, runId, wf);
      while (calls.slow === 0) await pause(5);
      // The lease expired and the control plane dispatched the run again with epoch + 1.
      const fresh = await cp.dispatch(engine, runId, wf).done;
      expectKind(fresh, 'completed');
      release();
      expectKind(await stale.done, 'lost');
      assert.deepEqual(calls, { first: 1, slow: 2 });
      const journal = await store.loadJournal(runId);
      assert.equal(journal[1]!.epoch, 2);
      assert.equal(journal[1]!.value, 2);
    });

    it('cancels: pending calls reject with CancelledError, ctx.signal aborts, the run ends cancelled', async () => {
      let abortedSignal = false;
      let caught: unknown;
      const wf = defineWorkflow({ name: 'cancel', version: '1' }, async (ctx) => {
        ctx.signal.addEventListener('abort', () => (abortedSignal = true));
        await ctx.step('first', () => 1);
        try {
          await ctx.sleep('3s');
        } catch (err) {
          caught = err;
        }
        await ctx.step('after-cancel', () => 2);
        return 'finished';
      });
      const runId = await cp.start(wf, null);
      const execution = cp.dispatch(cp.engine([wf], 60_000), runId, wf);
      while ((await store.loadJournal(runId)).length < 2) await pause(10);
      execution.cancel();
      expectKind(await execution.done, 'cancelled');
      assert.ok(caught instanceof CancelledError);
      assert.equal(abortedSignal, true);
      assert.equal((await store.getRun(runId))?.status, 'cancelled');
      assert.deepEqual(
        (await store.loadJournal(runId)).map((e) => e.name),
        ['first', 'sleep'],
      );

      // Cancellation requested before dispatch: the first new call rejects.
      let ran = 0;
      const wf2 = defineWorkflow({ name: 'cancel-early', version: '1' }, async (ctx) => ctx.step('x', () => ++ran));
      const runId2 = await cp.start(wf2, null);
      expectKind(await cp.dispatch(cp.engine([wf2]), runId2, wf2, true).done, 'cancelled');
      assert.equal(ran, 0);
    });

    it('cancels a running step: its signal aborts and the step call rejects at once', async () => {
      let started = 0;
      let stepAborted = false;
      const wf = defineWorkflow({ name: 'cancel-in-flight', version: '1' }, async (ctx) => {
        await ctx.step('export', ({ signal }) => {
          started++;
          return new Promise<void>((resolve) =>
            signal.addEventListener('abort', () => {
              stepAborted = true;
              resolve();
            }),
          );
        });
        return 'not reached';
      });
      const runId = await cp.start(wf, null);
      const execution = cp.dispatch(cp.engine([wf]), runId, wf);
      while (started === 0) await pause(5);
      execution.cancel();
      expectKind(await execution.done, 'cancelled');
      assert.equal(stepAborted, true);
      assert.deepEqual(await store.loadJournal(runId), []);
    });

    it('drains at a durable-call boundary: a running step is journaled and not run again', async () => {
      let calls = 0;
      const wf = defineWorkflow({ name: 'drain', version: '1' }, async (ctx) => {
        const a = await ctx.step('in-flight', async () => {
          calls++;
          await pause(100);
          return 'a';
        });
        const b = await ctx.step('next', () => 'b');
        return a + b;
      });
      const engine = cp.engine([wf]);
      const runId = await cp.start(wf, null);
      const execution = cp.dispatch(engine, runId, wf);
      while (calls === 0) await pause(5);
      execution.drain(10_000);
      expectKind(await execution.done, 'released');
      assert.deepEqual(
        (await store.loadJournal(runId)).map((e) => [e.name, e.status]),
        [['in-flight', 'completed']],
      );
      expectKind(await cp.dispatch(engine, runId, wf).done, 'completed');
      assert.equal(calls, 1);
      assert.equal((await store.getRun(runId))?.output, 'ab');
    });

    it('fails a run whose workflow version this worker does not have', async () => {
      const known = defineWorkflow({ name: 'known', version: '1' }, () => 'x');
      const missing = defineWorkflow({ name: 'known', version: '2' }, () => 'y');
      const runId = await cp.start(missing, null);
      const failed = expectKind(await cp.dispatch(cp.engine([known]), runId, missing).done, 'failed');
      assert.equal(failed.errorCode, ErrorCode.WORKFLOW_NOT_FOUND);
      assert.match((await store.getError(failed.errorRef))?.message ?? '', /no workflow "known" version "2"/);
    });

    it('reports step kinds and statuses for sleeps and signals', async () => {
      const wf = defineWorkflow({ name: 'reports', version: '1' }, async (ctx) => {
        await ctx.sleep(5);
        await ctx.waitForSignal('ping', { timeout: 5 }).catch(() => undefined);
      });
      const runId = await cp.start(wf, null);
      expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
      const steps = cp.reportsFor(runId).map((r) => [r.step?.kind, r.step?.name, r.step?.status, r.step?.errorCode]);
      assert.deepEqual(steps, [
        [StepKind.SLEEP, 'sleep', StepStatus.WAITING, ErrorCode.UNSPECIFIED],
        [StepKind.SLEEP, 'sleep', StepStatus.COMPLETED, ErrorCode.UNSPECIFIED],
        [StepKind.SIGNAL, 'ping', StepStatus.WAITING, ErrorCode.UNSPECIFIED],
        [StepKind.SIGNAL, 'ping', StepStatus.FAILED, ErrorCode.SIGNAL_TIMEOUT],
      ]);
    });
  });
}
