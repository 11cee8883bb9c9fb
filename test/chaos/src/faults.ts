// The fault injector: at seeded random times it kills, pauses, drains and restarts processes,
// restarts and freezes both Postgres servers, cuts, delays and partitions links, skews a worker's
// clock and makes the model provider fail. Faults overlap; one target takes one fault at a time.
import { writeFileSync } from 'node:fs';
import type { ManagedProcess } from '@cairn/dev';
import type { ChaosPostgres } from './postgres.js';
import type { FaultProxy } from './proxy.js';
import type { Random } from './random.js';
import { DRAIN_TIMEOUT_MS, type ChaosProcess, type ChaosStack } from './stack.js';

export const FAULT_KINDS = [
  'kill-worker',
  'kill-gateway',
  'kill-control-plane',
  'pause-worker',
  'drain-worker',
  'restart-postgres',
  'freeze-postgres',
  'cut-link',
  'delay-link',
  'partition-link',
  'one-way-partition',
  'clock-skew',
  'provider-faults',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** How often each kind is drawn, relative to the others. */
const WEIGHTS: Record<FaultKind, number> = {
  'kill-worker': 12,
  'kill-gateway': 6,
  'kill-control-plane': 6,
  'pause-worker': 7,
  'drain-worker': 6,
  'restart-postgres': 6,
  'freeze-postgres': 6,
  'cut-link': 10,
  'delay-link': 8,
  'partition-link': 9,
  'one-way-partition': 8,
  'clock-skew': 6,
  'provider-faults': 8,
};

export interface FaultRecord {
  readonly id: number;
  readonly kind: FaultKind;
  readonly target: string;
  readonly detail: string;
  /** When it began and when it was healed (ms since the epoch). */
  readonly at: number;
  healedAt?: number;
  /** Time from healing until a fresh run went through end to end. */
  recoveryMs?: number;
  /** Set when the fault could not be applied or healed as planned. */
  problem?: string;
}

export interface UnexpectedExit {
  readonly process: string;
  readonly at: number;
  readonly exit: string;
}

export interface InjectorOptions {
  /** Mean time between faults. */
  readonly meanIntervalMs: number;
  readonly leaseTtlMs: number;
  readonly log: (line: string) => void;
  /** Called once a fault has healed (the suite starts a probe run to time recovery). */
  readonly onHealed: (fault: FaultRecord) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `url` answers 200; false when the process exits first or `timeoutMs` passes. */
async function ready(url: string, proc: ManagedProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && proc.running) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status === 200) return true;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  return false;
}

export class FaultInjector {
  readonly records: FaultRecord[] = [];
  readonly unexpectedExits: UnexpectedExit[] = [];
  readonly #stack: ChaosStack;
  readonly #random: Random;
  readonly #options: InjectorOptions;
  readonly #busy = new Set<string>();
  readonly #inflight = new Set<Promise<void>>();
  /** Processes the injector itself stopped: their exit is expected. */
  readonly #expected = new Set<ManagedProcess>();
  #stopping = false;
  #loop: Promise<void> | undefined;

  constructor(stack: ChaosStack, random: Random, options: InjectorOptions) {
    this.#stack = stack;
    this.#random = random;
    this.#options = options;
    for (const p of stack.processes) this.#watch(p.process);
  }

  start(): void {
    this.#loop = this.#run();
  }

