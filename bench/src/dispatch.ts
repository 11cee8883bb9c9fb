// Control-plane dispatch latency: from a StartRun call (what a gateway sends once the input is
// stored) to the RunTask arriving on a worker's stream. A minimal protocol client plays both the
// gateway and a worker announcing a workflow no real worker runs, so only the control plane is
// measured: commit of the run, wake-up of the dispatcher, the claim, and the push.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  ConnectRequestSchema,
  GatewayService,
  StartRunRequestSchema,
  WorkerService,
  create,
  grpcServiceDefinition,
  type ConnectRequest,
  type ConnectResponse,
  type StartRunResponse,
} from '@cairn/proto';

interface DuplexStream {
  write(m: ConnectRequest): boolean;
  end(): void;
  on(event: 'data', cb: (m: ConnectResponse) => void): void;
  on(event: 'error', cb: (e: Error) => void): void;
}

export async function measureDispatch(address: string, credential: string, dataPlaneId: string, runs: number): Promise<number[]> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${credential}`);
  const Worker = grpc.makeGenericClientConstructor(grpcServiceDefinition(WorkerService), 'WorkerService');
  const Gateway = grpc.makeGenericClientConstructor(grpcServiceDefinition(GatewayService), 'GatewayService');
  const worker = new Worker(address, grpc.credentials.createInsecure()) as unknown as {
    connect(md: grpc.Metadata): DuplexStream;
    close(): void;
  };
  const gateway = new Gateway(address, grpc.credentials.createInsecure()) as unknown as {
    startRun(req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: StartRunResponse) => void): void;
    close(): void;
  };
  const stream = worker.connect(md);
  let seq = 1n;
  const send = (message: ConnectRequest['message']) => stream.write(create(ConnectRequestSchema, { sequence: seq++, message }));
  const waiters = new Map<string, (epoch: number) => void>();
  let welcomed: () => void = () => undefined;
  const welcome = new Promise<void>((r) => (welcomed = r));
  stream.on('data', (m) => {
    if (m.message.case === 'welcome') welcomed();
    if (m.message.case === 'runTask') waiters.get(m.message.value.runId)?.(m.message.value.epoch);
  });
  stream.on('error', () => undefined);
  send({
    case: 'hello',
    value: {
      $typeName: 'cairn.worker.v1.Hello',
      dataPlaneId,
      workerId: randomUUID(),
      workflows: [{ $typeName: 'cairn.worker.v1.WorkflowRef', name: 'bench-dispatch', version: '1', taskQueue: 'bench-dispatch' }],
      slots: 4,
      freeSlots: 4,
      heldLeases: [],
      sdkVersion: '0.1.0',
      protocolVersion: 1,
    },
  });
  await welcome;
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const runId = randomUUID();
    const t0 = performance.now();
    const dispatched = new Promise<number>((resolve) => waiters.set(runId, resolve));
    await new Promise<void>((resolve, reject) =>
      gateway.startRun(
        create(StartRunRequestSchema, { runId, workflowName: 'bench-dispatch', workflowVersion: '1', inputSize: 2n }),
        md,
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    const epoch = await dispatched;
    out.push(performance.now() - t0);
    waiters.delete(runId);
    send({ case: 'completed', value: { $typeName: 'cairn.worker.v1.RunCompleted', runId, epoch, outputSize: 0n } });
  }
  stream.end();
  worker.close();
  gateway.close();
  return out;
}
