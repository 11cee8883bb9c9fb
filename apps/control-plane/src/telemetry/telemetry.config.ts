import { ErrorCodes, OTEL_TRACES_SAMPLERS, env, weakTokenReason } from '@cairn/common';
import { z } from 'zod';

/** How the control plane exports traces and protects `/metrics`. */
export interface TelemetryConfig {
  /**
   * Traces, through `@opentelemetry/sdk-node`: on when an exporter is configured
   * (`CAIRN_CP_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
   * `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_TRACES_EXPORTER`) and `OTEL_SDK_DISABLED` is not true.
   * `endpoint` is `CAIRN_CP_OTLP_TRACES_ENDPOINT` (an OTLP/HTTP JSON exporter to that URL), or null
   * to let the SDK build its exporter from the `OTEL_*` variables.
   */
  readonly tracing: { readonly enabled: boolean; readonly endpoint: string | null };
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

const SAMPLERS = OTEL_TRACES_SAMPLERS;

/**
 * The environment variables of the control plane's telemetry. The standard OpenTelemetry variables
 * are read by the SDK itself; the few that decide whether tracing starts, and the sampler (which
 * the SDK would otherwise ignore with a warning when misspelt), are checked here so a bad value
 * stops start-up with its name. The `CAIRN_CP_` endpoint wins when several are set, so a host whose
 * environment points every process at a collector can still give the control plane its own.
 */
export const telemetryShape = {
  CAIRN_CP_OTLP_TRACES_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl,
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl,
  OTEL_TRACES_EXPORTER: z.string().optional(),
  OTEL_SDK_DISABLED: z.enum(['true', 'false', 'TRUE', 'FALSE'], { error: 'expected true or false' }).optional(),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS, { error: `expected one of ${SAMPLERS.join(', ')}` }).optional(),
  OTEL_TRACES_SAMPLER_ARG: z
    .string()
    .regex(/^(0(\.\d+)?|1(\.0*)?|\.\d+)$/, 'expected a sampling ratio between 0 and 1, e.g. 0.1')
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

/** Resolves the validated variables: no exporter configured (or OTEL_SDK_DISABLED) turns tracing off. */
export function telemetryConfig(raw: TelemetryEnv): TelemetryConfig {
  const disabled = raw.OTEL_SDK_DISABLED?.toLowerCase() === 'true' || raw.OTEL_TRACES_EXPORTER?.trim() === 'none';
  const configured =
    raw.CAIRN_CP_OTLP_TRACES_ENDPOINT !== undefined ||
    raw.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined ||
    raw.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
    (raw.OTEL_TRACES_EXPORTER ?? '').trim() !== '';
  return Object.freeze({
    tracing: Object.freeze({ enabled: configured && !disabled, endpoint: disabled ? null : (raw.CAIRN_CP_OTLP_TRACES_ENDPOINT ?? null) }),
    metricsToken: raw.CAIRN_METRICS_TOKEN ?? null,
    metricsPort: raw.CAIRN_CP_METRICS_PORT ?? null,
  });
}
