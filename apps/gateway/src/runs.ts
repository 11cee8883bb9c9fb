import { CairnError, ErrorCodes, assertName, assertVersion, coarseSizeBig, isId, newId, type Logger } from '@cairn/common';
import {
  CURRENT_DIGEST_VERSION,
  STRICT_NAME_PATTERN,
  approvalSignalName,
  crossingWorkflowName,
  keyedSignalId,
  signalNameDigest,
  strictNameDigest,
  type Hasher,
  type PayloadStore,
  type ResidencyMode,
} from '@cairn/payload-store';
import {
  CancelRunRequestSchema,
  DescribeRunRequestSchema,
  ResolveVersionRequestSchema,
  RunStatus,
  SignalRunRequestSchema,
  StartRunRequestSchema,
  WaitRunRequestSchema,
  create,
  type RunInfo,
  type RunWarning,
  type StepInfo,
} from '@cairn/proto';
import { ControlPlaneError, mayHaveTakenEffect, type ControlPlane } from './control-plane.js';
import { invalid, storeError } from './errors.js';
import { SchemaValidation } from './validation.js';
import { entryView, errorView, isFinal, transcriptView, type EntryView, type ErrorView, type TranscriptView } from './views.js';

/** What sending a signal did. */
export interface SignalOutcome {
  readonly signalId: string;
  /** False: an earlier request with the same idempotency key stored this signal. */
  readonly created: boolean;
  /** The run as the control plane answered; undefined when it did not answer. */
  readonly run: RunInfo | undefined;
  /** The control plane was not told yet: the signal is stored and the signal sweep tells it. */
  readonly pending: boolean;
}

/** A request to start a run, as the caller sent it (validated here). */
export interface StartRequest {
  readonly workflow: unknown;
  readonly version?: unknown;
  readonly input?: unknown;
  readonly idempotencyKey?: string | undefined;
  /** Groups runs under a workflow's per-key concurrency or rate limit; crosses only as an HMAC. */
  readonly concurrencyKey?: string | undefined;
  /** 0–100, higher first; default 50. */
  readonly priority?: unknown;
}

/** An answer to `ctx.approval`, as the workflow receives it (its signal body). */
export interface ApprovalAnswer {
  readonly approved: boolean;
  readonly by?: string;
  readonly comment?: string;
  readonly data?: unknown;
}

/** A run with what the data plane holds for it: the output or the error. */
export interface RunWithResult {
  readonly run: RunInfo;
  readonly output?: unknown;
  readonly error?: ErrorView;
}

export const IDEMPOTENCY_KEY_MAX_LENGTH = 1024;
/** Run priorities: 0 (lowest) to 100; a start without one gets 50. */
export const MAX_PRIORITY = 100;
export const DEFAULT_PRIORITY = 50;

/** A probe of whether an interrupted StartRun took effect must not hold the caller long. */
const PROBE_TIMEOUT_MS = 2_000;

/** assertName and assertVersion, without echoing a whole oversized value back. */
function checkName(value: unknown, what: string): asserts value is string {
  if (typeof value === 'string' && value.length > 120) assertName(`${value.slice(0, 120)}…`, what);
  assertName(value, what);
}

function checkVersion(value: unknown): asserts value is string {
  if (typeof value === 'string' && value.length > 80) assertVersion(`${value.slice(0, 80)}…`);
  assertVersion(value);
}

function checkIdempotencyKey(key: string | undefined): void {
  if (key !== undefined && (key.length === 0 || key.length > IDEMPOTENCY_KEY_MAX_LENGTH)) {
    throw invalid(`the idempotency key must be 1 to ${IDEMPOTENCY_KEY_MAX_LENGTH} characters long`);
  }
}

export function assertRunId(value: string): void {
  if (!isId(value)) {
    throw invalid(
      `malformed run id ${JSON.stringify(value.slice(0, 80))}: run ids are lowercase UUIDs such as ` +
        `3f1c2a9e-7b4d-4e0a-9c1b-2d5e6f7a8b9c, as returned by POST /v1/runs`,
    );
  }
}

export function runNotFound(runId: string): CairnError {
  return new CairnError(
    ErrorCodes.NOT_FOUND,
    `run ${runId} not found: no run with this id exists for this data plane. Check the id returned when the run was started.`,
  );
}

function missingRun(method: string): CairnError {
  return new CairnError(ErrorCodes.PROTOCOL, `the control plane answered ${method} without a run`);
}

