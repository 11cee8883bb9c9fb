// One chaos run: the stack, the workload, the fault injector and the checker, from a seed to a result.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { FAULT_KINDS, FaultInjector, type FaultKind, type UnexpectedExit } from './faults.js';
import { Checker, type DuplicateEffect, type Violation } from './invariants.js';
import { Random } from './random.js';
import { startChaosStack } from './stack.js';
import { Workload, type Scenario } from './workload.js';

export interface ChaosOptions {
  readonly seed: number;
  readonly durationMs: number;
  /** Mean time between faults. */
  readonly faultIntervalMs: number;
  readonly workers: number;
  readonly gateways: number;
  /** Simulated applications, each with one run in progress at a time. */
  readonly concurrency: number;
  /** How long after the last fault healed every run must have ended. */
  readonly recoveryBoundMs: number;
  readonly log: (line: string) => void;
  /** Keep the folder with the stack's logs and databases (it is printed). */
  readonly keep?: boolean;
}

export interface ChaosResult {
  readonly seed: number;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly machine: string;
  readonly options: {
    readonly workers: number;
    readonly gateways: number;
    readonly concurrency: number;
    readonly faultIntervalMs: number;
    readonly leaseTtlMs: number;
  };
  readonly runs: {
    /** Every run the control plane holds: the workload's, their children and the schedule's. */
    readonly total: number;
    readonly byStatus: Record<string, number>;
    readonly byScenario: Record<string, number>;
    readonly children: number;
    readonly scheduled: number;
    /** Calls the workload retried after a fault's transient error. */
    readonly retriedCalls: number;
  };
  readonly faults: { readonly total: number; readonly byKind: Record<FaultKind, number>; readonly problems: readonly string[] };
  /** Time from a fault healing until a fresh run went through end to end, in ms. */
  readonly recoveryMs: { readonly samples: number; readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number };
  /** Time from the last fault healing until every run had ended, in ms. */
  readonly settleMs: number;
  readonly duplicateEffects: { readonly total: number; readonly byFaultKind: Record<string, number>; readonly unexplained: number };
  readonly unexpectedExits: readonly UnexpectedExit[];
  readonly violations: readonly Violation[];
  readonly dir: string | undefined;
}

const LEASE_TTL_MS = 4_000;

