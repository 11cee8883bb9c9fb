// A stand-in for the control plane's GatewayService in the gateway's own tests. It speaks the real
// wire protocol (grpc-js with the generated service definition), records every request with its
// raw bytes and metadata, and answers as the control plane does.
import * as grpc from '@grpc/grpc-js';
import {
  CancelRunResponseSchema,
  DescribeRunResponseSchema,
  GatewayService,
  RunInfoSchema,
  ResolveVersionResponseSchema,
  RunStatus,
  SignalRunResponseSchema,
  StartRunResponseSchema,
  WaitRunResponseSchema,
  create,
  grpcServiceDefinition,
  type CancelRunRequest,
  type DescribeRunRequest,
  type MessageShape,
  type ResolveVersionRequest,
  type RunInfo,
  type SignalRunRequest,
  type StartRunRequest,
  type StepInfo,
  type WaitRunRequest,
} from '@cairn/proto';

type MethodName = 'startRun' | 'describeRun' | 'waitRun' | 'signalRun' | 'cancelRun' | 'resolveVersion';

export interface Recorded {
  readonly method: MethodName;
  readonly request: unknown;
  readonly bytes: Buffer;
  readonly authorization: string | undefined;
}

/** A gRPC failure to answer with. */
export interface Failure {
  readonly code: grpc.status;
  readonly details: string;
}

/**
 * Runs before the default behaviour of a method: return a Failure to answer with it, or call
 * `next()` to run the default (and then, for example, fail anyway to simulate a lost answer).
 */
export type Intercept = (request: unknown, next: () => unknown) => unknown;

const FINAL = new Set([RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TERMINATED, RunStatus.TIMED_OUT]);

export const isFailure = (value: unknown): value is Failure =>
  typeof value === 'object' && value !== null && 'code' in value && 'details' in value && !('$typeName' in value);

export class FakeControlPlane {
  readonly recorded: Recorded[] = [];
  readonly runs = new Map<string, RunInfo>();
  readonly steps = new Map<string, StepInfo[]>();
  /** name → versions announced, newest first. */
  readonly workflows = new Map<string, string[]>();
  readonly signals: Array<{ runId: string; name: string; signalId: string }> = [];
  readonly intercepts: Partial<Record<MethodName, Intercept>> = {};
  readonly #server: grpc.Server;
  readonly #credential: string;
  readonly #digests = new Map<string, string>();
  #stopped = false;
  port = 0;

  private constructor(credential: string) {
    this.#credential = credential;
    this.#server = new grpc.Server();
  }

