// runs start / list / describe / watch / result / signal / approve / reject / cancel / terminate / fork.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { Context, intOption, readJsonInput } from '../context.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { ErrorCodes, isId, verifyJournalExport } from '@cairn/common';
import { pinnedKeys } from '../audit.js';
import { CliError, ExitCode } from '../errors.js';
import { examples } from '../help.js';
import type { components } from '../gen/control-plane.js';
import type { HttpClient } from '../http.js';
import { formatMs, paintStatus, type Output } from '../output.js';
import { crossingWorkflowName, resolveWorkflowNames } from '../workflow-names.js';

/** A run as the control plane's REST API answers it (metadata only). */
type ApiRunView = components['schemas']['Run'];

/**
 * A run as the CLI prints it: the control plane's view with its ID named `runId`, as in every
 * other command's output (`runs start`, `runs result`, `runs signal`, `runs watch` events), so a
 * script reads one name for one thing.
 */
export type RunView = Omit<ApiRunView, 'id'> & { runId: string };

/** The control plane's run view with `id` renamed `runId` (first, as it comes first in the API). */
export function runView(run: ApiRunView): RunView {
  const { id, ...rest } = run;
  return { runId: id, ...rest };
}

async function describeRun(ctx: Context, cp: HttpClient, id: string): Promise<Describe> {
  const d = await cp.get<components['schemas']['RunDescription']>(runPath(ctx, id));
  const [run] = await withWorkflowNames(ctx, [runView(d.run)]);
  // Worded again with the workflow's name (a strict-mode control plane knows its digest only).
  const warnings = d.warnings.map((w) => ({ ...w, message: warningText(w.code, `${run!.workflowName}@${run!.workflowVersion}`) }));
  return resolveStrictNames(ctx, id, { ...d, run: run!, warnings });
}

/** What each run warning means for the user, about `workflow@version`. */
const WARNING_TEXT: Record<components['schemas']['RunWarning']['code'], (workflow: string) => string> = {
  no_connected_worker: (workflow) => `no connected worker serves ${workflow}: the run waits in the queue until one connects`,
};

function warningText(code: components['schemas']['RunWarning']['code'], workflow: string): string {
  return WARNING_TEXT[code](workflow);
}

/** Prints each warning on stderr, so that stdout stays what the format says. */
function printWarnings(ctx: Context, warnings: ReadonlyArray<{ message: string }>, hint?: string): void {
  for (const w of warnings) ctx.out.note(ctx.out.c.yellow(`warning: ${w.message}`));
  if (warnings.length > 0 && hint) ctx.out.note(ctx.out.c.dim(`hint: ${hint}`));
}

/** What to do when no connected worker serves the version a run is pinned to. */
const NO_WORKER_HINT =
  'Start a worker that runs that version, or cancel the run and start it on a version a connected worker runs (--version).';

/**
 * Runs with the workflow names a strict-mode data plane sent as keyed digests resolved through
 * the profile's gateway (left as digests, with a note, without one).
 */
async function withWorkflowNames(ctx: Context, runs: RunView[]): Promise<RunView[]> {
  const names = await resolveWorkflowNames(
    ctx,
    runs.map((r) => r.workflowName),
  );
  if (names.size === 0) return runs;
  return runs.map((r) => ({ ...r, workflowName: names.get(r.workflowName) ?? r.workflowName }));
}

/** A step or signal name a data plane in strict residency mode sent as a keyed digest. */
const STRICT_NAME = /^h\.[0-9a-f]{40}$/;

/**
 * Puts the names back where a strict-mode data plane sent keyed digests: the gateway resolves them
 * from the run's journal (`GET /v1/runs/:id/steps`). Without a gateway in the profile, or when it
 * cannot answer, the digests are shown as they are.
 */
async function resolveStrictNames(ctx: Context, id: string, d: Describe): Promise<Describe> {
  const s = ctx.settings;
  if (!d.steps.some((step) => STRICT_NAME.test(step.name)) || !s.gatewayUrl || !s.gatewayToken) return d;
  let resolved: Array<{ position: number; name: string }>;
  try {
    resolved = (await ctx.gateway().get<{ steps: Array<{ position: number; name: string }> }>(`/v1/runs/${encodeURIComponent(id)}/steps`))
      .steps;
  } catch (err) {
    ctx.out.note(`step names are keyed digests (strict residency mode) and the gateway could not resolve them: ${String(err)}`);
    return d;
  }
  const byPosition = new Map(resolved.map((step) => [step.position, step.name]));
  const names = new Map<string, string>();
  for (const step of d.steps) {
    const name = byPosition.get(step.position);
    if (STRICT_NAME.test(step.name) && name !== undefined && !STRICT_NAME.test(name)) names.set(step.name, name);
  }
  const name = (n: string): string => names.get(n) ?? n;
  return {
    ...d,
    steps: d.steps.map((step) => ({ ...step, name: name(step.name) })),
    timeline: d.timeline.map((call) => ({ ...call, name: name(call.name) })),
  };
}

