import { CairnClientError, ErrorCodes, RunCancelledError, RunFailedError, RunTerminatedError, RunTimedOutError } from './errors.js';
import { isNonNullObject } from '@cairn/common/core';
import type { components } from './gen/gateway.js';
import { Transport, readSse, sleep, type RetryOptions } from './transport.js';
import type {
  ApprovalAnswer,
  ErrorView,
  InputOf,
  OutputOf,
  RunStatus,
  RunStreamEvent,
  RunView,
  RunWarning,
  SignalBodyOf,
  StepView,
  WorkflowLike,
} from './types.js';

type Schemas = components['schemas'];

/** Settings of a {@link CairnClient}. */
export interface CairnClientOptions {
  /**
   * The gateway's URL, e.g. `http://localhost:4000`. Default: the `CAIRN_GATEWAY_URL` environment
   * variable where there is one (Node; with `cairn dev`, `eval "$(cairn dev env)"` sets it).
   */
  readonly gatewayUrl?: string;
  /**
   * One of the gateway's tokens (CAIRN_GATEWAY_TOKENS), sent as `Authorization: Bearer`. Default:
   * `CAIRN_GATEWAY_TOKEN` from the environment, when `gatewayUrl` came from there too.
   */
  readonly token?: string;
  /** The fetch to use (default: the global one), e.g. one with a proxy agent or extra instrumentation. */
  readonly fetch?: typeof globalThis.fetch;
  /** Headers sent with every request. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Aborts every request of this client. */
  readonly signal?: AbortSignal;
  /** Retries of requests that may be repeated safely (reads, cancel, and starts, signals and approvals with an idempotency key). */
  readonly retry?: RetryOptions;
}

/** Options of {@link CairnClient.start}. */
export interface StartOptions {
  /** A version to pin; default: the definition's version, else the newest one a worker announced. */
  readonly version?: string;
  /**
   * A second start with the same key returns the first run instead of starting another (it crosses
   * to the control plane only as an HMAC). With a key, a start that gets no answer is retried.
   */
  readonly idempotencyKey?: string;
  /** Groups runs under the workflow's per-key concurrency or rate limit (crosses only as an HMAC). */
  readonly concurrencyKey?: string;
  /** 0–100, higher first; default 50. */
  readonly priority?: number;
  readonly signal?: AbortSignal;
}

