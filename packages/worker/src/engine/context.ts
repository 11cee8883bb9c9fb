// The `ctx` API a workflow function calls: each method checks its arguments (a bad one rejects
// the call, nothing is journaled) and hands the call to its module (calls/, composites/).
import { CairnError, ErrorCodes, assertName, assertVersion, isNonNullObject } from '@cairn/common';
import {
  SignalValidationError,
  type AgentOptions,
  type AgentResult,
  type ApprovalOptions,
  type ApprovalResult,
  type ChildOptions,
  type EvalFeedback,
  type ModelCallOptions,
  type ModelResult,
  type ParallelOptions,
  type SignalDefinition,
  type SignalWaitOptions,
  type StepFunction,
  type StepOptions,
  type WorkflowContext,
  type WorkflowDefinition,
  type WorkflowInput,
  type WorkflowOutput,
} from '@cairn/sdk';
import {
  isSignalDefinition,
  mergeRetryPolicies,
  resolveRetryPolicy,
  toMilliseconds,
  validateWithSchema,
  type ResolvedRetryPolicy,
} from '@cairn/sdk/internal';
import { prepareAgent, runAgent, type PreparedAgent } from '../agent.js';
import { toError } from '../errors.js';
import { prepareEval, withFeedback, type PreparedEval } from '../eval.js';
import { prepareModelCall, type PreparedModelCall } from '../model.js';
import { child } from './calls/child.js';
import { durableModel } from './calls/model.js';
import { now, source } from './calls/now.js';
import { signalWait } from './calls/signal.js';
import { sleep } from './calls/sleep.js';
import { durableStep } from './calls/step.js';
import { approval } from './composites/approval.js';
import { gated, type GateCalls } from './composites/eval.js';
import { fanOut } from './composites/parallel.js';
import { never, type Slot } from './basics.js';
import type { Run } from './run.js';

