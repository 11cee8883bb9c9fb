import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Label values come from closed sets (statuses, enum names, route templates, CAIRN codes), never
 * IDs, so cardinality stays bounded.
 *
 * The control plane's Prometheus metrics, in a registry of its own (several control planes may
 * share a process in tests). Gauges read from the database are set by {@link Metrics.setDatabaseGauges}
 * right before a scrape is rendered.
 */
export class Metrics {
  readonly registry = new Registry();

  /** From a run becoming queued (`runs.queued_at`) to its RunTask being pushed to a worker. */
  readonly dispatchLatency = new Histogram({
    name: 'cairn_dispatch_latency_seconds',
    help: 'Time from a run becoming queued to its run task being pushed to a worker, by why it was queued.',
    labelNames: ['wake_reason'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  readonly queueDepth = new Gauge({
    name: 'cairn_queue_depth',
    help: 'Runs waiting to be dispatched (status queued), over all data planes; read from the database at scrape time.',
    registers: [this.registry],
  });

  readonly activeLeases = new Gauge({
    name: 'cairn_active_leases',
    help: 'Runs held by a worker under a lease (status running), over all replicas; read from the database at scrape time.',
    registers: [this.registry],
  });

  readonly workerSessions = new Gauge({
    name: 'cairn_worker_sessions',
    help: 'Worker streams connected to this replica.',
    registers: [this.registry],
  });

  readonly stepsFinished = new Counter({
    name: 'cairn_steps_finished_total',
    help: 'Step attempts workers reported reaching a final status (completed or failed), by kind and status.',
    labelNames: ['kind', 'status'] as const,
    registers: [this.registry],
  });

  readonly runsEnded = new Counter({
    name: 'cairn_runs_ended_total',
    help: 'Runs that reached a final status through a worker report (completed, failed, cancelled).',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  readonly runFailures = new Counter({
    name: 'cairn_run_failures_total',
    help: 'Runs that failed, by closed error code (cairn.run.v1.ErrorCode name).',
    labelNames: ['error_code'] as const,
    registers: [this.registry],
  });

  readonly apiErrors = new Counter({
    name: 'cairn_api_errors_total',
    help: 'Requests answered with an error, by API (rest, grpc) and CAIRN error code.',
    labelNames: ['api', 'code'] as const,
    registers: [this.registry],
  });

  readonly httpRequests = new Histogram({
    name: 'cairn_http_request_duration_seconds',
    help: 'REST requests by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
    registers: [this.registry],
  });

  readonly grpcRequests = new Histogram({
    name: 'cairn_grpc_request_duration_seconds',
    help: 'GatewayService calls by method and gRPC status.',
    labelNames: ['method', 'grpc_status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
    registers: [this.registry],
  });

  readonly sweepRequeued = new Counter({
    name: 'cairn_sweep_requeued_total',
    help: 'Runs the sweeper queued again: lease_expired (its worker stopped renewing) or timer_due (a sleep, timeout or retry backoff ended).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly sweepPasses = new Counter({
    name: 'cairn_sweep_passes_total',
    help: 'Sweeper passes run by this replica, by result (ok, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly streamSendQueued = new Gauge({
    name: 'cairn_worker_stream_send_queued',
    help: 'Messages waiting in the send queues of the worker streams on this replica whose reader is not keeping up (bounded per stream by CAIRN_CP_STREAM_SEND_QUEUE).',
    registers: [this.registry],
  });

  readonly limitRefusals = new Counter({
    name: 'cairn_limit_refusals_total',
    help: 'Requests and streams refused or ended by a limit: rate (429 / RESOURCE_EXHAUSTED), streams, waits (per data plane), stream_stalled (a worker stream that did not read).',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const reason of ['lease_expired', 'timer_due']) this.sweepRequeued.inc({ reason }, 0);
    for (const limit of ['rate', 'streams', 'waits', 'stream_stalled']) this.limitRefusals.inc({ limit }, 0);
  }

  /** Sets the gauges read from the database; NaN when the read failed (so a scrape never shows a stale number). */
  setDatabaseGauges(counts: { queued: number; running: number } | null): void {
    this.queueDepth.set(counts?.queued ?? Number.NaN);
    this.activeLeases.set(counts?.running ?? Number.NaN);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
