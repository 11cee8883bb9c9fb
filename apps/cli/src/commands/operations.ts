// schedules, usage, audit.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  ErrorCodes,
  auditPublicKeyJwk,
  parseAuditCheckpoint,
  type AuditBreakReason,
  type AuditCheckpoint,
  type AuditPublicKey,
} from '@cairn/common';
import {
  chainEntries,
  checkSignature,
  pinnedKeys,
  publishedKeys,
  readCheckpointFile,
  readEntriesFile,
  verifyChain,
  verifyEntries,
  type CheckpointReport,
  type SavedCheckpoint,
} from '../audit.js';
import { Context, intOption, readJsonInput } from '../context.js';
import { CliError, ExitCode } from '../errors.js';
import type { components } from '../gen/control-plane.js';
import { examples } from '../help.js';
import { paintStatus } from '../output.js';
import { crossingWorkflowName, resolveWorkflowNames } from '../workflow-names.js';

type ScheduleView = components['schemas']['Schedule'];

const OVERLAP = ['skip', 'buffer_one', 'allow_all', 'cancel_previous'];

const collect = (value: string, previous: string[]): string[] => [...previous, value];
const entries = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

/** A checkpoint as the control plane answered it, checked for shape. */
function parseStored(value: unknown): AuditCheckpoint {
  try {
    return parseAuditCheckpoint(value, "the control plane's checkpoint");
  } catch (err) {
    throw new CliError(ExitCode.FAILURE, (err as Error).message);
  }
}

/** The stable code of a break: a kept checkpoint no longer contained, or the chain itself broken. */
function codeOf(reason: AuditBreakReason): string {
  return reason === 'truncated' || reason === 'checkpoint_mismatch' ? ErrorCodes.AUDIT_CHECKPOINT_MISMATCH : ErrorCodes.AUDIT_CHAIN_BROKEN;
}

/** A firing's outcome, coloured: only `started` started a run. */
function firingOutcome(ctx: Context, outcome: components['schemas']['Firing']['outcome']): string {
  const c = ctx.out.c;
  return outcome === 'started' ? c.green(outcome) : outcome === 'buffered' ? c.yellow(outcome) : c.red(outcome);
}

