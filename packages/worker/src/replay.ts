// Replays a run's journal (the gateway's `GET /v1/runs/:id/journal` document, or one a worker builds
// from its payload store for a replay check) against workflow code with the real replay engine.
// Published as `@cairn/worker/replay`: `cairn replay` and the workers' replay checks use it. The
// engine runs on an in-memory copy of the journal: every call the journal holds returns its recorded
// result, nothing is executed, nothing is written anywhere. The first call the journal does not hold
// is where the run would continue live: the replay stops there (no step function, tool or model call
// runs). A call that differs from the journal at its position is the non-determinism a deployment of
// this code would hit.
import { randomBytes } from 'node:crypto';
import { createLogger } from '@cairn/common';
import { Engine, type RunExecution, type RunOutcome } from './engine.js';
import type { RunJournal, RunJournals } from './engine/run-journal.js';
import { SignalHub } from './signals.js';
import { NonDeterminismError, type DurableCall, type WorkflowContext, type WorkflowDefinition } from '@cairn/sdk';
import { StepKind, StepStatus, type StepReport } from '@cairn/proto';
import { Hasher, type ErrorInfo, type JournalEntry, type JournalEntryDocument, type StoredRun } from '@cairn/payload-store';

/** The gateway's `GET /v1/runs/:id/journal` answer. */
export interface JournalDocument {
  readonly runId: string;
  readonly workflow: string;
  readonly status: string;
  readonly input: unknown;
  /** Null unless the gateway token has the admin scope: the seed predicts the values a run draws. */
  readonly seed: string | null;
  readonly forkedFrom: { readonly runId: string; readonly position: number } | null;
  /** How the run's keys were digested (absent in exports from before digest versions: 1). */
  readonly digestVersion?: 1 | 2;
  /** Which of the data plane's HMAC keys the run's keys were digested with ('' for the key without an ID). */
  readonly hmacKeyId?: string;
  readonly createdAt: string;
  readonly endedAt: string | null;
  readonly entries: ReadonlyArray<JournalEntryDocument>;
}

export interface CallView {
  readonly kind: string;
  readonly name: string;
  readonly keyDigest: string | null;
}

export type ReplayResult =
  | {
      readonly ok: true;
      /** How the replay ended: the code returned or threw where the journal ends, or reached a call the journal does not hold yet. */
      readonly outcome: 'completed' | 'failed' | 'continues' | 'waiting';
      readonly replayedCalls: number;
      readonly journalEntries: number;
      /** For `continues`: the first call past the journal. */
      readonly next?: CallView & { readonly position: number };
      /** For `failed`: the error the code ended with (as the original run did). */
      readonly error?: { readonly name: string; readonly message: string };
    }
  | {
      readonly ok: false;
      readonly outcome: 'non_determinism';
      readonly position: number;
      /** What the journal holds at the position. */
      readonly expected: CallView | null;
      /** What the local code calls there (null: it completed without making the call). */
      readonly actual: CallView | null;
      readonly message: string;
      readonly replayedCalls: number;
      readonly journalEntries: number;
    }
  | {
      readonly ok: false;
      /**
       * The code threw before a model call the journal holds, where the run went on: what the
       * code needs to build that call (the model, from the workers' configuration) is missing
       * where the replay runs. Nothing is known about the code past that point.
       */
      readonly outcome: 'unreplayable';
      readonly missing: 'model configuration';
      /** The journaled call the code did not reach. */
      readonly next: CallView & { readonly position: number };
      readonly error: { readonly name: string; readonly message: string };
      readonly message: string;
      readonly replayedCalls: number;
      readonly journalEntries: number;
    }
  | {
      readonly ok: false;
      /** The code threw where the run did not fail: it would fail runs that the old code completes. */
      readonly outcome: 'diverged';
      readonly error: { readonly name: string; readonly message: string };
      readonly message: string;
      readonly replayedCalls: number;
      readonly journalEntries: number;
    };

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
const ms = (iso: string | null): number | undefined => (iso === null ? undefined : Date.parse(iso));

