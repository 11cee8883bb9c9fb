import { CairnError, ErrorCodes, env } from '@cairn/common';

const httpUrl = () =>
  env
    .optionalString()
    .refine((v) => v === undefined || (/^https?:\/\/[^\s/]+/.test(v) && URL.canParse(v)), 'expected an http:// or https:// URL');

/**
 * The worker's tracing variables. The standard OpenTelemetry ones work as usual; the `CAIRN_DP_`
 * one wins when several are set. All of them name a collector inside the data plane.
 */
export const tracingShape = {
  CAIRN_DP_OTLP_TRACES_ENDPOINT: httpUrl(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl(),
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl(),
  OTEL_SDK_DISABLED: env.bool(false),
  OTEL_SERVICE_NAME: env
    .optionalString()
    .refine((v) => v === undefined || /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(v), 'expected a service name (letters, digits, _ . -)'),
};

interface TracingEnv {
  readonly CAIRN_DP_OTLP_TRACES_ENDPOINT?: string | undefined;
  readonly OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string | undefined;
  readonly OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined;
  readonly OTEL_SDK_DISABLED?: boolean;
  readonly OTEL_SERVICE_NAME?: string | undefined;
  readonly CAIRN_CP_GRPC_ADDRESS: string;
}

/** Where the worker exports its spans; null when tracing is off. */
export interface WorkerTracingConfig {
  readonly endpoint: string;
  readonly serviceName: string;
  /** The variable the endpoint came from, for messages. */
  readonly variable: string;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/**
 * Resolves the tracing endpoint: the most specific variable wins (`OTEL_EXPORTER_OTLP_ENDPOINT`
 * gets `/v1/traces` appended); none, or `OTEL_SDK_DISABLED=true`, turns tracing off. Worker spans
 * carry step names and must stay in the data plane, so an endpoint on the control plane's host is
 * refused (on a loopback host, only the control plane's own port is).
 */
export function workerTracingConfig(vars: TracingEnv): WorkerTracingConfig | null {
  if (vars.OTEL_SDK_DISABLED === true) return null;
  const serviceName = vars.OTEL_SERVICE_NAME ?? 'cairn-worker';
  let resolved: WorkerTracingConfig | null = null;
  if (vars.CAIRN_DP_OTLP_TRACES_ENDPOINT !== undefined) {
    resolved = { endpoint: vars.CAIRN_DP_OTLP_TRACES_ENDPOINT, serviceName, variable: 'CAIRN_DP_OTLP_TRACES_ENDPOINT' };
  } else if (vars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined) {
    resolved = { endpoint: vars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, serviceName, variable: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' };
  } else if (vars.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) {
    const endpoint = `${vars.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
    resolved = { endpoint, serviceName, variable: 'OTEL_EXPORTER_OTLP_ENDPOINT' };
  }
  if (resolved === null) return null;
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
