// A TCP proxy on one link (worker → control plane, worker → payload store, gateway → control plane)
// that faults can be applied to: connections cut, bytes delayed, a link blackholed in one direction
// or both. A blackhole holds bytes back rather than dropping them, as a partitioned network does:
// TCP retransmits, so a stream is never corrupted; it stalls until the link heals or a keepalive or
// timeout on either side gives up on it.
import { connect, createServer, type Server, type Socket } from 'node:net';

/** Which way bytes stop flowing: `up` is from the dialling process to its server, `down` back. */
export type Direction = 'up' | 'down' | 'both';

export type LinkState =
  | { readonly kind: 'pass' }
  | { readonly kind: 'delay'; readonly ms: number }
  | { readonly kind: 'blackhole'; readonly direction: Direction };

interface Pipe {
  readonly client: Socket;
  upstream: Socket | undefined;
  /** Chunks held back per direction while the link is blackholed or delayed, with when each may go. */
  readonly held: { up: Array<{ chunk: Buffer; due: number }>; down: Array<{ chunk: Buffer; due: number }> };
  closed: boolean;
}

/** One proxied link; `upstreams` are tried in turn on connect, as a load balancer in front of replicas would. */
export class FaultProxy {
  readonly name: string;
  readonly #upstreams: ReadonlyArray<{ host: string; port: number }>;
  readonly #pipes = new Set<Pipe>();
  #server: Server | undefined;
  #state: LinkState = { kind: 'pass' };
  #next = 0;
  port = 0;

  constructor(name: string, upstreams: ReadonlyArray<{ host: string; port: number }>) {
    if (upstreams.length === 0) throw new Error(`proxy ${name} needs at least one upstream`);
    this.name = name;
    this.#upstreams = upstreams;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async listen(): Promise<this> {
    const server = createServer((client) => this.#accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address !== 'object') throw new Error(`proxy ${this.name} has no port`);
    this.port = address.port;
    this.#server = server;
    return this;
  }

  /** Sets how the link behaves from now on; held bytes flow again when it passes once more. */
  set(state: LinkState): void {
    this.#state = state;
    if (state.kind === 'pass' || state.kind === 'delay') {
      for (const pipe of this.#pipes) {
        if (!pipe.upstream) this.#dial(pipe);
        this.#flush(pipe, 'up');
        this.#flush(pipe, 'down');
      }
    } else if (state.direction !== 'both') {
      for (const pipe of this.#pipes) this.#flush(pipe, state.direction === 'up' ? 'down' : 'up');
    }
  }

  /** Resets every open connection on the link (both ends see it drop). */
  cut(): number {
    const n = this.#pipes.size;
    for (const pipe of [...this.#pipes]) this.#close(pipe);
    return n;
  }

  get connections(): number {
    return this.#pipes.size;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  #accept(client: Socket): void {
    const pipe: Pipe = { client, upstream: undefined, held: { up: [], down: [] }, closed: false };
    this.#pipes.add(pipe);
    client.setNoDelay(true);
    client.on('data', (chunk) => this.#forward(pipe, 'up', chunk));
    client.on('error', () => this.#close(pipe));
    client.on('close', () => this.#close(pipe));
    // A blackholed link lets the connection open (the SYN is answered by nobody in reality; here
    // the dialler simply hears nothing), and reaches the server only once it heals.
    if (!(this.#state.kind === 'blackhole' && this.#state.direction !== 'down')) this.#dial(pipe);
  }

  #dial(pipe: Pipe, tried = 0): void {
    if (pipe.closed || pipe.upstream) return;
    const target = this.#upstreams[this.#next++ % this.#upstreams.length]!;
    const upstream = connect(target.port, target.host);
    pipe.upstream = upstream;
    upstream.setNoDelay(true);
    let connected = false;
    upstream.on('connect', () => {
      connected = true;
      this.#flush(pipe, 'up');
    });
    upstream.on('data', (chunk) => this.#forward(pipe, 'down', chunk));
    upstream.on('error', () => {
      // Refused: try the next replica, as a load balancer's health check would route around it.
      if (!connected && tried + 1 < this.#upstreams.length && !pipe.closed) {
        pipe.upstream = undefined;
        upstream.destroy();
        this.#dial(pipe, tried + 1);
        return;
      }
      this.#close(pipe);
    });
    upstream.on('close', () => {
      if (pipe.upstream === upstream) this.#close(pipe);
    });
  }

  #blocked(direction: 'up' | 'down'): boolean {
    const s = this.#state;
    return s.kind === 'blackhole' && (s.direction === 'both' || s.direction === direction);
  }

  #forward(pipe: Pipe, direction: 'up' | 'down', chunk: Buffer): void {
    const s = this.#state;
    const delay = s.kind === 'delay' ? s.ms : 0;
    pipe.held[direction].push({ chunk, due: Date.now() + delay });
    if (delay > 0) setTimeout(() => this.#flush(pipe, direction), delay).unref();
    else this.#flush(pipe, direction);
  }

  #flush(pipe: Pipe, direction: 'up' | 'down'): void {
    if (pipe.closed || this.#blocked(direction)) return;
    const to = direction === 'up' ? pipe.upstream : pipe.client;
    if (!to || to.connecting) return;
    const held = pipe.held[direction];
    const now = Date.now();
    // Bytes keep their order: a chunk waits for the delayed ones before it.
    while (held.length > 0 && held[0]!.due <= now) to.write(held.shift()!.chunk);
  }

  #close(pipe: Pipe): void {
    if (pipe.closed) return;
    pipe.closed = true;
    this.#pipes.delete(pipe);
    pipe.client.destroy();
    pipe.upstream?.destroy();
  }
}
