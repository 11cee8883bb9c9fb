import { CairnError, ErrorCodes, OTEL_TRACES_SAMPLERS, env } from '@cairn/common';

const httpUrl = () =>
  env
    .optionalString()
    .refine((v) => v === undefined || (/^https?:\/\/[^\s/]+/.test(v) && URL.canParse(v)), 'expected an http:// or https:// URL');

const SAMPLERS: readonly string[] = OTEL_TRACES_SAMPLERS;

/**
 * The worker's tracing variables. `@opentelemetry/sdk-node` reads the standard OpenTelemetry ones
 * itself (sampler, resource, protocol, headers, batching); those that decide whether tracing starts
 * and where spans go are checked here, so a bad value stops start-up with its name and an endpoint
 * on the control plane's host is refused. The `CAIRN_DP_` endpoint wins when several are set. All
 * of them name a collector inside the data plane.
 */
export const tracingShape = {
  CAIRN_DP_OTLP_TRACES_ENDPOINT: httpUrl(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl(),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl(),
  OTEL_TRACES_EXPORTER: env.optionalString(),
  OTEL_SDK_DISABLED: env.bool(false),
  OTEL_TRACES_SAMPLER: env
    .optionalString()
    .refine((v) => v === undefined || SAMPLERS.includes(v), `expected one of ${SAMPLERS.join(', ')}`),
  OTEL_TRACES_SAMPLER_ARG: env
    .optionalString()
    .refine((v) => v === undefined || /^(0(\.\d+)?|1(\.0*)?|\.\d+)$/.test(v), 'expected a sampling ratio between 0 and 1, e.g. 0.1'),
};

interface TracingEnv {
  readonly CAIRN_DP_OTLP_TRACES_ENDPOINT?: string | undefined;
  readonly OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string | undefined;
  readonly OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined;
  readonly OTEL_TRACES_EXPORTER?: string | undefined;
  readonly OTEL_SDK_DISABLED?: boolean;
  readonly CAIRN_CP_GRPC_ADDRESS: string;
}

/** How the worker process exports its spans; null when tracing is off. */
export interface WorkerTracingConfig {
  /**
   * The traces URL the exporter sends to (for `OTEL_EXPORTER_OTLP_ENDPOINT`, with `/v1/traces`
   * appended), or null when only `OTEL_TRACES_EXPORTER` is set (the SDK's default endpoint).
   */
  readonly endpoint: string | null;
  /** The variable the endpoint came from, for messages; `CAIRN_DP_OTLP_TRACES_ENDPOINT` replaces the SDK's exporter. */
  readonly variable: string;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/**
 * Decides whether the worker process starts the OpenTelemetry SDK: when an endpoint or
 * `OTEL_TRACES_EXPORTER` is set, unless `OTEL_SDK_DISABLED=true` or the exporter is `none`. The most
 * specific endpoint wins (`OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/traces` appended). Worker spans
 * carry step names and must stay in the data plane, so an endpoint on the control plane's host is
 * refused (on a loopback host, only the control plane's own port is).
 */
export function workerTracingConfig(vars: TracingEnv): WorkerTracingConfig | null {
  const exporter = vars.OTEL_TRACES_EXPORTER?.trim() ?? '';
  if (vars.OTEL_SDK_DISABLED === true || exporter === 'none') return null;
  let resolved: WorkerTracingConfig | null = null;
  if (vars.CAIRN_DP_OTLP_TRACES_ENDPOINT !== undefined) {
    resolved = { endpoint: vars.CAIRN_DP_OTLP_TRACES_ENDPOINT, variable: 'CAIRN_DP_OTLP_TRACES_ENDPOINT' };
  } else if (vars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined) {
    resolved = { endpoint: vars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, variable: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' };
  } else if (vars.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) {
    const endpoint = `${vars.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
    resolved = { endpoint, variable: 'OTEL_EXPORTER_OTLP_ENDPOINT' };
  } else if (exporter !== '') {
    return { endpoint: null, variable: 'OTEL_TRACES_EXPORTER' };
  }
  if (resolved === null || resolved.endpoint === null) return null;
  const url = new URL(resolved.endpoint);
  const cp = /^(.*):(\d+)$/.exec(vars.CAIRN_CP_GRPC_ADDRESS);
  const cpHost = cp?.[1]?.toLowerCase();
  const cpPort = cp?.[2];
  const host = url.hostname.toLowerCase();
  const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port;
  const sameHost = cpHost !== undefined && (host === cpHost || host === `[${cpHost}]`);
  if (sameHost && (!LOOPBACK.has(host) || port === cpPort)) {
    throw new CairnError(
      ErrorCodes.INVALID_CONFIG,
      `The Cairn worker cannot start: invalid environment:\n  ${resolved.variable}: points at the control plane's host; ` +
        'worker traces carry step names and must go to a collector inside the data plane.\nSet this variable and start again.',
    );
  }
  return resolved;
}
