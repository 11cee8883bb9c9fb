// The invariant checker. Some checks run continuously while faults are injected (leases, journal
// fencing); all of them run at the end, once every fault has healed and the runs have settled.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { FaultRecord } from './faults.js';
import type { ChaosStack } from './stack.js';
import type { RunRecord } from './workload.js';

export interface Violation {
  readonly invariant: string;
  readonly detail: string;
  readonly at: number;
}

/** A side effect that ran more than once: allowed only for a step in flight when a fault struck. */
export interface DuplicateEffect {
  readonly runId: string;
  readonly step: string;
  readonly times: number;
  /** The fault that explains it, if any. */
  readonly fault: number | undefined;
}

const TERMINAL = ['completed', 'failed', 'cancelled', 'terminated', 'timed_out'];

/**
 * How much shorter than asked a durable sleep may be: a worker takes the control plane's time from
 * its own estimate (the round trip of its heartbeats), which on one machine under this load is
 * within a few tens of milliseconds.
 */
const SLEEP_TOLERANCE_MS = 50;

/** Two leases of one run held at once, as the control plane recorded them. */
const OVERLAPPING_LEASES = `
  SELECT a.run_id::text, a.epoch, b.epoch AS other
    FROM run_leases a JOIN run_leases b ON a.run_id = b.run_id AND a.epoch < b.epoch
   WHERE b.acquired_at < coalesce(a.ended_at, 'infinity') AND a.session_id <> b.session_id
   LIMIT 20`;

/**
 * A journal entry written under an older lease after one written under a newer lease: a fence that
 * failed. Code runs in order, so a later entry is written after an earlier one, except the entries
 * of children started side by side, which complete (and are rewritten) in any order.
 */
const UNFENCED_WRITES = `
  SELECT run_id::text, position, epoch, previous FROM (
    SELECT run_id, position, epoch, max(epoch) OVER (PARTITION BY run_id ORDER BY position ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous
      FROM dp_journal WHERE kind <> 'child') j
   WHERE epoch < previous
   LIMIT 20`;

export class Checker {
  readonly violations: Violation[] = [];
  readonly #stack: ChaosStack;
  readonly #canary: string;
  readonly #leaseTtlMs: number;
  /** Runs the checks that hold at every moment found broken already (reported once each). */
  readonly #seen = new Set<string>();

  constructor(stack: ChaosStack, options: { canary: string; leaseTtlMs: number }) {
    this.#stack = stack;
    this.#canary = options.canary;
    this.#leaseTtlMs = options.leaseTtlMs;
  }

