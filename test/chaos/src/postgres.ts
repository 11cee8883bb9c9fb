// An embedded Postgres the chaos suite can restart and freeze: the control plane's and the payload
// store's servers, each on its own data folder and port, kept across restarts.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEmbeddedPostgres, type PostgresServer } from '@cairn/local-postgres';

/** The processes of a server: its postmaster and every backend it forked. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The fields after the command name (which may hold spaces) start with state, then ppid.
      const stat = readFileSync(join('/proc', entry, 'stat'), 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // The process ended while the table was read.
    }
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    out.push(pid);
    for (const child of children.get(pid) ?? []) walk(child);
  };
  walk(root);
  return out;
}

export class ChaosPostgres {
  readonly name: string;
  readonly #dataDir: string;
  #server: PostgresServer;
  #pid: () => number | undefined;

  private constructor(name: string, dataDir: string, server: PostgresServer, pid: () => number | undefined) {
    this.name = name;
    this.#dataDir = dataDir;
    this.#server = server;
    this.#pid = pid;
  }

  static async start(name: string, dataDir: string, maxConnections: number): Promise<ChaosPostgres> {
    const { server, pid } = await ChaosPostgres.#launch(dataDir, 0, maxConnections);
    return new ChaosPostgres(name, dataDir, server, pid);
  }

  static async #launch(
    dataDir: string,
    port: number,
    maxConnections: number,
  ): Promise<{ server: PostgresServer; pid: () => number | undefined }> {
    const server = await startEmbeddedPostgres({ dataDir, port, persistent: true, fast: true, maxConnections });
    // The postmaster is the process listening on the port; find it by its data folder.
    const pid = (): number | undefined => {
      try {
        return Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      } catch {
        return undefined;
      }
    };
    return { server, pid };
  }

  get server(): PostgresServer {
    return this.#server;
  }

  /** A fast shutdown (every session is disconnected), down for `downMs`, then started again on the same port. */
  async restart(downMs: number, maxConnections: number): Promise<void> {
    const port = this.#server.port;
    await this.#server.stop();
    await new Promise((r) => setTimeout(r, downMs));
    const { server, pid } = await ChaosPostgres.#launch(this.#dataDir, port, maxConnections);
    this.#server = server;
    this.#pid = pid;
  }

  /** Stops every process of the server (SIGSTOP), as a paused VM or a stalled disk would, for `ms`. */
  async freeze(ms: number): Promise<void> {
    const root = this.#pid();
    if (root === undefined) throw new Error(`${this.name} has no postmaster to freeze`);
    const pids = processTree(root);
    for (const pid of pids) signal(pid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, ms));
    // Backends forked meanwhile cannot exist (the postmaster was stopped), so the same list thaws it.
    for (const pid of pids) signal(pid, 'SIGCONT');
  }

  async stop(): Promise<void> {
    const root = this.#pid();
    if (root !== undefined) for (const pid of processTree(root)) signal(pid, 'SIGCONT');
    await this.#server.stop();
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}