const callView = (c: DurableCall | undefined): CallView | null =>
  c === undefined ? null : { kind: c.kind, name: c.name, keyDigest: c.keyDigest ?? null };

/**
 * Replays `doc` against `definition`. `hmacKey` is the data plane's CAIRN_DP_HMAC_KEY (one key, or
 * the parsed ring): needed when
 * the journal holds keyed calls (their digests must match); otherwise any key does.
 */
export async function replayRun(
  doc: JournalDocument,
  definition: WorkflowDefinition,
  hmacKey: Buffer | Hasher | undefined,
): Promise<ReplayResult> {
  const journal: JournalEntry[] = doc.entries.map((e) => ({
    position: e.position,
    kind: e.kind,
    name: e.name,
    keyDigest: e.keyDigest ?? undefined,
    status: e.status,
    attempt: e.attempt,
    value: e.value,
    outputSize: e.outputSize,
    errorRef: undefined,
    error: e.error,
    signalId: e.signalId ?? undefined,
    dueAt: ms(e.dueAt),
    startedAt: Date.parse(e.startedAt),
    endedAt: ms(e.endedAt),
    epoch: e.epoch,
  }));
  const positions = new Set(journal.map((e) => e.position));
  const epoch = journal.reduce((max, e) => Math.max(max, e.epoch), 0) + 1;
  const run: StoredRun = {
    runId: doc.runId,
    workflowName: doc.workflow,
    // Always open: the code runs from the top against the journal, whatever the run's state.
    status: 'open',
    epoch,
    // Without the seed (a token without the admin scope) ctx.random()/ctx.uuid() draw other values
    // than the run did; the caller says so.
    seed: doc.seed === null ? randomBytes(32) : Buffer.from(doc.seed, 'base64'),
    input: doc.input,
    inputSize: 0,
    output: undefined,
    outputSize: undefined,
    errorRef: undefined,
    idempotencyDigest: undefined,
    createdAt: Date.parse(doc.createdAt),
    endedAt: undefined,
    forkedFrom: doc.forkedFrom ?? undefined,
    digestVersion: doc.digestVersion ?? 1,
    // A key ring (CAIRN_DP_HMAC_KEY during a rotation) is used with the run's key ID; one key is
    // taken to be the run's.
    hmacKeyId: hmacKey instanceof Hasher ? (doc.hmacKeyId ?? '') : '',
  };

  let frontier: (CallView & { position: number }) | undefined;
  // The execution the frontier stops (set once the engine started it).
  const current: { execution?: RunExecution } = {};
  let stopped!: (outcome: RunOutcome) => void;
  const stoppedAtFrontier = new Promise<RunOutcome>((resolve) => (stopped = resolve));
  const reach = (call: CallView & { position: number }): void => {
    frontier ??= call;
    stopped({ kind: 'lost' });
    current.execution?.lose();
  };
  let failure: { name: string; message: string; errorCode?: string } | undefined;
  let nonDeterminism: NonDeterminismError | undefined;

  // The run's journal as the replay serves it: reads answer from the document; the first write of a
  // call the journal does not hold is the frontier, where the replay stops.
  const replayJournal: RunJournal = {
    runId: run.runId,
    fork: () => Promise.resolve({ created: false, copied: 0, inputMissing: false }),
    createFromPayload: () => Promise.resolve('exists'),
    acquire: () => Promise.resolve({ run, journal }),
    append: (_epoch, writes) => {
      const live = writes.find((w) => w.kind !== 'now');
      if (live) reach({ position: live.position, kind: live.kind, name: live.name, keyDigest: live.keyDigest ?? null });
      else if (writes.some((w) => !positions.has(w.position)))
        reach({ position: writes[0]!.position, kind: 'now', name: 'now', keyDigest: null });
      return never();
    },
    complete: () => {
      stopped({ kind: 'completed', outputSize: 0 });
      return Promise.resolve({ outputSize: 0 });
    },
    fail: (_epoch: number, record: ErrorInfo & { errorCode?: string }) => {
      failure = record;
      return Promise.resolve({ errorRef: '' });
    },
    cancel: () => Promise.resolve(),
    getError: () => Promise.resolve(undefined),
    takeSignal: (_epoch, position, name, _startedAt, keyDigest) => {
      reach({ position, kind: 'signal', name, keyDigest: keyDigest ?? null });
      return never();
    },
    publishStream: () => Promise.resolve(),
    getChild: (runId) => Promise.resolve(runId === run.runId ? run : undefined),
    createChild: (child) => {
      reach({ position: -1, kind: 'child', name: child.workflowName, keyDigest: null });
      return never();
    },
  };
  const store: RunJournals = {
    open: () => replayJournal,
    onSignal: () => Promise.resolve(() => Promise.resolve()),
  };

  // The step functions, tools and compensations of the local code never run during a replay: the
  // engine calls them only for a call the journal does not hold, which is where the replay stops.
  const guard = (what: string) => (): Promise<never> => {
    reach({ position: -1, kind: 'step', name: what, keyDigest: null });
    return never();
  };
  const watch = <T>(p: Promise<T>): Promise<T> =>
    p.catch((err: unknown) => {
      if (err instanceof NonDeterminismError) nonDeterminism ??= err;
      throw err;
    });
  const guardOptions = (name: string, o: unknown): unknown => {
    if (typeof o !== 'object' || o === null) return o;
    const copy: Record<string, unknown> = { ...(o as Record<string, unknown>) };
    if (typeof copy['compensate'] === 'function') copy['compensate'] = guard(`compensate.${name}`);
    return copy;
  };
  // The context is frozen: the replay hands the code a copy whose durable calls are guarded.
  const wrapContext = (ctx: WorkflowContext): WorkflowContext => {
    const passThrough = <K extends 'model' | 'sleep' | 'sleepUntil' | 'waitForSignal' | 'approval' | 'parallel' | 'child'>(k: K) =>
      ((...args: unknown[]) => watch((ctx[k] as (...a: unknown[]) => Promise<unknown>).apply(ctx, args))) as unknown as WorkflowContext[K];
    return Object.freeze({
      ...ctx,
      step: (name: string, a: unknown, b?: unknown) =>
        watch(
          (ctx.step as (n: string, a: unknown, b?: unknown) => Promise<unknown>)(
            name,
            typeof a === 'function' ? guard(name) : guardOptions(name, a),
            typeof b === 'function' ? guard(name) : guardOptions(name, b),
          ),
        ),
      agent: ((name: string, options: Record<string, unknown>) => {
        const tools = options['tools'] as Record<string, Record<string, unknown>> | undefined;
        const guarded = tools
          ? Object.fromEntries(Object.entries(tools).map(([k, t]) => [k, { ...t, execute: guard(`${name}.tool.${k}`) }]))
          : tools;
        return watch((ctx.agent as (n: string, o: unknown) => Promise<unknown>)(name, { ...options, tools: guarded }));
      }) as unknown as WorkflowContext['agent'],
      model: passThrough('model'),
      sleep: passThrough('sleep'),
      sleepUntil: passThrough('sleepUntil'),
      waitForSignal: passThrough('waitForSignal'),
      approval: passThrough('approval'),
      parallel: passThrough('parallel'),
      child: passThrough('child'),
    });
  };
  const wrapped: WorkflowDefinition = { ...definition, run: (ctx, input) => definition.run(wrapContext(ctx), input) };

  const onStepReport = (report: StepReport): void => {
    const step = report.step;
    if (!step || step.status !== StepStatus.RUNNING) return;
    // A new attempt is about to run: past the journal (or a retry of a journaled attempt).
    const entry = journal.find((e) => e.position === step.position);
    if (!entry || step.attempt > entry.attempt) {
      reach({
        position: step.position,
        kind: callKind(step.kind),
        name: step.name,
        keyDigest: step.keyDigest === '' ? null : step.keyDigest,
      });
    }
  };

  const logger = createLogger('replay', 'silent');
  const engine = new Engine({
    store,
    hasher: hmacKey instanceof Hasher ? hmacKey : new Hasher(hmacKey ?? randomBytes(32)),
    workflows: [wrapped],
    suspendThresholdMs: 0,
    signals: new SignalHub(store, logger),
    onStepReport,
    logger,
    startChild: () => never(),
  });
  const execution = engine.start({ runId: doc.runId, epoch, workflowName: definition.name, workflowVersion: definition.version });
  current.execution = execution;
  const outcome = await Promise.race([execution.done, stoppedAtFrontier]);
  execution.lose();
  await engine.close();

  const replayedCalls = execution.replayed.step + execution.replayed.model;
  const base = { replayedCalls, journalEntries: journal.filter((e) => e.kind !== 'now').length };
  const mismatch = nonDeterminism ?? (failure?.name === 'NonDeterminismError' ? failure : undefined);
  if (mismatch) {
    const position = nonDeterminism?.position ?? Number(/position (\d+)/.exec(mismatch.message)?.[1] ?? -1);
    const entry = journal.find((e) => e.position === position);
    return {
      ok: false,
      outcome: 'non_determinism',
      position,
      expected: nonDeterminism
        ? callView(nonDeterminism.expected)
        : entry
          ? { kind: entry.kind, name: entry.name, keyDigest: entry.keyDigest ?? null }
          : null,
      actual: nonDeterminism ? callView(nonDeterminism.actual) : null,
      message: mismatch.message,
      ...base,
    };
  }
  if (frontier) {
    // A final run's journal is complete: a call past it is a change in what the code does.
    if (['completed', 'failed', 'cancelled'].includes(doc.status) && frontier.kind !== 'now') {
      const position = frontier.position >= 0 ? frontier.position : journal.length;
      return {
        ok: false,
        outcome: 'non_determinism',
        position,
        expected: null,
        actual: { kind: frontier.kind, name: frontier.name, keyDigest: frontier.keyDigest },
        message: `Non-determinism at position ${position}: the run ended (${doc.status}) after ${base.journalEntries} journaled calls, but the workflow now calls ${frontier.kind} "${frontier.name}" there.`,
        ...base,
      };
    }
    return { ok: true, outcome: 'continues', next: frontier, ...base };
  }
  if (outcome.kind === 'suspended') return { ok: true, outcome: 'waiting', ...base };
  if (failure && doc.status !== 'failed') {
    // Model calls are answered from the journal, but the code builds each one's model first (from
    // the workers' configuration): a throw before a journaled model call is most likely that.
    const models = journal.filter((e) => e.kind === 'model').sort((a, b) => a.position - b.position);
    const unreached = models[execution.replayed.model];
    if (unreached) {
      const next = { position: unreached.position, kind: unreached.kind, name: unreached.name, keyDigest: unreached.keyDigest ?? null };
      return {
        ok: false,
        outcome: 'unreplayable',
        missing: 'model configuration',
        next,
        error: { name: failure.name, message: failure.message },
        message:
          `The workflow code threw ${failure.name} before model call "${next.name}" (position ${next.position}), which the journal holds: ` +
          `its model configuration is missing here (${failure.message})`,
        ...base,
      };
    }
    return {
      ok: false,
      outcome: 'diverged',
      error: { name: failure.name, message: failure.message },
      message: `The workflow code throws ${failure.name} after replaying ${replayedCalls} call(s), where the run (${doc.status}) did not fail: ${failure.message}`,
      ...base,
    };
  }
  if (failure) return { ok: true, outcome: 'failed', error: { name: failure.name, message: failure.message }, ...base };
  return { ok: true, outcome: 'completed', ...base };
}

/** The journal's spelling of a reported call kind. */
function callKind(kind: StepKind): string {
  // An enum's reverse mapping has no name for a number this build does not know.
  return ((StepKind[kind] as string | undefined) ?? 'STEP').toLowerCase();
}

/** Whether the journal holds keyed calls, whose digests only the data plane's HMAC key reproduces. */
export function journalNeedsKey(doc: JournalDocument): boolean {
  return doc.entries.some((e) => e.keyDigest !== null);
}