export function registerOperations(program: Command): void {
  const schedules = program
    .command('schedules')
    .description('Cron schedules that start runs: create, list, pause, resume, trigger, backfill, delete.');
  schedules.addHelpText(
    'after',
    examples([
      [
        'every weekday at 9 in Paris, with an input',
        'cairn schedules create --workflow weekly-report --cron \'0 9 * * 1-5\' --time-zone Europe/Paris -i \'{"team":"ops"}\'',
      ],
      ['run one now', 'cairn schedules trigger weekly-report'],
    ]),
  );

  schedules
    .command('create')
    .description(
      "Create a schedule. An input is stored through the data plane's gateway first (POST /v1/payloads); the control plane keeps only its ID.",
    )
    .requiredOption('--workflow <name>', 'workflow to start')
    .requiredOption('--cron <expression>', 'cron expression (5 or 6 fields), e.g. "0 9 * * 1-5"')
    .option('--name <name>', 'schedule name (refer to it by name later)')
    .option('--version <version>', 'pin a workflow version (default: the newest at each firing)')
    .option('--time-zone <zone>', 'IANA time zone (default UTC)')
    .option('--overlap-policy <policy>', `what to do when the previous run is still going: ${OVERLAP.join(', ')}`)
    .option('--catch-up-window <seconds>', 'how late a missed tick may still fire', intOption('--catch-up-window', 0, 604_800))
    .option('--data-plane <id>', "data plane whose workers run it (default: the project's only active one)")
    .option('-i, --input <json>', 'input of every run, inline JSON')
    .option('-f, --input-file <path>', 'input from a JSON file, or - for standard input')
    .option('--paused', 'create it paused')
    .addHelpText(
      'after',
      examples([
        ['hourly, input from a file', "cairn schedules create --name hourly-sync --workflow sync --cron '0 * * * *' -f sync.json"],
      ]),
    )
    .action(
      async (
        opts: {
          workflow: string;
          cron: string;
          name?: string;
          version?: string;
          timeZone?: string;
          overlapPolicy?: string;
          catchUpWindow?: number;
          dataPlane?: string;
          input?: string;
          inputFile?: string;
          paused?: boolean;
        },
        command: Command,
      ) => {
        const ctx = new Context(command);
        if (opts.overlapPolicy && !OVERLAP.includes(opts.overlapPolicy)) {
          throw new CliError(ExitCode.USAGE, `Unknown overlap policy "${opts.overlapPolicy}": use ${OVERLAP.join(', ')}.`);
        }
        const input = await readJsonInput(opts.input, opts.inputFile, 'input');
        const cp = ctx.controlPlane();
        let dataPlaneId = opts.dataPlane;
        if (!dataPlaneId) {
          const { dataPlanes } = await cp.get<{ dataPlanes: Array<{ id: string; name: string; revokedAt: string | null }> }>(
            ctx.projectPath('/data-planes'),
          );
          const active = dataPlanes.filter((d) => d.revokedAt === null);
          if (active.length !== 1) {
            throw new CliError(
              ExitCode.USAGE,
              active.length === 0
                ? 'The project has no active data plane to run the schedule.'
                : `The project has ${active.length} data planes (${active.map((d) => d.name).join(', ')}): say which runs the schedule.`,
              { hint: 'Pass --data-plane ID (`cairn data-planes list`).' },
            );
          }
          dataPlaneId = active[0]!.id;
        }
        let inputPayloadId: string | undefined;
        if (input !== undefined) {
          const gw = ctx.gateway();
          const stored = await ctx.out.spin('storing the input in the data plane', () =>
            gw.post<{ payloadId: string; size: number }>('/v1/payloads', input),
          );
          inputPayloadId = stored.payloadId;
        }
        const body = {
          dataPlaneId,
          // In strict residency mode the control plane knows the workflow by its keyed digest only.
          workflowName: await crossingWorkflowName(ctx, opts.workflow),
          cron: opts.cron,
          ...(opts.name ? { name: opts.name } : {}),
          ...(opts.version ? { workflowVersion: opts.version } : {}),
          ...(opts.timeZone ? { timeZone: opts.timeZone } : {}),
          ...(opts.overlapPolicy ? { overlapPolicy: opts.overlapPolicy } : {}),
          ...(opts.catchUpWindow === undefined ? {} : { catchUpWindowSeconds: opts.catchUpWindow }),
          ...(inputPayloadId ? { inputPayloadId } : {}),
          ...(opts.paused ? { paused: true } : {}),
        };
        let res: { schedule: ScheduleView };
        try {
          res = await cp.post<components['schemas']['ScheduleAnswer']>(ctx.projectPath('/schedules'), body);
          if (res.schedule.workflowName === body.workflowName) res = { schedule: { ...res.schedule, workflowName: opts.workflow } };
        } catch (err) {
          // The stored input would be orphaned: remove it again.
          if (inputPayloadId)
            await ctx
              .gateway()
              .request('DELETE', `/v1/payloads/${inputPayloadId}`)
              .catch(() => undefined);
          throw err;
        }
        ctx.out.data(res, () =>
          ctx.out.line(
            `${ctx.out.c.green('✓')} created schedule ${ctx.out.c.bold(res.schedule.name ?? res.schedule.id)} (${res.schedule.id}): ${res.schedule.workflowName} at "${res.schedule.cron}" ${res.schedule.timeZone}${
              inputPayloadId ? `, input ${inputPayloadId}` : ''
            }`,
          ),
        );
      },
    );

  schedules
    .command('list')
    .description('List schedules, newest first.')
    .option('--limit <n>', 'per page', intOption('--limit', 1, 200))
    .option('--cursor <cursor>', 'the nextCursor of a previous page')
    .addHelpText('after', examples([['list', 'cairn schedules list']]))
    .action(async (opts: { limit?: number; cursor?: string }, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const page = await ctx.out.spin('listing schedules', () =>
        cp.get<components['schemas']['ScheduleList']>(ctx.projectPath('/schedules'), {
          limit: opts.limit,
          cursor: opts.cursor,
        }),
      );
      const names = await resolveWorkflowNames(
        ctx,
        page.schedules.map((s) => s.workflowName),
      );
      const body = { ...page, schedules: page.schedules.map((s) => ({ ...s, workflowName: names.get(s.workflowName) ?? s.workflowName })) };
      ctx.out.data(body, () =>
        ctx.out.table(
          ['NAME', 'ID', 'WORKFLOW', 'CRON', 'ZONE', 'STATE', 'NEXT'],
          body.schedules.map((s) => [
            s.name,
            s.id,
            `${s.workflowName}${s.workflowVersion ? `@${s.workflowVersion}` : ''}`,
            s.cron,
            s.timeZone,
            s.paused ? ctx.out.c.yellow('paused') : ctx.out.c.green('active'),
            s.nextTickAt ?? null,
          ]),
        ),
      );
    });

  schedules
    .command('show')
    .argument('<schedule>', 'schedule ID or name')
    .description('Show a schedule with its next fire times and recent firings.')
    .addHelpText('after', examples([['show', 'cairn schedules show hourly-sync']]))
    .action(async (schedule: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const got = await cp.get<components['schemas']['ScheduleDetail']>(ctx.projectPath(`/schedules/${encodeURIComponent(schedule)}`));
      const names = await resolveWorkflowNames(ctx, [got.schedule.workflowName]);
      const body = {
        ...got,
        schedule: { ...got.schedule, workflowName: names.get(got.schedule.workflowName) ?? got.schedule.workflowName },
      };
      ctx.out.data(body, () => {
        const s = body.schedule;
        ctx.out.fields([
          ['schedule', `${s.name ?? '-'} (${s.id})`],
          ['workflow', `${s.workflowName}${s.workflowVersion ? `@${s.workflowVersion}` : ''}`],
          ['cron', `${s.cron} ${s.timeZone}`],
          ['overlap', s.overlapPolicy],
          ['state', s.paused ? 'paused' : 'active'],
          ['input', s.inputPayloadId],
          // Every next fire time the control plane answered, one a line.
          ...(body.nextFireTimes.length === 0
            ? [['next', s.paused ? 'none while paused' : 'none'] as const]
            : body.nextFireTimes.map((t, i) => [i === 0 ? 'next' : '', t] as const)),
        ]);
        ctx.out.line();
        if (body.recentFirings.length === 0) {
          ctx.out.line(ctx.out.c.dim('No firings yet.'));
          return;
        }
        ctx.out.line(ctx.out.c.bold('Recent firings'));
        ctx.out.table(
          ['FIRED', 'KIND', 'TICK', 'OUTCOME', 'RUN'],
          body.recentFirings.map((f) => [f.firedAt, f.kind, f.tickAt, firingOutcome(ctx, f.outcome), f.runId]),
        );
      });
    });

  for (const op of ['pause', 'resume'] as const) {
    schedules
      .command(op)
      .argument('<schedule>', 'schedule ID or name')
      .description(
        op === 'pause'
          ? 'Pause a schedule: no tick fires until it is resumed.'
          : 'Resume a paused schedule (missed ticks are not flooded).',
      )
      .addHelpText('after', examples([[op, `cairn schedules ${op} hourly-sync`]]))
      .action(async (schedule: string, _opts: unknown, command: Command) => {
        const ctx = new Context(command);
        const cp = ctx.controlPlane();
        const res = await cp.post<components['schemas']['ScheduleAnswer']>(
          ctx.projectPath(`/schedules/${encodeURIComponent(schedule)}/${op}`),
        );
        ctx.out.data(res, () => ctx.out.line(`${ctx.out.c.green('✓')} schedule ${schedule} ${op === 'pause' ? 'paused' : 'resumed'}`));
      });
  }

  schedules
    .command('trigger')
    .argument('<schedule>', 'schedule ID or name')
    .description('Fire one run of the schedule now.')
    .option('--overlap-policy <policy>', `override the schedule's policy for this firing: ${OVERLAP.join(', ')}`)
    .addHelpText('after', examples([['fire now', 'cairn schedules trigger hourly-sync']]))
    .action(async (schedule: string, opts: { overlapPolicy?: string }, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const res = await cp.post<components['schemas']['FiringAnswer']>(
        ctx.projectPath(`/schedules/${encodeURIComponent(schedule)}/trigger`),
        opts.overlapPolicy ? { overlapPolicy: opts.overlapPolicy } : {},
      );
      const f = res.firing;
      const c = ctx.out.c;
      // Only `started` started a run; the other outcomes say why none did (or when one will).
      const said: Record<typeof f.outcome, { line: string; exit: ExitCode; hint?: string }> = {
        started: { line: `${c.green('✓')} triggered ${schedule}: run ${f.runId ?? '?'}`, exit: ExitCode.OK },
        buffered: {
          line: `${c.yellow('…')} ${schedule}: the firing is buffered; its run starts when the schedule's running run ends (overlap policy buffer_one)`,
          exit: ExitCode.OK,
        },
        skipped: {
          line: `${c.red('✗')} ${schedule}: the firing was skipped, no run started: a run this schedule fired has not ended (overlap policy skip)`,
          exit: ExitCode.CONFLICT,
          hint: 'Wait for that run to end, or fire anyway with --overlap-policy allow_all (or cancel_previous).',
        },
        workflow_not_found: {
          line: `${c.red('✗')} ${schedule}: no run started: its workflow has no version that can start runs (not registered, or deprecated)`,
          exit: ExitCode.NOT_FOUND,
          hint: 'Register a version (cairn workflows register), or point the schedule at one that is not deprecated.',
        },
        quota_exceeded: {
          line: `${c.red('✗')} ${schedule}: no run started: a quota of the project refused it`,
          exit: ExitCode.LIMITED,
          hint: 'See `cairn usage`, then trigger again when there is room.',
        },
      };
      const outcome = said[f.outcome];
      ctx.out.data(res, () => {
        ctx.out.line(outcome.line);
        if (outcome.hint) ctx.out.line(c.dim(`hint: ${outcome.hint}`));
      });
      if (outcome.exit !== ExitCode.OK) process.exitCode = outcome.exit;
    });

  schedules
    .command('backfill')
    .argument('<schedule>', 'schedule ID or name')
    .requiredOption('--from <time>', 'ISO time, inclusive')
    .requiredOption('--to <time>', 'ISO time, exclusive')
    .description('Fire one run per tick in [from, to) that has not fired yet.')
    .addHelpText(
      'after',
      examples([['last Monday', 'cairn schedules backfill hourly-sync --from 2026-05-04T00:00:00Z --to 2026-05-05T00:00:00Z']]),
    )
    .action(async (schedule: string, opts: { from: string; to: string }, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const res = await ctx.out.spin('backfilling', () =>
        cp.post<{ firings: unknown[]; started: number; alreadyFired: number }>(
          ctx.projectPath(`/schedules/${encodeURIComponent(schedule)}/backfill`),
          {
            from: opts.from,
            to: opts.to,
          },
        ),
      );
      ctx.out.data(res, () =>
        ctx.out.line(`${ctx.out.c.green('✓')} ${res.started} run(s) started, ${res.alreadyFired} tick(s) had fired already`),
      );
    });

  schedules
    .command('delete')
    .argument('<schedule>', 'schedule ID or name')
    .description('Delete a schedule; the runs it fired are kept.')
    .addHelpText('after', examples([['delete', 'cairn schedules delete hourly-sync']]))
    .action(async (schedule: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const res = await cp.request<{ deleted: boolean }>('DELETE', ctx.projectPath(`/schedules/${encodeURIComponent(schedule)}`));
      ctx.out.data(res.body, () => ctx.out.line(`${ctx.out.c.green('✓')} deleted schedule ${schedule}`));
    });

  program
    .command('usage')
    .description('Runs started, steps executed and model tokens per UTC day, with totals.')
    .option('--from <date>', 'first day, YYYY-MM-DD (default: 30 days before --to)')
    .option('--to <date>', 'last day, YYYY-MM-DD (default: today)')
    .addHelpText(
      'after',
      examples([
        ['this month', 'cairn usage'],
        ['April as JSON', 'cairn usage --from 2026-04-01 --to 2026-04-30 -o json'],
      ]),
    )
    .action(async (opts: { from?: string; to?: string }, command: Command) => {
      const ctx = new Context(command);
      for (const [flag, v] of [
        ['--from', opts.from],
        ['--to', opts.to],
      ] as const) {
        if (v !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(v))
          throw new CliError(ExitCode.USAGE, `${flag} must be a date as YYYY-MM-DD, got "${v}".`);
      }
      const cp = ctx.controlPlane();
      const body = await ctx.out.spin('reading usage', () =>
        cp.get<{ days: Array<Record<string, unknown>>; totals?: Record<string, unknown> } & Record<string, unknown>>(
          ctx.projectPath('/usage'),
          {
            from: opts.from,
            to: opts.to,
          },
        ),
      );
      ctx.out.data(body, () => {
        const days = Array.isArray(body.days) ? body.days : [];
        const num = (v: unknown): number | string => (typeof v === 'number' ? v : typeof v === 'string' ? v : 0);
        ctx.out.table(
          ['DAY', 'RUNS', 'STEPS', 'INPUT TOKENS', 'OUTPUT TOKENS'],
          days.map((d) => [
            String(d['day']),
            num(d['runsStarted']),
            num(d['stepsExecuted']),
            num(d['inputTokens']),
            num(d['outputTokens']),
          ]),
        );
        const t = body.totals ?? {};
        ctx.out.line(
          `total: ${num(t['runsStarted'])} runs, ${num(t['stepsExecuted'])} steps, ${num(t['inputTokens'])}/${num(t['outputTokens'])} tokens`,
        );
      });
    });

  const audit = program
    .command('audit')
    .description("The project's tamper-evident audit log, verifiable without trusting the control plane.");
  audit.addHelpText(
    'after',
    examples([
      ['keep a signed checkpoint', 'cairn audit checkpoint --out audit-2026-11-27.json'],
      ['verify the chain against it', 'cairn audit verify --checkpoint audit-2026-11-27.json --public-key <key from cairn audit keys>'],
    ]),
  );
  audit
    .command('verify')
    .description(
      'Recompute every hash of the chain here and check it still contains each kept checkpoint; exit 0 when intact, 1 when broken ' +
        "(naming the first bad position) or when a checkpoint's signature does not verify.",
    )
    .option(
      '--checkpoint <file>',
      'a checkpoint `cairn audit checkpoint --out` saved (repeatable); default: the newest the control plane stored',
      collect,
      [],
    )
    .option(
      '--public-key <key>',
      'trust only this key: its x value, PEM, or a file (repeatable; default: the key saved with the checkpoint)',
      collect,
      [],
    )
    .option('--entries <file>', 'verify a chain `cairn audit chain --out` saved, offline: the control plane is not contacted')
    .addHelpText(
      'after',
      examples([
        [
          'against two kept checkpoints, with a pinned key',
          'cairn audit verify --checkpoint monday.json --checkpoint today.json --public-key key.pem',
        ],
        ['offline, from a saved chain', 'cairn audit verify --entries chain.jsonl --checkpoint today.json --public-key key.pem'],
        ['in a nightly job', 'cairn audit verify --checkpoint last.json -o json | jq .ok'],
      ]),
    )
    .action(async (opts: { checkpoint: string[]; publicKey: string[]; entries?: string }, command: Command) => {
      const ctx = new Context(command);
      const files = opts.checkpoint.map(readCheckpointFile);
      const pinned = pinnedKeys(opts.publicKey);
      const saved = opts.entries === undefined ? undefined : readEntriesFile(opts.entries);
      // Offline, nothing is asked of the control plane: not even to seal, nor for its keys.
      const cp = saved === undefined ? ctx.controlPlane() : undefined;
      // The control plane's own walk seals what is pending first; its answer is reported, not trusted.
      const server = cp
        ? await ctx.out.spin('sealing pending entries', () =>
            cp.post<{ ok: boolean; entries: number; broken?: { position: number; reason: string } }>(ctx.projectPath('/audit/verify')),
          )
        : null;
      const kept: Array<{ source: string; checkpoint: AuditCheckpoint; saved: AuditPublicKey[] }> = files.map((f) => ({
        source: f.path,
        checkpoint: f.checkpoint,
        saved: f.savedKeys,
      }));
      if (kept.length === 0 && cp) {
        const stored = await cp.get<{ checkpoints: unknown[] }>(ctx.projectPath('/audit/checkpoints'), { limit: 1 });
        const newest = stored.checkpoints[0];
        if (newest !== undefined)
          kept.push({ source: 'the newest checkpoint the control plane stored', checkpoint: parseStored(newest), saved: [] });
      }
      let published: AuditPublicKey[] | undefined;
      const reports: CheckpointReport[] = [];
      for (const k of kept) {
        if (cp && pinned.length === 0 && !k.saved.some((key) => key.keyId === k.checkpoint.keyId))
          published ??= (await publishedKeys(cp)).parsed;
        reports.push(checkSignature(k.source, k.checkpoint, { pinned, saved: k.saved, published: published ?? [] }));
      }
      const anchors = reports
        .filter((r) => r.signature === 'valid')
        .map((r) => ({ position: r.position, hash: r.hash, label: `the checkpoint in ${r.source} (signed at ${r.signedAt})` }));
      const checkAnchor = (checkpoint: AuditCheckpoint): CheckpointReport =>
        checkSignature('the checkpoint recorded at the prune', checkpoint, { pinned, saved: [], published: published ?? [] });
      if (cp && pinned.length === 0) published ??= (await publishedKeys(cp)).parsed;
      const { verification, pruned } =
        saved !== undefined
          ? { verification: verifyEntries(saved, anchors), pruned: null }
          : await ctx.out.spin('verifying the audit chain', () => verifyChain(cp!, ctx.projectPath(), anchors, checkAnchor));
      const rejected = reports.filter((r) => r.signature !== 'valid');
      const ok = verification.ok && rejected.length === 0;
      const result = {
        ...verification,
        ok,
        ...(verification.ok ? {} : { broken: { ...verification.broken, code: codeOf(verification.broken.reason) } }),
        checkpoints: reports,
        pruned,
        server: server ? { ok: server.ok, entries: server.entries, ...(server.broken ? { broken: server.broken } : {}) } : null,
      };
      ctx.out.data(result, () => {
        const c = ctx.out.c;
        const from = saved !== undefined ? ` in ${opts.entries}` : '';
        if (verification.ok)
          ctx.out.line(
            `${c.green('✓')} audit chain intact${from}: ${entries(verification.entries)}, head ${verification.head ? `${verification.head.position} ${verification.head.hash}` : '-'} (every hash recomputed here)`,
          );
        else
          ctx.out.line(
            `${c.red('✗')} audit chain${from} broken at position ${verification.broken.position} (${verification.broken.reason}${verification.broken.entryId ? `, entry ${verification.broken.entryId}` : ''}) [${codeOf(verification.broken.reason)}]: ${verification.broken.detail}; ${entries(verification.entries)} verified before it`,
          );
        if (pruned) {
          ctx.out.line(
            `${pruned.checkpoint.signature === 'valid' ? c.green('✓') : c.red('✗')} pruned under the retention policy: positions 1 to ${pruned.position} ` +
              `(the newest prune deleted ${entries(pruned.pruned)} older than ${pruned.prunedBefore}, at ${pruned.prunedAt}); the chain starts from the checkpoint ` +
              `signed at ${pruned.checkpoint.signedAt} by key ${pruned.checkpoint.keyId} at position ${pruned.position}` +
              (pruned.checkpoint.signature === 'valid'
                ? ` (key ${pruned.checkpoint.keySource})`
                : `, whose signature is not valid: ${pruned.checkpoint.detail ?? ''}`),
          );
        }
        for (const r of reports) {
          if (r.signature === 'valid' && pruned?.covered.includes(r.position)) {
            ctx.out.line(
              `${c.green('✓')} checkpoint ${r.source}: position ${r.position}, signed at ${r.signedAt} by key ${r.keyId} (key ${r.keySource}), pruned under the retention policy (at or before the anchor at position ${pruned.position})`,
            );
          } else if (r.signature !== 'valid') {
            ctx.out.line(
              `${c.red('✗')} checkpoint ${r.source}: signature not valid [${ErrorCodes.AUDIT_CHECKPOINT_REJECTED}]: ${r.detail ?? r.signature}`,
            );
          } else {
            const held = verification.ok || verification.broken.position > r.position;
            ctx.out.line(
              `${held ? c.green('✓') : c.red('✗')} checkpoint ${r.source}: position ${r.position}, signed at ${r.signedAt} by key ${r.keyId} (key ${r.keySource})${held ? ', contained in the chain' : ''}`,
            );
          }
        }
        if (kept.length === 0) ctx.out.line(c.dim('no checkpoint to check against: keep one with `cairn audit checkpoint --out FILE`'));
        if (reports.some((r) => r.keySource !== 'pinned' && r.signature === 'valid')) {
          ctx.out.note(
            c.dim(
              'note: the key was not pinned; pass --public-key with the key you trust (`cairn audit keys`) so a replaced key is noticed',
            ),
          );
        }
        if (server && server.ok !== ok) ctx.out.note(`the control plane's own verification answered ok:${server.ok}`);
      });
      if (!ok) process.exitCode = ExitCode.FAILURE;
    });
  audit
    .command('chain')
    .description(
      'Seal pending entries and save the whole chain, one entry per line in chain order, to verify later without the control plane (`cairn audit verify --entries`).',
    )
    .option('--out <file>', 'write it to this file (refuses to overwrite); default: standard output')
    .addHelpText('after', examples([["keep the chain with the day's checkpoint", 'cairn audit chain --out "chain-$(date +%F).jsonl"']]))
    .action(async (opts: { out?: string }, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      await ctx.out.spin('sealing pending entries', () => cp.post(ctx.projectPath('/audit/verify')));
      const lines: string[] = [];
      for await (const entry of chainEntries(cp, ctx.projectPath())) lines.push(JSON.stringify(entry));
      const text = lines.length === 0 ? '' : `${lines.join('\n')}\n`;
      if (opts.out === undefined) {
        ctx.out.write(text);
        return;
      }
      try {
        writeFileSync(opts.out, text, { flag: 'wx' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new CliError(ExitCode.USAGE, `Cannot write ${opts.out}: ${code === 'EEXIST' ? 'it exists' : (code ?? String(err))}.`);
      }
      ctx.out.note(`${entries(lines.length)} written to ${opts.out}`);
    });
  audit
    .command('checkpoint')
    .description(
      "Have the control plane sign the chain's current head, check the signature here, and print or save the checkpoint to keep outside Cairn.",
    )
    .option('--out <file>', 'write it to this file (refuses to overwrite: a kept checkpoint is evidence)')
    .option(
      '--public-key <key>',
      'check the signature with this key (repeatable; default: the key the control plane publishes)',
      collect,
      [],
    )
    .addHelpText('after', examples([['nightly, one file a day', 'cairn audit checkpoint --out "audit-$(date +%F).json"']]))
    .action(async (opts: { out?: string; publicKey: string[] }, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const pinned = pinnedKeys(opts.publicKey);
      const { checkpoint: raw } = await ctx.out.spin('signing a checkpoint', () =>
        cp.post<{ checkpoint: unknown }>(ctx.projectPath('/audit/checkpoints')),
      );
      const checkpoint = parseStored(raw);
      const published = pinned.length > 0 ? [] : (await publishedKeys(cp)).parsed;
      const report = checkSignature('the signed answer', checkpoint, { pinned, saved: [], published });
      if (report.signature !== 'valid') {
        throw new CliError(
          ExitCode.FAILURE,
          `[${ErrorCodes.AUDIT_CHECKPOINT_REJECTED}] The checkpoint the control plane returned does not verify: ${report.detail ?? report.signature}. Nothing was saved.`,
          { code: ErrorCodes.AUDIT_CHECKPOINT_REJECTED, hint: 'Check the key you pinned (`cairn audit keys` shows the published ones).' },
        );
      }
      const key = [...pinned, ...published].find((k) => k.keyId === checkpoint.keyId)!;
      const saved: SavedCheckpoint = { ...checkpoint, publicKey: auditPublicKeyJwk(key) };
      if (opts.out !== undefined) {
        try {
          writeFileSync(opts.out, `${JSON.stringify(saved, null, 2)}\n`, { flag: 'wx' });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          throw new CliError(ExitCode.USAGE, `Cannot write ${opts.out}: ${code === 'EEXIST' ? 'it exists' : (code ?? String(err))}.`, {
            hint: code === 'EEXIST' ? 'Kept checkpoints are evidence: give a new file name (one per day, say).' : undefined,
          });
        }
      }
      ctx.out.data(saved, () => {
        const c = ctx.out.c;
        ctx.out.line(
          `${c.green('✓')} checkpoint signed: project ${checkpoint.projectId} at position ${checkpoint.position} (${entries(checkpoint.entries)}), head ${checkpoint.hash}`,
        );
        ctx.out.line(`  signed at ${checkpoint.signedAt} by key ${checkpoint.keyId} (key ${report.keySource})`);
        ctx.out.line(`  public key ${checkpoint.keyId}: ${saved.publicKey!.x}`);
        if (opts.out !== undefined)
          ctx.out.line(
            `  saved to ${opts.out}; verify later with: cairn audit verify --checkpoint ${opts.out} --public-key ${saved.publicKey!.x}`,
          );
        else ctx.out.line(c.dim('  keep it: pass --out FILE, or -o json > FILE'));
      });
    });
  audit
    .command('keys')
    .description(
      "The public keys that verify this control plane's checkpoints (published at /.well-known/cairn-audit-keys); pin one with --public-key.",
    )
    .addHelpText(
      'after',
      examples([
        ['save the PEM to pin later', "cairn audit keys -o json | jq -r '.keys[0].pem' > audit-key.pem"],
        ['or pin by value', 'cairn audit verify --checkpoint kept.json --public-key <PUBLIC KEY column>'],
      ]),
    )
    .action(async (_opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const { keys } = await publishedKeys(ctx.controlPlane());
      ctx.out.data({ keys }, () => {
        if (keys.length === 0)
          ctx.out.line(ctx.out.c.dim('(none: the control plane has no audit signing key, so it signs no checkpoints)'));
        else
          ctx.out.table(
            ['KEY ID', 'ALGORITHM', 'PUBLIC KEY (base64url)'],
            keys.map((k) => [k.kid, 'Ed25519', k.x]),
          );
      });
    });
  audit
    .command('list')
    .description('List audit entries, newest first.')
    .option('--action <action>', 'exact action or prefix ending in * (run.*)')
    .option('--target-type <type>', 'e.g. run, schedule, api_key')
    .option('--target-id <id>', "e.g. a run ID, for one run's trail")
    .option('--from <time>', 'ISO time, inclusive')
    .option('--to <time>', 'ISO time, exclusive')
    .option('--limit <n>', 'per page', intOption('--limit', 1, 500))
    .addHelpText('after', examples([["one run's trail", 'cairn audit list --target-type run --target-id 3f1c…']]))
    .action(
      async (
        opts: { action?: string; targetType?: string; targetId?: string; from?: string; to?: string; limit?: number },
        command: Command,
      ) => {
        const ctx = new Context(command);
        const cp = ctx.controlPlane();
        const body = await cp.get<{ entries: Array<Record<string, unknown>>; nextCursor: string | null }>(ctx.projectPath('/audit'), {
          action: opts.action,
          targetType: opts.targetType,
          targetId: opts.targetId,
          from: opts.from,
          to: opts.to,
          limit: opts.limit,
        });
        const s = (v: unknown): string => (v === null || v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v));
        ctx.out.data(body, () =>
          ctx.out.table(
            ['TIME', 'ACTOR', 'ACTION', 'TARGET'],
            body.entries.map((e) => [
              s(e['occurredAt']),
              `${s(e['actorType'])}:${s(e['actorId'])}`,
              paintStatus(ctx.out.c, s(e['action'])),
              `${s(e['targetType'])} ${s(e['targetId'])}`,
            ]),
          ),
        );
      },
    );
}
