import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CairnError, ErrorCodes, retryAfterSeconds, sourceOf, type Logger } from '@cairn/common';
import type { Telemetry } from './telemetry.service.js';

/**
 * `GET /metrics` on a port of its own (`CAIRN_CP_METRICS_PORT`), so a scraper on a private network
 * reads metrics without the public API port serving them. Nothing else is served here; with
 * `CAIRN_METRICS_TOKEN` set, the token is needed here too.
 */
export class MetricsServer {
  private server: Server | null = null;

  constructor(
    private readonly telemetry: Telemetry,
    private readonly logger: Logger,
  ) {}

  /** Listens; returns the bound port (useful with port 0). */
  async start(host: string, port: number): Promise<number> {
    const server = createServer((request, response) => {
      const answer = (status: number, code: string, message: string, headers: Record<string, string> = {}): void => {
        response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
        response.end(JSON.stringify({ error: { code, message } }));
      };
      const path = (request.url ?? '').split('?')[0];
      if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
        answer(404, ErrorCodes.NOT_FOUND, 'this port serves GET /metrics only');
        return;
      }
      void (async () => {
        try {
          this.telemetry.authorizeMetrics(request.headers.authorization, 'metrics', sourceOf(request.socket.remoteAddress));
          const { contentType, body } = await this.telemetry.renderMetrics();
          response.writeHead(200, { 'content-type': contentType });
          response.end(request.method === 'HEAD' ? undefined : body);
        } catch (error) {
          const e = CairnError.from(error);
          if (e.code === ErrorCodes.CREDENTIAL_THROTTLED) {
            answer(429, e.code, e.rawMessage, { 'retry-after': String(retryAfterSeconds(e) ?? 1) });
          } else if (e.code === ErrorCodes.UNAUTHENTICATED) {
            answer(401, e.code, e.rawMessage, { 'www-authenticate': 'Bearer realm="cairn-metrics"' });
          } else {
            this.logger.warn({ code: e.code }, 'metrics: scrape failed');
            answer(500, ErrorCodes.INTERNAL, 'metrics could not be rendered; see the control-plane logs');
          }
        }
      })();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
