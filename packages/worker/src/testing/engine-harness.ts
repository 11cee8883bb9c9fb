// The control-plane side of the replay engine for its tests, in memory. The engine and the
// payload store stay real.
import assert from 'node:assert/strict';
import { createLogger, newId, type Logger } from '@cairn/common';
import type { Hasher, PayloadStore } from '@cairn/payload-store';
import type { StepReport } from '@cairn/proto';
import type { WorkflowDefinition } from '@cairn/sdk';
import { Engine, type RunExecution, type RunOutcome, type StartChildRequest } from '../engine.js';
import type { SignalHub } from '../signals.js';

export const logger: Logger = createLogger('worker-test', 'silent');
export const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The control-plane side of the engine, in memory: hands out epochs, collects step reports and
 * re-dispatches suspended runs when their timer is due. The engine and the payload store are real.
 */
export class FakeControlPlane {
  readonly reports: StepReport[] = [];
  /** StartChild requests acknowledged, in order (a resend appears again). */
  readonly children: StartChildRequest[] = [];
  readonly #epochs = new Map<string, number>();

  constructor(
    readonly store: PayloadStore,
    readonly hasher: Hasher,
    readonly signals: SignalHub,
  ) {}

  engine(workflows: readonly WorkflowDefinition[], suspendThresholdMs = 1000): Engine {
    return new Engine({
      store: this.store,
      hasher: this.hasher,
      workflows,
      suspendThresholdMs,
      signals: this.signals,
      onStepReport: (r) => this.reports.push(r),
      logger,
      // Acknowledged when one of the engine's workflows has that name (and version, if given).
      startChild: (request) => {
        const known = workflows.some(
          (w) => w.name === request.workflowName && (request.workflowVersion === '' || w.version === request.workflowVersion),
        );
        if (known) this.children.push(request);
        return Promise.resolve(known ? 'ok' : 'workflow_not_found');
      },
    });
  }

  async start(def: WorkflowDefinition, input: unknown): Promise<string> {
    const runId = newId();
    await this.store.createRun({ runId, workflowName: def.name, input });
    return runId;
  }

  dispatch(engine: Engine, runId: string, def: WorkflowDefinition, cancelRequested = false): RunExecution {
    const epoch = (this.#epochs.get(runId) ?? 0) + 1;
    this.#epochs.set(runId, epoch);
    return engine.start({ runId, epoch, workflowName: def.name, workflowVersion: def.version, cancelRequested });
  }

  /** Dispatches until the run is no longer suspended; waits for each timer like the sweep would. */
  async drive(
    engine: Engine,
    runId: string,
    def: WorkflowDefinition,
    options: { beforeRedispatch?: (outcome: RunOutcome) => Promise<void>; maxDispatches?: number } = {},
  ): Promise<{ outcome: RunOutcome; outcomes: RunOutcome[] }> {
    const outcomes: RunOutcome[] = [];
    for (let i = 0; i < (options.maxDispatches ?? 20); i++) {
      const outcome = await this.dispatch(engine, runId, def).done;
      outcomes.push(outcome);
      if (outcome.kind !== 'suspended') return { outcome, outcomes };
      if (options.beforeRedispatch) await options.beforeRedispatch(outcome);
      else if (outcome.wakeAt > 0) await pause(Math.max(0, outcome.wakeAt - Date.now()) + 5);
      else throw new Error(`run suspended without a timer: ${JSON.stringify(outcome)}`);
    }
    throw new Error('too many dispatches');
  }

  reportsFor(runId: string): StepReport[] {
    return this.reports.filter((r) => r.runId === runId);
  }
}

export function expectKind<K extends RunOutcome['kind']>(outcome: RunOutcome, kind: K): Extract<RunOutcome, { kind: K }> {
  assert.equal(
    outcome.kind,
    kind,
    `expected ${kind}, got ${JSON.stringify(outcome, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`,
  );
  return outcome as Extract<RunOutcome, { kind: K }>;
}
