import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, inflateSync } from 'node:zlib';

/** One span as an OTLP collector received it. */
export interface CollectedSpan {
  /** `service.name` of the resource that sent it. */
  readonly service: string;
  /** The attributes of the resource that sent it. */
  readonly resource: Readonly<Record<string, string | number | boolean>>;
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly status: number;
}

interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface OtlpSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: KeyValue[];
  links?: Array<{ traceId?: string; spanId?: string }>;
  status?: { code?: number };
}
interface ExportTraceServiceRequest {
  resourceSpans?: Array<{ resource?: { attributes?: KeyValue[] }; scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>;
}

/**
 * A stand-in for an OpenTelemetry Collector in tests: a real HTTP server speaking OTLP/HTTP with
 * JSON encoding (`POST /v1/traces`, `application/json`, optionally gzip-compressed), which is what
 * `@opentelemetry/exporter-trace-otlp-http` sends. It keeps every request body as received, for
 * byte searches, and the decoded spans.
 */
export class OtlpCollector {
  readonly spans: CollectedSpan[] = [];
  /** Every request body, decompressed, in arrival order. */
  readonly bodies: Buffer[] = [];
  /** Requests it could not accept, described (an exporter sending something unexpected). */
  readonly problems: string[] = [];
  readonly #server: Server;
  readonly #waiters = new Set<() => void>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<OtlpCollector> {
    const server = createServer((req, res) => {
      collector.#receive(req).then(
        ([status, body]) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        (err: unknown) => {
          collector.problems.push(String(err));
          res.writeHead(500).end();
        },
      );
    });
    // The handler runs only once the server listens, after this assignment.
    const collector = new OtlpCollector(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return collector;
  }

  /** The traces URL to configure an exporter with. */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1/traces`;
  }

  /** Whether any body received so far contains `text`. */
  received(text: string): boolean {
    const needle = Buffer.from(text);
    return this.bodies.some((b) => b.includes(needle));
  }

  /**
   * Resolves with the first truthy value `find` returns over the spans received so far, checking
   * again on each export; rejects after `timeoutMs` (a bound on a hung test, not a measurement).
   */
  async waitFor<T>(what: string, find: (spans: readonly CollectedSpan[]) => T | undefined | null | false, timeoutMs = 60_000): Promise<T> {
    for (const deadline = Date.now() + timeoutMs; ;) {
      const found = find(this.spans);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`collector never received ${what}; got ${this.spans.length} spans: ${summary(this.spans)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left);
        function wake(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.add(wake);
      });
    }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  async #receive(req: IncomingMessage): Promise<[number, unknown]> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body = Buffer.concat(chunks);
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      this.problems.push(`${req.method} ${req.url}`);
      return [404, {}];
    }
    const encoding = req.headers['content-encoding'];
    if (encoding === 'gzip') body = gunzipSync(body);
    else if (encoding === 'deflate') body = inflateSync(body);
    this.bodies.push(body);
    if (!String(req.headers['content-type']).startsWith('application/json')) {
      this.problems.push(`unsupported content-type ${req.headers['content-type']}`);
      return [415, {}];
    }
    const request = JSON.parse(body.toString('utf8')) as ExportTraceServiceRequest;
    for (const resourceSpans of request.resourceSpans ?? []) {
      const resource = attributes(resourceSpans.resource?.attributes);
      for (const scope of resourceSpans.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) this.spans.push(decode(resource, span));
      }
    }
    for (const wake of [...this.#waiters]) {
      this.#waiters.delete(wake);
      wake();
    }
    return [200, { partialSuccess: {} }];
  }
}

function decode(resource: Record<string, string | number | boolean>, span: OtlpSpan): CollectedSpan {
  return {
    service: String(resource['service.name'] ?? ''),
    resource,
    traceId: hexId(span.traceId),
    spanId: hexId(span.spanId),
    parentSpanId: hexId(span.parentSpanId),
    name: span.name ?? '',
    kind: span.kind ?? 0,
    startMs: Number(BigInt(span.startTimeUnixNano ?? 0) / 1_000_000n),
    endMs: Number(BigInt(span.endTimeUnixNano ?? 0) / 1_000_000n),
    attributes: attributes(span.attributes),
    links: (span.links ?? []).map((l) => ({ traceId: hexId(l.traceId), spanId: hexId(l.spanId) })),
    status: span.status?.code ?? 0,
  };
}

/** OTLP/JSON carries IDs as hex; accept base64 (the protobuf JSON mapping) too. */
function hexId(id: string | undefined): string {
  if (!id) return '';
  if (/^[0-9a-f]+$/.test(id) && (id.length === 32 || id.length === 16)) return id;
  return Buffer.from(id, 'base64').toString('hex');
}

function attributes(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    if (!value) continue;
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value.arrayValue) out[key] = JSON.stringify(value.arrayValue.values ?? []);
  }
  return out;
}

function summary(spans: readonly CollectedSpan[]): string {
  const names = new Map<string, number>();
  for (const s of spans) names.set(`${s.service}:${s.name}`, (names.get(`${s.service}:${s.name}`) ?? 0) + 1);
  return JSON.stringify(Object.fromEntries(names));
}