export type TimelineCall = components['schemas']['TimelineCall'];

/** A run's description as the CLI prints it (see {@link RunView}). */
export type Describe = Omit<components['schemas']['RunDescription'], 'run'> & { run: RunView };

export const FINAL_STATUSES = new Set(['completed', 'failed', 'cancelled', 'terminated', 'timed_out']);

const RUN_STATUSES = ['queued', 'running', 'suspended', 'completed', 'failed', 'cancelled', 'terminated', 'timed_out'];

function runPath(ctx: Context, id: string, rest = ''): string {
  return ctx.projectPath(`/runs/${encodeURIComponent(id)}${rest}`);
}

function printTimeline(out: Output, d: Describe): void {
  const c = out.c;
  const r = d.run;
  out.fields([
    ['run', r.runId],
    ['workflow', `${r.workflowName}@${r.workflowVersion}`],
    [
      'status',
      `${paintStatus(c, r.status)}${r.errorCode ? ` (${r.errorCode})` : ''}${r.waitingSignal ? ` waiting for ${r.waitingSignal}` : ''}`,
    ],
    ['created', r.createdAt],
    ['ended', r.endedAt],
    ...(r.parentRunId ? [['parent', r.parentRunId] as const] : []),
    ...(r.forkedFromRunId ? [['forked from', `${r.forkedFromRunId} at step ${r.forkPosition}`] as const] : []),
    ...(r.scheduleId ? [['schedule', r.scheduleId] as const] : []),
    [
      'calls',
      `${d.totals.durableCalls} (${d.totals.attempts} attempts, ${d.totals.retries} retries${
        d.totals.copiedCalls > 0 ? `, ${d.totals.copiedCalls} copied from the source run` : ''
      })`,
    ],
    ['wall time', formatMs(d.totals.wallTimeMs)],
  ]);
  out.line('');
  out.table(
    ['#', 'KIND', 'NAME', 'STATUS', 'ATTEMPTS', 'DURATION', 'TOKENS'],
    d.timeline.map((t) => [
      t.position,
      t.kind,
      t.name,
      t.copied ? `${paintStatus(c, t.status)} ${c.dim('(copied)')}` : paintStatus(c, t.status),
      t.attemptCount,
      formatMs(t.durationMs),
      t.inputTokens === null ? '' : `${t.inputTokens}/${t.outputTokens ?? 0}`,
    ]),
  );
}

/** Polls the control plane until the run ends, printing the timeline as it grows. */
export async function watchRun(ctx: Context, cp: HttpClient, id: string, intervalMs: number): Promise<Describe> {
  const out = ctx.out;
  const seen = new Map<number, string>();
  const spinner = out.format === 'table' ? out.spinner(`watching run ${id}`) : undefined;
  let last: Describe | undefined;
  try {
    for (;;) {
      const d = await describeRun(ctx, cp, id);
      last = d;
      for (const t of d.timeline) {
        const key = `${t.status}:${t.attemptCount}`;
        if (seen.get(t.position) === key) continue;
        seen.set(t.position, key);
        const event = {
          runId: id,
          position: t.position,
          kind: t.kind,
          name: t.name,
          status: t.status,
          attempts: t.attemptCount,
          durationMs: t.durationMs,
          copied: t.copied,
        };
        if (out.format === 'json') out.line(JSON.stringify({ event: 'step', ...event }));
        else if (out.format === 'yaml') out.write(`- event: step\n  position: ${t.position}\n  name: ${t.name}\n  status: ${t.status}\n`);
        else {
          spinner?.stop();
          out.line(
            `${String(t.position).padStart(3)}  ${t.kind.padEnd(6)} ${t.name.padEnd(28)} ${paintStatus(out.c, t.status)}${
              t.copied ? out.c.dim(' (copied)') : ''
            }${
              t.attemptCount > 1 ? out.c.dim(` attempt ${t.attemptCount}`) : ''
            }${t.durationMs !== null && t.status !== 'running' ? out.c.dim(` ${formatMs(t.durationMs)}`) : ''}`,
          );
        }
      }
      const done = d.timeline.filter((t) => t.status === 'completed').length;
      spinner?.update(`${d.run.workflowName}@${d.run.workflowVersion} ${d.run.status}: ${done}/${d.timeline.length} calls done`);
      if (FINAL_STATUSES.has(d.run.status)) break;
      await sleep(intervalMs);
    }
  } finally {
    spinner?.stop();
  }
  const r = last.run;
  if (out.format === 'json')
    out.line(JSON.stringify({ event: 'end', runId: id, status: r.status, errorCode: r.errorCode, totals: last.totals }));
  else if (out.format === 'yaml') out.write(`- event: end\n  status: ${r.status}\n  errorCode: ${r.errorCode ?? 'null'}\n`);
  else
    out.line(
      `run ${id} ${paintStatus(out.c, r.status)}${r.errorCode ? ` (${r.errorCode})` : ''} after ${formatMs(last.totals.wallTimeMs)}`,
    );
  return last;
}