/** Options of {@link RunHandle.result}. */
export interface ResultOptions {
  /** Give up after this long with `CAIRN-1122` (the run goes on); default: wait as long as it takes. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** What {@link RunHandle.describe} returns: the run, its timeline, and its output or error once it ended. */
export interface RunDescription<Output = unknown> {
  readonly run: RunView;
  readonly steps: readonly StepView[];
  /**
   * What may keep the run from running soon, such as `no_connected_worker` (no connected worker
   * runs its workflow version, so it waits in the queue); empty when nothing is known to.
   */
  readonly warnings: readonly RunWarning[];
  readonly output?: Output;
  readonly error?: ErrorView;
}

/** Options of {@link RunHandle.signal}, {@link RunHandle.approve} and {@link RunHandle.reject}. */
export interface SignalOptions {
  /**
   * Makes the signal safe to send again: a repeat with the same key (on the same run and signal
   * name) delivers nothing new and answers the first signal's `signalId` with `created: false`, and
   * the same key with another body is refused with `CAIRN-1108`. With a key, a signal that got no
   * answer (the connection dropped, the gateway answered 503) is retried. The key stays in the data
   * plane; use one key per signal you mean to send, such as an ID from your own system.
   *
   * @example
   * ```ts
   * await run.signal('address-confirmed', { street: '…' }, { idempotencyKey: `address-${formId}` });
   * await run.approve('refund', { by: 'maria' }, { idempotencyKey: `refund-decision-${ticketId}` });
   * ```
   */
  readonly idempotencyKey?: string;
  readonly signal?: AbortSignal;
}

/** What the gateway answers to a signal or an approval. */
export interface SignalSent {
  readonly runId: string;
  /** The signal's name (for an approval: `approval.<name>[.<key digest>]`). */
  readonly signal: string;
  readonly signalId: string;
  /** False when an earlier request with the same idempotency key delivered this signal: nothing new was delivered. */
  readonly created: boolean;
  /** The run's status after the signal (`queued`: it was woken); null when pending. */
  readonly status: RunStatus | null;
  /**
   * True when the gateway stored the signal but the control plane did not answer: the gateway
   * tells it once it does, so do not send the signal again.
   */
  readonly pending?: true;
}

/** A signal's request options: with an idempotency key, its header, and retries (a repeat delivers nothing new). */
function keyed(options: SignalOptions): { headers?: Record<string, string>; idempotent: boolean; signal: AbortSignal | undefined } {
  const key = options.idempotencyKey;
  if (key === undefined) return { idempotent: false, signal: options.signal };
  if (typeof key !== 'string' || key === '') {
    throw new CairnClientError(
      ErrorCodes.INVALID_ARGUMENT,
      'idempotencyKey must be a non-empty string, such as an ID from your own system',
    );
  }
  // It travels as a header, which carries printable ASCII only.
  if (!/^[\x20-\x7e]+$/.test(key)) {
    throw new CairnClientError(
      ErrorCodes.INVALID_ARGUMENT,
      'idempotencyKey must be printable ASCII, since it is sent as the Idempotency-Key header: encode other characters first (encodeURIComponent)',
    );
  }
  return { headers: { 'idempotency-key': key }, idempotent: true, signal: options.signal };
}

/** The longest long poll the gateway serves. */
const MAX_WAIT_SECONDS = 60;

/**
 * A client of a Cairn gateway: starts runs of your workflows and follows them, typed from the
 * workflow definitions. It uses nothing but `fetch`, so it runs in Node (≥ 22) and in browsers.
 *
 * @example
 * ```ts
 * import { CairnClient } from '@cairn/client';
 * import { orderRefund } from './workflows/order-refund.js';
 *
 * const client = new CairnClient({ gatewayUrl: 'https://gateway.payments.internal', token: process.env.GATEWAY_TOKEN });
 * // or, with CAIRN_GATEWAY_URL and CAIRN_GATEWAY_TOKEN in the environment: new CairnClient()
 * const run = await client.start(orderRefund, { orderId: 'o-1', amount: 25 }, { idempotencyKey: 'refund-o-1' });
 * const { refundId } = await run.result(); // typed as the workflow's output
 * ```
 */
export class CairnClient {
  readonly #transport: Transport;

  constructor(options: CairnClientOptions = {}) {
    if (!isNonNullObject(options)) {
      throw new CairnClientError(
        ErrorCodes.INVALID_ARGUMENT,
        "CairnClient takes options: new CairnClient({ gatewayUrl: 'http://localhost:4000', token })",
      );
    }
    let { gatewayUrl, token } = options;
    if (gatewayUrl === undefined) {
      // Browsers have no process; there the URL must be given.
      const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
      gatewayUrl = env?.['CAIRN_GATEWAY_URL'];
      token ??= env?.['CAIRN_GATEWAY_TOKEN'];
      if (gatewayUrl === undefined || gatewayUrl === '') {
        throw new CairnClientError(
          ErrorCodes.INVALID_ARGUMENT,
          "CairnClient needs the gateway's URL: new CairnClient({ gatewayUrl: 'http://localhost:4000', token }), or set " +
            'CAIRN_GATEWAY_URL and CAIRN_GATEWAY_TOKEN (with cairn dev: eval "$(cairn dev env)")',
        );
      }
    }
    this.#transport = new Transport({ ...options, gatewayUrl, ...(token === undefined ? {} : { token }) });
  }

  /** The gateway's URL, without a trailing slash. */
  get gatewayUrl(): string {
    return this.#transport.baseUrl;
  }

