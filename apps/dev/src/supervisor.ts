// Keeps the local stack's processes running: one that exits without being asked to is started
// again after a backoff, and the stack says so in one line. A process that keeps exiting backs off
// further and is called a crash loop. A worker whose code fails to start waits for a file change
// instead: restarting the same broken code helps nobody.
import { describeExit, type ExitInfo } from './process.js';

/** Delays between restarts of one process. */
export interface RestartPolicyOptions {
  /** The first restart waits this long (default 1 s); each quick exit after it doubles it. */
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
  /** A process that ran at least this long before exiting starts over at the first delay. */
  readonly stableAfterMs?: number;
  /** This many exits within `crashLoopWindowMs` make a crash loop (default 3 within a minute). */
  readonly crashLoopExits?: number;
  readonly crashLoopWindowMs?: number;
}

/** Exponential backoff with a reset after a stable run, and crash-loop detection. */
export class RestartPolicy {
  readonly #initial: number;
  readonly #max: number;
  readonly #stable: number;
  readonly #loopExits: number;
  readonly #loopWindow: number;
  #consecutive = 0;
  #exits: number[] = [];

  constructor(options: RestartPolicyOptions = {}) {
    this.#initial = options.initialDelayMs ?? 1_000;
    this.#max = options.maxDelayMs ?? 30_000;
    this.#stable = options.stableAfterMs ?? 30_000;
    this.#loopExits = options.crashLoopExits ?? 3;
    this.#loopWindow = options.crashLoopWindowMs ?? 60_000;
  }

