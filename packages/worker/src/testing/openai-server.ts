// A tiny LLM provider for tests: an HTTP server speaking the OpenAI chat-completions wire format
// (JSON, and SSE when the request asks to stream), answering each request as the test scripts it.
// It stands in for what cannot run here (a real provider); the client side is a real AI SDK provider.
import type * as OpenAICompatible from '@ai-sdk/openai-compatible';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';

/** What the server does with one request. */
export type Reply =
  /** A normal answer; streamed in `chunks` pieces when the request streams. */
  | { readonly kind: 'text'; readonly text: string; readonly chunks?: number; readonly usage?: { input: number; output: number } }
  /** The model asks for tool calls. */
  | { readonly kind: 'tools'; readonly calls: ReadonlyArray<{ id: string; name: string; input: unknown }> }
  /** An error status with a JSON error body. */
  | { readonly kind: 'status'; readonly status: number; readonly headers?: Record<string, string>; readonly message?: string }
  /** Streams part of `text`, then drops the connection without finishing. */
  | { readonly kind: 'cut'; readonly text: string }
  /** Streams `text`, then a chunk that is not JSON. */
  | { readonly kind: 'malformed'; readonly text: string }
  /** Streams `text` slowly: one character every `everyMs`. */
  | { readonly kind: 'slow'; readonly text: string; readonly everyMs: number };

/** One request the server received. */
export interface ReceivedRequest {
  readonly at: number;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The request body as the provider sent it (OpenAI chat-completions JSON). */
  readonly body: Record<string, unknown>;
}

export class OpenAIServer {
  readonly requests: ReceivedRequest[] = [];
  #replies: Reply[] = [];
  #fallback: Reply = { kind: 'status', status: 500, message: 'no reply scripted' };
  readonly #server: Server;
  #url = '';

  private constructor() {
    this.#server = createServer((req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (raw += chunk));
      req.on('end', () => {
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          // keep {}
        }
        this.requests.push({ at: Date.now(), path: req.url ?? '', headers: req.headers, body });
        const reply = this.#replies.shift() ?? this.#fallback;
        this.#answer(reply, body['stream'] === true, String(body['model']), res);
      });
    });
  }

  static async start(): Promise<OpenAIServer> {
    const server = new OpenAIServer();
    await new Promise<void>((resolve) => server.#server.listen(0, '127.0.0.1', resolve));
    const address = server.#server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    server.#url = `http://127.0.0.1:${address.port}/v1`;
    return server;
  }

  /** The base URL to give the provider (`…/v1`). */
  get baseURL(): string {
    return this.#url;
  }

  /** Scripts the next replies, in order; `otherwise` answers every request after them. */
  script(replies: readonly Reply[], otherwise?: Reply): void {
    this.#replies = [...replies];
    if (otherwise) this.#fallback = otherwise;
  }

  /** Requests received since `from` (an index into `requests`). */
  since(from: number): ReceivedRequest[] {
    return this.requests.slice(from);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #answer(reply: Reply, stream: boolean, model: string, res: ServerResponse): void {
    const id = `chatcmpl-${this.requests.length}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: unknown, finish: string | null, usage?: unknown) => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish }],
      ...(usage ? { usage } : {}),
    });
    const sse = (res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      return (data: unknown) => res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    };
    switch (reply.kind) {
      case 'status': {
        res.writeHead(reply.status, { 'content-type': 'application/json', ...(reply.headers ?? {}) });
        res.end(JSON.stringify({ error: { message: reply.message ?? `status ${reply.status}`, type: 'test_error', code: null } }));
        return;
      }
      case 'text': {
        const usage = { prompt_tokens: reply.usage?.input ?? 11, completion_tokens: reply.usage?.output ?? 7 };
        if (!stream) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              id,
              object: 'chat.completion',
              created,
              model,
              choices: [{ index: 0, message: { role: 'assistant', content: reply.text }, finish_reason: 'stop' }],
              usage,
            }),
          );
          return;
        }
        const send = sse(res);
        const n = Math.max(1, reply.chunks ?? 3);
        const size = Math.ceil(reply.text.length / n);
        send(chunk({ role: 'assistant', content: '' }, null));
        for (let i = 0; i < reply.text.length; i += size) send(chunk({ content: reply.text.slice(i, i + size) }, null));
        send(chunk({}, 'stop'));
        send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
        send('[DONE]');
        res.end();
        return;
      }
      case 'tools': {
        const usage = { prompt_tokens: 20, completion_tokens: 9 };
        const toolCalls = reply.calls.map((c, index) => ({
          index,
          id: c.id,
          type: 'function',
          function: { name: c.name, arguments: JSON.stringify(c.input) },
        }));
        if (!stream) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              id,
              object: 'chat.completion',
              created,
              model,
              choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: toolCalls }, finish_reason: 'tool_calls' }],
              usage,
            }),
          );
          return;
        }
        const send = sse(res);
        send(chunk({ role: 'assistant', content: null, tool_calls: toolCalls }, null));
        send(chunk({}, 'tool_calls'));
        send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
        send('[DONE]');
        res.end();
        return;
      }
      case 'cut': {
        const send = sse(res);
        send(chunk({ role: 'assistant', content: reply.text }, null));
        // Let the bytes out, then drop the connection mid-stream.
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      case 'malformed': {
        const send = sse(res);
        send(chunk({ role: 'assistant', content: reply.text }, null));
        send('{"id": "broken", "choices": [');
        send('[DONE]');
        res.end();
        return;
      }
      case 'slow': {
        const send = sse(res);
        send(chunk({ role: 'assistant', content: '' }, null));
        let i = 0;
        const timer = setInterval(() => {
          if (res.destroyed) {
            clearInterval(timer);
            return;
          }
          if (i < reply.text.length) {
            send(chunk({ content: reply.text[i] }, null));
            i++;
            return;
          }
          clearInterval(timer);
          send(chunk({}, 'stop'));
          send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: { prompt_tokens: 5, completion_tokens: i } });
          send('[DONE]');
          res.end();
        }, reply.everyMs);
        return;
      }
    }
  }
}

/** The real `@ai-sdk/openai-compatible` provider, for tests that go over HTTP. */
export async function openAICompatible(): Promise<typeof OpenAICompatible> {
  return import('@ai-sdk/openai-compatible');
}