/**
 * Runs as the gateway serves them: the payload goes to the payload store, the control plane is
 * told ids, names, sizes and digests. Throws Cairn errors; the HTTP edge maps their codes.
 */
export class RunService {
  readonly #store: PayloadStore;
  readonly #cp: ControlPlane;
  readonly #residency: ResidencyMode;
  readonly #hasher: Hasher;
  readonly #log: Logger;
  readonly #schemas: SchemaValidation;

  constructor(store: PayloadStore, controlPlane: ControlPlane, hasher: Hasher, logger: Logger, residency: ResidencyMode = 'standard') {
    this.#residency = residency;
    this.#store = store;
    this.#cp = controlPlane;
    this.#hasher = hasher;
    this.#log = logger;
    this.#schemas = new SchemaValidation(store, logger);
  }

  /** Stops listening for schema catalogue changes. */
  async close(): Promise<void> {
    await this.#schemas.close();
  }

  /**
   * Checks the input against the workflow's catalogued input schema (nothing is stored and the
   * control plane is not asked to start anything when it does not match), stores it, then asks
   * the control plane to queue the run. A duplicate (same idempotency key) returns the earlier run
   * and drops the input just stored; a start that fails drops it too, so nothing is left
   * half-started.
   */
  async start(request: StartRequest): Promise<{ created: boolean; run: RunInfo; warnings: RunWarning[] }> {
    checkName(request.workflow, 'workflow name');
    const workflow = await this.#workflowOfStart(request.workflow);
    let version = '';
    if (request.version !== undefined && request.version !== null) {
      checkVersion(request.version);
      version = request.version;
    }
    const key = request.idempotencyKey;
    checkIdempotencyKey(key);
    const concurrencyKey = request.concurrencyKey;
    if (concurrencyKey !== undefined && (concurrencyKey.length === 0 || concurrencyKey.length > IDEMPOTENCY_KEY_MAX_LENGTH)) {
      throw invalid(`concurrencyKey must be 1 to ${IDEMPOTENCY_KEY_MAX_LENGTH} characters long`);
    }
    const priority = request.priority ?? DEFAULT_PRIORITY;
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
      throw invalid(`priority must be a whole number from 0 to ${MAX_PRIORITY} (higher runs first; default ${DEFAULT_PRIORITY})`);
    }
    try {
      version = await this.#schemas.checkStart(workflow, version, request.input, async () => {
        const { workflowVersion } = await this.#cp.resolveVersion(
          create(ResolveVersionRequestSchema, { workflowName: this.crossingName(workflow) }),
        );
        return workflowVersion;
      });
    } catch (err) {
      throw err instanceof ControlPlaneError ? startError(err, workflow, '') : err;
    }
    const runId = newId();
    const log = this.#log.child({ runId });
    // Derived per purpose and workflow (Hasher.forRun): the same key in another workflow, or as a
    // step or approval key, gives an unrelated digest.
    const digest = key === undefined ? undefined : this.#hasher.forRun(workflow, CURRENT_DIGEST_VERSION).idempotency(key);
    // Domain-separated from idempotency digests, so the two cannot be matched with each other.
    const concurrencyKeyDigest = concurrencyKey === undefined ? '' : this.#hasher.digest(`concurrency:${concurrencyKey}`);
    let inputSize: number;
    try {
      ({ inputSize } = await this.#store.createRun({
        runId,
        workflowName: workflow,
        input: request.input,
        idempotencyDigest: digest,
        hmacKeyId: this.#hasher.activeKeyId,
      }));
    } catch (err) {
      throw inputError(storeError(err), 'run input');
    }
    const startRequest = create(StartRunRequestSchema, {
      runId,
      // In strict mode its keyed digest; the payload store keeps the name (dp_runs.workflow_name).
      workflowName: this.crossingName(workflow),
      workflowVersion: version,
      idempotencyDigest: digest ?? '',
      // The exact size stays in the payload store; the control plane gets its size class.
      inputSize: coarseSizeBig(inputSize),
      priority,
      concurrencyKeyDigest,
    });
    let started: { created: boolean; run: RunInfo; warnings: RunWarning[] };
    try {
      const response = await this.#cp.startRun(startRequest);
      if (!response.run) throw missingRun('StartRun');
      // The run is ours when it carries our id; any other run is an earlier one with the same key.
      started = { created: response.run.runId === runId, run: await this.#named(response.run), warnings: response.warnings };
    } catch (err) {
      const run = await this.#startedAnyway(runId, err);
      if (run) {
        log.info('the control plane answer to StartRun was lost, but the run exists: keeping it');
        // What the lost answer warned of is not known.
        return { created: true, run: await this.#named(run), warnings: [] };
      }
      if (mayHaveTakenEffect(err)) {
        // No definite answer: the control plane may have created the run and lost its answer (a
        // timeout, a dropped connection, a crash after commit). Deleting the input would leave that
        // run without one; the orphan sweep removes it once the control plane says the run does not exist.
        log.warn('StartRun ended without a definite answer; the input is kept for the run the control plane may have created');
      } else {
        await this.#discardInput(runId, log);
      }
      throw startError(err, workflow, version);
    }
    if (!started.created) {
      log.info({ existingRunId: started.run.runId }, 'idempotent duplicate: returning the earlier run');
      await this.#discardInput(runId, log);
    }
    return started;
  }

  /**
   * Checks the new input of a fork of `runId` (on `version`, default the run's own) against the
   * input schema catalogued for that workflow version, as a start's input is checked: throws
   * `[CAIRN-1116]` with the issues when it does not match. Nothing is checked for a version with
   * no catalogued schema (the worker still checks the input when the fork starts).
   */
  async checkForkInput(runId: string, version: string | undefined, input: unknown): Promise<void> {
    assertRunId(runId);
    if (version !== undefined) checkVersion(version);
    let workflow: string | undefined;
    try {
      workflow = await this.#store.runWorkflowName(runId);
    } catch (err) {
      throw storeError(err);
    }
    if (workflow === undefined) throw runNotFound(runId);
    const target = version ?? (await this.describe(runId)).run.workflowVersion;
    await this.#schemas.checkStart(workflow, target, input, () => Promise.resolve(target));
  }

  /**
   * The workflow a start names. In strict mode a caller may copy the digest the control plane
   * shows: it is resolved to the name, so the payload store keeps the name (and the worker's
   * digests of the run's keys match the gateway's); a digest of no catalogued workflow is refused.
   */
  async #workflowOfStart(given: string): Promise<string> {
    if (this.#residency !== 'strict' || !STRICT_NAME_PATTERN.test(given)) return given;
    const name = (await this.resolveWorkflowNames([given])).get(given);
    if (name === undefined) {
      throw invalid(
        `workflow ${given} is a keyed digest of no workflow this data plane's workers catalogued: start the workflow by its name`,
      );
    }
    return name;
  }

  /**
   * When StartRun's answer was lost (timeout, dropped connection) the run may exist all the same;
   * its input must then stay. Asks once, briefly.
   */
  async #startedAnyway(runId: string, err: unknown): Promise<RunInfo | undefined> {
    if (!(err instanceof ControlPlaneError) || !err.unreachable || this.#cp.connecting) return undefined;
    try {
      const { run } = await this.#cp.describeRun(create(DescribeRunRequestSchema, { runId }), { timeoutMs: PROBE_TIMEOUT_MS });
      return run;
    } catch {
      return undefined;
    }
  }

  async #discardInput(runId: string, log: Logger): Promise<void> {
    try {
      await this.#store.deleteRun(runId);
    } catch (err) {
      // The input stays behind, unreferenced by any run the control plane knows; it is never read.
      log.error({ err }, 'could not delete the input of a run that was not started');
    }
  }

  /**
   * A run's metadata and step timeline. Step and signal names a strict-mode worker sent as keyed
   * digests are resolved from the run's journal, which records each call's name.
   */
  async describe(runId: string): Promise<{ run: RunInfo; steps: StepInfo[]; warnings: RunWarning[] }> {
    assertRunId(runId);
    const response = await this.#cp.describeRun(create(DescribeRunRequestSchema, { runId })).catch(notFoundAsRun(runId));
    if (!response.run) throw missingRun('DescribeRun');
    return { run: await this.#named(response.run), steps: await this.#resolveNames(runId, response.steps), warnings: response.warnings };
  }

  /**
   * The name a workflow crosses to the control plane under: in strict residency mode its keyed
   * digest (`crossingWorkflowName`), which every worker of this data plane announces for it.
   */
  crossingName(workflow: string): string {
    return crossingWorkflowName(this.#hasher, this.#residency, workflow);
  }

  /**
   * Workflow names for the digests a strict-mode data plane sent in their place, from the schema
   * catalogue (every workflow a worker of this data plane ran is catalogued in clear). A digest of
   * no catalogued workflow (one from another data plane, or under a retired key) is left out.
   */
  async resolveWorkflowNames(digests: readonly string[]): Promise<Map<string, string>> {
    const wanted = new Set(digests.filter((d) => STRICT_NAME_PATTERN.test(d)));
    const found = new Map<string, string>();
    if (wanted.size === 0) return found;
    let names: string[];
    try {
      names = await this.#store.catalogueNames();
    } catch (err) {
      throw storeError(err);
    }
    for (const name of names) {
      const digest = strictNameDigest(this.#hasher, 'workflow', name);
      if (wanted.has(digest)) found.set(digest, name);
    }
    return found;
  }

  /**
   * Each workflow name with the name it crosses under, then each control-plane name with the
   * workflow name it stands for (null for a digest of no catalogued workflow; a name that is not a
   * digest stands for itself).
   */
  async workflowNames(names: readonly string[], digests: readonly string[]): Promise<Array<{ name: string | null; crossesAs: string }>> {
    for (const name of names) checkName(name, 'workflow name');
    const resolved = await this.resolveWorkflowNames(digests);
    return [
      ...names.map((name) => ({ name, crossesAs: this.crossingName(name) })),
      ...digests.map((digest) => ({ name: STRICT_NAME_PATTERN.test(digest) ? (resolved.get(digest) ?? null) : digest, crossesAs: digest })),
    ];
  }

  /** The run with its workflow's name where the control plane holds a strict-mode digest. */
  async #named(run: RunInfo): Promise<RunInfo> {
    if (!STRICT_NAME_PATTERN.test(run.workflowName)) return run;
    let name: string | undefined;
    try {
      name = (await this.#store.runWorkflowName(run.runId)) ?? (await this.resolveWorkflowNames([run.workflowName])).get(run.workflowName);
    } catch (err) {
      throw storeError(err);
    }
    return name === undefined ? run : { ...run, workflowName: name };
  }

  async #resolveNames(runId: string, steps: StepInfo[]): Promise<StepInfo[]> {
    if (!steps.some((s) => STRICT_NAME_PATTERN.test(s.name))) return steps;
    let entries;
    try {
      entries = await this.#store.loadJournal(runId);
    } catch (err) {
      throw storeError(err);
    }
    const names = new Map<string, string>();
    for (const e of entries) names.set(strictNameDigest(this.#hasher, e.kind === 'signal' ? 'signal' : 'step', e.name), e.name);
    return steps.map((s) => {
      const name = STRICT_NAME_PATTERN.test(s.name) ? names.get(s.name) : undefined;
      return name === undefined ? s : { ...s, name };
    });
  }

  /** A run's metadata with its output or error, read from the payload store, and what may keep it from running soon. */
  async get(runId: string): Promise<RunWithResult & { warnings: RunWarning[] }> {
    const { run, warnings } = await this.describe(runId);
    return { ...(await this.#withResult(run)), warnings };
  }

  /**
   * Waits up to `waitMs` for the run to end. Returns the run, with its output or error when it
   * ended.
   */
  async result(runId: string, waitMs: number, signal?: AbortSignal): Promise<{ final: boolean } & RunWithResult> {
    assertRunId(runId);
    const response = await this.#cp
      // 0 may read as "no timeout given" (the control plane's longest wait): ask for 1 ms instead.
      .waitRun(create(WaitRunRequestSchema, { runId, timeoutMs: Math.max(1, waitMs) }), { extraMs: waitMs, signal })
      .catch(notFoundAsRun(runId));
    if (!response.run) throw missingRun('WaitRun');
    const run = await this.#named(response.run);
    if (!isFinal(run.status)) return { final: false, run };
    return { final: true, ...(await this.#withResult(run)) };
  }

  /** Waits up to `waitMs` for the run to end and returns its metadata (final or not). */
  async wait(runId: string, waitMs: number, signal?: AbortSignal): Promise<RunInfo> {
    assertRunId(runId);
    const response = await this.#cp
      .waitRun(create(WaitRunRequestSchema, { runId, timeoutMs: Math.max(1, waitMs) }), { extraMs: waitMs, signal })
      .catch(notFoundAsRun(runId));
    if (!response.run) throw missingRun('WaitRun');
    return this.#named(response.run);
  }

  async #withResult(run: RunInfo): Promise<RunWithResult> {
    let output: unknown;
    let error: ErrorView | undefined;
    try {
      const stored = await this.#store.getRun(run.runId);
      if (stored) {
        // The control plane holds size classes; the exact sizes are here, in the payload store.
        run = { ...run, inputSize: BigInt(stored.inputSize), outputSize: BigInt(stored.outputSize ?? 0) };
        if (run.status === RunStatus.COMPLETED) output = stored.output;
      }
      if (run.errorRef !== '') {
        const stored = await this.#store.getError(run.errorRef);
        if (stored) error = errorView(stored);
      }
    } catch (err) {
      throw storeError(err);
    }
    return { run, ...(output === undefined ? {} : { output }), ...(error ? { error } : {}) };
  }

  /** The recorded journal entry at a position, from the payload store. */
  async entry(runId: string, position: number): Promise<EntryView> {
    assertRunId(runId);
    let entry;
    try {
      entry = await this.#store.readEntry(runId, position);
    } catch (err) {
      throw storeError(err);
    }
    if (!entry) {
      throw new CairnError(
        ErrorCodes.NOT_FOUND,
        `run ${runId} has no journal entry at position ${position} in this data plane's payload store ` +
          '(unknown run, or the run has not reached that position; GET /v1/runs/:id/steps lists the positions)',
      );
    }
    return entryView(runId, entry);
  }

  /** The transcript of the model call at a position, from the payload store. */
  async transcript(runId: string, position: number): Promise<TranscriptView> {
    assertRunId(runId);
    let stored;
    try {
      stored = await this.#store.getTranscript(runId, position);
    } catch (err) {
      throw storeError(err);
    }
    if (!stored) {
      throw new CairnError(
        ErrorCodes.NOT_FOUND,
        `run ${runId} has no model call transcript at position ${position} in this data plane's payload store ` +
          '(not a model call, a call still in progress, or an unknown run; GET /v1/runs/:id/steps lists the positions and kinds)',
      );
    }
    return transcriptView(stored);
  }

  /**
   * Checks the body against the schema the run's workflow version declares for the signal (when it
   * declares one), stores it, then tells the control plane. If the control plane refuses for certain
   * (the run is unknown or ended), the stored body is removed again unless a waiting run consumed it
   * already (then it was delivered). If it gives no definite answer (unreachable, a timeout, an
   * internal error), the signal is kept and the answer says `pending`: the control plane may have
   * recorded the notice already, and the gateway's signal sweep tells it otherwise, so the caller
   * must not send it again.
   *
   * With an idempotency key the signal's ID is derived from the run, the name and the key
   * (`keyedSignalId`), so a repeat finds the signal stored already: nothing new is stored, the
   * control plane is told the same ID again (it records a notice once per ID) and the answer says
   * `created: false`. A repeat with another body is refused with 409.
   *
   * The name comes from the caller, so it may be anything that fits the name pattern (a person's
   * name and an ID, say). It crosses in clear only when code declared it: the run's workflow lists
   * the signal, or the run waits for it (the control plane has that name from the worker already).
   * Otherwise only its per-run keyed digest crosses; the worker sends the same digest when the run
   * suspends on the signal, so the notice still wakes it.
   */
  async signal(runId: string, name: string, body: unknown, idempotencyKey?: string): Promise<SignalOutcome> {
    assertRunId(runId);
    checkName(name, 'signal name');
    checkIdempotencyKey(idempotencyKey);
    let described: RunInfo | undefined;
    const describe = async (): Promise<RunInfo> => {
      if (described) return described;
      const { run } = await this.#cp.describeRun(create(DescribeRunRequestSchema, { runId })).catch(notFoundAsRun(runId));
      if (!run) throw missingRun('DescribeRun');
      return (described = run);
    };
    await this.#schemas.checkSignal(runId, name, body, async () => (await describe()).workflowVersion);
    // In strict mode no signal name crosses in clear.
    const declared =
      this.#residency === 'standard' && ((await this.#schemas.declaresSignal(runId, name)) || (await describe()).waitingSignal === name);
    const signalName = declared ? name : '';
    const signalDigest = signalNameDigest(this.#hasher, runId, name);
    const signalId = idempotencyKey === undefined ? newId() : await this.#keyedSignalId(runId, name, idempotencyKey);
    const log = this.#log.child({ runId, signalId });
    let created: boolean;
    try {
      ({ created } = await this.#store.addSignal(runId, name, body, signalId));
    } catch (err) {
      if (err instanceof CairnError && err.code === ErrorCodes.RUN_NOT_FOUND) throw runNotFound(runId);
      if (err instanceof CairnError && err.code === ErrorCodes.CONFLICT) {
        throw new CairnError(
          ErrorCodes.CONFLICT,
          `this Idempotency-Key was already used for a different signal body: run ${runId} has a signal ${name} with this key ` +
            'and another body. Send the same body to repeat that signal, or a new key for a new signal',
          { cause: err },
        );
      }
      throw inputError(storeError(err), 'signal body');
    }
    if (!created) log.info('idempotent repeat: the signal is stored already; telling the control plane again');
    let run: RunInfo | undefined;
    try {
      ({ run } = await this.#cp.signalRun(create(SignalRunRequestSchema, { runId, signalName, signalDigest, signalId })));
    } catch (err) {
      if (mayHaveTakenEffect(err)) {
        // Kept either way: the control plane may have recorded the notice before the answer was
        // lost, and a notice without its signal would wake the run for nothing. The signal sweep
        // (signal-notices.ts) tells the control plane once it answers.
        log.warn(
          { code: CairnError.from(err).code },
          'the control plane was not told of the signal; it is kept and the signal sweep tells the control plane',
        );
        return { signalId, created, run: undefined, pending: true };
      }
      return this.#refused(runId, name, signalId, created, idempotencyKey !== undefined, err);
    }
    await this.#told(signalId);
    return { signalId, created, run: run && (await this.#named(run)), pending: false };
  }

  /** Records that the control plane has heard of the signal, so the sweep leaves it alone; a failure only means the sweep tells it again. */
  async #told(signalId: string): Promise<void> {
    try {
      await this.#store.markSignalsNotified([signalId]);
    } catch (err) {
      this.#log.warn({ signalId, code: CairnError.from(err).code }, 'could not record that the control plane was told of a signal');
    }
  }

  /**
   * SignalRun was refused for certain: the run is unknown to the control plane or has ended. The
   * stored signal is removed unless a wait consumed it already (then it was delivered). A repeat
   * of a keyed signal to a run that ended since has the signal the earlier request sent (consumed
   * or kept) and is answered as that request was.
   */
  async #refused(runId: string, name: string, signalId: string, created: boolean, keyed: boolean, err: unknown): Promise<SignalOutcome> {
    if (!created && err instanceof ControlPlaneError && err.code === ErrorCodes.CONFLICT) {
      const run = await this.#cp.describeRun(create(DescribeRunRequestSchema, { runId })).then(
        (r) => r.run,
        () => undefined,
      );
      if (run && isFinal(run.status)) {
        await this.#told(signalId);
        return { signalId, created: false, run: await this.#named(run), pending: false };
      }
    }
    let deleted: boolean;
    try {
      deleted = await this.#store.deleteSignalIfUnconsumed(signalId);
    } catch (cleanup) {
      this.#log.error({ runId, signalId, err: cleanup }, 'could not remove a signal the control plane refused');
      throw new CairnError(
        ErrorCodes.UNAVAILABLE,
        `${CairnError.from(err).rawMessage}; the stored signal could not be removed either, so it may still be delivered ` +
          `when the run next waits for ${name}: ${keyed ? 'send it again with the same Idempotency-Key' : 'check the run before sending the signal again'}`,
        { cause: err },
      );
    }
    if (!deleted) {
      this.#log.info({ runId, signalId }, 'the control plane refused the signal, but a waiting run consumed it already: delivered');
      await this.#told(signalId);
      return { signalId, created, run: undefined, pending: false };
    }
    throw signalError(err, runId, keyed);
  }

  /** The ID of a signal sent with an idempotency key, under the run's own digest keys. */
  async #keyedSignalId(runId: string, name: string, key: string): Promise<string> {
    let scope;
    try {
      scope = await this.#store.runDigestScope(runId);
    } catch (err) {
      throw storeError(err);
    }
    if (!scope) throw runNotFound(runId);
    return keyedSignalId(this.#hasher.forRun(scope.workflowName, scope.digestVersion, scope.hmacKeyId), runId, name, key);
  }

  /**
   * Answers a workflow's `ctx.approval(name, { key })`: sends the answer as the signal
   * `approval.<name>[.<key digest>]`, through the same path as any signal (stored in the payload
   * store first, then SignalRun). The key is HMAC'd here like the worker does; the answer's comment
   * and data are stored in the data plane only. An idempotency key makes a repeat of the same answer
   * deliver nothing new (see {@link signal}).
   */
  async approve(
    runId: string,
    name: string,
    answer: ApprovalAnswer,
    key: string | number | undefined,
    idempotencyKey?: string,
  ): Promise<SignalOutcome & { signalName: string }> {
    assertRunId(runId);
    checkName(name, 'approval name');
    checkIdempotencyKey(idempotencyKey);
    let keyDigest: string | undefined;
    if (key !== undefined) {
      // The run's own derivation: the one its worker digested the approval's key with.
      const scope = await this.#store.runDigestScope(runId);
      if (!scope) throw runNotFound(runId);
      keyDigest = this.#hasher.forRun(scope.workflowName, scope.digestVersion, scope.hmacKeyId).approval(String(key));
    }
    const signalName = approvalSignalName(name, keyDigest);
    return { signalName, ...(await this.signal(runId, signalName, answer, idempotencyKey)) };
  }

  /** Requests cancellation; a run cancelled at once (one that never ran) is closed in the data plane too. */
  async cancel(runId: string): Promise<RunInfo> {
    assertRunId(runId);
    const { run } = await this.#cp.cancelRun(create(CancelRunRequestSchema, { runId })).catch(notFoundAsRun(runId));
    if (!run) throw missingRun('CancelRun');
    if (run.status === RunStatus.CANCELLED) {
      try {
        await this.#store.markCancelled(runId);
      } catch (err) {
        // Only a worker holding a lease writes to an open run, and the control plane will not dispatch it again.
        this.#log.warn({ runId, err }, 'could not mark a cancelled run closed in the payload store');
      }
    }
    return this.#named(run);
  }
}

function notFoundAsRun(runId: string) {
  return (err: unknown): never => {
    if (err instanceof ControlPlaneError && err.code === ErrorCodes.NOT_FOUND) throw runNotFound(runId);
    throw err;
  };
}

/** A payload that cannot be stored as JSON is the caller's input problem. */
function inputError(err: CairnError, what: string): CairnError {
  if (err.code !== ErrorCodes.NOT_SERIALIZABLE) return err;
  return invalid(`the ${what} could not be stored as JSON (is it nested too deeply?): ${err.rawMessage}`);
}

function startError(err: unknown, workflow: string, version: string): CairnError {
  if (!(err instanceof ControlPlaneError)) return CairnError.from(err);
  if (err.code === ErrorCodes.NOT_FOUND) {
    const what = version === '' ? `workflow ${workflow}` : `workflow ${workflow} version ${version}`;
    return new CairnError(
      ErrorCodes.WORKFLOW_NOT_FOUND,
      `${what} is not registered: no worker of this data plane has announced it and it is not registered in the project. ` +
        'Register it (cairn workflows register, or POST /v1/projects/{project}/workflows on the control plane), or in development mode start a worker that defines it.',
      { cause: err },
    );
  }
  if (err.code === ErrorCodes.UNAVAILABLE) {
    return new CairnError(
      ErrorCodes.UNAVAILABLE,
      `control plane unreachable; the run may not have started: retry with the same Idempotency-Key, which cannot start it twice (${err.rawMessage})`,
      {
        cause: err,
      },
    );
  }
  return err;
}

function signalError(err: unknown, runId: string, keyed = false): CairnError {
  if (!(err instanceof ControlPlaneError)) return CairnError.from(err);
  switch (err.code) {
    case ErrorCodes.NOT_FOUND:
      return runNotFound(runId);
    case ErrorCodes.CONFLICT: {
      // Said once, with the final status when the control plane named it.
      const status = /\((completed|failed|cancelled|terminated|timed_out)\)/.exec(err.rawMessage)?.[1];
      return new CairnError(
        ErrorCodes.CONFLICT,
        `run ${runId} has already ended${status ? ` (${status})` : ''}, so it cannot receive signals; the signal was not kept`,
        { cause: err },
      );
    }
    case ErrorCodes.UNAVAILABLE:
      return new CairnError(
        ErrorCodes.UNAVAILABLE,
        `control plane unreachable; the signal was not stored, retry${keyed ? ' with the same Idempotency-Key' : ''} (${err.rawMessage})`,
        { cause: err },
      );
    default:
      return err;
  }
}