  /** The process exited at `now` after starting at `startedAt`: how long to wait before the next start. */
  onExit(now: number, startedAt: number): { delayMs: number; crashLoop: boolean; recentExits: number } {
    if (now - startedAt >= this.#stable) this.#consecutive = 0;
    this.#consecutive++;
    this.#exits = [...this.#exits.filter((t) => now - t < this.#loopWindow), now];
    const delayMs = Math.min(this.#initial * 2 ** (this.#consecutive - 1), this.#max);
    return { delayMs, crashLoop: this.#exits.length >= this.#loopExits, recentExits: this.#exits.length };
  }
}

/** `500ms`, `1s`, `2.5s`, `30s`. */
export function formatDelay(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}

/** A process failed to get ready; `lines` is what it printed on the way (its error). */
export class StartFailure extends Error {
  readonly lines: readonly string[];
  readonly exit: ExitInfo | undefined;

  constructor(message: string, lines: readonly string[], exit?: ExitInfo) {
    super(message);
    this.name = 'StartFailure';
    this.lines = lines;
    this.exit = exit;
  }
}

/** One incarnation of a supervised process, started and ready. */
export interface Incarnation {
  /** Resolves when this incarnation ends. */
  readonly exited: Promise<ExitInfo>;
}

/** Something the supervisor keeps running. */
export interface Service {
  readonly name: string;
  /** Where its output goes, named when it keeps failing. */
  readonly logFile?: string | undefined;
  /** Starts it and resolves once it is ready; rejects (after stopping what it started) if it is not. */
  launch(): Promise<Incarnation>;
  /** Stops the current incarnation, if any runs. */
  halt(): Promise<void>;
}

export interface SuperviseOptions {
  /**
   * `retry` (default): a failed start is retried with backoff like an exit. `wait`: a failed start
   * prints the process's error and waits for `restart()` (a worker whose code does not load).
   */
  readonly onStartFailure?: 'retry' | 'wait';
  /** Backoff between restarts. */
  readonly policy?: RestartPolicyOptions;
}

export type SupervisionState = 'starting' | 'running' | 'backoff' | 'waiting' | 'stopped';

/** The supervision of one service. */
export class Supervision {
  readonly service: Service;
  readonly #say: (line: string) => void;
  readonly #options: SuperviseOptions;
  readonly #policy: RestartPolicy;
  #state: SupervisionState = 'starting';
  #generation = 0;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #queue: Promise<void> = Promise.resolve();
  #pendingRestart: string | undefined;
  #stopped = false;
  #changes: Array<() => void> = [];

  constructor(service: Service, say: (line: string) => void, options: SuperviseOptions = {}) {
    this.service = service;
    this.#say = say;
    this.#options = options;
    this.#policy = new RestartPolicy(options.policy);
  }

  get state(): SupervisionState {
    return this.#state;
  }

  /** Resolves at the next change of state (for tests and the dev runner's --exit). */
  nextChange(): Promise<SupervisionState> {
    return new Promise((resolve) => this.#changes.push(() => resolve(this.#state)));
  }

  #set(state: SupervisionState): void {
    this.#state = state;
    const waiting = this.#changes;
    this.#changes = [];
    for (const w of waiting) w();
  }

  /**
   * The first start. With `onStartFailure: 'retry'` a failure rejects (the stack cannot start);
   * with `'wait'` it is printed and the service waits for `restart()`.
   */
  async start(): Promise<void> {
    await this.#enqueue(async () => {
      try {
        await this.#launch();
      } catch (err) {
        if (this.#options.onStartFailure !== 'wait') throw err;
        this.#waitForChange(err);
      }
    });
  }

  /** Stops and starts the service again now (e.g. its code changed); `reason` is printed. */
  restart(reason: string): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    // Changes arriving while a restart is queued fold into it.
    if (this.#pendingRestart !== undefined) {
      this.#pendingRestart = reason;
      return this.#queue;
    }
    this.#pendingRestart = reason;
    return this.#enqueue(async () => {
      const why = this.#pendingRestart ?? reason;
      this.#pendingRestart = undefined;
      if (this.#stopped) return;
      clearTimeout(this.#timer);
      this.#say(`${why}; restarting ${this.service.name}`);
      this.#generation++;
      await this.service.halt();
      try {
        await this.#launch();
        this.#say(`${this.service.name} restarted`);
      } catch (err) {
        this.#failedStart(err);
      }
    });
  }

  /** Stops the service for good. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#generation++;
    await this.#queue.catch(() => undefined);
    await this.service.halt();
    this.#set('stopped');
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(work);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #launch(): Promise<void> {
    this.#set('starting');
    this.#startedAt = Date.now();
    const generation = ++this.#generation;
    const incarnation = await this.service.launch();
    if (this.#stopped) {
      await this.service.halt();
      return;
    }
    this.#set('running');
    void incarnation.exited.then((exit) => {
      if (generation === this.#generation && !this.#stopped) this.#exitedUnexpectedly(exit);
    });
  }

  #exitedUnexpectedly(exit: ExitInfo): void {
    const decision = this.#policy.onExit(Date.now(), this.#startedAt);
    const name = this.service.name;
    this.#say(
      decision.crashLoop
        ? `${name} exited (${describeExit(exit)}) ${decision.recentExits} times within a minute: crash loop, backing off; restarting in ${formatDelay(decision.delayMs)}${this.#logHint()}`
        : `${name} exited (${describeExit(exit)}); restarting in ${formatDelay(decision.delayMs)}`,
    );
    this.#scheduleRelaunch(decision.delayMs);
  }

  #scheduleRelaunch(delayMs: number): void {
    this.#set('backoff');
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      void this.#enqueue(async () => {
        if (this.#stopped || this.#state !== 'backoff') return;
        try {
          await this.#launch();
          this.#say(`${this.service.name} is back`);
        } catch (err) {
          this.#failedStart(err);
        }
      });
    }, delayMs);
  }

  #failedStart(err: unknown): void {
    if (this.#stopped) return;
    if (this.#options.onStartFailure === 'wait') {
      this.#waitForChange(err);
      return;
    }
    const decision = this.#policy.onExit(Date.now(), this.#startedAt);
    const why = err instanceof StartFailure && err.exit ? `exited (${describeExit(err.exit)})` : 'did not get ready';
    this.#say(
      `${this.service.name} ${why} while starting${decision.crashLoop ? `, ${decision.recentExits} times within a minute: crash loop, backing off` : ''}; restarting in ${formatDelay(decision.delayMs)}${this.#logHint()}`,
    );
    this.#scheduleRelaunch(decision.delayMs);
  }

  #waitForChange(err: unknown): void {
    const lines = err instanceof StartFailure ? err.lines : [];
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    this.#say(`${this.service.name} failed to start: ${message}`);
    for (const line of lines.slice(-30)) this.#say(`  ${line}`);
    this.#say(`waiting for a file change to start ${this.service.name} again`);
    this.#set('waiting');
  }

  #logHint(): string {
    return this.service.logFile ? ` (see ${this.service.logFile})` : '';
  }
}