interface ApprovalOptions {
  by?: string;
  comment?: string;
  key?: string;
  data?: string;
  dataFile?: string;
  idempotencyKey?: string;
}

export function registerRuns(program: Command): void {
  const runs = program.command('runs').description('Start runs through the gateway; list, describe, watch and operate them.');
  runs.addHelpText(
    'after',
    examples([
      ['start a run and watch it', 'cairn runs start order-refund --input \'{"orderId":"o-1","amount":20}\' --watch'],
      ['failed runs of today', 'cairn runs list --status failed --created-after 2026-05-01T00:00:00Z'],
    ]),
  );

  runs
    .command('start')
    .argument('<workflow>', 'workflow name')
    .description('Start a run through the gateway (the input stays in the data plane). Prints the run ID.')
    .option('--version <version>', 'workflow version (default: the newest one a worker announced)')
    .option('-i, --input <json>', 'input as inline JSON')
    .option('-f, --input-file <path>', 'input from a JSON file, or - for standard input')
    .option('--idempotency-key <key>', 'starting again with the same key returns the same run')
    .option('--concurrency-key <key>', 'groups runs under per-key flow control')
    .option('--priority <n>', '0-100, higher first (default 50)', intOption('--priority', 0, 100))
    .option('--wait', 'wait for the result and print it (exit 11 unless completed)')
    .option('--watch', 'watch the step timeline until the run ends (exit 11 unless completed)')
    .addHelpText(
      'after',
      examples([
        ['input from a file', 'cairn runs start order-refund -f refund.json'],
        ['input from stdin, wait for the output', 'jq -n \'{orderId:"o-1"}\' | cairn runs start order-refund -f - --wait -o json'],
      ]),
    )
    .action(
      async (
        workflow: string,
        opts: {
          version?: string;
          input?: string;
          inputFile?: string;
          idempotencyKey?: string;
          concurrencyKey?: string;
          priority?: number;
          wait?: boolean;
          watch?: boolean;
        },
        command: Command,
      ) => {
        const ctx = new Context(command);
        const input = await readJsonInput(opts.input, opts.inputFile, 'input');
        const gw = ctx.gateway();
        const body = {
          workflow,
          ...(opts.version ? { version: opts.version } : {}),
          ...(input === undefined ? {} : { input }),
          ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey } : {}),
          ...(opts.concurrencyKey ? { concurrencyKey: opts.concurrencyKey } : {}),
          ...(opts.priority === undefined ? {} : { priority: opts.priority }),
        };
        const started = await ctx.out.spin(`starting ${workflow}`, () =>
          gw.post<{
            runId: string;
            workflow: string;
            version: string;
            status: string;
            created: boolean;
            warnings?: Array<{ code: string; message: string }>;
          }>('/v1/runs', body),
        );
        printWarnings(ctx, started.warnings ?? [], NO_WORKER_HINT);
        if (opts.watch) {
          ctx.out.note(`started run ${started.runId} (${started.workflow}@${started.version})`);
          const d = await watchRun(ctx, ctx.controlPlane(), started.runId, 500);
          if (d.run.status !== 'completed') process.exitCode = ExitCode.RUN_NOT_COMPLETED;
          return;
        }
        if (opts.wait) {
          const result = await ctx.out.spin(`waiting for run ${started.runId}`, () => waitResult(gw, started.runId));
          ctx.out.data({ ...started, ...result }, () => {
            ctx.out.line(`run ${started.runId} ${paintStatus(ctx.out.c, result.status)}`);
            if (result.output !== undefined) ctx.out.line(JSON.stringify(result.output, null, 2));
            if (result.error) ctx.out.line(ctx.out.c.red(`${result.error.name}: ${result.error.message}`));
          });
          if (result.status !== 'completed') process.exitCode = ExitCode.RUN_NOT_COMPLETED;
          return;
        }
        ctx.out.data(started, () =>
          ctx.out.line(
            `${ctx.out.c.green('✓')} ${started.created ? 'started' : 'already started'} run ${ctx.out.c.bold(started.runId)} (${started.workflow}@${started.version}, ${started.status})`,
          ),
        );
      },
    );

  runs
    .command('result')
    .argument('<run>', 'run ID')
    .description("Wait for a run to end and print its output or error (read from the data plane's gateway).")
    .option('--no-wait', 'answer at once, even if the run has not ended')
    .addHelpText('after', examples([['the output as JSON', 'cairn runs result 3f1c… -o json']]))
    .action(async (id: string, opts: { wait: boolean }, command: Command) => {
      const ctx = new Context(command);
      const gw = ctx.gateway();
      const result = opts.wait
        ? await ctx.out.spin(`waiting for run ${id}`, () => waitResult(gw, id))
        : (await gw.request<Result>('GET', `/v1/runs/${encodeURIComponent(id)}/result`, { query: { wait: 0 }, accept: [202] })).body;
      ctx.out.data(result, () => {
        ctx.out.line(`run ${id} ${paintStatus(ctx.out.c, result.status)}`);
        if (result.output !== undefined) ctx.out.line(JSON.stringify(result.output, null, 2));
        if (result.error) ctx.out.line(ctx.out.c.red(`${result.error.name}: ${result.error.message}`));
      });
      if (FINAL_STATUSES.has(result.status) && result.status !== 'completed') process.exitCode = ExitCode.RUN_NOT_COMPLETED;
    });

  runs
    .command('list')
    .description('List runs, newest first, with filters.')
    .option('--status <status...>', `one or more of ${RUN_STATUSES.join(', ')}`)
    .option('--workflow <name>', 'workflow name')
    .option('--version <version>', 'workflow version (with --workflow)')
    .option('--schedule <schedule>', 'runs a schedule fired (its ID or name)')
    .option('--parent <run>', 'child runs of this run')
    .option('--created-after <time>', 'ISO time, inclusive')
    .option('--created-before <time>', 'ISO time, exclusive')
    .option('--limit <n>', 'runs per page, 1-200', intOption('--limit', 1, 200), 50)
    .option('--cursor <cursor>', 'the nextCursor of a previous page')
    .addHelpText(
      'after',
      examples([
        ['failed or cancelled refunds', 'cairn runs list --workflow order-refund --status failed cancelled'],
        ['IDs only', "cairn runs list -o json | jq -r '.runs[].runId'"],
      ]),
    )
    .action(
      async (
        opts: {
          status?: string[];
          workflow?: string;
          version?: string;
          schedule?: string;
          parent?: string;
          createdAfter?: string;
          createdBefore?: string;
          limit: number;
          cursor?: string;
        },
        command: Command,
      ) => {
        const ctx = new Context(command);
        const statuses = (opts.status ?? []).flatMap((s) => s.split(',')).filter((s) => s !== '');
        const bad = statuses.filter((s) => !RUN_STATUSES.includes(s));
        if (bad.length > 0) throw new CliError(ExitCode.USAGE, `Unknown status ${bad.join(', ')}: use ${RUN_STATUSES.join(', ')}.`);
        const cp = ctx.controlPlane();
        // In strict residency mode the control plane knows the workflow by its keyed digest only.
        const workflow = opts.workflow === undefined ? undefined : await crossingWorkflowName(ctx, opts.workflow);
        // A schedule by name or ID, as every `schedules` command takes it; the run filter takes its ID.
        const scheduleId =
          opts.schedule === undefined || isId(opts.schedule)
            ? opts.schedule
            : (await cp.get<components['schemas']['ScheduleDetail']>(ctx.projectPath(`/schedules/${encodeURIComponent(opts.schedule)}`)))
                .schedule.id;
        const page = await ctx.out.spin('listing runs', () =>
          cp.get<components['schemas']['RunList']>(ctx.projectPath('/runs'), {
            status: statuses.length > 0 ? statuses.join(',') : undefined,
            workflow,
            version: opts.version,
            scheduleId,
            parentRunId: opts.parent,
            createdAfter: opts.createdAfter,
            createdBefore: opts.createdBefore,
            limit: opts.limit,
            cursor: opts.cursor,
          }),
        );
        const body = { runs: await withWorkflowNames(ctx, page.runs.map(runView)), nextCursor: page.nextCursor };
        ctx.out.data(body, () => {
          ctx.out.table(
            ['RUN', 'WORKFLOW', 'STATUS', 'CREATED', 'ENDED'],
            body.runs.map((r) => [
              r.runId,
              `${r.workflowName}@${r.workflowVersion}`,
              `${paintStatus(ctx.out.c, r.status)}${r.errorCode ? ` (${r.errorCode})` : ''}`,
              r.createdAt,
              r.endedAt,
            ]),
          );
          if (body.nextCursor) ctx.out.line(ctx.out.c.dim(`more: --cursor ${body.nextCursor}`));
        });
      },
    );

  runs
    .command('describe')
    .argument('<run>', 'run ID')
    .description("A run's metadata and its step timeline: one line per durable call with status, attempts, duration and tokens.")
    .addHelpText(
      'after',
      examples([
        ['the timeline', 'cairn runs describe 3f1c…'],
        ['everything, as YAML', 'cairn runs describe 3f1c… -o yaml'],
      ]),
    )
    .action(async (id: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const d = await ctx.out.spin(`describing run ${id}`, () => describeRun(ctx, cp, id));
      printWarnings(ctx, d.warnings, NO_WORKER_HINT);
      ctx.out.data(d, () => printTimeline(ctx.out, d));
    });

  runs
    .command('watch')
    .argument('<run>', 'run ID')
    .description(
      'Follow the step timeline live until the run ends (exit 0 when it completed, 11 otherwise). JSON output is one event per line.',
    )
    .option('--interval <ms>', 'poll interval', intOption('--interval', 100, 60_000), 1000)
    .addHelpText(
      'after',
      examples([
        ['follow', 'cairn runs watch 3f1c…'],
        ['events for a script', 'cairn runs watch 3f1c… -o json'],
      ]),
    )
    .action(async (id: string, opts: { interval: number }, command: Command) => {
      const ctx = new Context(command);
      const d = await watchRun(ctx, ctx.controlPlane(), id, opts.interval);
      if (d.run.status !== 'completed') process.exitCode = ExitCode.RUN_NOT_COMPLETED;
    });

  runs
    .command('signal')
    .argument('<run>', 'run ID')
    .argument('<name>', 'signal name')
    .description('Send a signal to a run through the gateway (the body stays in the data plane).')
    .option('-d, --data <json>', 'the signal body as inline JSON')
    .option('-f, --data-file <path>', 'the body from a JSON file, or - for standard input')
    .option('--idempotency-key <key>', IDEMPOTENCY_KEY_HELP)
    .addHelpText(
      'after',
      examples([
        ['approve in the refund example', 'cairn runs signal 3f1c… approval -d \'{"approved":true,"by":"maria"}\''],
        ['a signal that is safe to send again', "cairn runs signal 3f1c… address-confirmed -d '{}' --idempotency-key form-8812"],
      ]),
    )
    .action(async (id: string, name: string, opts: { data?: string; dataFile?: string; idempotencyKey?: string }, command: Command) => {
      const ctx = new Context(command);
      const body = await readJsonInput(opts.data, opts.dataFile, 'signal body');
      const gw = ctx.gateway();
      const res = await gw.post<SignalAnswer>(
        `/v1/runs/${encodeURIComponent(id)}/signals/${encodeURIComponent(name)}`,
        body ?? null,
        idempotencyHeaders(opts.idempotencyKey),
      );
      warnIfNotWaiting(ctx, id, `the signal "${name}"`, res);
      ctx.out.data(res, () => ctx.out.line(`${ctx.out.c.green('✓')} signal ${name} ${sentState(id, res)}`));
    });

  for (const decision of ['approve', 'reject'] as const) {
    runs
      .command(decision)
      .argument('<run>', 'run ID')
      .argument('<name>', 'approval name (as in ctx.approval)')
      .description(`${decision === 'approve' ? 'Approve' : 'Reject'} a run's ctx.approval through the gateway.`)
      .option('--by <who>', 'who decided')
      .option('--comment <text>', 'a comment (stays in the data plane)')
      .option('--key <key>', 'the key the workflow gave ctx.approval')
      .option('-d, --data <json>', 'extra data as inline JSON')
      .option('-f, --data-file <path>', 'extra data from a JSON file, or - for standard input')
      .option('--idempotency-key <key>', IDEMPOTENCY_KEY_HELP)
      .addHelpText('after', examples([[`${decision} a refund`, `cairn runs ${decision} 3f1c… refund --by maria --key o-1001`]]))
      .action(async (id: string, name: string, opts: ApprovalOptions, command: Command) => {
        const ctx = new Context(command);
        const data = await readJsonInput(opts.data, opts.dataFile, 'approval data');
        const body = {
          ...(opts.by ? { by: opts.by } : {}),
          ...(opts.comment ? { comment: opts.comment } : {}),
          ...(opts.key ? { key: opts.key } : {}),
          ...(data === undefined ? {} : { data }),
        };
        const gw = ctx.gateway();
        const res = await gw.post<SignalAnswer & { approval: string; approved: boolean }>(
          `/v1/runs/${encodeURIComponent(id)}/approvals/${encodeURIComponent(name)}/${decision}`,
          body,
          idempotencyHeaders(opts.idempotencyKey),
        );
        warnIfNotWaiting(
          ctx,
          id,
          `the approval "${name}"${opts.key === undefined ? ' without a key' : ' with that key'} (signal "${res.signal}")`,
          res,
        );
        ctx.out.data(res, () =>
          ctx.out.line(`${ctx.out.c.green('✓')} ${decision === 'approve' ? 'approval' : 'rejection'} of ${name} ${sentState(id, res)}`),
        );
      });
  }

  for (const op of ['cancel', 'terminate'] as const) {
    runs
      .command(op)
      .argument('<run>', 'run ID')
      .description(
        op === 'cancel'
          ? 'Cancel a run: its compensations run, and its child runs are cancelled.'
          : 'Terminate a run at once: nothing more runs for it, no compensation.',
      )
      .addHelpText('after', examples([[op, `cairn runs ${op} 3f1c…`]]))
      .action(async (id: string, _opts: unknown, command: Command) => {
        const ctx = new Context(command);
        const cp = ctx.controlPlane();
        const [run] = await withWorkflowNames(ctx, [runView((await cp.post<{ run: ApiRunView }>(runPath(ctx, id, `/${op}`))).run)]);
        const res = { run: run! };
        ctx.out.data(res, () =>
          ctx.out.line(
            `${ctx.out.c.green('✓')} ${op === 'cancel' ? 'cancellation requested for' : 'terminated'} run ${id} (${paintStatus(ctx.out.c, res.run.status)})`,
          ),
        );
      });
  }

  runs
    .command('fork')
    .argument('<run>', 'the source run ID')
    .requiredOption(
      '--from-step <n>',
      'journal position to run live from (calls before it are replayed)',
      intOption('--from-step', 0, 1_000_000),
    )
    .option('--version <version>', 'run the fork on this workflow version (e.g. with a changed prompt)')
    .option('-i, --input <json>', "a new input for the fork, inline JSON (default: the source run's input)")
    .option('-f, --input-file <path>', 'the new input from a JSON file, or - for standard input')
    .option('--watch', 'watch the fork until it ends')
    .description(
      "Fork a run: a new run that replays the source's calls before --from-step and runs live from there. A new input is stored " +
        "through the data plane's gateway first (POST /v1/payloads); the control plane gets only its ID.",
    )
    .addHelpText(
      'after',
      examples([
        ['re-run from step 3 on version 2', 'cairn runs fork 3f1c… --from-step 3 --version 2 --watch'],
        ['run it all again with another input', 'cairn runs fork 3f1c… --from-step 0 -i \'{"orderId":"o-2","amount":20}\' --watch'],
      ]),
    )
    .action(
      async (
        id: string,
        opts: { fromStep: number; version?: string; input?: string; inputFile?: string; watch?: boolean },
        command: Command,
      ) => {
        const ctx = new Context(command);
        const input = await readJsonInput(opts.input, opts.inputFile, 'input');
        const cp = ctx.controlPlane();
        let inputPayloadId: string | undefined;
        if (input !== undefined) {
          const gw = ctx.gateway();
          // forkOf: the gateway checks it as the fork's input, against the version's input schema.
          const query = new URLSearchParams({ forkOf: id, ...(opts.version ? { version: opts.version } : {}) });
          const stored = await ctx.out.spin('storing the input in the data plane', () =>
            gw.post<{ payloadId: string; size: number }>(`/v1/payloads?${query.toString()}`, input),
          );
          inputPayloadId = stored.payloadId;
        }
        let forked: { run: ApiRunView };
        try {
          forked = await cp.post<{ run: ApiRunView }>(runPath(ctx, id, '/fork'), {
            fromStep: opts.fromStep,
            ...(opts.version ? { workflowVersion: opts.version } : {}),
            ...(inputPayloadId ? { inputPayloadId } : {}),
          });
        } catch (err) {
          // The stored input would be orphaned: remove it again.
          if (inputPayloadId)
            await ctx
              .gateway()
              .request('DELETE', `/v1/payloads/${inputPayloadId}`)
              .catch(() => undefined);
          throw err;
        }
        const [run] = await withWorkflowNames(ctx, [runView(forked.run)]);
        const res = { run: run! };
        const withInput = inputPayloadId ? ` with a new input (${inputPayloadId})` : '';
        if (opts.watch) {
          ctx.out.note(`forked run ${res.run.runId} from ${id} at step ${opts.fromStep}${withInput}`);
          const d = await watchRun(ctx, cp, res.run.runId, 500);
          if (d.run.status !== 'completed') process.exitCode = ExitCode.RUN_NOT_COMPLETED;
          return;
        }
        ctx.out.data(res, () =>
          ctx.out.line(
            `${ctx.out.c.green('✓')} forked run ${ctx.out.c.bold(res.run.runId)} from ${id} at step ${opts.fromStep}${withInput} (${res.run.status})`,
          ),
        );
      },
    );

  runs
    .command('verify')
    .argument('<run>', 'run ID')
    .description(
      "Recompute the run's journal hash chain in the data plane (through the gateway) and compare it with the hash sealed for each " +
        "entry and the head the control plane recorded; exit 0 when intact, 1 when an entry was changed or deleted or the control plane's head differs.",
    )
    .addHelpText(
      'after',
      examples([
        ['one run', 'cairn runs verify 3f1c…'],
        [
          'every run of a workflow, in a nightly job',
          "for r in $(cairn runs list --workflow order-refund -o json | jq -r '.runs[].runId'); do cairn runs verify $r -o json | jq -e .ok >/dev/null || echo $r; done",
        ],
      ]),
    )
    .action(async (id: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const gw = ctx.gateway();
      const report = await ctx.out.spin(`verifying the journal of run ${id}`, () =>
        gw.get<JournalVerification>(`/v1/runs/${encodeURIComponent(id)}/verify`),
      );
      ctx.out.data(report, () => printVerification(ctx.out, report));
      if (!report.ok) process.exitCode = ExitCode.FAILURE;
    });

  runs
    .command('export')
    .argument('<runs...>', 'run IDs (1 to 100)')
    .description(
      'A signed export of runs and their whole journals (inputs, recorded values, errors, transcripts) as JSON Lines, for a long-term ' +
        "archive: signed by the gateway's export key, with each run's hash chain and the head the control plane recorded. Never overwrites.",
    )
    .requiredOption('--out <file>', 'where to save the export (refused when it exists)')
    .addHelpText('after', examples([['archive two runs', 'cairn runs export 3f1c… 9a2b… --out runs-2026-12.jsonl']]))
    .action(async (ids: string[], opts: { out: string }, command: Command) => {
      const ctx = new Context(command);
      const gw = ctx.gateway();
      const res = await ctx.out.spin(`exporting ${ids.length} run${ids.length === 1 ? '' : 's'}`, () =>
        gw.post<{ format: string; runs: number; keyId: string; document: string }>('/v1/exports', { runIds: ids }),
      );
      try {
        writeFileSync(opts.out, res.document, { flag: 'wx' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new CliError(ExitCode.USAGE, `Cannot write ${opts.out}: ${code === 'EEXIST' ? 'it exists' : (code ?? String(err))}.`);
      }
      ctx.out.data({ out: opts.out, runs: res.runs, keyId: res.keyId }, () =>
        ctx.out.line(
          `${ctx.out.c.green('✓')} ${res.runs} run${res.runs === 1 ? '' : 's'} exported to ${opts.out}, signed by key ${res.keyId}; check it later with \`cairn runs verify-export ${opts.out} --public-key KEY\``,
        ),
      );
    });

  runs
    .command('verify-export')
    .argument('<file>', 'an export `cairn runs export` saved')
    .description(
      "Verify an export offline: its signature (with the pinned key when --public-key is given, else the key it carries) and each run's " +
        'hash chain recomputed from the exported entries against the heads recorded in it. Exit 0 when intact, 1 when not. Contacts no server.',
    )
    .option(
      '--public-key <key>',
      "trust only this key: the export key's public half as PEM, base64url x, or a file (repeatable)",
      collectKeys,
      [],
    )
    .addHelpText(
      'after',
      examples([
        ['check an archive against the key kept at export time', 'cairn runs verify-export runs-2026-12.jsonl --public-key export-key.pem'],
      ]),
    )
    .action((file: string, opts: { publicKey: string[] }, command: Command) => {
      const ctx = new Context(command);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliError(ExitCode.USAGE, `Cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
      }
      const keys = pinnedKeys(opts.publicKey).map((k) => k.publicKey);
      const result = verifyJournalExport(text, keys);
      ctx.out.data(result, () => {
        const c = ctx.out.c;
        if (result.ok) {
          ctx.out.line(
            `${c.green('✓')} export ${file} intact: signed by key ${result.keyId ?? '?'} (${result.keySource === 'pinned' ? 'pinned' : 'the key in the file'}) at ${result.createdAt ?? '?'}, ${result.runs.length} run${result.runs.length === 1 ? '' : 's'} whose chains recompute`,
          );
        } else {
          ctx.out.line(`${c.red('✗')} export ${file} does not verify [${ErrorCodes.JOURNAL_EXPORT_INVALID}]:`);
          for (const p of result.problems) ctx.out.line(`  ${c.red('✗')} ${p}`);
        }
        for (const r of result.runs)
          ctx.out.line(`  ${r.ok ? c.green('✓') : c.red('✗')} run ${r.runId}: ${r.entries} entries, ${r.detail}`);
        if (result.keySource === 'embedded')
          ctx.out.note(c.dim('note: the key was not pinned; pass --public-key with the key you trust so a re-signed export is noticed'));
      });
      if (!result.ok) process.exitCode = ExitCode.FAILURE;
    });
}

const IDEMPOTENCY_KEY_HELP =
  'makes it safe to send again: a repeat with the same key delivers nothing new (use an ID from your own system; it stays in the data plane)';

/** The Idempotency-Key header, when a key was given. */
function idempotencyHeaders(key: string | undefined): { headers?: Record<string, string> } {
  if (key === undefined) return {};
  if (!/^[\x20-\x7e]{1,1024}$/.test(key)) {
    throw new CliError(
      ExitCode.USAGE,
      '--idempotency-key must be 1 to 1024 printable ASCII characters, such as an ID from your own system.',
    );
  }
  return { headers: { 'idempotency-key': key } };
}

/** What became of a signal or an approval: sent (and the run's status), repeated, or stored for the control plane to hear of later. */
function sentState(runId: string, answer: SignalAnswer): string {
  if (answer.pending) {
    return `stored for run ${runId}; the control plane could not be told now, and the gateway tells it once it answers (do not send it again)`;
  }
  const repeat = answer.created ? '' : ' (a repeat of the signal sent earlier with this idempotency key: nothing new delivered)';
  return `sent to run ${runId} (run ${answer.status ?? 'unknown'})${repeat}`;
}

/** The gateway's answer to a signal or an approval. */
interface SignalAnswer {
  runId: string;
  signal: string;
  signalId: string;
  created: boolean;
  status: string | null;
  /** The control plane was not told yet; the gateway tells it later. */
  pending?: true;
  /** false when the run is suspended waiting for something else; then `waitingFor` says what. */
  waiting?: boolean;
  waitingFor?: string | null;
}

/** A signal the run is not waiting for is kept, not lost: say so, since the sender may have meant another name. */
function warnIfNotWaiting(ctx: Context, runId: string, what: string, answer: SignalAnswer): void {
  if (answer.waiting !== false) return;
  const c = ctx.out.ce;
  const instead = answer.waitingFor
    ? `it waits for the signal "${answer.waitingFor}"`
    : 'it is suspended waiting for no signal (a timer, a retry or a child run)';
  ctx.out.note(
    `${c.yellow('warning:')} run ${runId} is not waiting for ${what}: ${instead}. ` +
      `The signal is kept until the run waits for "${answer.signal}"; check the name if you meant another one.`,
  );
}

interface Result {
  runId: string;
  status: string;
  output?: unknown;
  error?: { name: string; message: string; code?: string | null };
}

/** Long-polls the gateway until the run ends. */
async function waitResult(gw: HttpClient, id: string): Promise<Result> {
  for (;;) {
    const res = await gw.request<Result>('GET', `/v1/runs/${encodeURIComponent(id)}/result`, {
      query: { wait: 30 },
      accept: [202],
      timeoutMs: 45_000,
    });
    if (res.status === 200) return res.body;
  }
}

/** The gateway's `GET /v1/runs/:id/verify` answer. */
interface JournalVerification {
  readonly runId: string;
  readonly ok: boolean;
  readonly journalEntries: number;
  readonly recomputed: { readonly entries: number; readonly head: string | null };
  readonly dataPlane: { readonly entries: number; readonly head: string | null };
  readonly controlPlane: { readonly entries: number; readonly head: string | null } | null;
  readonly problems: ReadonlyArray<{ readonly position: number | null; readonly reason: string; readonly detail: string }>;
}

function printVerification(out: Output, r: JournalVerification): void {
  const c = out.c;
  const head = (h: { entries: number; head: string | null } | null): string =>
    h === null || h.head === null ? 'none' : `${h.entries} entr${h.entries === 1 ? 'y' : 'ies'}, ${h.head}`;
  if (r.ok) {
    out.line(
      `${c.green('✓')} journal of run ${r.runId} intact: ${r.recomputed.entries} of ${r.journalEntries} entries sealed and recomputed here, ` +
        (r.controlPlane ? `matching the control plane's head` : `no head at the control plane yet (the run is still open)`),
    );
  } else {
    out.line(`${c.red('✗')} journal of run ${r.runId} does not verify [${ErrorCodes.JOURNAL_CHAIN_BROKEN}]:`);
    for (const p of r.problems)
      out.line(`  ${c.red('✗')} ${p.position === null ? '' : `position ${p.position}: `}${p.detail} (${p.reason})`);
  }
  out.fields([
    ['recomputed', head(r.recomputed)],
    ['sealed in the data plane', head(r.dataPlane)],
    ['recorded by the control plane', head(r.controlPlane)],
  ]);
}

const collectKeys = (value: string, previous: string[]): string[] => [...previous, value];
