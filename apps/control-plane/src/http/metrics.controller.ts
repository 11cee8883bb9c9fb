import { Controller, Get, Headers, Inject, Ip, Res } from '@nestjs/common';
import { sourceOf } from '@cairn/common';
import { Telemetry } from '../telemetry/telemetry.service.js';

/** The Fastify reply, as far as this controller uses it. */
interface Reply {
  header(name: string, value: string): unknown;
}

/**
 * Prometheus metrics on the API port. Not behind the API-key guard (a scraper has no API key): it
 * needs `CAIRN_METRICS_TOKEN`, and without one it refuses — serve metrics on a private port with
 * `CAIRN_CP_METRICS_PORT` instead (metrics-server.ts). Aggregates only, no IDs in labels.
 */
@Controller()
export class MetricsController {
  constructor(@Inject(Telemetry) private readonly telemetry: Telemetry) {}

  @Get('metrics')
  async metrics(
    @Headers('authorization') authorization: string | undefined,
    @Ip() ip: string | undefined,
    @Res({ passthrough: true }) reply: Reply,
  ): Promise<string> {
    this.telemetry.authorizeMetrics(authorization, 'api', sourceOf(ip));
    const { contentType, body } = await this.telemetry.renderMetrics();
    reply.header('content-type', contentType);
    return body;
  }
}
