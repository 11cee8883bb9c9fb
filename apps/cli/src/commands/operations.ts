// schedules, usage, audit.
import type { Command } from 'commander';
import { Context, intOption, readJsonInput } from '../context.js';
import { CliError, ExitCode } from '../errors.js';
import type { components } from '../gen/control-plane.js';
import { examples } from '../help.js';
import { paintStatus } from '../output.js';

type ScheduleView = components['schemas']['Schedule'];

const OVERLAP = ['skip', 'buffer_one', 'allow_all', 'cancel_previous'];

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
          workflowName: opts.workflow,
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
      const body = await ctx.out.spin('listing schedules', () =>
        cp.get<components['schemas']['ScheduleList']>(ctx.projectPath('/schedules'), {
          limit: opts.limit,
          cursor: opts.cursor,
        }),
      );
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
      const body = await cp.get<{
        schedule: ScheduleView;
        nextFireTimes: string[];
        recentFirings: Array<{ tickAt: string; runId: string | null; outcome?: string }>;
      }>(ctx.projectPath(`/schedules/${encodeURIComponent(schedule)}`));
      ctx.out.data(body, () => {
        const s = body.schedule;
        ctx.out.fields([
          ['schedule', `${s.name ?? '-'} (${s.id})`],
          ['workflow', `${s.workflowName}${s.workflowVersion ? `@${s.workflowVersion}` : ''}`],
          ['cron', `${s.cron} ${s.timeZone}`],
          ['overlap', s.overlapPolicy],
          ['state', s.paused ? 'paused' : 'active'],
          ['input', s.inputPayloadId],
          ['next', body.nextFireTimes.slice(0, 3).join(', ')],
        ]);
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
      const res = await cp.post<{ firing: { runId: string | null; outcome?: string } & Record<string, unknown> }>(
        ctx.projectPath(`/schedules/${encodeURIComponent(schedule)}/trigger`),
        opts.overlapPolicy ? { overlapPolicy: opts.overlapPolicy } : {},
      );
      ctx.out.data(res, () =>
        ctx.out.line(`${ctx.out.c.green('✓')} triggered ${schedule}${res.firing.runId ? `: run ${res.firing.runId}` : ''}`),
      );
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
        cp.get<{ days: Array<Record<string, unknown>>; totals: Record<string, unknown> } & Record<string, unknown>>(
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
            String(d['day'] as string),
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

  const audit = program.command('audit').description("The project's tamper-evident audit log.");
  audit.addHelpText('after', examples([['verify the chain', 'cairn audit verify']]));
  audit
    .command('verify')
    .description('Seal pending entries and verify the hash chain; exit 0 when intact, 1 when broken (naming the first bad position).')
    .addHelpText('after', examples([['in a nightly job, keep the head', 'cairn audit verify -o json | jq -r .head.hash']]))
    .action(async (_opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const res = await ctx.out.spin('verifying the audit chain', () =>
        cp.post<{
          ok: boolean;
          entries: number;
          head: { position: number; hash: string } | null;
          broken?: { position: number; entryId: string | null; reason: string; detail?: string };
        }>(ctx.projectPath('/audit/verify')),
      );
      ctx.out.data(res, () => {
        if (res.ok)
          ctx.out.line(
            `${ctx.out.c.green('✓')} audit chain intact: ${res.entries} entries, head ${res.head ? `${res.head.position} ${res.head.hash}` : '-'}`,
          );
        else
          ctx.out.line(
            `${ctx.out.c.red('✗')} audit chain broken at position ${res.broken?.position} (${res.broken?.reason}${res.broken?.entryId ? `, entry ${res.broken.entryId}` : ''}); ${res.entries} entries verified before it`,
          );
      });
      if (!res.ok) process.exitCode = ExitCode.FAILURE;
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