export function machineDescription(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}`;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log;
  const startedAt = new Date();
  const dir = mkdtempSync(join(process.env['CAIRN_TEST_DIR'] ?? tmpdir(), 'cairn-chaos-'));
  // The Postgres servers' data folders are inside, and run as their own user when this is root.
  chmodSync(dir, 0o755);
  const canary = `CANARY-chaos-${options.seed}-${Date.now().toString(36)}`;
  log(`chaos: seed ${options.seed}; replay the same fault schedule with --seed ${options.seed}; logs in ${dir}/logs`);
  const stack = await startChaosStack({
    dir,
    workers: options.workers,
    gateways: options.gateways,
    workerSlots: 16,
    leaseTtlMs: LEASE_TTL_MS,
    heartbeatIntervalMs: 1_000,
  });
  let injector: FaultInjector | undefined;
  let keep = options.keep ?? false;
  try {
    const checker = new Checker(stack, { canary, leaseTtlMs: LEASE_TTL_MS });
    const workload = new Workload({
      clients: stack.clients,
      random: new Random(options.seed, 1),
      concurrency: options.concurrency,
      canary,
      callBudgetMs: options.recoveryBoundMs,
    });
    const scheduleId = await createSchedule(
      stack.stack.controlPlanes[0]!.httpUrl,
      stack.stack.secrets.apiToken,
      stack.stack.secrets.dataPlaneId,
    );
    await workload.probe();

    let stopping = false;
    const probes = new Set<Promise<void>>();
    injector = new FaultInjector(stack, new Random(options.seed, 0), {
      meanIntervalMs: options.faultIntervalMs,
      leaseTtlMs: LEASE_TTL_MS,
      log,
      onHealed: (fault) => {
        if (stopping) return;
        const probe = workload
          .probe()
          .then((ms) => {
            fault.recoveryMs = ms;
          })
          .catch((err: unknown) => log(`probe after fault ${fault.id} failed: ${String(err)}`))
          .finally(() => probes.delete(probe));
        probes.add(probe);
      },
    });
    const ticker = setInterval(() => void checker.continuous(), 5_000);
    const progress = setInterval(() => {
      const done = workload.records.filter((r) => r.outcome).length;
      log(
        `chaos: ${Math.round((Date.now() - startedAt.getTime()) / 1000)} s, ${workload.records.length} runs started, ${done} ended, ${injector!.records.length} faults`,
      );
    }, 30_000);
    workload.start();
    injector.start();
    await new Promise((r) => setTimeout(r, options.durationMs));

    log('chaos: no more faults; healing the ones in progress');
    stopping = true;
    await injector.stop();
    const healedAt = Date.now();
    log('chaos: every fault healed; waiting for the runs in progress to end');
    await workload.stop();
    await Promise.all([...probes]);
    await pauseSchedule(stack.stack.controlPlanes[0]!.httpUrl, stack.stack.secrets.apiToken, scheduleId);
    const settled = await checker.settle(Math.max(0, options.recoveryBoundMs - (Date.now() - healedAt)));
    clearInterval(ticker);
    clearInterval(progress);
    const settleMs = Date.now() - healedAt;
    log(
      `chaos: runs settled ${settleMs} ms after the last fault healed${settled.stuck ? `; ${settled.stuck} stuck` : ''}; checking invariants`,
    );
    const { duplicates } = await checker.final(workload.records, injector.records, join(dir, 'logs'));
    for (const exit of injector.unexpectedExits) {
      checker.violations.push({
        invariant: 'no process crashes',
        detail: `${exit.process} exited on its own (${exit.exit}); see its log`,
        at: exit.at,
      });
    }
    const result = await summarize({
      options,
      startedAt,
      stack,
      workload,
      injector,
      checker,
      duplicates,
      settleMs,
      dir: options.keep || checker.violations.length > 0 ? dir : undefined,
    });
    keep ||= result.dir !== undefined;
    return result;
  } finally {
    injector?.detach();
    await stack.stop();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

async function createSchedule(cpUrl: string, token: string, dataPlaneId: string): Promise<string> {
  const res = await fetch(`${cpUrl}/v1/projects/default/schedules`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'chaos-every-2s',
      dataPlaneId,
      workflowName: 'chaos-tick',
      cron: '*/2 * * * * *',
      timeZone: 'UTC',
      overlapPolicy: 'allow_all',
    }),
  });
  if (res.status !== 201) throw new Error(`creating the schedule failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { schedule: { id: string } }).schedule.id;
}

async function pauseSchedule(cpUrl: string, token: string, id: string): Promise<void> {
  const res = await fetch(`${cpUrl}/v1/projects/default/schedules/${id}/pause`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200) throw new Error(`pausing the schedule failed: ${res.status} ${await res.text()}`);
}

async function summarize(s: {
  options: ChaosOptions;
  startedAt: Date;
  stack: Awaited<ReturnType<typeof startChaosStack>>;
  workload: Workload;
  injector: FaultInjector;
  checker: Checker;
  duplicates: DuplicateEffect[];
  settleMs: number;
  dir: string | undefined;
}): Promise<ChaosResult> {
  const runs = await s.stack.cp.query<{ status: string; workflow_name: string; scheduled: boolean; child: boolean; n: number }>(
    `SELECT status, workflow_name, schedule_id IS NOT NULL AS scheduled, parent_run_id IS NOT NULL AS child, count(*)::int AS n
       FROM runs GROUP BY 1, 2, 3, 4`,
  );
  const byStatus: Record<string, number> = {};
  let total = 0;
  let children = 0;
  let scheduled = 0;
  for (const row of runs.rows) {
    byStatus[row.status] = (byStatus[row.status] ?? 0) + row.n;
    total += row.n;
    if (row.child) children += row.n;
    if (row.scheduled) scheduled += row.n;
  }
  const byScenario: Partial<Record<Scenario, number>> = {};
  for (const r of s.workload.records) byScenario[r.scenario] = (byScenario[r.scenario] ?? 0) + 1;
  const recovery = s.injector.records.flatMap((f) => (f.recoveryMs === undefined ? [] : [f.recoveryMs])).sort((a, b) => a - b);
  const kindOf = new Map(s.injector.records.map((f) => [f.id, f.kind]));
  const byFaultKind: Record<string, number> = {};
  let unexplained = 0;
  let duplicateTotal = 0;
  for (const d of s.duplicates) {
    duplicateTotal += d.times - 1;
    if (d.fault === undefined) unexplained += d.times - 1;
    else byFaultKind[kindOf.get(d.fault)!] = (byFaultKind[kindOf.get(d.fault)!] ?? 0) + d.times - 1;
  }
  return {
    seed: s.options.seed,
    startedAt: s.startedAt.toISOString(),
    durationMs: s.options.durationMs,
    machine: machineDescription(),
    options: {
      workers: s.options.workers,
      gateways: s.options.gateways,
      concurrency: s.options.concurrency,
      faultIntervalMs: s.options.faultIntervalMs,
      leaseTtlMs: LEASE_TTL_MS,
    },
    runs: { total, byStatus, byScenario, children, scheduled, retriedCalls: s.workload.retries },
    faults: {
      total: s.injector.records.length,
      byKind: s.injector.counts,
      problems: s.injector.records.flatMap((f) => (f.problem ? [`fault ${f.id} (${f.kind} ${f.target}): ${f.problem}`] : [])),
    },
    recoveryMs: {
      samples: recovery.length,
      p50: percentile(recovery, 50),
      p90: percentile(recovery, 90),
      p99: percentile(recovery, 99),
      max: recovery[recovery.length - 1] ?? 0,
    },
    settleMs: s.settleMs,
    duplicateEffects: { total: duplicateTotal, byFaultKind, unexplained },
    unexpectedExits: s.injector.unexpectedExits,
    violations: s.checker.violations,
    dir: s.dir,
  };
}

