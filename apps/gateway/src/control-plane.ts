import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { CairnError, ErrorCodes, type ErrorCodeString } from '@cairn/common';
import {
  controlPlaneChannelCredentials,
  type ControlPlaneTls,
  GatewayService,
  grpcServiceDefinition,
  type CancelRunRequest,
  type CancelRunResponse,
  type DescribeRunRequest,
  type DescribeRunResponse,
  type GetBacklogRequest,
  type GetBacklogResponse,
  type ResolveVersionRequest,
  type ResolveVersionResponse,
  type SignalRunRequest,
  type SignalRunResponse,
  type StartRunRequest,
  type StartRunResponse,
  type WaitRunRequest,
  type WaitRunResponse,
} from '@cairn/proto';
import { traceControlPlaneCall } from './telemetry.js';

type Callback<Res> = (err: grpc.ServiceError | null, response?: Res) => void;
type Unary<Req, Res> = (request: Req, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback<Res>) => grpc.ClientUnaryCall;

/** The generic client grpc-js builds from the generated service definition. */
interface RawGatewayClient extends grpc.Client {
  startRun: Unary<StartRunRequest, StartRunResponse>;
  describeRun: Unary<DescribeRunRequest, DescribeRunResponse>;
  waitRun: Unary<WaitRunRequest, WaitRunResponse>;
  signalRun: Unary<SignalRunRequest, SignalRunResponse>;
  cancelRun: Unary<CancelRunRequest, CancelRunResponse>;
  getBacklog: Unary<GetBacklogRequest, GetBacklogResponse>;
  resolveVersion: Unary<ResolveVersionRequest, ResolveVersionResponse>;
}

const GatewayClient = grpc.makeGenericClientConstructor(grpcServiceDefinition(GatewayService), 'GatewayService');

/** A failed control-plane call: the gRPC status it ended with, as a Cairn error. */
export class ControlPlaneError extends CairnError {
  readonly grpcCode: grpc.status;

  constructor(code: ErrorCodeString, message: string, grpcCode: grpc.status, cause?: unknown, retryAfterSeconds?: number) {
    super(code, message, {
      cause,
      details: { grpcCode: grpc.status[grpcCode], ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) },
    });
    this.name = 'ControlPlaneError';
    this.grpcCode = grpcCode;
  }

  /** True when the call may not have reached the control plane or its answer was lost. */
  get unreachable(): boolean {
    return this.grpcCode === grpc.status.UNAVAILABLE || this.grpcCode === grpc.status.DEADLINE_EXCEEDED;
  }
}

/** The control plane's refusals that say for certain that the call changed nothing. */
const DEFINITE_REFUSALS: ReadonlySet<grpc.status> = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.OUT_OF_RANGE,
  grpc.status.UNIMPLEMENTED,
]);

/** Whether a failed call may still have taken effect on the control plane (no definite refusal came back). */
export function mayHaveTakenEffect(err: unknown): boolean {
  return !(err instanceof ControlPlaneError) || !DEFINITE_REFUSALS.has(err.grpcCode);
}

export interface CallOptions {
  /** Replaces the configured deadline. */
  readonly timeoutMs?: number;
  /** Added to the deadline (a long poll's wait). */
  readonly extraMs?: number;
  /** Cancels the call (client went away, or the gateway is shutting down). */
  readonly signal?: AbortSignal | undefined;
}

export interface ControlPlaneOptions {
  /** host:port */
  readonly address: string;
  /** The data plane's credential. */
  readonly credential: string;
  readonly tls?: ControlPlaneTls;
  /** Deadline of each call. */
  readonly timeoutMs: number;
  /** Told about each call and each reconnect, for metrics. */
  readonly observer?: ControlPlaneObserver;
}

/** What the gateway's metrics hear from its control-plane connection. */
export interface ControlPlaneObserver {
  /** A call ended with a gRPC status code name (`OK`, `UNAVAILABLE`…) after `seconds`. */
  called(method: string, code: string, seconds: number): void;
  /** The channel was ready again after it had been lost. */
  reconnected(): void;
}

/**
 * The gateway's outbound connection to the control plane's GatewayService. Every call carries the
 * data plane's credential and a deadline; failures become {@link ControlPlaneError}s.
 */
export class ControlPlane {
  readonly #client: RawGatewayClient;
  readonly #credential: string;
  readonly #timeoutMs: number;
  readonly #observer: ControlPlaneObserver | undefined;