  /** Stops drawing faults and waits until every fault in progress has healed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#loop;
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }

  /** Stops watching for unexpected exits (the stack is being shut down). */
  detach(): void {
    for (const p of this.#stack.processes) this.#expected.add(p.process);
  }

  get counts(): Record<FaultKind, number> {
    const counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
    for (const r of this.records) counts[r.kind]++;
    return counts;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      await sleep(this.#random.exponential(this.#options.meanIntervalMs));
      if (this.#stopping) break;
      const kind = this.#random.weighted(WEIGHTS);
      const plan = this.#plan(kind);
      if (!plan) continue;
      this.#busy.add(plan.target);
      const record: FaultRecord = { id: this.records.length + 1, kind, target: plan.target, detail: plan.detail, at: Date.now() };
      this.records.push(record);
      this.#options.log(`fault ${record.id}: ${kind} ${plan.target} (${plan.detail})`);
      const done = plan
        .apply()
        .catch((err: unknown) => {
          record.problem = err instanceof Error ? err.message : String(err);
          this.#options.log(`fault ${record.id} (${kind} ${plan.target}) did not go as planned: ${record.problem}`);
        })
        .finally(() => {
          record.healedAt = Date.now();
          this.#busy.delete(plan.target);
          this.#inflight.delete(done);
          this.#options.onHealed(record);
        });
      this.#inflight.add(done);
    }
  }

  /** Chooses a free target for `kind` and what the fault will do; undefined when none is free. */
  #plan(kind: FaultKind): { target: string; detail: string; apply: () => Promise<void> } | undefined {
    const r = this.#random;
    const free = <T>(items: readonly T[], name: (t: T) => string): T | undefined => {
      const candidates = items.filter((t) => !this.#busy.has(name(t)));
      return candidates.length === 0 ? undefined : r.pick(candidates);
    };
    const processes = (k: ChaosProcess['kind']) => this.#stack.processes.filter((p) => p.kind === k);
    const ttl = this.#options.leaseTtlMs;
    switch (kind) {
      case 'kill-worker':
      case 'kill-gateway':
      case 'kill-control-plane': {
        const target = free(
          processes(kind === 'kill-worker' ? 'worker' : kind === 'kill-gateway' ? 'gateway' : 'control-plane'),
          (p) => p.process.name,
        );
        if (!target) return undefined;
        const downMs = r.int(100, 2_000);
        return {
          target: target.process.name,
          detail: `SIGKILL, restarted after ${downMs} ms`,
          apply: async () => {
            await this.#halt(target.process, 'SIGKILL');
            await sleep(downMs);
            await this.#restart(target);
          },
        };
      }
      case 'pause-worker': {
        const target = free(processes('worker'), (p) => p.process.name);
        if (!target) return undefined;
        // Past the lease's TTL: the control plane gives its runs to another worker meanwhile.
        const ms = ttl + r.int(500, 3_000);
        return {
          target: target.process.name,
          detail: `SIGSTOP for ${ms} ms`,
          apply: async () => {
            target.process.signal('SIGSTOP');
            await sleep(ms);
            target.process.signal('SIGCONT');
          },
        };
      }
      case 'drain-worker': {
        const target = free(processes('worker'), (p) => p.process.name);
        if (!target) return undefined;
        return {
          target: target.process.name,
          detail: 'SIGTERM (drain), replaced as a rolling update would',
          apply: async () => {
            this.#expected.add(target.process);
            // As Kubernetes does: SIGKILL once the termination grace period (the drain bound and a margin) is over.
            const exit = await target.process.stop(DRAIN_TIMEOUT_MS + 10_000);
            try {
              if (exit !== 0) {
                const last = target.process.lines.slice(-15).join('\n');
                throw new Error(
                  `${target.process.name} did not finish draining within its grace period (exit ${exit}); its last lines:\n${last}`,
                );
              }
            } finally {
              await this.#restart(target);
            }
          },
        };
      }
      case 'restart-postgres':
      case 'freeze-postgres': {
        const db = free([this.#stack.controlPlaneDb, this.#stack.payloadDb], (d: ChaosPostgres) => d.name);
        if (!db) return undefined;
        if (kind === 'freeze-postgres') {
          const ms = r.int(500, 4_000);
          return { target: db.name, detail: `every process SIGSTOPped for ${ms} ms`, apply: () => db.freeze(ms) };
        }
        const downMs = r.int(200, 3_000);
        return {
          target: db.name,
          detail: `fast shutdown, started again after ${downMs} ms`,
          apply: () => db.restart(downMs, this.#stack.maxConnections),
        };
      }
      case 'cut-link':
      case 'delay-link':
      case 'partition-link':
      case 'one-way-partition': {
        const proxy = free(this.#stack.proxies, (p: FaultProxy) => p.name);
        if (!proxy) return undefined;
        if (kind === 'cut-link') {
          return {
            target: proxy.name,
            detail: 'every connection reset',
            apply: async () => {
              proxy.cut();
              await Promise.resolve();
            },
          };
        }
        const ms = kind === 'delay-link' ? r.int(2_000, 8_000) : r.int(1_000, ttl * 2);
        const state =
          kind === 'delay-link'
            ? ({ kind: 'delay', ms: r.int(50, 1_000) } as const)
            : ({ kind: 'blackhole', direction: kind === 'partition-link' ? 'both' : r.pick(['up', 'down'] as const) } as const);
        return {
          target: proxy.name,
          detail: `${state.kind === 'delay' ? `${state.ms} ms delay` : `blackholed ${state.direction}`} for ${ms} ms`,
          apply: async () => {
            proxy.set(state);
            await sleep(ms);
            proxy.set({ kind: 'pass' });
          },
        };
      }
      case 'clock-skew': {
        const target = free(processes('worker'), (p) => `${p.process.name} clock`);
        if (!target?.clockFile) return undefined;
        const skew = r.pick([-1, 1]) * r.int(2_000, 90_000);
        const ms = r.int(3_000, 15_000);
        const file = target.clockFile;
        return {
          target: `${target.process.name} clock`,
          detail: `${skew > 0 ? '+' : ''}${skew} ms for ${ms} ms`,
          apply: async () => {
            writeFileSync(file, String(skew));
            await sleep(ms);
            writeFileSync(file, '0');
          },
        };
      }
      case 'provider-faults': {
        if (this.#busy.has('model provider')) return undefined;
        const faults = Array.from({ length: r.int(2, 8) }, () =>
          r.pick([
            { kind: 'rate-limit', retryAfterMs: r.int(50, 500) },
            { kind: 'status', status: 500 },
            { kind: 'status', status: 503, retryAfterMs: r.int(50, 300) },
            { kind: 'stream-cut', afterChunks: 0 },
            { kind: 'timeout', ms: r.int(200, 2_000) },
          ]),
        );
        return {
          target: 'model provider',
          detail: `the next ${faults.length} calls fail (${faults.map((f) => f.kind).join(', ')})`,
          apply: async () => {
            const url = this.#stack.stack.mockLlm?.url;
            if (!url) throw new Error('no model server');
            const res = await fetch(`${url}/_mock/script`, {
              method: 'PUT',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ rules: [{ faults }] }),
            });
            if (res.status !== 200) throw new Error(`the model server refused the script: ${res.status} ${await res.text()}`);
          },
        };
      }
    }
  }

  /** Stops a process on purpose. */
  async #halt(proc: ManagedProcess, sig: NodeJS.Signals): Promise<void> {
    this.#expected.add(proc);
    proc.signal('SIGCONT');
    proc.signal(sig);
    await proc.exitInfo;
  }

  /**
   * Starts a process again, as Kubernetes would restart a pod: a control plane is up once it
   * listens; a start that fails (its database down, say) is retried until it stays up.
   */
  async #restart(target: ChaosProcess): Promise<void> {
    const proc = target.process;
    for (let attempt = 1; ; attempt++) {
      // Another path (the watch on an exit) may have restarted it meanwhile.
      if (proc.running) return;
      this.#expected.add(proc);
      proc.start();
      if (target.readyUrl && !(await ready(target.readyUrl, proc, 60_000))) {
        proc.signal('SIGKILL');
        await proc.exitInfo;
        if (attempt >= 10) throw new Error(`${proc.name} did not become ready in ${attempt} attempts; see ${proc.logFile}`);
        await sleep(1_000);
        continue;
      }
      this.#expected.delete(proc);
      this.#watch(proc);
      return;
    }
  }

  /** An exit the injector did not cause is recorded, and the process restarted as a pod would be. */
  #watch(proc: ManagedProcess): void {
    const incarnation = proc.exitInfo;
    void incarnation.then(async (exit) => {
      if (this.#expected.has(proc) || proc.exitInfo !== incarnation) return;
      const target = this.#stack.processes.find((p) => p.process === proc);
      this.unexpectedExits.push({ process: proc.name, at: Date.now(), exit: exit.signal ?? `code ${exit.code}` });
      this.#options.log(`${proc.name} exited on its own (${exit.signal ?? `code ${exit.code}`}); restarting it`);
      await sleep(1_000);
      if (!target || this.#expected.has(proc) || proc.running) return;
      const restarting = this.#restart(target).catch((err: unknown) => this.#options.log(`could not restart ${proc.name}: ${String(err)}`));
      this.#inflight.add(restarting);
      await restarting;
      this.#inflight.delete(restarting);
    });
  }
}