  /**
   * Starts a run of `workflow` with `input` (stored in the data plane only) and returns its handle.
   * `workflow` is the definition (`defineWorkflow`) or a {@link workflowRef}; the input is checked
   * against its type at compile time. Without an idempotency key a start is sent once; with one, it
   * is retried when no answer came.
   */
  async start<W extends WorkflowLike>(
    workflow: W,
    input: NoInfer<InputOf<W>>,
    options: StartOptions = {},
  ): Promise<RunHandle<OutputOf<W>>> {
    if (!isNonNullObject(workflow) || typeof workflow.name !== 'string') {
      throw new CairnClientError(
        ErrorCodes.INVALID_ARGUMENT,
        'start needs a workflow definition (defineWorkflow) or a reference (workflowRef<typeof def>("name")) as its first argument',
      );
    }
    const version = options.version ?? ('version' in workflow ? workflow.version : undefined);
    const body: Record<string, unknown> = { workflow: workflow.name, input };
    if (version !== undefined) body['version'] = version;
    if (options.idempotencyKey !== undefined) body['idempotencyKey'] = options.idempotencyKey;
    if (options.concurrencyKey !== undefined) body['concurrencyKey'] = options.concurrencyKey;
    if (options.priority !== undefined) body['priority'] = options.priority;
    const answer = await this.#transport.json({
      method: 'POST',
      path: '/v1/runs',
      body,
      idempotent: options.idempotencyKey !== undefined,
      signal: options.signal,
    });
    const started = answer.body as Schemas['StartRunResponse'];
    return new RunHandle<OutputOf<W>>(this.#transport, started.runId, started.created);
  }

  /**
   * The handle of a run started earlier (by ID), typed by its workflow.
   *
   * @example
   * ```ts
   * const run = client.run<typeof orderRefund>(runId);
   * await run.signal('approval', { approved: true });
   * ```
   */
  run<W extends WorkflowLike = WorkflowLike>(runId: string): RunHandle<OutputOf<W>> {
    if (typeof runId !== 'string' || runId === '') {
      throw new CairnClientError(ErrorCodes.INVALID_ARGUMENT, 'run needs the run ID that start() or POST /v1/runs returned');
    }
    return new RunHandle<OutputOf<W>>(this.#transport, runId, undefined);
  }
}

/** One run: wait for its result, read it, signal, approve, cancel, stream its model output. */
export class RunHandle<Output = unknown> {
  /** The run's ID. */
  readonly runId: string;
  /** From `start`: false when an earlier run with the same idempotency key was returned. */
  readonly created: boolean | undefined;
  readonly #transport: Transport;

  /** @internal Use {@link CairnClient.start} or {@link CairnClient.run}. */
  constructor(transport: Transport, runId: string, created: boolean | undefined) {
    this.#transport = transport;
    this.runId = runId;
    this.created = created;
  }

  #path(rest = ''): string {
    return `/v1/runs/${encodeURIComponent(this.runId)}${rest}`;
  }