/** Writes the result as JSON and as a Markdown page under `folder`; returns the page's path. */
export function writeResult(result: ChaosResult, folder: string): string {
  mkdirSync(folder, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, '-');
  const base = join(folder, `${stamp}-chaos`);
  writeFileSync(`${base}.json`, JSON.stringify(result, null, 2) + '\n');
  writeFileSync(`${base}.md`, renderResult(result));
  return `${base}.md`;
}

export function renderResult(r: ChaosResult): string {
  const kinds = FAULT_KINDS.map((k) => `| ${k} | ${r.faults.byKind[k]} |`).join('\n');
  const statuses = Object.entries(r.runs.byStatus)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const scenarios = Object.entries(r.runs.byScenario)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const dupKinds = Object.entries(r.duplicateEffects.byFaultKind)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return `# Chaos run ${r.startedAt}

- Seed: \`${r.seed}\` (replay: \`pnpm chaos --seed ${r.seed} --duration ${Math.round(r.durationMs / 1000)}s\`)
- Machine: ${r.machine}
- Duration: ${Math.round(r.durationMs / 1000)} s of faults under load; ${r.options.workers} workers, ${r.options.gateways} gateways, 2 control-plane replicas, ${r.options.concurrency} simulated applications; lease TTL ${r.options.leaseTtlMs} ms; a fault every ${r.options.faultIntervalMs} ms on average

## Invariant violations: ${r.violations.length}

${r.violations.length === 0 ? 'None.' : r.violations.map((v) => `- **${v.invariant}**: ${v.detail}`).join('\n')}

## Runs: ${r.runs.total}

- By status: ${statuses}
- Started by the workload: ${scenarios}; children ${r.runs.children}; fired by the schedule ${r.runs.scheduled}
- Calls retried after a transient error: ${r.runs.retriedCalls}

## Faults injected: ${r.faults.total}

| kind | count |
| --- | --- |
${kinds}
${r.faults.problems.length === 0 ? '' : `\nFaults that did not go as planned:\n${r.faults.problems.map((p) => `- ${p}`).join('\n')}\n`}
## Recovery

- From a fault healing until a fresh run went through end to end (${r.recoveryMs.samples} probes): p50 ${r.recoveryMs.p50} ms, p90 ${r.recoveryMs.p90} ms, p99 ${r.recoveryMs.p99} ms, max ${r.recoveryMs.max} ms
- From the last fault healing until every run had ended: ${r.settleMs} ms

## Side effects that ran more than once

${r.duplicateEffects.total} extra executions of steps in flight at a fault${dupKinds ? ` (by the fault nearest them: ${dupKinds})` : ''}; ${r.duplicateEffects.unexplained} with no fault near them.

## Processes that exited on their own

${r.unexpectedExits.length === 0 ? 'None.' : r.unexpectedExits.map((e) => `- ${e.process} at ${new Date(e.at).toISOString()}: ${e.exit}`).join('\n')}
`;
}
