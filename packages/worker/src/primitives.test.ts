// The AI-native workflow primitives on the real engine and payload store, with the control plane's
// side in memory: approvals, compensations, parallel fan-out and eval gates.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { testPostgresKinds } from '@cairn/local-postgres';
import type { Hasher, PayloadStore } from '@cairn/payload-store';
import { approvalSignalName } from '@cairn/payload-store';
import { ErrorCode, StepKind, StepStatus, SuspendReason, type StepReport } from '@cairn/proto';
import type { LanguageModel } from 'ai';
import {
  ApprovalTimeoutError,
  EvalFailedError,
  StepFailedError,
  TerminalError,
  defineWorkflow,
  type EvalFeedback,
  type StandardSchemaLike,
} from '@cairn/sdk';
import type { RunOutcome } from './engine.js';
import type { FakeControlPlane } from './testing/engine-harness.js';
import { expectKind, pause } from './testing/engine-harness.js';
import { startEngineFixture, type EngineFixture } from './testing/fixture.js';
import type { OpenAIServer } from './testing/openai-server.js';

// The AI SDK prints provider warnings to the console; the tests assert on outcomes instead.
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

/** A Standard Schema written by hand (what zod and others implement): a string of at most `max` characters. */
const shortString = (max: number): StandardSchemaLike => ({
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: (value) =>
      typeof value === 'string' && value.length <= max
        ? { value }
        : { issues: [{ message: `must be a string of at most ${max} characters`, path: ['summary'] }] },
  },
});

/** Everything the control plane heard about a run, as text (bigints as strings). */
const wire = (reports: StepReport[]): string => JSON.stringify(reports, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));

/** The final (not RUNNING) reports of a run as [name, status] pairs. */
const timeline = (reports: StepReport[]) =>
  reports.filter((r) => r.step?.status !== StepStatus.RUNNING).map((r) => [r.step?.name, StepStatus[r.step?.status ?? 0]]);

