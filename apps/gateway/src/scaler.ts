// KEDA's external scaler (externalscaler.proto), served by the gateway inside the customer's
// cluster. KEDA asks it how much work waits for workers; the gateway asks the control plane
// (GatewayService.GetBacklog, counts per task queue of this data plane only) and answers with the
// backlog: queued plus running runs. KEDA sets workers = ceil(backlog / targetRunsPerReplica).
//
// ScaledObject trigger metadata (all optional):
//   taskQueues            comma-separated task queue names to count (default: every queue)
//   targetRunsPerReplica  runs one worker should carry (default 10, the worker's default slots)
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@cairn/common';
import { CairnError } from '@cairn/common';
import { GetBacklogRequestSchema, create, grpcServiceDefinition, keda } from '@cairn/proto';
import type { ControlPlane } from './control-plane.js';

/** The one metric the scaler reports. */
export const BACKLOG_METRIC = 'cairn-backlog';
const DEFAULT_TARGET = 10;
const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]*$/;

interface ScalerSettings {
  readonly taskQueues: readonly string[];
  readonly target: number;
}

/** A refusal of KEDA's request (bad trigger metadata), or the control plane being unreachable. */
class ScalerFailure extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

function settings(ref: keda.ScaledObjectRef | undefined): ScalerSettings {
  const metadata = ref?.scalerMetadata ?? {};
  const queuesText = metadata['taskQueues']?.trim() ?? '';
  const taskQueues = queuesText === '' ? [] : queuesText.split(',').map((q) => q.trim());
  for (const q of taskQueues) {
    if (!NAME_PATTERN.test(q) || q.length > 100) {
      throw new ScalerFailure(
        grpc.status.INVALID_ARGUMENT,
        `trigger metadata taskQueues: ${JSON.stringify(q)} is not a task queue name (letters, digits, '_', '.', '-', starting with a letter, at most 100)`,
      );
    }
  }
  const targetText = metadata['targetRunsPerReplica']?.trim() ?? '';
  const target = targetText === '' ? DEFAULT_TARGET : Number(targetText);
  if (!Number.isFinite(target) || target <= 0) {
    throw new ScalerFailure(
      grpc.status.INVALID_ARGUMENT,
      `trigger metadata targetRunsPerReplica must be a number above 0, got ${JSON.stringify(targetText)}`,
    );
  }
  return { taskQueues, target };
}

export interface ScalerOptions {
  readonly controlPlane: ControlPlane;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** How often a StreamIsActive stream asks the control plane. */
  readonly pollMs: number;
  readonly logger: Logger;
}

export interface RunningScaler {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the external-scaler gRPC server. */
export async function startScaler(options: ScalerOptions): Promise<RunningScaler> {
  const { controlPlane, logger } = options;
  const closing = new AbortController();

  const backlog = async (s: ScalerSettings): Promise<number> => {
    try {
      const response = await controlPlane.getBacklog(create(GetBacklogRequestSchema, { taskQueues: [...s.taskQueues] }));
      return response.queues.reduce((sum, q) => sum + Number(q.queued) + Number(q.running), 0);
    } catch (err) {
      throw new ScalerFailure(
        grpc.status.UNAVAILABLE,
        `cannot read the backlog from the control plane: ${CairnError.from(err).rawMessage}`,
      );
    }
  };

  const unary =
    <Req, Res>(method: string, handle: (request: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> =>
    (call, callback) => {
      // A refusal thrown while reading the request becomes a rejection too.
      Promise.resolve(call.request)
        .then(handle)
        .then(
          (response) => callback(null, response),
          (err: unknown) => {
            const failure = err instanceof ScalerFailure ? err : new ScalerFailure(grpc.status.INTERNAL, CairnError.from(err).rawMessage);
            logger.warn({ method, code: grpc.status[failure.code], err: failure.message }, 'external scaler call failed');
            callback({ code: failure.code, details: failure.message });
          },
        );
    };

  const streamIsActive: grpc.handleServerStreamingCall<keda.ScaledObjectRef, keda.IsActiveResponse> = (call) => {
    let s: ScalerSettings;
    try {
      s = settings(call.request);
    } catch (err) {
      call.destroy(Object.assign(new Error((err as Error).message), { code: (err as ScalerFailure).code }));
      return;
    }
    const stop = new AbortController();
    const end = (): void => stop.abort();
    call.on('cancelled', end);
    call.on('close', end);
    closing.signal.addEventListener('abort', end, { once: true });
    void (async () => {
      let last: boolean | undefined;
      while (!stop.signal.aborted) {
        try {
          const active = (await backlog(s)) > 0;
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- aborted on shutdown, while awaiting
          if (active !== last && !stop.signal.aborted) {
            call.write(create(keda.IsActiveResponseSchema, { result: active }));
            last = active;
          }
        } catch (err) {
          logger.warn({ err: (err as Error).message }, 'external scaler stream: backlog unavailable; trying again');
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, options.pollMs);
          stop.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(timer);
              resolve();
            },
            { once: true },
          );
        });
      }
      closing.signal.removeEventListener('abort', end);
      if (!call.destroyed) call.end();
    })();
  };

  const server = new grpc.Server();
  server.addService(grpcServiceDefinition(keda.ExternalScaler), {
    isActive: unary<keda.ScaledObjectRef, keda.IsActiveResponse>('IsActive', async (ref) =>
      create(keda.IsActiveResponseSchema, { result: (await backlog(settings(ref))) > 0 }),
    ),
    streamIsActive,
    getMetricSpec: unary<keda.ScaledObjectRef, keda.GetMetricSpecResponse>('GetMetricSpec', (ref) => {
      const { target } = settings(ref);
      return Promise.resolve(
        create(keda.GetMetricSpecResponseSchema, {
          // KEDA before 2.12 reads only the integer fields, which its proto now marks deprecated.
          // eslint-disable-next-line @typescript-eslint/no-deprecated
          metricSpecs: [{ metricName: BACKLOG_METRIC, targetSizeFloat: target, targetSize: BigInt(Math.ceil(target)) }],
        }),
      );
    }),
    getMetrics: unary<keda.GetMetricsRequest, keda.GetMetricsResponse>('GetMetrics', async (req) => {
      const load = await backlog(settings(req.scaledObjectRef));
      return create(keda.GetMetricsResponseSchema, {
        // As above: the integer field is for KEDA before 2.12.
        // eslint-disable-next-line @typescript-eslint/no-deprecated
        metricValues: [{ metricName: req.metricName || BACKLOG_METRIC, metricValueFloat: load, metricValue: BigInt(load) }],
      });
    }),
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`,
      grpc.ServerCredentials.createInsecure(),
      (err, bound) => (err ? reject(err) : resolve(bound)),
    );
  });
  logger.info({ port }, 'external scaler listening');
  return {
    port,
    close() {
      closing.abort();
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 2_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