  #violate(invariant: string, detail: string, key = `${invariant}:${detail}`): void {
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.violations.push({ invariant, detail, at: Date.now() });
  }

  /** The checks that must hold at every moment, faults or not. Database errors (a fault) skip a pass. */
  async continuous(): Promise<void> {
    try {
      const leases = await this.#stack.cp.query<{ run_id: string; epoch: number; other: number }>(OVERLAPPING_LEASES);
      for (const row of leases.rows) {
        this.#violate(
          'one live lease per run',
          `run ${row.run_id}: epoch ${row.other} was granted while epoch ${row.epoch} was held`,
          `lease:${row.run_id}:${row.epoch}`,
        );
      }
    } catch {
      // The control plane's database is down or frozen: a fault, checked again at the next pass.
    }
    try {
      const writes = await this.#stack.dp.query<{ run_id: string; position: number; epoch: number; previous: number }>(UNFENCED_WRITES);
      for (const row of writes.rows) {
        this.#violate(
          'journal writes fenced by the lease',
          `run ${row.run_id}: position ${row.position} written under epoch ${row.epoch} after an entry under epoch ${row.previous}`,
          `fence:${row.run_id}:${row.position}`,
        );
      }
    } catch {
      // The payload store is down or frozen.
    }
  }

  /**
   * Waits until no run is left unfinished, up to `boundMs`; returns how long it took. Runs still
   * unfinished then are stuck.
   */
  async settle(boundMs: number): Promise<{ ms: number; stuck: number }> {
    const started = Date.now();
    for (;;) {
      const orphans = await this.#orphans();
      const open = await this.#stack.cp.query<{ id: string; workflow_name: string; status: string; waiting_signal: string | null }>(
        `SELECT id::text, workflow_name, status, waiting_signal FROM runs WHERE status <> ALL($1) ORDER BY created_at LIMIT 20`,
        [TERMINAL],
      );
      if (open.rows.length === 0 && orphans.length === 0) return { ms: Date.now() - started, stuck: 0 };
      if (Date.now() - started > boundMs) {
        for (const row of open.rows) {
          this.#violate(
            'every run ends',
            `run ${row.id} (${row.workflow_name}) still ${row.status}${row.waiting_signal ? ` waiting for ${row.waiting_signal}` : ''} ${Math.round(boundMs / 1000)} s after the last fault healed`,
          );
        }
        const count = await this.#stack.cp.query<{ n: number }>(`SELECT count(*)::int AS n FROM runs WHERE status <> ALL($1)`, [TERMINAL]);
        return { ms: Date.now() - started, stuck: count.rows[0]?.n ?? 0 };
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * Inputs in the payload store of runs the control plane does not know: starts a killed gateway
   * left half done, which the gateways' orphan sweep removes once they are old enough.
   */
  async #orphans(): Promise<string[]> {
    const dp = await this.#stack.dp.query<{ run_id: string }>(`SELECT run_id::text FROM dp_runs WHERE status = 'open'`);
    if (dp.rows.length === 0) return [];
    const known = await this.#stack.cp.query<{ id: string }>('SELECT id::text FROM runs WHERE id = ANY($1::uuid[])', [
      dp.rows.map((r) => r.run_id),
    ]);
    const inCp = new Set(known.rows.map((r) => r.id));
    return dp.rows.map((r) => r.run_id).filter((id) => !inCp.has(id));
  }

  /** Every check, once the runs have settled. Returns the side effects that ran more than once. */
  async final(records: readonly RunRecord[], faults: readonly FaultRecord[], logDir: string): Promise<{ duplicates: DuplicateEffect[] }> {
    await this.continuous();
    this.#outcomes(records);
    await this.#planesAgree();
    await this.#journalOnce();
    const duplicates = await this.#effects(records, faults);
    await this.#signals(records);
    await this.#canaryAbsent(logDir);
    return { duplicates };
  }

  /** What each run's caller saw: the status and output its workflow promises. */
  #outcomes(records: readonly RunRecord[]): void {
    for (const r of records) {
      const name = `${r.workflow} run ${r.runId ?? `#${r.n} (not started)`}`;
      for (const problem of r.problems) this.#violate('every call succeeds once faults heal', `${name}: ${problem}`);
      if (!r.outcome) {
        if (r.problems.length === 0) this.#violate('every run ends', `${name}: no outcome`);
        continue;
      }
      if (r.outcome.status !== r.expected.status) {
        this.#violate(
          'runs end as their code says',
          `${name} ended ${r.outcome.status}${r.outcome.errorCode ? ` (${r.outcome.errorCode})` : ''}, expected ${r.expected.status}`,
        );
        continue;
      }
      if (r.expected.output !== undefined && !isDeepStrictEqual(r.outcome.output, r.expected.output)) {
        this.#violate(
          'runs end as their code says',
          `${name} returned ${JSON.stringify(r.outcome.output)}, expected ${JSON.stringify(r.expected.output)}`,
        );
      }
      if (r.scenario === 'model' && typeof (r.outcome.output as { text?: unknown } | undefined)?.text !== 'string') {
        this.#violate('runs end as their code says', `${name} returned no model text: ${JSON.stringify(r.outcome.output)}`);
      }
      if (r.scenario === 'retry' && r.outcome.status === 'completed') {
        const attempt = (r.outcome.output as { attempt?: number } | undefined)?.attempt ?? 0;
        if (attempt <= (r.input['failures'] as number))
          this.#violate('runs end as their code says', `${name} succeeded on attempt ${attempt}, which fails by design`);
      }
    }
  }

  /** The control plane's view of every run (status, completed steps) matches the payload store's. */
  async #planesAgree(): Promise<void> {
    const cp = await this.#stack.cp.query<{ id: string; status: string; steps: number }>(
      `SELECT r.id::text, r.status,
              (SELECT count(DISTINCT position)::int FROM run_steps s WHERE s.run_id = r.id AND s.kind = 'step' AND s.status = 'completed') AS steps
         FROM runs r`,
    );
    const dp = await this.#stack.dp.query<{ run_id: string; status: string; steps: number }>(
      `SELECT r.run_id::text, r.status,
              (SELECT count(*)::int FROM dp_journal j WHERE j.run_id = r.run_id AND j.kind = 'step' AND j.status = 'completed') AS steps
         FROM dp_runs r`,
    );
    const inDp = new Map(dp.rows.map((r) => [r.run_id, r]));
    const inCp = new Set(cp.rows.map((r) => r.id));
    for (const run of cp.rows) {
      const other = inDp.get(run.id);
      if (!other) {
        this.#violate('both planes agree', `run ${run.id} (${run.status} in the control plane) is missing from the payload store`);
        continue;
      }
      if (!TERMINAL.includes(run.status)) continue;
      const expected = run.status === 'completed' || run.status === 'failed' || run.status === 'cancelled' ? run.status : other.status;
      if (other.status !== expected)
        this.#violate('both planes agree', `run ${run.id} is ${run.status} in the control plane but ${other.status} in the payload store`);
      if (other.steps !== run.steps) {
        this.#violate(
          'both planes agree',
          `run ${run.id}: ${run.steps} completed steps in the control plane's timeline, ${other.steps} in the journal`,
        );
      }
    }
    for (const run of dp.rows) {
      if (!inCp.has(run.run_id))
        this.#violate('both planes agree', `run ${run.run_id} (${run.status} in the payload store) is unknown to the control plane`);
    }
  }

  /** Each durable call has one journal entry: a replay never writes a second one. */
  async #journalOnce(): Promise<void> {
    const twice = await this.#stack.dp.query<{ run_id: string; kind: string; name: string; n: number }>(
      `SELECT run_id::text, kind, name, count(*)::int AS n FROM dp_journal
        WHERE kind IN ('step', 'model', 'child')
        GROUP BY run_id, kind, name, key_digest HAVING count(*) > 1 LIMIT 20`,
    );
    for (const row of twice.rows)
      this.#violate('each journal entry written once', `run ${row.run_id}: ${row.n} entries for ${row.kind} ${row.name}`);
  }

  /**
   * Side effects: each ran once, except a step in flight when a fault struck near it (its worker
   * killed, paused, cut off, or the journal it commits to unavailable), which may have run again.
   * Compensations ran for exactly the bookings that completed.
   */
  async #effects(records: readonly RunRecord[], faults: readonly FaultRecord[]): Promise<DuplicateEffect[]> {
    const rows = await this.#stack.effects.query<{ run_id: string; step: string; times: number; first: Date; last: Date }>(
      `SELECT run_id::text, step, count(*)::int AS times, min(at) AS first, max(at) AS last FROM effects
        WHERE step <> 'flaky' GROUP BY run_id, step HAVING count(*) > 1
       UNION ALL
       SELECT run_id::text, step || '#' || attempt, count(*)::int, min(at), max(at) FROM effects
        WHERE step = 'flaky' GROUP BY run_id, step, attempt HAVING count(*) > 1`,
    );
    // Faults that can make a step run again: not a gateway's or the model provider's.
    const relevant = faults.filter((f) => f.kind !== 'provider-faults' && f.kind !== 'kill-gateway' && !f.target.startsWith('gateway'));
    const slack = this.#leaseTtlMs + 2_000;
    const duplicates: DuplicateEffect[] = [];
    for (const row of rows.rows) {
      const from = row.first.getTime() - 2_000;
      const to = row.last.getTime();
      const fault = relevant.find((f) => f.at <= to && (f.healedAt ?? Date.now()) + slack >= from);
      duplicates.push({ runId: row.run_id, step: row.step, times: row.times, fault: fault?.id });
      if (!fault) {
        this.#violate(
          'a side effect runs again only for a step in flight at a fault',
          `run ${row.run_id}: ${row.step} ran ${row.times} times (${row.first.toISOString()} … ${row.last.toISOString()}) with no fault near it`,
        );
      }
    }
    // A durable sleep lasts at least its duration in real time (the side-effect ledger's clock,
    // which no fault skews): from the step before it to the step after it.
    const sleeps = await this.#stack.effects.query<{ run_id: string; ms: string | null }>(
      `SELECT run_id::text, extract(epoch FROM min(at) FILTER (WHERE step = 'end') - min(at) FILTER (WHERE step = 'mid')) * 1000 AS ms
         FROM effects WHERE step IN ('mid', 'end') GROUP BY run_id`,
    );
    const slept = new Map(sleeps.rows.flatMap((r) => (r.ms === null ? [] : [[r.run_id, Number(r.ms)] as const])));
    for (const r of records) {
      if (r.scenario !== 'sleep' || !r.runId || r.outcome?.status !== 'completed') continue;
      const ms = slept.get(r.runId);
      const want = r.input['longMs'] as number;
      if (ms === undefined || !(ms >= want - SLEEP_TOLERANCE_MS)) {
        this.#violate(
          'a durable sleep lasts its duration',
          `sleep run ${r.runId}: a ${want} ms sleep took ${ms === undefined ? 'no' : Math.round(ms)} ms of real time`,
        );
      }
    }
    const undone = await this.#stack.effects.query<{ run_id: string; steps: string[] }>(
      `SELECT run_id::text, array_agg(DISTINCT step ORDER BY step) AS steps FROM effects WHERE step LIKE 'undo-%' GROUP BY run_id`,
    );
    const undoneBy = new Map(undone.rows.map((r) => [r.run_id, r.steps]));
    for (const r of records) {
      if (r.scenario !== 'saga' || !r.runId || !r.outcome) continue;
      const got = undoneBy.get(r.runId) ?? [];
      const want = (r.expected.undone ?? []).map((i) => `undo-${i}`);
      if (!isDeepStrictEqual(got, want)) {
        this.#violate(
          'compensations run exactly for the completed steps',
          `saga run ${r.runId} (failAt ${String(r.input['failAt'])}, ${r.approval ?? 'no approval'}): undid ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`,
        );
      }
    }
    return duplicates;
  }

  /**
   * Every signal and approval sent was stored once and consumed once; every notice the control
   * plane holds has its signal in the data plane (a notice without one would requeue its run for
   * nothing each time it waits; the workload's runs consume every signal sent, so none is removed
   * for a run that ended without it); and the control plane has heard of every stored signal (the
   * gateways' signal sweep tells it of those whose SignalRun got no answer; waited for up to 30 s).
   */
  async #signals(records: readonly RunRecord[]): Promise<void> {
    const notices = await this.#stack.cp.query<{ run_id: string; signal_id: string }>(
      'SELECT run_id::text, signal_id::text FROM signal_notices',
    );
    const stored = await this.#stack.dp.query<{ signal_id: string }>(
      'SELECT signal_id::text FROM dp_signals WHERE signal_id = ANY($1::uuid[])',
      [notices.rows.map((n) => n.signal_id)],
    );
    const found = new Set(stored.rows.map((r) => r.signal_id));
    for (const n of notices.rows) {
      if (!found.has(n.signal_id)) {
        this.#violate(
          'every notice has its signal',
          `run ${n.run_id}: the control plane has a notice of signal ${n.signal_id}, which the data plane does not hold`,
        );
      }
    }
    const owed = async () =>
      (
        await this.#stack.dp.query<{ run_id: string; signal_id: string }>(
          'SELECT run_id::text, signal_id::text FROM dp_signals WHERE NOT notified',
        )
      ).rows;
    let left = await owed();
    for (const deadline = Date.now() + 30_000; left.length > 0 && Date.now() < deadline; left = await owed()) {
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const s of left) {
      this.#violate(
        'the control plane hears of every signal',
        `run ${s.run_id}: signal ${s.signal_id} was never announced to the control plane`,
      );
    }
    await this.#sentOnce(records);
  }

  /** Every signal and approval sent was stored once and consumed once. */
  async #sentOnce(records: readonly RunRecord[]): Promise<void> {
    const rows = await this.#stack.dp.query<{ run_id: string; stored: number; consumed: number }>(
      `SELECT run_id::text, count(*)::int AS stored, count(consumed_position)::int AS consumed FROM dp_signals GROUP BY run_id`,
    );
    const byRun = new Map(rows.rows.map((r) => [r.run_id, r]));
    for (const r of records) {
      if (!r.runId || !r.outcome) continue;
      // Approvals go only to sagas that reach theirs, so everything sent is consumed.
      const sent = r.scenario === 'signals' ? 2 : r.approval ? 1 : 0;
      const got = byRun.get(r.runId) ?? { stored: 0, consumed: 0 };
      if (got.stored !== sent || got.consumed !== sent) {
        this.#violate(
          'signals neither lost nor duplicated',
          `${r.workflow} run ${r.runId}: ${sent} sent, ${got.stored} stored, ${got.consumed} consumed`,
        );
      }
    }
  }

  /** The marker put in every input, signal, approval comment and prompt appears nowhere on the control plane's side. */
  async #canaryAbsent(logDir: string): Promise<void> {
    const tables = await this.#stack.cp.query<{ name: string }>(
      `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
    );
    for (const { name } of tables.rows) {
      const hit = await this.#stack.cp.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${name} t WHERE t::text LIKE '%' || $1 || '%'`,
        [this.#canary],
      );
      if ((hit.rows[0]?.n ?? 0) > 0)
        this.#violate('nothing crosses the boundary', `the marker is in ${hit.rows[0]!.n} rows of the control plane's ${name}`);
    }
    for (const file of readdirSync(logDir).filter((f) => f.startsWith('control-plane'))) {
      const text = readFileSync(join(logDir, file), 'utf8');
      if (text.includes(this.#canary)) this.#violate('nothing crosses the boundary', `the marker is in the control plane's log ${file}`);
    }
  }
}