/** The frozen `ctx` a workflow function gets: checks each call's arguments and hands it to its module. */
export function createContext(run: Run, workflow: WorkflowDefinition): WorkflowContext {
  const step = <T>(name: string, a: StepFunction<T> | StepOptions<T>, b?: StepFunction<T> | StepOptions<T>): Promise<T> => {
    let fn: StepFunction<T>;
    let options: StepOptions<T>;
    let policy: ResolvedRetryPolicy;
    let timeoutMs: number | undefined;
    let gate: PreparedEval | undefined;
    try {
      assertName(name, 'step name');
      if (typeof a === 'function') {
        fn = a;
        options = (b as StepOptions<T> | undefined) ?? {};
      } else {
        fn = b as StepFunction<T>;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- JavaScript callers can pass anything
        options = a ?? {};
      }
      if (typeof fn !== 'function') {
        throw new CairnError(
          ErrorCodes.INVALID_ARGUMENT,
          `ctx.step("${name}") needs a function: ctx.step(name, fn, options?) or ctx.step(name, options, fn).`,
        );
      }
      // The step's own options win; then the version's registered defaults; then the workflow's
      // settings in code; then the SDK's defaults. Retry policies merge field by field.
      const registered = run.assignment.defaults;
      policy = resolveRetryPolicy(mergeRetryPolicies(workflow.retry, registered?.retry, options.retry), `retry of step "${name}"`);
      timeoutMs =
        options.timeout === undefined
          ? (registered?.stepTimeoutMs ?? workflow.timeouts.step)
          : toMilliseconds(options.timeout, `timeout of step "${name}"`);
      if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'number') {
        throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `The key of step "${name}" must be a string or a number.`);
      }
      if (options.compensate !== undefined && typeof options.compensate !== 'function') {
        throw new CairnError(
          ErrorCodes.INVALID_ARGUMENT,
          `The compensate option of step "${name}" must be a function: { compensate: async (result) => undo(result) }.`,
        );
      }
      gate = options.eval === undefined ? undefined : prepareEval(name, `step "${name}"`, options.eval, options.key !== undefined);
    } catch (err) {
      return Promise.reject(toError(err));
    }
    const round = (feedback: EvalFeedback | undefined): Promise<T> => durableStep(run, name, fn, options, policy, timeoutMs, feedback);
    if (gate)
      return gated(
        run,
        gateCalls,
        name,
        options.key,
        gate,
        (feedback) => round(feedback),
        (value) => value,
      );
    return round(undefined);
  };

  const model = (name: string, options: ModelCallOptions): Promise<ModelResult> => {
    let call: PreparedModelCall;
    let gate: PreparedEval | undefined;
    try {
      assertName(name, 'model call name');
      call = prepareModelCall(name, options);
      if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'number') {
        throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `The key of model call "${name}" must be a string or a number.`);
      }
      gate = options.eval === undefined ? undefined : prepareEval(name, `model call "${name}"`, options.eval, options.key !== undefined);
    } catch (err) {
      return Promise.reject(toError(err));
    }
    if (!gate) return durableModel(run, name, options.key, call);
    // Each re-run carries the conversation so far: the previous answers and what failed in them.
    let current = options;
    const hasSchema = options.schema !== undefined;
    return gated(
      run,
      gateCalls,
      name,
      options.key,
      gate,
      (feedback, previous) => {
        if (feedback === undefined || previous === undefined) return durableModel(run, name, options.key, call);
        let next: PreparedModelCall;
        try {
          current = withFeedback(current, feedback, previous.text);
          next = prepareModelCall(name, current);
        } catch (err) {
          return Promise.reject(toError(err));
        }
        return durableModel(run, name, options.key, next);
      },
      (result) => (hasSchema ? result.object : result.text),
    );
  };

  /**
   * `ctx.agent`: a tool-calling loop of durable calls. Its calls are identified by the agent's
   * identity (`a<n>` on the main line, or its place in a branch) plus turn and tool-call index,
   * like a branch's calls, so a replay finds each entry whatever position it holds; checkpoints
   * (`<identity>.cp<k>`) let a replay start from the latest one without walking earlier turns.
   */
  const agent = (name: string, options: AgentOptions): Promise<AgentResult> => {
    let prepared: PreparedAgent;
    try {
      prepared = prepareAgent(name, options);
      // Checked once here, so a bad option fails before the first turn.
      prepareModelCall(prepared.turnName, { ...prepared.turnOptions, messages: [...prepared.initial] });
    } catch (err) {
      return Promise.reject(toError(err));
    }
    if (run.halt || (run.settled && !run.internal())) return never<AgentResult>();
    const parent = run.scope.getStore()?.branch;
    const id = parent ? `${parent.path}#${parent.seq++}` : `a${run.counters.agents++}`;
    return runAgent(run, id, prepared, options.key);
  };

  const approvalCall = <T>(name: string, options: ApprovalOptions = {}): Promise<ApprovalResult<T>> => approval<T>(run, name, options);
  const gateCalls: GateCalls = { model, approval: approvalCall };

  const sleepUntil = (dueAt: (startedAt: number) => number): Promise<void> => {
    const slot = run.cursor.slot('sleep', 'sleep', undefined);
    return run.durable(() => sleep(run, slot, dueAt));
  };

  const ctx: WorkflowContext = {
    runId: run.runId,
    workflowName: workflow.name,
    workflowVersion: workflow.version,
    signal: run.cancelSignal,
    step,
    model: model as WorkflowContext['model'],
    sleep: (duration) => {
      let ms: number;
      try {
        ms = toMilliseconds(duration, 'sleep duration');
      } catch (err) {
        return Promise.reject(toError(err));
      }
      return sleepUntil((startedAt) => startedAt + ms);
    },
    sleepUntil: (when) => {
      const at = when instanceof Date ? when.getTime() : when;
      if (typeof at !== 'number' || !Number.isFinite(at)) {
        return Promise.reject(new CairnError(ErrorCodes.INVALID_ARGUMENT, 'ctx.sleepUntil needs a Date or milliseconds since the epoch.'));
      }
      return sleepUntil(() => at);
    },
    waitForSignal: <T>(target: unknown, options: SignalWaitOptions = {}): Promise<T> => {
      let timeoutMs: number | undefined;
      let name: string;
      let signal: SignalDefinition<T> | undefined;
      try {
        if (isSignalDefinition(target)) {
          signal = target as SignalDefinition<T>;
          name = signal.name;
        } else {
          name = target as string;
        }
        assertName(name, 'signal name');
        if (!isNonNullObject(options)) {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `ctx.waitForSignal("${name}") takes options such as { timeout: '2d' }.`);
        }
        timeoutMs = options.timeout === undefined ? undefined : toMilliseconds(options.timeout, `timeout of the wait for signal "${name}"`);
      } catch (err) {
        return Promise.reject(toError(err));
      }
      const slot = run.cursor.slot('signal', name, undefined);
      const body = signal?.body;
      if (body === undefined) return run.durable(() => signalWait<T>(run, slot, name, timeoutMs));
      // The body is checked on every replay too: the schema is code, so the outcome is the same.
      return run.durable(async () => {
        const checked = await validateWithSchema(body.schema, await signalWait<unknown>(run, slot, name, timeoutMs));
        if ('issues' in checked) throw new SignalValidationError({ signalName: name, issues: checked.issues });
        return checked.value as T;
      });
    },
    approval: approvalCall,
    agent,
    parallel: <T, R>(items: Iterable<T>, fn: (item: T, index: number) => R | Promise<R>, options: ParallelOptions = {}) => {
      let list: T[];
      let concurrency: number;
      try {
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- JavaScript callers can pass anything
        if (items === null || typeof items !== 'object' || typeof (items as Partial<Iterable<T>>)[Symbol.iterator] !== 'function') {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'ctx.parallel needs a list (or another iterable) of items.');
        }
        list = Array.from(items);
        if (typeof fn !== 'function') {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'ctx.parallel needs a function: ctx.parallel(items, (item, index) => …).');
        }
        if (!isNonNullObject(options)) {
          throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'ctx.parallel takes options such as { concurrency: 4 }.');
        }
        concurrency = options.concurrency ?? Math.max(1, list.length);
        if (!Number.isInteger(concurrency) || concurrency < 1) {
          throw new CairnError(
            ErrorCodes.INVALID_ARGUMENT,
            `Invalid concurrency ${String(options.concurrency)} of ctx.parallel: use a whole number of at least 1.`,
          );
        }
      } catch (err) {
        return Promise.reject(toError(err));
      }
      if (run.halt || (run.settled && !run.internal())) return never<Awaited<R>[]>();
      const parent = run.scope.getStore()?.branch;
      const path = parent ? `${parent.path}#${parent.seq++}` : `p${run.counters.parallels++}`;
      return fanOut(run, path, list, fn, concurrency);
    },
    child: <W extends WorkflowDefinition<never>>(
      target: W | string,
      input: WorkflowInput<W>,
      options: ChildOptions = {},
    ): Promise<WorkflowOutput<W>> => {
      let slot: Slot;
      let name: string;
      try {
        name = typeof target === 'string' ? target : target.name;
        assertName(name, 'child workflow name');
        if (options.version !== undefined) assertVersion(options.version, `version of child workflow "${name}"`);
        slot = run.cursor.slot('child', name, options.key);
      } catch (err) {
        return Promise.reject(toError(err));
      }
      return run.durable(() => child<WorkflowOutput<W>>(run, slot, name, options.version ?? '', input));
    },
    now: () => now(run),
    random: () => source(run).random(),
    uuid: () => source(run).uuid(),
  };
  return Object.freeze(ctx);
}