for (const kind of testPostgresKinds()) {
  describe(`workflow primitives on ${kind} Postgres`, () => {
    let fixture: EngineFixture;
    let store: PayloadStore;
    let hasher: Hasher;
    let cp: FakeControlPlane;
    let llm: OpenAIServer;
    let model: (id: string) => LanguageModel;

    before(async () => {
      fixture = await startEngineFixture(kind, 'wp');
      ({ store, cp, llm, model, hasher } = fixture);
    });

    after(() => fixture.close());

    describe('ctx.approval', () => {
      it('suspends until the answer arrives, days later as far as the worker knows, and returns it', async () => {
        const marker = `CANARY${randomBytes(8).toString('hex')}`;
        let reached = 0;
        const wf = defineWorkflow({ name: 'approve-late', version: '1' }, async (ctx, input: { order: string }) => {
          const draft = await ctx.step('draft', () => ({ amount: 40 }));
          reached++;
          const answer = await ctx.approval<{ amount: number }>('refund', { key: input.order });
          if (!answer.approved) return { refunded: 0 };
          return { refunded: answer.data?.amount ?? draft.amount, by: answer.by, comment: answer.comment };
        });
        const runId = await cp.start(wf, { order: `order-${marker}` });
        const expected = approvalSignalName('refund', hasher.forRun('approve-late', 2).approval(`order-${marker}`));
        const suspensions: RunOutcome[] = [];
        const { outcome, outcomes } = await cp.drive(cp.engine([wf], 10), runId, wf, {
          beforeRedispatch: async (o) => {
            suspensions.push(o);
            await store.addSignal(runId, expected, { approved: true, by: 'maria', comment: `fine ${marker}`, data: { amount: 25 } });
          },
        });
        expectKind(outcome, 'completed');
        assert.equal(outcomes.length, 2);
        const suspended = expectKind(suspensions[0]!, 'suspended');
        assert.equal(suspended.reason, SuspendReason.SIGNAL);
        assert.equal(suspended.signalName, expected);
        assert.equal(suspended.wakeAt, 0, 'no timer: the run sleeps until the answer');
        assert.deepEqual((await store.getRun(runId))?.output, { refunded: 25, by: 'maria', comment: `fine ${marker}` });
        assert.equal(reached, 2);

        // The control plane saw the signal name with the key's digest: not the key, not the comment.
        const reports = cp.reportsFor(runId);
        assert.ok(reports.some((r) => r.step?.kind === StepKind.SIGNAL && r.step.name === expected));
        assert.equal(wire(reports).includes(marker), false, 'the key or the comment crossed');
      });

      it('returns an answer sent before the wait began without suspending', async () => {
        const wf = defineWorkflow({ name: 'approve-early', version: '1' }, async (ctx) => {
          await ctx.step('prepare', () => 1);
          return ctx.approval('publish');
        });
        const runId = await cp.start(wf, null);
        await store.addSignal(runId, 'approval.publish', { approved: false, by: 'ed', comment: 'not yet' });
        const { outcome, outcomes } = await cp.drive(cp.engine([wf], 10), runId, wf);
        expectKind(outcome, 'completed');
        assert.equal(outcomes.length, 1);
        assert.deepEqual((await store.getRun(runId))?.output, { approved: false, by: 'ed', comment: 'not yet' });
      });

      it('throws ApprovalTimeoutError on timeout, or rejects with onTimeout: reject, also after a suspension', async () => {
        const wf = defineWorkflow({ name: 'approve-timeout', version: '1' }, async (ctx, input: { timeout: number; reject: boolean }) => {
          try {
            return await ctx.approval('publish', { timeout: input.timeout, onTimeout: input.reject ? 'reject' : 'throw' });
          } catch (err) {
            if (err instanceof ApprovalTimeoutError) return { caught: err.message, code: err.code, name: err.approvalName };
            throw err;
          }
        });
        const thrownRun = await cp.start(wf, { timeout: 20, reject: false });
        expectKind((await cp.drive(cp.engine([wf], 1000), thrownRun, wf)).outcome, 'completed');
        assert.deepEqual((await store.getRun(thrownRun))?.output, {
          caught: '[CAIRN-2005] No answer to approval "publish" arrived within 20 ms.',
          code: 'CAIRN-2005',
          name: 'publish',
        });

        // A timeout far above the engine's 10 ms threshold: a stalled event loop between the call and
        // the suspension decision cannot turn the suspension into an in-memory wait.
        const runId = await cp.start(wf, { timeout: 1_000, reject: true });
        const rejected = await cp.drive(cp.engine([wf], 10), runId, wf);
        expectKind(rejected.outcome, 'completed');
        assert.equal(expectKind(rejected.outcomes[0]!, 'suspended').reason, SuspendReason.SIGNAL);
        assert.deepEqual((await store.getRun(runId))?.output, { approved: false, timedOut: true });

        const uncaught = defineWorkflow({ name: 'approve-timeout-uncaught', version: '1' }, async (ctx) =>
          ctx.approval('publish', { timeout: 10 }),
        );
        const failed = expectKind((await cp.drive(cp.engine([uncaught]), await cp.start(uncaught, null), uncaught)).outcome, 'failed');
        assert.equal(failed.errorCode, ErrorCode.SIGNAL_TIMEOUT);
        assert.equal((await store.getError(failed.errorRef))?.name, 'ApprovalTimeoutError');
      });

      it('refuses bad approval names and options with a clear error', async () => {
        const wf = defineWorkflow({ name: 'approve-bad', version: '1' }, async (ctx, input: { case: number }) => {
          const tries = [
            () => ctx.approval('ok for bob@example.com'),
            () => ctx.approval('a'.repeat(59), { key: 'k' }),
            () => ctx.approval('publish', { onTimeout: 'ignore' as never }),
          ];
          return tries[input.case]!().then(
            () => 'no error',
            (err: unknown) => (err as Error).message,
          );
        });
        const messages: unknown[] = [];
        for (const c of [0, 1, 2]) {
          const runId = await cp.start(wf, { case: c });
          expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
          messages.push((await store.getRun(runId))?.output);
        }
        assert.match(String(messages[0]), /CAIRN-1107.*Invalid approval name/);
        assert.match(String(messages[1]), /at most 58 characters with a key/);
        assert.match(String(messages[2]), /onTimeout option of approval "publish" must be 'throw' or 'reject'/);
      });
    });

    describe('compensations', () => {
      it('run in reverse order after an uncaught failure; the run fails with the original error', async () => {
        const undone: string[] = [];
        const wf = defineWorkflow({ name: 'saga-fail', version: '1' }, async (ctx) => {
          const flight = await ctx.step('book-flight', () => ({ id: 'F1' }), {
            compensate: (f) => void undone.push(`flight ${f.id}`),
          });
          await ctx.step('no-undo', () => 'x');
          const hotel = await ctx.step('book-hotel', () => ({ id: 'H1' }), {
            compensate: async (h, { idempotencyKey }) => {
              await pause(1);
              undone.push(`hotel ${h.id} ${idempotencyKey}`);
              return { cancelled: h.id };
            },
          });
          await ctx.step('charge-card', () => {
            throw new TerminalError('card declined');
          });
          return { flight, hotel };
        });
        const runId = await cp.start(wf, null);
        const failed = expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'failed');
        assert.equal(failed.errorCode, ErrorCode.STEP_TERMINAL);
        // The compensation's idempotency key is stable: the run and the compensated step's position.
        assert.deepEqual(undone, [`hotel H1 ${runId}:compensate:2`, 'flight F1']);
        assert.match((await store.getError(failed.errorRef))?.message ?? '', /card declined/);
        const journal = await store.loadJournal(runId);
        assert.deepEqual(
          journal.map((e) => [e.position, e.name, e.status]),
          [
            [0, 'book-flight', 'completed'],
            [1, 'no-undo', 'completed'],
            [2, 'book-hotel', 'completed'],
            [3, 'charge-card', 'failed'],
            [4, 'compensate.book-hotel', 'completed'],
            [5, 'compensate.book-flight', 'completed'],
          ],
        );
        assert.deepEqual(journal[4]!.value, { cancelled: 'H1' });
        assert.deepEqual(timeline(cp.reportsFor(runId)).slice(-2), [
          ['compensate.book-hotel', 'COMPLETED'],
          ['compensate.book-flight', 'COMPLETED'],
        ]);
      });

      it('run after a cancellation, while running and when the cancelled run is dispatched again', async () => {
        const undone: string[] = [];
        let compensationSignalAborted = false;
        const wf = defineWorkflow({ name: 'saga-cancel', version: '1' }, async (ctx, input: { wait: number }) => {
          await ctx.step('reserve', () => 'R', { compensate: (r) => void undone.push(`release ${r}`) });
          await ctx.step('charge', () => 'C', {
            compensate: async (c, { signal }) => {
              await pause(20);
              compensationSignalAborted ||= signal.aborted;
              undone.push(`refund ${c}`);
            },
          });
          await ctx.sleep(input.wait);
          await ctx.step('ship', () => 'S', { compensate: () => void undone.push('unship') });
          return 'shipped';
        });
        const runId = await cp.start(wf, { wait: 3000 });
        const execution = cp.dispatch(cp.engine([wf], 60_000), runId, wf);
        while ((await store.loadJournal(runId)).length < 3) await pause(5);
        execution.cancel();
        expectKind(await execution.done, 'cancelled');
        assert.deepEqual(undone, ['refund C', 'release R']);
        assert.equal(compensationSignalAborted, false, "a compensation's signal is not aborted by the cancellation");
        assert.equal((await store.getRun(runId))?.status, 'cancelled');

        // Suspended in a long sleep, then dispatched with the cancellation requested.
        undone.length = 0;
        const suspendedRun = await cp.start(wf, { wait: 60_000 });
        const engine = cp.engine([wf], 10);
        expectKind(await cp.dispatch(engine, suspendedRun, wf).done, 'suspended');
        expectKind(await cp.dispatch(engine, suspendedRun, wf, true).done, 'cancelled');
        assert.deepEqual(undone, ['refund C', 'release R']);
      });

      it('retries a failing compensation with its retry policy, and surfaces one that keeps failing', async () => {
        const attempts = { a: 0, b: 0 };
        const wf = defineWorkflow({ name: 'saga-surface', version: '1' }, async (ctx) => {
          await ctx.step('a', () => 1, {
            retry: { initialInterval: 1, maximumAttempts: 3 },
            compensate: (_result, step) => {
              attempts.a++;
              if (step.attempt < 3) throw new Error(`undo a failed on attempt ${step.attempt}`);
            },
          });
          await ctx.step('b', () => 2, {
            retry: { initialInterval: 1, maximumAttempts: 2 },
            compensate: () => {
              attempts.b++;
              throw new Error('the booking system refuses to undo b');
            },
          });
          throw new Error('workflow gave up');
        });
        const runId = await cp.start(wf, null);
        const failed = expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'failed');
        assert.equal(failed.errorCode, ErrorCode.APPLICATION, 'the original error code');
        assert.deepEqual(attempts, { a: 3, b: 2 }, 'b kept failing and a still ran');
        const stored = await store.getError(failed.errorRef);
        assert.equal(stored?.message, 'workflow gave up');
        assert.deepEqual((stored as unknown as { compensationFailures: unknown }).compensationFailures, [
          { name: 'compensate.b', position: 2, stepPosition: 1, error: { name: 'Error', message: 'the booking system refuses to undo b' } },
        ]);
        const reports = cp.reportsFor(runId).filter((r) => r.step?.name.startsWith('compensate.'));
        assert.deepEqual(
          reports
            .filter((r) => r.step?.status !== StepStatus.RUNNING)
            .map((r) => [r.step?.name, r.step?.attempt, StepStatus[r.step!.status]]),
          [
            ['compensate.b', 1, 'RETRYING'],
            ['compensate.b', 2, 'FAILED'],
            ['compensate.a', 1, 'RETRYING'],
            ['compensate.a', 2, 'RETRYING'],
            ['compensate.a', 3, 'COMPLETED'],
          ],
        );
        const failedReport = reports.find((r) => r.step?.status === StepStatus.FAILED)!;
        assert.equal(failedReport.step!.errorCode, ErrorCode.STEP_FAILED);
        assert.equal(wire(reports).includes('refuses'), false, 'no error text crossed');
      });

      it('lets a step still running when the workflow failed finish, and compensates it too', async () => {
        const undone: string[] = [];
        const wf = defineWorkflow({ name: 'saga-in-flight', version: '1' }, async (ctx) => {
          await Promise.all([
            ctx.step(
              'slow-booking',
              async () => {
                await pause(50);
                return 'B1';
              },
              { compensate: (b) => void undone.push(`cancel ${b}`) },
            ),
            ctx.step('fast-failure', () => {
              throw new TerminalError('no seats');
            }),
          ]);
        });
        const runId = await cp.start(wf, null);
        expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'failed');
        assert.deepEqual(undone, ['cancel B1']);
      });

      it('does not run finished compensations again when the run resumes after a suspension', async () => {
        const runs = { a: 0, b: 0, c: 0 };
        const wf = defineWorkflow({ name: 'saga-replay', version: '1' }, async (ctx) => {
          for (const name of ['a', 'b', 'c'] as const) {
            await ctx.step(name, () => name, {
              retry: { initialInterval: 200, maximumAttempts: 2 },
              compensate: () => {
                runs[name]++;
                if (name === 'b' && runs.b === 1) throw new Error('try b again later');
              },
            });
          }
          await ctx.step('fail', () => {
            throw new TerminalError('stop');
          });
        });
        const runId = await cp.start(wf, null);
        const { outcome, outcomes } = await cp.drive(cp.engine([wf], 10), runId, wf);
        expectKind(outcome, 'failed');
        assert.equal(expectKind(outcomes[0]!, 'suspended').reason, SuspendReason.RETRY_BACKOFF);
        assert.equal(outcomes.length, 2);
        assert.deepEqual(runs, { a: 1, b: 2, c: 1 });
        assert.deepEqual(
          (await store.loadJournal(runId)).slice(4).map((e) => [e.position, e.name, e.status, e.attempt]),
          [
            [4, 'compensate.c', 'completed', 1],
            [5, 'compensate.b', 'completed', 2],
            [6, 'compensate.a', 'completed', 1],
          ],
        );
      });
    });

    describe('ctx.parallel', () => {
      it('keeps at most `concurrency` items running and returns results in input order', async () => {
        let running = 0;
        let most = 0;
        const started: number[] = [];
        const finished: number[] = [];
        const wf = defineWorkflow({ name: 'fan-out', version: '1' }, async (ctx, input: { items: number[] }) =>
          ctx.parallel(
            input.items,
            (item, index) =>
              ctx.step('work', { key: item }, async () => {
                started.push(index);
                running++;
                most = Math.max(most, running);
                // Later items finish first, so completion order differs from input order.
                await pause(5 + (input.items.length - index) * 4);
                running--;
                finished.push(index);
                return item * 10;
              }),
            { concurrency: 3 },
          ),
        );
        const runId = await cp.start(wf, { items: [1, 2, 3, 4, 5, 6, 7] });
        expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
        assert.deepEqual((await store.getRun(runId))?.output, [10, 20, 30, 40, 50, 60, 70]);
        assert.equal(most, 3);
        assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6], 'items start in index order');
        assert.notDeepEqual(finished, [0, 1, 2, 3, 4, 5, 6], 'they finished in another order');
        assert.deepEqual(
          (await store.loadJournal(runId)).map((e) => e.name),
          Array<string>(7).fill('work'),
        );
      });

      it('replays branches of several calls from the journal: nothing runs again, the positions stay', async () => {
        const calls = { fetch: 0, save: 0 };
        const seen: unknown[] = [];
        const durations = [60, 5, 30, 15];
        const wf = defineWorkflow({ name: 'fan-out-replay', version: '1' }, async (ctx, input: { items: string[] }) => {
          const results = await ctx.parallel(
            input.items,
            async (item, index) => {
              // No key: the branch tells the calls apart.
              const fetched = await ctx.step('fetch', async () => {
                calls.fetch++;
                await pause(durations[index]!);
                return `${item}-fetched`;
              });
              const saved = await ctx.step('save', () => {
                calls.save++;
                return `${fetched}-saved`;
              });
              return { saved, at: ctx.now().getTime() > 0 };
            },
            { concurrency: 2 },
          );
          // Far above the engine's 10 ms threshold, so a stalled event loop cannot keep it in memory.
          await ctx.sleep(1_000);
          seen.push(results);
          return results;
        });
        const runId = await cp.start(wf, { items: ['a', 'b', 'c', 'd'] });
        const engine = cp.engine([wf], 10);
        expectKind(await cp.dispatch(engine, runId, wf).done, 'suspended');
        const before = (await store.loadJournal(runId)).map((e) => [e.position, e.kind, e.name, e.keyDigest, e.value]);
        // The branches finished out of order, so their calls interleave in the journal.
        assert.notDeepEqual(
          before.filter(([, kind]) => kind === 'step').map(([, , , , value]) => value),
          ['a-fetched', 'a-fetched-saved', 'b-fetched', 'b-fetched-saved', 'c-fetched', 'c-fetched-saved', 'd-fetched', 'd-fetched-saved'],
        );
        await pause(1_050);
        expectKind(await cp.dispatch(engine, runId, wf).done, 'completed');
        assert.deepEqual(calls, { fetch: 4, save: 4 }, 'no step ran again');
        const afterReplay = (await store.loadJournal(runId)).map((e) => [e.position, e.kind, e.name, e.keyDigest, e.value]);
        assert.deepEqual(afterReplay.slice(0, -1), before.slice(0, -1), 'the same entries at the same positions');
        const expected = ['a', 'b', 'c', 'd'].map((x) => ({ saved: `${x}-fetched-saved`, at: true }));
        assert.deepEqual((await store.getRun(runId))?.output, expected);
        assert.equal(seen.length, 1);
        // Each branch's calls carry a key digest of their own (the branch identity, HMAC'd).
        const digests = afterReplay.filter(([, kind]) => kind === 'step').map(([, , , digest]) => digest);
        assert.equal(new Set(digests).size, 8);
        for (const d of digests) assert.match(String(d), /^[0-9a-f]{64}$/);
      });

      it('returns the same ctx.random values in branches on replay', async () => {
        const executions: Array<Record<number, string>> = [];
        const wf = defineWorkflow({ name: 'fan-out-random', version: '1' }, async (ctx) => {
          const drawn: Record<number, string> = {};
          executions.push(drawn);
          await ctx.parallel([40, 1, 20], async (ms, index) => {
            // On the first execution the branches get here in completion order; on the replay, at once.
            await ctx.step('wait', () => pause(ms));
            drawn[index] = `${ctx.random()} ${ctx.uuid()}`;
          });
          // Far above the engine's 10 ms threshold, so the run suspends however slow the machine is.
          await ctx.sleep(1_000);
          return drawn;
        });
        const runId = await cp.start(wf, null);
        const engine = cp.engine([wf], 10);
        expectKind(await cp.dispatch(engine, runId, wf).done, 'suspended');
        await pause(1_000);
        expectKind(await cp.dispatch(engine, runId, wf).done, 'completed');
        assert.equal(executions.length, 2);
        assert.deepEqual(executions[1], executions[0]);
        assert.equal(new Set(Object.values(executions[0]!)).size, 3);
      });

      it('runs nested fan-outs and approvals in branches across a suspension', async () => {
        let packed = 0;
        const wf = defineWorkflow({ name: 'fan-out-nested', version: '1' }, async (ctx, orders: string[]) =>
          ctx.parallel(orders, async (order) => {
            const lines = await ctx.parallel([1, 2], (line) => ctx.step('pack', () => `${order}/${line} packed ${++packed}`));
            const answer = await ctx.approval('ship', { key: order });
            return { order, lines: lines.length, approved: answer.approved, by: answer.by };
          }),
        );
        const runId = await cp.start(wf, ['o-1', 'o-2']);
        const { outcome, outcomes } = await cp.drive(cp.engine([wf], 10), runId, wf, {
          beforeRedispatch: async () => {
            await store.addSignal(runId, approvalSignalName('ship', hasher.forRun('fan-out-nested', 2).approval('o-2')), {
              approved: true,
              by: 'ops',
            });
            await store.addSignal(runId, approvalSignalName('ship', hasher.forRun('fan-out-nested', 2).approval('o-1')), {
              approved: false,
              by: 'ops',
            });
          },
        });
        expectKind(outcome, 'completed');
        assert.equal(expectKind(outcomes[0]!, 'suspended').reason, SuspendReason.SIGNAL);
        assert.equal(packed, 4);
        assert.deepEqual((await store.getRun(runId))?.output, [
          { order: 'o-1', lines: 2, approved: false, by: 'ops' },
          { order: 'o-2', lines: 2, approved: true, by: 'ops' },
        ]);
        const journal = await store.loadJournal(runId);
        assert.deepEqual(
          journal.map((e) => e.position),
          [0, 1, 2, 3, 4, 5],
        );
        assert.equal(journal.filter((e) => e.kind === 'signal' && e.status === 'completed').length, 2);
      });

      it('after a failure starts no new item, lets running ones finish, and rejects with the lowest-index failure', async () => {
        const started: number[] = [];
        const wf = defineWorkflow({ name: 'fan-out-fail', version: '1' }, async (ctx, input: { failing: number[]; slow: number }) => {
          try {
            await ctx.parallel(
              [0, 1, 2, 3, 4],
              (i) =>
                ctx.step('item', { key: i }, async () => {
                  started.push(i);
                  if (i === input.slow) await pause(60);
                  if (input.failing.includes(i)) throw new TerminalError(`item ${i} failed`);
                  return i;
                }),
              { concurrency: 2 },
            );
            return 'no error';
          } catch (err) {
            assert.ok(err instanceof StepFailedError);
            return err.causeMessage;
          }
        });
        // Item 1 fails while item 0 still runs: item 0 finishes, items 2-4 never start.
        const first = await cp.start(wf, { failing: [1], slow: 0 });
        expectKind((await cp.drive(cp.engine([wf]), first, wf)).outcome, 'completed');
        assert.equal((await store.getRun(first))?.output, 'item 1 failed');
        assert.deepEqual([...started].sort(), [0, 1]);
        assert.deepEqual((await store.loadJournal(first)).map((e) => e.status).sort(), ['completed', 'failed']);
        // Item 0 fails last, item 1 first: the error is item 0's, whatever the order.
        started.length = 0;
        const second = await cp.start(wf, { failing: [0, 1], slow: 0 });
        expectKind((await cp.drive(cp.engine([wf]), second, wf)).outcome, 'completed');
        assert.equal((await store.getRun(second))?.output, 'item 0 failed');
      });
    });

    describe('eval gates', () => {
      it('re-runs a step whose output fails, with the failure as feedback, until it passes', async () => {
        const marker = `CANARY${randomBytes(6).toString('hex')}`;
        const feedbacks: Array<EvalFeedback | undefined> = [];
        const wf = defineWorkflow({ name: 'eval-step', version: '1' }, async (ctx) =>
          ctx.step(
            'summarize',
            ({ feedback }) => {
              feedbacks.push(feedback);
              return feedbacks.length === 1 ? `a long first draft ${marker}` : 'short';
            },
            {
              eval: {
                checks: [shortString(40), (s: string) => !s.includes(marker) || `mentions the secret ${marker}`],
              },
            },
          ),
        );
        const runId = await cp.start(wf, null);
        expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
        assert.equal((await store.getRun(runId))?.output, 'short');
        assert.equal(feedbacks.length, 2);
        assert.equal(feedbacks[0], undefined);
        assert.deepEqual(feedbacks[1], { round: 1, reasons: [`mentions the secret ${marker}`], previous: `a long first draft ${marker}` });

        const journal = await store.loadJournal(runId);
        assert.deepEqual(
          journal.map((e) => [e.name, e.status]),
          [
            ['summarize', 'completed'],
            ['eval.summarize', 'failed'],
            ['summarize', 'completed'],
            ['eval.summarize', 'completed'],
          ],
        );
        assert.deepEqual(journal[1]!.value, {
          pass: false,
          round: 0,
          reasons: [`mentions the secret ${marker}`],
          checks: [
            { check: 0, kind: 'schema', pass: true },
            { check: 1, kind: 'predicate', pass: false, reason: `mentions the secret ${marker}` },
          ],
        });
        // The control plane heard the verdicts' statuses, never their reasons.
        const reports = cp.reportsFor(runId);
        assert.deepEqual(
          timeline(reports).filter(([name]) => name === 'eval.summarize'),
          [
            ['eval.summarize', 'FAILED'],
            ['eval.summarize', 'COMPLETED'],
          ],
        );
        assert.equal(reports.find((r) => r.step?.name === 'eval.summarize')!.step!.errorCode, ErrorCode.STEP_FAILED);
        assert.equal(wire(reports).includes(marker), false, 'a reason crossed to the control plane');
      });

      it('fails with EvalFailedError when the re-runs are used up', async () => {
        let calls = 0;
        const wf = defineWorkflow({ name: 'eval-exhausted', version: '1' }, async (ctx) =>
          ctx.step('title', () => `title number ${++calls} that is far too long`, {
            eval: { checks: [shortString(10)], maxRetries: 1 },
          }),
        );
        const runId = await cp.start(wf, null);
        const failed = expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'failed');
        assert.equal(failed.errorCode, ErrorCode.STEP_FAILED);
        assert.equal(calls, 2);
        const stored = await store.getError(failed.errorRef);
        assert.equal(stored?.name, 'EvalFailedError');
        assert.equal(
          stored?.message,
          '[CAIRN-2002] The output of "title" failed its eval checks after 2 runs: summary: must be a string of at most 10 characters',
        );
      });

      it('escalates to an approval when the re-runs are used up: approved accepts the output, rejected fails', async () => {
        let calls = 0;
        const wf = defineWorkflow({ name: 'eval-approval', version: '1' }, async (ctx, input: { id: string }) => {
          try {
            return await ctx.step('draft', () => `draft ${++calls}`, {
              key: input.id,
              eval: { checks: [() => 'never good enough'], maxRetries: 1, onFail: 'approval' },
            });
          } catch (err) {
            if (err instanceof EvalFailedError) return { rejectedBy: err.rejectedBy, rounds: err.rounds };
            throw err;
          }
        });
        for (const approved of [true, false]) {
          calls = 0;
          const runId = await cp.start(wf, { id: `doc-${String(approved)}` });
          const signalName = approvalSignalName('eval.draft', hasher.forRun('eval-approval', 2).approval(`doc-${String(approved)}`));
          const { outcome, outcomes } = await cp.drive(cp.engine([wf], 10), runId, wf, {
            beforeRedispatch: async (o) => {
              assert.equal(expectKind(o, 'suspended').signalName, signalName);
              await store.addSignal(runId, signalName, { approved, by: 'editor' });
            },
          });
          expectKind(outcome, 'completed');
          assert.equal(outcomes.length, 2);
          assert.equal(calls, 2, 'the replay did not run the step again');
          assert.deepEqual((await store.getRun(runId))?.output, approved ? 'draft 2' : { rejectedBy: 'editor', rounds: 2 });
        }
      });

      it('re-runs a model call with the previous answer and what failed appended as a user message', async () => {
        const from = llm.requests.length;
        llm.script([
          { kind: 'text', text: 'Refund guaranteed within 24h!' },
          { kind: 'text', text: 'We are looking into your request.' },
        ]);
        const wf = defineWorkflow({ name: 'eval-model', version: '1' }, async (ctx) => {
          const reply = await ctx.model('reply', {
            model: model('small'),
            system: 'You answer support tickets.',
            prompt: 'Where is my refund?',
            eval: { checks: [(t: string) => !/guaranteed/i.test(t) || 'promises a refund'] },
          });
          return reply.text;
        });
        const runId = await cp.start(wf, null);
        expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
        assert.equal((await store.getRun(runId))?.output, 'We are looking into your request.');
        const requests = llm.since(from);
        assert.equal(requests.length, 2);
        const messages = requests[1]!.body['messages'] as Array<{ role: string; content: unknown }>;
        assert.deepEqual(
          messages.map((m) => m.role),
          ['system', 'user', 'assistant', 'user'],
        );
        assert.equal(JSON.stringify(messages[2]!.content).includes('Refund guaranteed within 24h!'), true);
        assert.match(JSON.stringify(messages[3]!.content), /did not pass these checks:\\n- promises a refund/);
        const journal = await store.loadJournal(runId);
        assert.deepEqual(
          journal.map((e) => [e.kind, e.name, e.status]),
          [
            ['model', 'reply', 'completed'],
            ['step', 'eval.reply', 'failed'],
            ['model', 'reply', 'completed'],
            ['step', 'eval.reply', 'completed'],
          ],
        );
      });

      it('runs an LLM judge as a durable model call and records its score in the data plane only', async () => {
        const marker = `CANARY${randomBytes(6).toString('hex')}`;
        const from = llm.requests.length;
        llm.script([
          { kind: 'text', text: 'Answer one.' },
          { kind: 'text', text: JSON.stringify({ pass: false, score: 0.2, reason: `too vague ${marker}` }) },
          { kind: 'text', text: 'Answer two, with details.' },
          { kind: 'text', text: JSON.stringify({ pass: true, score: 0.9, reason: 'specific' }) },
        ]);
        const wf = defineWorkflow({ name: 'eval-judge', version: '1' }, async (ctx) => {
          const reply = await ctx.model('answer', {
            model: model('small'),
            prompt: 'Explain the invoice.',
            stream: false,
            eval: { checks: [{ judge: { model: model('judge'), criteria: 'Specific and polite.', threshold: 0.5 } }] },
          });
          return reply.text;
        });
        const runId = await cp.start(wf, null);
        expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
        assert.equal((await store.getRun(runId))?.output, 'Answer two, with details.');
        const requests = llm.since(from);
        assert.deepEqual(
          requests.map((r) => r.body['model']),
          ['small', 'judge', 'small', 'judge'],
        );
        assert.match(JSON.stringify(requests[1]!.body['messages']), /Specific and polite\.[\s\S]*Answer one\./);
        const journal = await store.loadJournal(runId);
        assert.deepEqual(
          journal.map((e) => [e.kind, e.name, e.status]),
          [
            ['model', 'answer', 'completed'],
            ['model', 'eval.answer.judge', 'completed'],
            ['step', 'eval.answer', 'failed'],
            ['model', 'answer', 'completed'],
            ['model', 'eval.answer.judge', 'completed'],
            ['step', 'eval.answer', 'completed'],
          ],
        );
        assert.deepEqual(journal[2]!.value, {
          pass: false,
          round: 0,
          score: 0.2,
          reasons: [`too vague ${marker}`],
          checks: [{ check: 0, kind: 'judge', pass: false, score: 0.2, reason: `too vague ${marker}` }],
        });
        assert.equal((journal[5]!.value as { score: number }).score, 0.9);
        const reports = cp.reportsFor(runId);
        assert.ok(reports.some((r) => r.step?.kind === StepKind.MODEL && r.step.name === 'eval.answer.judge' && r.step.model === 'judge'));
        assert.equal(wire(reports).includes(marker), false, "the judge's reason crossed to the control plane");
        assert.equal(wire(reports).includes('too vague'), false);
      });

      it('refuses a bad eval option with a clear error', async () => {
        const wf = defineWorkflow({ name: 'eval-bad', version: '1' }, async (ctx, input: { case: number }) => {
          const tries = [
            () => ctx.step('a', () => 1, { eval: { checks: [] } }),
            () => ctx.step('a', () => 1, { eval: { checks: [42 as never] } }),
            () => ctx.step('a', () => 1, { eval: { checks: [() => true], maxRetries: -1 } }),
            () => ctx.step('x'.repeat(60), () => 1, { key: 'k', eval: { checks: [() => true], onFail: 'approval' } }),
          ];
          return tries[input.case]!().then(
            () => 'no error',
            (err: unknown) => (err as Error).message,
          );
        });
        const messages: unknown[] = [];
        for (const c of [0, 1, 2, 3]) {
          const runId = await cp.start(wf, { case: c });
          expectKind((await cp.drive(cp.engine([wf]), runId, wf)).outcome, 'completed');
          messages.push((await store.getRun(runId))?.output);
        }
        assert.match(String(messages[0]), /CAIRN-1101.*needs checks/);
        assert.match(String(messages[1]), /Check 0 of the eval of step "a" is not a check/);
        assert.match(String(messages[2]), /maxRetries .* at least 0/);
        assert.match(String(messages[3]), /at most 58 characters with a key/);
      });
    });
  });
}
