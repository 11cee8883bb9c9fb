/**
 * Calls `task` every `intervalMs`, each wait drawn between half and one and a half times it, so
 * the gateways of a data plane do not run it in step. A call never overlaps the next: the next
 * wait starts when it has finished. `task` handles its own errors.
 */
export class Periodic {
  readonly #intervalMs: number;
  readonly #task: () => Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;

  constructor(intervalMs: number, task: () => Promise<void>) {
    this.#intervalMs = intervalMs;
    this.#task = task;
  }

  start(): void {
    this.#schedule();
  }

  /** Stops; resolves when a call under way has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(
      () => {
        this.#running = this.#task().finally(() => this.#schedule());
      },
      Math.round(this.#intervalMs * (0.5 + Math.random())),
    );
    this.#timer.unref();
  }
}