  /**
   * Waits for the run to end (long polls, for as long as it takes or `timeoutMs`) and resolves with
   * its output. A run that failed rejects with {@link RunFailedError}; cancelled, terminated and
   * timed-out runs with {@link RunCancelledError}, {@link RunTerminatedError} and
   * {@link RunTimedOutError}.
   */
  async result(options: ResultOptions = {}): Promise<Output> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    for (;;) {
      const left = deadline === undefined ? MAX_WAIT_SECONDS * 1000 : deadline - Date.now();
      if (left <= 0) {
        throw new CairnClientError(
          ErrorCodes.WAIT_TIMEOUT,
          `run ${this.runId} had not ended after ${options.timeoutMs} ms; it goes on: call result() again to keep waiting`,
        );
      }
      const wait = Math.min(MAX_WAIT_SECONDS, Math.ceil(left / 1000));
      const answer = await this.#transport.json({
        method: 'GET',
        path: this.#path('/result'),
        query: { wait: String(wait) },
        idempotent: true,
        signal: options.signal,
      });
      if (answer.status === 202) continue;
      const ended = answer.body as Schemas['RunResult'];
      switch (ended.status) {
        case 'completed':
          return ended.output as Output;
        case 'failed':
          throw new RunFailedError(this.runId, ended.error);
        case 'cancelled':
          throw new RunCancelledError(this.runId, ended.error);
        case 'terminated':
          throw new RunTerminatedError(this.runId, ended.error);
        case 'timed_out':
          throw new RunTimedOutError(this.runId, ended.error);
        default:
          throw new CairnClientError(
            ErrorCodes.PROTOCOL,
            `the gateway answered 200 for run ${this.runId} with status ${String(ended.status)}`,
          );
      }
    }
  }

  /** The run's metadata and step timeline, with its output or error once it ended. */
  async describe(options: { signal?: AbortSignal } = {}): Promise<RunDescription<Output>> {
    // The two reads go together; when one fails for good, the other stops too.
    const both = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, both.signal]) : both.signal;
    const [run, steps] = await Promise.all([
      this.#transport.json({ method: 'GET', path: this.#path(), idempotent: true, signal }),
      this.#transport.json({ method: 'GET', path: this.#path('/steps'), idempotent: true, signal }),
    ]).catch((err: unknown) => {
      both.abort();
      throw err;
    });
    const view = run.body as Schemas['RunWithResult'];
    return {
      run: view.run,
      steps: (steps.body as Schemas['StepsResponse']).steps,
      // A gateway older than the warnings answers none.
      warnings: Array.isArray(view.warnings) ? view.warnings : [],
      ...(view.output === undefined ? {} : { output: view.output as Output }),
      ...(view.error === undefined ? {} : { error: view.error }),
    };
  }

  /**
   * Sends a signal: by name, or by a signal definition (`defineSignal`), whose body type it checks.
   * A signal sent before the run waits for it is kept. Without an idempotency key it is sent once
   * (a retry could deliver it twice); with one (`options.idempotencyKey`), it is retried when no
   * answer came, and a repeat delivers nothing new.
   *
   * @example
   * ```ts
   * await run.signal(approvalSignal, { approved: true }); // typed by the definition
   * await run.signal('go', { at: Date.now() });
   * await run.signal('paid', { invoice: 'in-7' }, { idempotencyKey: 'paid-in-7' }); // safe to send again
   * ```
   */
  async signal<S extends string | { readonly name: string }>(
    signal: S,
    body: SignalBodyOf<S>,
    options: SignalOptions = {},
  ): Promise<SignalSent> {
    const name = typeof signal === 'string' ? signal : (signal as { readonly name?: unknown } | null | undefined)?.name;
    if (typeof name !== 'string') {
      throw new CairnClientError(ErrorCodes.INVALID_ARGUMENT, 'signal needs a signal name or a signal definition as its first argument');
    }
    const answer = await this.#transport.json({
      method: 'POST',
      path: this.#path(`/signals/${encodeURIComponent(name)}`),
      ...(body === undefined ? {} : { body }),
      ...keyed(options),
    });
    return answer.body as Schemas['SignalResponse'];
  }

  /**
   * Approves a `ctx.approval(name)` of the run, with who, a comment and data (all optional). With
   * `options.idempotencyKey` it is retried when no answer came, and a repeat delivers nothing new.
   */
  approve<Data = unknown>(name: string, answer: ApprovalAnswer<Data> = {}, options: SignalOptions = {}): Promise<SignalSent> {
    return this.#decide(name, '/approve', answer, options);
  }

  /** Rejects a `ctx.approval(name)` of the run; `options` as for {@link approve}. */
  reject<Data = unknown>(name: string, answer: ApprovalAnswer<Data> = {}, options: SignalOptions = {}): Promise<SignalSent> {
    return this.#decide(name, '/reject', answer, options);
  }

  async #decide(name: string, route: string, answer: ApprovalAnswer, options: SignalOptions): Promise<SignalSent> {
    const res = await this.#transport.json({
      method: 'POST',
      path: this.#path(`/approvals/${encodeURIComponent(name)}${route}`),
      body: answer,
      ...keyed(options),
    });
    return res.body as Schemas['ApprovalResponse'];
  }

  /**
   * Cancels the run: one that never ran ends at once; a running one is asked to stop; one that ran
   * and is suspended (or queued again) is dispatched once more with the cancellation requested, so
   * a worker replays it and runs its compensations before it ends `cancelled`. Resolves with the
   * run's status after the request (`running` or `queued` until the compensations have run).
   */
  async cancel(options: { signal?: AbortSignal } = {}): Promise<{ readonly runId: string; readonly status: RunStatus | null }> {
    const res = await this.#transport.json({ method: 'POST', path: this.#path('/cancel'), idempotent: true, signal: options.signal });
    return res.body as Schemas['CancelResponse'];
  }

  /**
   * The run's live model output, from its first event, as an async iterable: text deltas, the end
   * of each model call, and `end` when the run has ended (then the iteration ends). A dropped
   * connection is resumed after the last event received (SSE `Last-Event-ID`), so no token is lost
   * or repeated. Breaking out of the loop closes the connection.
   *
   * @example
   * ```ts
   * for await (const e of run.stream()) {
   *   if (e.type === 'delta') process.stdout.write(e.text);
   * }
   * ```
   */
  async *stream(options: { signal?: AbortSignal } = {}): AsyncGenerator<RunStreamEvent, void, undefined> {
    const stop = new AbortController();
    const signal = this.#transport.signal(AbortSignal.any([stop.signal, ...(options.signal ? [options.signal] : [])]));
    let lastEventId: string | undefined;
    let failures = 0;
    try {
      for (;;) {
        let progressed = false;
        try {
          const res = await this.#transport.open({
            method: 'GET',
            path: this.#path('/stream'),
            ...(lastEventId === undefined ? {} : { headers: { 'last-event-id': lastEventId } }),
            idempotent: true,
            signal,
          });
          if (!res.body)
            throw new CairnClientError(ErrorCodes.PROTOCOL, `the gateway answered the stream of run ${this.runId} without a body`);
          for await (const sse of readSse(res.body)) {
            progressed = true;
            failures = 0;
            if (sse.id !== undefined) lastEventId = sse.id;
            const event = toEvent(sse.event, sse.data, sse.id);
            if (!event) continue;
            yield event;
            if (event.type === 'end') return;
          }
        } catch (err) {
          if (signal?.aborted) throw signal.reason;
          const broken = !(err instanceof CairnClientError) || Transport.retryable(err);
          if (!broken) throw err;
          if (!progressed && ++failures >= this.#transport.maxAttempts)
            throw err instanceof CairnClientError ? err : this.#transport.unreachable(this.#path('/stream'), err, signal);
        }
        // The connection ended before the run did: resume after the last event received.
        if (!progressed) await this.#transport.backoff(Math.max(1, failures), signal);
        else await sleep(0, signal);
      }
    } finally {
      stop.abort();
    }
  }
}

function toEvent(event: string, data: string, id: string | undefined): RunStreamEvent | undefined {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(data) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const seq = Number(id);
  switch (event) {
    case 'delta': {
      const d = parsed as Schemas['StreamDelta'];
      return { type: 'delta', id: seq, position: d.position, name: d.name, attempt: d.attempt, text: d.text };
    }
    case 'model-done': {
      const d = parsed as Schemas['StreamModelDone'];
      return { type: 'model-done', id: seq, position: d.position, name: d.name, attempt: d.attempt };
    }
    case 'end': {
      const d = parsed as Schemas['StreamEnd'];
      return { type: 'end', runId: d.runId, status: d.status };
    }
    default:
      return undefined;
  }
}
