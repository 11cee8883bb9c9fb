// The workload: simulated applications starting runs of every kind through the gateways, as a user
// would with @cairn/client, sending signals early and late, answering approvals, and waiting for
// results. Calls that fail while faults are in progress are retried, on the other gateway too, with
// idempotency keys so that a retry never starts a second run or delivers a signal twice.
import { CairnClientError, RunEndedError, workflowRef, type CairnClient } from '@cairn/client';
import type { Random } from './random.js';

export type Scenario = 'steps' | 'retry' | 'sleep' | 'signals' | 'saga' | 'parent' | 'model' | 'probe';

/** How often each scenario is drawn. */
const MIX: Record<Exclude<Scenario, 'probe'>, number> = {
  steps: 40,
  retry: 8,
  sleep: 10,
  signals: 10,
  saga: 12,
  parent: 8,
  model: 12,
};

const WORKFLOW: Record<Scenario, string> = {
  steps: 'chaos-steps',
  retry: 'chaos-retry',
  sleep: 'chaos-sleep',
  signals: 'chaos-signals',
  saga: 'chaos-saga',
  parent: 'chaos-parent',
  model: 'chaos-model',
  probe: 'chaos-steps',
};

/** What the checker expects of a run. */
export interface Expectation {
  readonly status: 'completed' | 'failed';
  /** The output, compared as JSON, when it is known in advance. */
  readonly output?: unknown;
  /** The bookings whose undo must run (saga). */
  readonly undone?: readonly number[];
}

export interface RunRecord {
  readonly n: number;
  readonly scenario: Scenario;
  readonly workflow: string;
  readonly input: Record<string, unknown>;
  readonly expected: Expectation;
  readonly signals: Array<{ readonly value: string; readonly when: 'early' | 'late' }>;
  approval?: 'approve' | 'reject';
  runId?: string;
  startedAt?: number;
  endedAt?: number;
  outcome?: { readonly status: string; readonly output?: unknown; readonly errorCode?: string | undefined };
  /** Calls that failed for good (not a fault's transient error), with what they answered. */
  readonly problems: string[];
}

export interface WorkloadOptions {
  readonly clients: readonly CairnClient[];
  readonly random: Random;
  /** Simulated applications, each running one run at a time. */
  readonly concurrency: number;
  /** Put in every input, signal body and prompt; it must never reach the control plane. */
  readonly canary: string;
  /** How long a call may keep failing before the workload gives up on it. */
  readonly callBudgetMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A failure a fault explains: no answer, or an answer saying "try again". */
function transient(err: unknown): boolean {
  if (!(err instanceof CairnClientError)) return true;
  return err.status === undefined || err.status === 429 || err.status >= 500;
}

export class Workload {
  readonly records: RunRecord[] = [];
  readonly #o: WorkloadOptions;
  #stopping = false;
  #users: Array<Promise<void>> = [];
  #gateway = 0;
  /** Calls retried after a transient failure. */
  retries = 0;

  constructor(options: WorkloadOptions) {
    this.#o = options;
  }

  start(): void {
    this.#users = Array.from({ length: this.#o.concurrency }, () => this.#user());
  }

  /** Stops starting runs; resolves once every run started has been followed to its end (or given up on). */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#users);
  }

  /** A fresh one-step run, end to end: how long it took (the recovery probe). */
  async probe(): Promise<number> {
    const started = Date.now();
    const record = this.#plan('probe');
    await this.#execute(record);
    if (record.outcome?.status !== 'completed')
      throw new Error(`probe run ${record.runId ?? '(not started)'} ended ${record.outcome?.status}`);
    return Date.now() - started;
  }