  constructor(options: ControlPlaneOptions) {
    const credentials = controlPlaneChannelCredentials(options.tls ?? { enabled: false }, (path) => readFileSync(path));
    this.#client = new GatewayClient(options.address, credentials, {
      // Redial a restarted control plane promptly: calls wait for the connection (waitForReady)
      // within their deadline, so a short backoff turns an outage's end into answers quickly.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 2_000,
    }) as unknown as RawGatewayClient;
    this.#credential = options.credential;
    this.#timeoutMs = options.timeoutMs;
    this.#observer = options.observer;
    if (this.#observer) this.#watchChannel(this.#client.getChannel().getConnectivityState(false), false);
  }

  /** Whether the channel to the control plane is connected now. */
  get ready(): boolean {
    return this.#connected();
  }

  startRun(request: StartRunRequest, options?: CallOptions): Promise<StartRunResponse> {
    return this.#call('StartRun', this.#client.startRun, request, options);
  }

  describeRun(request: DescribeRunRequest, options?: CallOptions): Promise<DescribeRunResponse> {
    return this.#call('DescribeRun', this.#client.describeRun, request, options);
  }

  waitRun(request: WaitRunRequest, options?: CallOptions): Promise<WaitRunResponse> {
    return this.#call('WaitRun', this.#client.waitRun, request, options);
  }

  signalRun(request: SignalRunRequest, options?: CallOptions): Promise<SignalRunResponse> {
    return this.#call('SignalRun', this.#client.signalRun, request, options);
  }

  cancelRun(request: CancelRunRequest, options?: CallOptions): Promise<CancelRunResponse> {
    return this.#call('CancelRun', this.#client.cancelRun, request, options);
  }

  getBacklog(request: GetBacklogRequest, options?: CallOptions): Promise<GetBacklogResponse> {
    return this.#call('GetBacklog', this.#client.getBacklog, request, options);
  }

  resolveVersion(request: ResolveVersionRequest, options?: CallOptions): Promise<ResolveVersionResponse> {
    return this.#call('ResolveVersion', this.#client.resolveVersion, request, options);
  }

  /**
   * False while the channel is failing to connect: a call that failed then never reached the
   * control plane.
   */
  get connecting(): boolean {
    return this.#client.getChannel().getConnectivityState(false) === grpc.connectivityState.TRANSIENT_FAILURE;
  }

  close(): void {
    this.#client.close();
  }

  #connected(): boolean {
    return this.#client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  /**
   * Counts reconnects: each time the channel is ready again after it had been ready and was lost.
   * Stops when the channel shuts down.
   */
  #watchChannel(state: grpc.connectivityState, wasReady: boolean): void {
    const channel = this.#client.getChannel();
    channel.watchConnectivityState(state, Infinity, () => {
      const next = channel.getConnectivityState(false);
      if (next === grpc.connectivityState.SHUTDOWN) return;
      const lost = wasReady && state !== grpc.connectivityState.READY;
      if (next === grpc.connectivityState.READY && lost) this.#observer?.reconnected();
      this.#watchChannel(next, wasReady || next === grpc.connectivityState.READY);
    });
  }

  #call<Req, Res>(method: string, fn: Unary<Req, Res>, request: Req, options: CallOptions = {}): Promise<Res> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(cancelled(method));
    const metadata = new grpc.Metadata({ waitForReady: true });
    metadata.set('authorization', `Bearer ${this.#credential}`);
    // The call's span, linked to the request's: the control plane's span of this call is its child.
    const traced = traceControlPlaneCall(method);
    for (const [key, value] of Object.entries(traced.headers)) metadata.set(key, value);
    const deadline = new Date(Date.now() + (options.timeoutMs ?? this.#timeoutMs) + (options.extraMs ?? 0));
    const started = performance.now();
    return new Promise<Res>((resolve, reject) => {
      let onAbort: (() => void) | undefined;
      const call = fn.call(this.#client, request, metadata, { deadline }, (err, response) => {
        const code = grpc.status[err ? err.code : grpc.status.OK];
        traced.end(code);
        this.#observer?.called(method, code, (performance.now() - started) / 1000);
        if (onAbort) signal?.removeEventListener('abort', onAbort);
        if (err) reject(signal?.aborted ? cancelled(method) : fromServiceError(method, err, this.#timeoutMs, this.#connected()));
        else if (response === undefined) reject(fromServiceError(method, emptyResponse(), this.#timeoutMs, true));
        else resolve(response);
      });
      if (signal) {
        onAbort = () => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }
}

function cancelled(method: string): ControlPlaneError {
  return new ControlPlaneError(
    ErrorCodes.UNAVAILABLE,
    `the ${method} call to the control plane was cancelled because the gateway is shutting down; retry the request`,
    grpc.status.CANCELLED,
  );
}

function emptyResponse(): grpc.ServiceError {
  return Object.assign(new Error('empty response'), {
    code: grpc.status.INTERNAL,
    details: 'empty response',
    metadata: new grpc.Metadata(),
  });
}

/** Converts a gRPC failure into a Cairn error; the HTTP edge maps the Cairn code to a status. */
export function fromServiceError(method: string, err: grpc.ServiceError, timeoutMs: number, connected: boolean): ControlPlaneError {
  let details = err.details || grpc.status[err.code] || 'no details';
  // A refusal the control plane coded itself (a project quota, a rate limit) keeps its code and
  // message, so the caller learns which limit and what to do; other RESOURCE_EXHAUSTED (grpc-js's
  // own limits) stay transport failures below.
  if (err.code === grpc.status.RESOURCE_EXHAUSTED) {
    if (details.startsWith(`[${ErrorCodes.CREDENTIAL_THROTTLED}]`)) {
      // The control plane throttles failed credentials only: this gateway's own is wrong.
      return new ControlPlaneError(
        ErrorCodes.INVALID_CONFIG,
        "the control plane refused this gateway's data-plane credential and now throttles it after repeated failures: " +
          'check CAIRN_DP_CREDENTIAL in the gateway configuration (the data plane may have been revoked or the credential rotated)',
        err.code,
        err,
      );
    }
    // A quota (1112), a request rate (1113) or a per-data-plane cap on calls (1172): the caller
    // gets 429, with the control plane's retry-after trailer as Retry-After when it sent one.
    const coded = /^\[(CAIRN-111[23]|CAIRN-1172)\] ([\s\S]*)$/.exec(details);
    if (coded) {
      const code = coded[1] === ErrorCodes.QUOTA_EXCEEDED ? ErrorCodes.QUOTA_EXCEEDED : ErrorCodes.RATE_LIMITED;
      const wait = Number(err.metadata.get('retry-after')[0]);
      return new ControlPlaneError(code, coded[2]!, err.code, err, Number.isInteger(wait) && wait > 0 ? wait : undefined);
    }
  }
  // The control plane's messages start with their own code, which the error made here carries
  // again: without this a message would show it twice ("[CAIRN-1108] [CAIRN-1108] run … ended").
  details = details.replace(/^\[CAIRN-\d{4}\] /, '');
  switch (err.code) {
    case grpc.status.NOT_FOUND:
      return new ControlPlaneError(ErrorCodes.NOT_FOUND, details, err.code, err);
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.OUT_OF_RANGE:
      return new ControlPlaneError(ErrorCodes.INVALID_ARGUMENT, `the control plane rejected the request: ${details}`, err.code, err);
    case grpc.status.FAILED_PRECONDITION:
    case grpc.status.ALREADY_EXISTS:
    case grpc.status.ABORTED:
      return new ControlPlaneError(ErrorCodes.CONFLICT, details, err.code, err);
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return new ControlPlaneError(
        ErrorCodes.INVALID_CONFIG,
        `the control plane refused this gateway's data-plane credential (${grpc.status[err.code]}): ` +
          'check CAIRN_DP_CREDENTIAL in the gateway configuration (the data plane may have been revoked or the credential rotated)',
        err.code,
        err,
      );
    case grpc.status.DEADLINE_EXCEEDED:
      return new ControlPlaneError(
        ErrorCodes.UNAVAILABLE,
        connected
          ? `the control plane did not answer ${method} within the deadline (CAIRN_CP_TIMEOUT_MS=${timeoutMs}); retry the request`
          : `the control plane could not be reached within the deadline (CAIRN_CP_TIMEOUT_MS=${timeoutMs}; check CAIRN_CP_GRPC_ADDRESS and the network); retry the request`,
        err.code,
        err,
      );
    case grpc.status.UNAVAILABLE:
    case grpc.status.CANCELLED:
    case grpc.status.RESOURCE_EXHAUSTED:
      return new ControlPlaneError(
        ErrorCodes.UNAVAILABLE,
        `the control plane is unreachable (${grpc.status[err.code]}: ${details}); retry the request`,
        err.code,
        err,
      );
    default:
      return new ControlPlaneError(
        ErrorCodes.INTERNAL,
        `the control plane failed ${method} (${grpc.status[err.code]}): ${details}`,
        err.code,
        err,
      );
  }
}
