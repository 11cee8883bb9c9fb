import { Controller, Get, Headers, Inject, Res } from '@nestjs/common';
import { CairnError, ErrorCodes } from '@cairn/common';
import { Telemetry } from '../telemetry/telemetry.service.js';

/** The Fastify reply, as far as this controller uses it. */
interface Reply {
  header(name: string, value: string): unknown;
}

/**
 * Prometheus metrics. Not behind the API-key guard: a scraper has no API key. Aggregates only (no
 * IDs in labels); with `CAIRN_METRICS_TOKEN` set it needs `Authorization: Bearer <token>`.
 */
@Controller()
export class MetricsController {
  constructor(@Inject(Telemetry) private readonly telemetry: Telemetry) {}

  @Get('metrics')
  async metrics(@Headers('authorization') authorization: string | undefined, @Res({ passthrough: true }) reply: Reply): Promise<string> {
    if (!this.telemetry.metricsAuthorized(authorization)) {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'metrics need Authorization: Bearer <token>, with the token set as CAIRN_METRICS_TOKEN on the control plane',
      );
    }
    const { contentType, body } = await this.telemetry.renderMetrics();
    reply.header('content-type', contentType);
    return body;
  }
}