  async #user(): Promise<void> {
    while (!this.#stopping) {
      const scenario = this.#o.random.weighted(MIX);
      await this.#execute(this.#plan(scenario));
    }
  }

  #plan(scenario: Scenario): RunRecord {
    const r = this.#o.random;
    const n = this.records.length + 1;
    const canary = this.#o.canary;
    const base = { n, scenario, workflow: WORKFLOW[scenario], signals: [], problems: [] };
    let record: RunRecord;
    switch (scenario) {
      case 'steps':
      case 'probe': {
        const steps = scenario === 'probe' ? 1 : r.int(1, 6);
        record = {
          ...base,
          input: { steps, stepMs: r.int(0, 30), canary },
          expected: { status: 'completed', output: { total: (steps * (steps + 1)) / 2 } },
        };
        break;
      }
      case 'retry':
        record = { ...base, input: { failures: r.int(1, 3), canary }, expected: { status: 'completed' } };
        break;
      case 'sleep':
        // How long it slept is checked in real time (invariants.ts), not from ctx.now(), which is the
        // worker's estimate of the control plane's clock.
        record = { ...base, input: { shortMs: r.int(10, 150), longMs: r.int(300, 3_000), canary }, expected: { status: 'completed' } };
        break;
      case 'signals': {
        const signals = [
          { value: `${canary}-${n}-early`, when: 'early' as const },
          { value: `${canary}-${n}-late`, when: 'late' as const },
        ];
        record = {
          ...base,
          signals,
          input: { canary },
          expected: { status: 'completed', output: { got: signals.map((s) => ({ value: s.value })) } },
        };
        break;
      }
      case 'saga': {
        const failAt = r.pick([0, 0, 0, 1, 2, 3]);
        const reaches = failAt === 0 || failAt === 3;
        const approval = reaches ? (r.next() < 0.8 ? 'approve' : 'reject') : undefined;
        const completed = failAt === 0 && approval === 'approve';
        const undone = completed ? [] : failAt === 1 ? [] : failAt === 2 ? [1] : [1, 2];
        record = {
          ...base,
          input: { failAt, canary },
          expected: completed ? { status: 'completed', output: { booked: 3 }, undone } : { status: 'failed', undone },
          ...(approval ? { approval } : {}),
        };
        break;
      }
      case 'parent':
        record = { ...base, input: { items: [1, 2, 3], canary }, expected: { status: 'completed', output: { sum: 12 } } };
        break;
      case 'model':
        record = { ...base, input: { prompt: `Say something about ${canary} number ${n}` }, expected: { status: 'completed' } };
        break;
    }
    this.records.push(record);
    return record;
  }

  /** Calls `fn` with a client, retrying transient failures on alternating gateways within the call budget. */
  async #call<T>(what: string, record: RunRecord, fn: (client: CairnClient) => Promise<T>): Promise<{ value: T } | undefined> {
    const deadline = Date.now() + this.#o.callBudgetMs;
    let last: unknown;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const client = this.#o.clients[this.#gateway++ % this.#o.clients.length]!;
      try {
        return { value: await fn(client) };
      } catch (err) {
        if (err instanceof RunEndedError) throw err;
        last = err;
        if (!transient(err)) break;
        this.retries++;
        await sleep(Math.min(2_000, 100 * 2 ** Math.min(attempt, 5)));
      }
    }
    record.problems.push(`${what}: ${last instanceof Error ? last.message : String(last)}`);
    return undefined;
  }

  async #execute(record: RunRecord): Promise<void> {
    const r = this.#o.random;
    const key = `chaos-${record.n}-${record.workflow}`;
    record.startedAt = Date.now();
    const started = await this.#call('start', record, (c) => c.start(workflowRef(record.workflow), record.input, { idempotencyKey: key }));
    if (!started) return;
    const runId = started.value.runId;
    record.runId = runId;
    const lateDelay = r.int(200, 3_000);
    const answerDelay = r.int(0, 3_000);

    const send = async (name: string, body: unknown, idempotencyKey: string): Promise<void> => {
      await this.#call(`signal ${name}`, record, (c) => c.run(runId).signal(name, body, { idempotencyKey }));
    };
    if (record.scenario === 'signals') {
      await send('go', { value: record.signals[0]!.value }, `${key}-early`);
      await sleep(lateDelay);
      await send('go', { value: record.signals[1]!.value }, `${key}-late`);
    } else if (record.approval) {
      await sleep(answerDelay);
      const answer = { by: 'chaos', comment: this.#o.canary };
      const decide = record.approval;
      await this.#call(`approval ${decide}`, record, (c) =>
        decide === 'approve'
          ? c.run(runId).approve('confirm', answer, { idempotencyKey: `${key}-answer` })
          : c.run(runId).reject('confirm', answer, { idempotencyKey: `${key}-answer` }),
      );
    }

    try {
      const ended = await this.#call('result', record, (c) => c.run(runId).result({ timeoutMs: 30_000 }));
      if (ended) record.outcome = { status: 'completed', output: ended.value };
    } catch (err) {
      if (!(err instanceof RunEndedError)) throw err;
      record.outcome = { status: err.runStatus, errorCode: err.error?.code ?? undefined };
    }
    record.endedAt = Date.now();
  }
}
