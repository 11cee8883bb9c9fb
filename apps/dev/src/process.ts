import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

/** How a process ended: its exit code, or the signal that killed it. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** `SIGKILL`, or `code 1`: how a process ended, for one line of output. */
export function describeExit(exit: ExitInfo): string {
  return exit.signal ?? `code ${exit.code ?? '?'}`;
}

export interface SpawnOptions {
  /** Working directory of the process (default: this process's). */
  readonly cwd?: string;
  /**
   * Start the process in its own process group, so a Ctrl-C in the terminal reaches only the
   * process supervising it, which then stops its children in order.
   */
  readonly detached?: boolean;
}

/** A child process of the local stack, with its output kept in a log file and in memory. */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly #command: string;
  readonly #args: readonly string[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #spawn: SpawnOptions;
  #child: ChildProcess | undefined;
  #log: WriteStream | undefined;
  #lines: string[] = [];
  #errLines: string[] = [];
  #waiters: Array<{ re: RegExp; resolve: (line: string) => void }> = [];
  #exit: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  #onLine: ((line: string) => void) | undefined;

  constructor(
    name: string,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    logFile: string,
    onLine?: (line: string) => void,
    spawnOptions: SpawnOptions = {},
  ) {
    this.name = name;
    this.#command = command;
    this.#args = args;
    this.#env = env;
    this.logFile = logFile;
    this.#onLine = onLine;
    this.#spawn = spawnOptions;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Every line the process printed since it was (re)started. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /** The lines the process printed on stderr since it was (re)started (where errors go). */
  get errorLines(): readonly string[] {
    return this.#errLines;
  }

  /** Resolves with the exit code (null when killed by a signal) once the process ends. */
  get exited(): Promise<number | null> {
    return this.#exit.then((e) => e.code);
  }

  /** Resolves with the exit code and signal once the current incarnation of the process ends. */
  get exitInfo(): Promise<ExitInfo> {
    return this.#exit;
  }

  start(): this {
    if (this.running) throw new Error(`${this.name} is already running`);
    mkdirSync(dirname(this.logFile), { recursive: true });
    this.#log = createWriteStream(this.logFile, { flags: 'a' });
    this.#lines = [];
    this.#errLines = [];
    const child = spawn(this.#command, this.#args, {
      env: this.#env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(this.#spawn.cwd ? { cwd: this.#spawn.cwd } : {}),
      ...(this.#spawn.detached ? { detached: true } : {}),
    });
    this.#child = child;
    this.#exit = new Promise((resolve) => {
      // A command that cannot be spawned at all ends like a process that exited at once.
      child.once('error', () => {
        if (child.pid === undefined) resolve({ code: 127, signal: null });
      });
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const feed = (stream: NodeJS.ReadableStream | null, errors: boolean): void => {
      let buffered = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        this.#log?.write(chunk);
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.#lines.push(line);
          if (errors) this.#errLines.push(line);
          this.#onLine?.(line);
          this.#waiters = this.#waiters.filter((w) => {
            if (!w.re.test(line)) return true;
            w.resolve(line);
            return false;
          });
        }
      });
    };
    feed(child.stdout, false);
    feed(child.stderr, true);
    return this;
  }

  /** Waits until the process prints a line matching `re` (also one printed already). */
  async waitFor(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const seen = this.#lines.find((l) => re.test(l));
    if (seen !== undefined) return seen;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(new Error(`${this.name} did not print ${re} within ${timeoutMs} ms; see ${this.logFile}`));
      }, timeoutMs);
      const done = (line: string): void => {
        clearTimeout(timer);
        resolve(line);
      };
      this.#waiters.push({ re, resolve: done });
      void this.#exit.then(({ code }) => {
        if (this.#waiters.some((w) => w.resolve === done)) {
          clearTimeout(timer);
          reject(new Error(`${this.name} exited (code ${code}) before printing ${re}; see ${this.logFile}`));
        }
      });
    });
  }

  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT, …). */
  signal(sig: NodeJS.Signals): void {
    if (this.#child?.pid !== undefined && this.running) process.kill(this.#child.pid, sig);
  }

  /** Asks the process to stop (SIGTERM), killing it after `timeoutMs`. Returns its exit code. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (!this.running) return this.exited;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
    const { code } = await this.#exit;
    clearTimeout(timer);
    this.#log?.end();
    return code;
  }
}
