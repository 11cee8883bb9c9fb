// Test support: gRPC clients that speak to the control plane as a worker and a gateway do.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  CancelRunRequestSchema,
  ConnectRequestSchema,
  DescribeRunRequestSchema,
  ResolveVersionRequestSchema,
  SignalRunRequestSchema,
  StartRunRequestSchema,
  WaitRunRequestSchema,
  WorkflowRefSchema,
  type DescMessage,
  type MessageInitShape,
  GatewayService,
  WorkerService,
  create,
  grpcServiceDefinition,
  type ConnectRequest,
  type ConnectResponse,
} from '@cairn/proto';

// ---------------------------------------------------------------------------------------------
// gRPC clients as a worker and a gateway would use them.

export const WorkerClient = grpc.makeGenericClientConstructor(grpcServiceDefinition(WorkerService), 'WorkerService');
export const GatewayClient = grpc.makeGenericClientConstructor(grpcServiceDefinition(GatewayService), 'GatewayService');
export type ServiceClient = InstanceType<typeof WorkerClient>;
export type ResponseCase = NonNullable<ConnectResponse['message']['case']>;
export type ResponseValue<K extends ResponseCase> = Extract<ConnectResponse['message'], { case: K }>['value'];

export function bearer(token: string | null): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== null) metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

export interface HelloFields {
  dataPlaneId: string;
  workerId?: string;
  slots: number;
  workflows?: Array<MessageInitShape<typeof WorkflowRefSchema> & { name: string; version: string; taskQueue: string }>;
  heldLeases?: Array<{ runId: string; epoch: number }>;
}

/** One worker stream: send requests, wait for responses of a kind, see how it ended. */
export class WorkerStream {
  private readonly call: grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;
  private readonly inbox: ConnectResponse[] = [];
  private readonly listeners = new Set<() => void>();
  private sequence = 0n;
  status: grpc.StatusObject | null = null;

  constructor(client: ServiceClient, token: string | null) {
    const connect = client['connect'] as (metadata: grpc.Metadata) => grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;
    this.call = connect.call(client, bearer(token));
    this.call.on('data', (message: ConnectResponse) => {
      this.inbox.push(message);
      this.changed();
    });
    this.call.on('status', (status: grpc.StatusObject) => {
      this.status = status;
      this.changed();
    });
    this.call.on('error', () => undefined);
  }

  send(message: ConnectRequest['message']): bigint {
    this.sequence += 1n;
    this.call.write(create(ConnectRequestSchema, { sequence: this.sequence, message }));
    return this.sequence;
  }

  /** The next response of that kind (matching `match`), removed from the inbox. */
  async next<K extends ResponseCase>(kind: K, match: (value: ResponseValue<K>) => boolean = () => true): Promise<ResponseValue<K>> {
    const found: Array<ResponseValue<K>> = [];
    await this.wait(`a ${kind}`, () => {
      const index = this.inbox.findIndex((m) => m.message.case === kind && match(m.message.value as ResponseValue<K>));
      if (index < 0) return false;
      found.push(this.inbox.splice(index, 1)[0]!.message.value as ResponseValue<K>);
      return true;
    });
    return found[0]!;
  }

  /** Takes every response of that kind received so far. */
  takeAll<K extends ResponseCase>(kind: K): Array<ResponseValue<K>> {
    const taken: Array<ResponseValue<K>> = [];
    for (let i = this.inbox.length - 1; i >= 0; i--) {
      const message = this.inbox[i]!.message;
      if (message.case === kind) {
        taken.unshift(message.value as ResponseValue<K>);
        this.inbox.splice(i, 1);
      }
    }
    return taken;
  }

  async ended(): Promise<grpc.StatusObject> {
    await this.wait('the stream to end', () => this.status !== null);
    return this.status!;
  }

  async hello(fields: HelloFields): Promise<ResponseValue<'welcome'>> {
    this.sendHello(fields);
    return this.next('welcome');
  }

  sendHello(fields: HelloFields): void {
    this.send({
      case: 'hello',
      value: {
        $typeName: 'cairn.worker.v1.Hello',
        dataPlaneId: fields.dataPlaneId,
        workerId: fields.workerId ?? randomUUID(),
        workflows: (fields.workflows ?? [{ name: 'greet', version: 'v1', taskQueue: 'default' }]).map((w) => create(WorkflowRefSchema, w)),
        slots: fields.slots,
        freeSlots: fields.slots,
        heldLeases: (fields.heldLeases ?? []).map((l) => ({ $typeName: 'cairn.worker.v1.HeldLease' as const, ...l })),
        sdkVersion: '0.1.0',
        protocolVersion: 1,
      },
    });
  }

  close(): void {
    this.call.end();
  }

  private wait(what: string, ready: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const check = (): void => {
        if (!ready()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      this.listeners.add(check);
    });
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

type Unary = (request: unknown, metadata: grpc.Metadata, callback: (error: grpc.ServiceError | null, response: unknown) => void) => void;

const REQUEST_SCHEMAS = {
  startRun: StartRunRequestSchema,
  describeRun: DescribeRunRequestSchema,
  waitRun: WaitRunRequestSchema,
  signalRun: SignalRunRequestSchema,
  cancelRun: CancelRunRequestSchema,
  resolveVersion: ResolveVersionRequestSchema,
} as const;

export function gatewayCall<Response>(
  client: ServiceClient,
  method: keyof typeof REQUEST_SCHEMAS,
  request: Record<string, unknown>,
  token: string | null,
): Promise<Response> {
  const fn = client[method] as Unary;
  const message = create(REQUEST_SCHEMAS[method] as DescMessage, request);
  return new Promise((resolve, reject) => {
    fn.call(client, message, bearer(token), (error, response) => (error ? reject(error) : resolve(response as Response)));
  });
}

export async function rejectsWith(promise: Promise<unknown>, code: grpc.status, details?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: grpc.ServiceError) => {
    assert.equal(error.code, code, `expected ${grpc.status[code]}, got ${grpc.status[error.code]}: ${error.details}`);
    if (details) assert.match(error.details, details);
    return true;
  });
}
