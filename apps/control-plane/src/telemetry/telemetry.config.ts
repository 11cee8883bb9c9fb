import { ErrorCodes, env, weakTokenReason } from '@cairn/common';
import { z } from 'zod';

/** How the control plane exports traces and protects `/metrics`. */
export interface TelemetryConfig {
  /**
   * The OTLP/HTTP traces URL (`…/v1/traces`) this control plane exports its spans to, or null when
   * tracing is off.
   */
  readonly tracesEndpoint: string | null;
  /** `service.name` of the spans. */
  readonly serviceName: string;
  /**
   * When set, `GET /metrics` needs `Authorization: Bearer <token>` wherever it is served. Unset,
   * the API port refuses `/metrics` and only the metrics port (when configured) serves it, openly.
   */
  readonly metricsToken: string | null;
  /**
   * A port of its own for `GET /metrics` (nothing else is served there), for a scraper on a
   * private network; null serves metrics only on the API port, with the token.
   */
  readonly metricsPort: number | null;
}

const httpUrl = z
  .string()
  .refine((v) => /^https?:\/\/[^\s/]+/.test(v) && URL.canParse(v), 'expected an http:// or https:// URL')
  .optional();

/**
 * The environment variables of the control plane's telemetry. The standard OpenTelemetry variables
 * work as usual; the `CAIRN_CP_` one wins when several are set, so a host whose environment points
 * every process at a collector can still give the control plane its own.
 */
export const telemetryShape = {
  CAIRN_CP_OTLP_TRACES_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl,
  OTEL_SDK_DISABLED: z.enum(['true', 'false', 'TRUE', 'FALSE'], { error: 'expected true or false' }).optional(),
  OTEL_SERVICE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'expected a service name (letters, digits, _ . -)')
    .optional(),
  CAIRN_METRICS_TOKEN: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      const weak = value === undefined ? null : weakTokenReason(value);
      if (weak) ctx.addIssue({ code: 'custom', message: `is too weak (${ErrorCodes.WEAK_CREDENTIAL}): the token ${weak}` });
    }),
  CAIRN_CP_METRICS_PORT: env.port().optional(),
};

type TelemetryEnv = { readonly [K in keyof typeof telemetryShape]?: z.infer<(typeof telemetryShape)[K]> };

/** Resolves the validated variables: the most specific endpoint wins; none (or OTEL_SDK_DISABLED) turns tracing off. */
export function telemetryConfig(raw: TelemetryEnv): TelemetryConfig {
  const base = raw.OTEL_EXPORTER_OTLP_ENDPOINT;
  const endpoint =
    raw.CAIRN_CP_OTLP_TRACES_ENDPOINT ??
    raw.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (base === undefined ? undefined : `${base.replace(/\/+$/, '')}/v1/traces`);
  const disabled = raw.OTEL_SDK_DISABLED?.toLowerCase() === 'true';
  return Object.freeze({
    tracesEndpoint: disabled || endpoint === undefined ? null : endpoint,
    serviceName: raw.OTEL_SERVICE_NAME ?? 'cairn-control-plane',
    metricsToken: raw.CAIRN_METRICS_TOKEN ?? null,
    metricsPort: raw.CAIRN_CP_METRICS_PORT ?? null,
  });
}