  static async start(credential: string): Promise<FakeControlPlane> {
    const cp = new FakeControlPlane(credential);
    const definition = grpcServiceDefinition(GatewayService);
    // Keep the bytes as they came off the wire, to prove what crossed.
    const captured: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const bytesOf = new WeakMap<object, Buffer>();
    for (const [name, method] of Object.entries(definition)) {
      captured[name] = {
        ...method,
        requestDeserialize: (bytes: Buffer) => {
          const message = method.requestDeserialize(bytes) as object;
          bytesOf.set(message, Buffer.from(bytes));
          return message;
        },
      };
    }
    const handler =
      (method: MethodName, fn: (request: never) => unknown) =>
      (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>): void => {
        const authorization = call.metadata.get('authorization')[0];
        cp.recorded.push({
          method,
          request: call.request,
          bytes: bytesOf.get(call.request as object) ?? Buffer.alloc(0),
          authorization: typeof authorization === 'string' ? authorization : undefined,
        });
        if (authorization !== `Bearer ${cp.#credential}`) {
          callback({ code: grpc.status.UNAUTHENTICATED, details: 'unknown data-plane credential' });
          return;
        }
        const answer = new Promise<unknown>((resolve) => {
          const next = () => fn(call.request as never);
          const intercept = cp.intercepts[method];
          resolve(intercept ? intercept(call.request, next) : next());
        });
        answer.then(
          (value) => {
            if (isFailure(value)) callback({ code: value.code, details: value.details });
            else callback(null, value);
          },
          (err: unknown) => callback({ code: grpc.status.INTERNAL, details: String(err) }),
        );
      };
    cp.#server.addService(captured, {
      startRun: handler('startRun', (r: StartRunRequest) => cp.#startRun(r)),
      describeRun: handler('describeRun', (r: DescribeRunRequest) => cp.#describeRun(r)),
      waitRun: handler('waitRun', (r: WaitRunRequest) => cp.#waitRun(r)),
      signalRun: handler('signalRun', (r: SignalRunRequest) => cp.#signalRun(r)),
      cancelRun: handler('cancelRun', (r: CancelRunRequest) => cp.#cancelRun(r)),
      resolveVersion: handler('resolveVersion', (r: ResolveVersionRequest) => cp.#resolveVersion(r)),
    });
    cp.port = await new Promise<number>((resolve, reject) =>
      cp.#server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    return cp;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Requests of one method, decoded. */
  requests<T>(method: MethodName): T[] {
    return this.recorded.filter((r) => r.method === method).map((r) => r.request as T);
  }

  announce(name: string, ...versions: string[]): void {
    this.workflows.set(name, versions.length > 0 ? versions : ['1']);
  }

  /** Changes a run as a worker's reports would. */
  update(runId: string, patch: Partial<MessageShape<typeof RunInfoSchema>>): RunInfo {
    const run = this.runs.get(runId);
    if (!run) throw new Error(`fake control plane: no run ${runId}`);
    const next = create(RunInfoSchema, { ...run, ...patch });
    this.runs.set(runId, next);
    return next;
  }

  stop(): Promise<void> {
    // Long polls still waiting would hold tryShutdown until their deadline.
    this.#stopped = true;
    this.#server.forceShutdown();
    return Promise.resolve();
  }

  #startRun(r: StartRunRequest): unknown {
    const versions = this.workflows.get(r.workflowName);
    const version = r.workflowVersion || versions?.[0];
    if (!versions || !version || !versions.includes(version)) {
      return { code: grpc.status.NOT_FOUND, details: `workflow ${r.workflowName} is not registered` };
    }
    if (r.idempotencyDigest !== '') {
      const existing = this.#digests.get(`${r.workflowName}/${r.idempotencyDigest}`);
      if (existing) return create(StartRunResponseSchema, { run: this.runs.get(existing), created: false });
    }
    const run = create(RunInfoSchema, {
      runId: r.runId,
      workflowName: r.workflowName,
      workflowVersion: version,
      taskQueue: 'default',
      status: RunStatus.QUEUED,
      createdAt: BigInt(Date.now()),
      inputSize: r.inputSize,
    });
    this.runs.set(r.runId, run);
    if (r.idempotencyDigest !== '') this.#digests.set(`${r.workflowName}/${r.idempotencyDigest}`, r.runId);
    return create(StartRunResponseSchema, { run, created: true });
  }

  #resolveVersion(r: ResolveVersionRequest): unknown {
    const version = this.workflows.get(r.workflowName)?.[0];
    if (!version) return { code: grpc.status.NOT_FOUND, details: `workflow ${r.workflowName} is not registered` };
    return create(ResolveVersionResponseSchema, { workflowVersion: version });
  }

  #notFound(runId: string): Failure {
    return { code: grpc.status.NOT_FOUND, details: `run ${runId} not found` };
  }

  #describeRun(r: DescribeRunRequest): unknown {
    const run = this.runs.get(r.runId);
    if (!run) return this.#notFound(r.runId);
    return create(DescribeRunResponseSchema, { run, steps: this.steps.get(r.runId) ?? [] });
  }

  async #waitRun(r: WaitRunRequest): Promise<unknown> {
    const deadline = Date.now() + r.timeoutMs;
    for (;;) {
      const run = this.runs.get(r.runId);
      if (!run) return this.#notFound(r.runId);
      if (FINAL.has(run.status) || Date.now() >= deadline || this.#stopped) return create(WaitRunResponseSchema, { run });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  #signalRun(r: SignalRunRequest): unknown {
    const run = this.runs.get(r.runId);
    if (!run) return this.#notFound(r.runId);
    if (FINAL.has(run.status)) return { code: grpc.status.FAILED_PRECONDITION, details: `run ${r.runId} has ended` };
    if (!this.signals.some((s) => s.signalId === r.signalId))
      this.signals.push({ runId: r.runId, name: r.signalName, signalId: r.signalId });
    const woken =
      run.status === RunStatus.SUSPENDED && r.signalName !== '' && run.waitingSignal === r.signalName
        ? this.update(r.runId, { status: RunStatus.QUEUED })
        : run;
    return create(SignalRunResponseSchema, { run: woken });
  }

  #cancelRun(r: CancelRunRequest): unknown {
    const run = this.runs.get(r.runId);
    if (!run) return this.#notFound(r.runId);
    if (FINAL.has(run.status)) return create(CancelRunResponseSchema, { run });
    const next =
      run.status === RunStatus.RUNNING
        ? this.update(r.runId, { cancelRequested: true })
        : this.update(r.runId, { status: RunStatus.CANCELLED, cancelRequested: true, endedAt: BigInt(Date.now()) });
    return create(CancelRunResponseSchema, { run: next });
  }
}
