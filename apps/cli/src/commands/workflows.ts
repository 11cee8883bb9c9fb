// workflows register / list / show / deprecate.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { Context } from '../context.js';
import { CliError, ExitCode } from '../errors.js';
import type { components } from '../gen/control-plane.js';
import { examples } from '../help.js';
import { schemaDigest } from '@cairn/common';
import { defineWorkflow, type DeclaredSchema, type ResolvedFlowControl, type WorkflowDefinition, type WorkflowSchedule } from '@cairn/sdk';
import { loadWorkflowModules } from '../workflow-modules.js';
import { crossingWorkflowName, resolveWorkflowNames } from '../workflow-names.js';
import { resolveRetryPolicy } from '@cairn/sdk/internal';

/** The settings of a registration, as the registry's REST API names them (durations in ms). */
export interface Registration {
  name: string;
  version: string;
  taskQueue: string;
  inputSchemaDigest: string | null;
  outputSchemaDigest: string | null;
  retry: { maximumAttempts: number; initialInterval: number; backoffCoefficient: number; maximumInterval: number } | null;
  timeouts: { run?: number; step?: number };
  schedules: Array<{ cron: string; timezone: string }>;
  flowControl?: ResolvedFlowControl;
}

/**
 * What `--metadata FILE` may override, with the names `defineWorkflow` uses: retry and timeouts
 * field by field, schedules and flowControl as a whole. Schemas come from code only: their
 * digests must match what workers catalogue.
 */
const OVERRIDE_FIELDS = ['retry', 'timeouts', 'schedules', 'flowControl'] as const;

/** Former names of the override file, with what replaced them. */
const REPLACED: Readonly<Record<string, string>> = {
  retryPolicy: 'retryPolicy is now retry: { maximumAttempts, initialInterval, backoffCoefficient, maximumInterval }',
  inputSchema:
    'inputSchema cannot be overridden: schemas come from the workflow module (defineWorkflow input), and only their digests are registered',
  outputSchema:
    'outputSchema cannot be overridden: schemas come from the workflow module (defineWorkflow output), and only their digests are registered',
};

type Overrides = Partial<Record<(typeof OVERRIDE_FIELDS)[number], unknown>>;

type VersionView = components['schemas']['WorkflowVersion'];

/** Reads `--metadata FILE`: `{ "<name>" | "<name>@<version>": { retry, timeouts, schedules, flowControl } }` (YAML or JSON). */
export function loadMetadata(file: string | undefined): Record<string, Overrides> {
  if (!file) return {};
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(ExitCode.USAGE, `Cannot read the metadata file ${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CliError(ExitCode.USAGE, `The metadata file ${file} must map workflow names (or name@version) to their settings.`);
  }
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null) throw new CliError(ExitCode.USAGE, `${file}: the entry "${key}" must be a mapping.`);
    const unknown = Object.keys(value).filter((k) => !(OVERRIDE_FIELDS as readonly string[]).includes(k));
    if (unknown.length > 0) {
      const reasons = unknown.map((k) => REPLACED[k] ?? `unknown field ${k}`);
      throw new CliError(ExitCode.USAGE, `${file}: "${key}": ${reasons.join('; ')}. Allowed: ${OVERRIDE_FIELDS.join(', ')}.`);
    }
  }
  return raw as Record<string, Overrides>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The registration of a workflow definition: its settings from code (schema digests computed from
 * the JSON Schemas its workers catalogue), with `overrides` from the metadata file laid over them
 * (retry and timeouts field by field). The override is checked with the same rules as in code, by
 * defining the workflow again with it, so a bad value fails here naming the file's field.
 */
export function registrationOf(def: WorkflowDefinition, overrides: Overrides, source = 'the metadata file'): Registration {
  let settled: WorkflowDefinition = def;
  if (Object.keys(overrides).length > 0) {
    const retry =
      overrides.retry === undefined ? def.retry : { ...(def.retry ?? {}), ...(isObject(overrides.retry) ? overrides.retry : {}) };
    if (overrides.retry !== undefined && !isObject(overrides.retry))
      throw new CliError(ExitCode.USAGE, `${source}: retry of ${def.name}@${def.version} must be a mapping.`);
    if (overrides.timeouts !== undefined && !isObject(overrides.timeouts)) {
      throw new CliError(ExitCode.USAGE, `${source}: timeouts of ${def.name}@${def.version} must be a mapping of run and step.`);
    }
    const timeouts = {
      ...(def.timeouts.run === undefined ? {} : { run: def.timeouts.run }),
      ...(def.timeouts.step === undefined ? {} : { step: def.timeouts.step }),
      ...(isObject(overrides.timeouts) ? overrides.timeouts : {}),
    };
    const flowControl = overrides.flowControl ?? def.flowControl;
    try {
      settled = defineWorkflow(
        {
          name: def.name,
          version: def.version,
          taskQueue: def.taskQueue,
          ...(retry === undefined ? {} : { retry: retry }),
          timeouts,
          schedules: (overrides.schedules ?? def.schedules) as WorkflowSchedule[],
          ...(flowControl === undefined ? {} : { flowControl }),
        },
        () => undefined,
      );
    } catch (err) {
      throw new CliError(ExitCode.USAGE, `${source}: ${err instanceof Error ? err.message.replace(/^\[CAIRN-\d{4}\] /, '') : String(err)}`);
    }
  }
  const digest = (declared: DeclaredSchema | undefined): string | null =>
    declared?.jsonSchema === undefined ? null : schemaDigest(declared.jsonSchema);
  const retry = settled.retry === undefined ? null : resolveRetryPolicy(settled.retry);
  return {
    name: def.name,
    version: def.version,
    taskQueue: def.taskQueue,
    inputSchemaDigest: digest(def.input),
    outputSchemaDigest: digest(def.output),
    retry:
      retry === null
        ? null
        : {
            maximumAttempts: retry.maximumAttempts,
            initialInterval: retry.initialIntervalMs,
            backoffCoefficient: retry.backoffCoefficient,
            maximumInterval: retry.maximumIntervalMs,
          },
    timeouts: {
      ...(settled.timeouts.run === undefined ? {} : { run: settled.timeouts.run }),
      ...(settled.timeouts.step === undefined ? {} : { step: settled.timeouts.step }),
    },
    schedules: settled.schedules.map((s) => ({ cron: s.cron, timezone: s.timezone })),
    ...(settled.flowControl === undefined ? {} : { flowControl: settled.flowControl }),
  };
}

/** Key-order-insensitive JSON, for comparing what is stored with what would be registered. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** Flow control as the registry answers it (`updatedAt` aside), for comparing with a registration's. */
export type StoredFlowControl = Pick<ResolvedFlowControl, 'concurrency' | 'rateLimit'>;

/**
 * Whether a registration changes the flow control of its workflow name. Flow control belongs to
 * the name, not to the version, so it may change for a registered version; a registration that
 * declares none leaves the stored one alone.
 */
export function changesFlowControl(stored: StoredFlowControl, body: Registration): boolean {
  if (body.flowControl === undefined) return false;
  const pick = (f: StoredFlowControl) => ({ concurrency: f.concurrency ?? null, rateLimit: f.rateLimit ?? null });
  return canonical(pick(stored)) !== canonical(pick(body.flowControl));
}

/** The fields of a stored version that differ from a registration (the registry's names). */
export function differingFields(stored: VersionView, body: Registration): string[] {
  const out: string[] = [];
  if (stored.taskQueue !== body.taskQueue) out.push('taskQueue');
  if ((stored.inputSchemaDigest ?? null) !== body.inputSchemaDigest) out.push('inputSchemaDigest');
  if ((stored.outputSchemaDigest ?? null) !== body.outputSchemaDigest) out.push('outputSchemaDigest');
  if (canonical(stored.retry) !== canonical(body.retry)) out.push('retry');
  if ((stored.timeouts.run ?? null) !== (body.timeouts.run ?? null)) out.push('timeouts.run');
  if ((stored.timeouts.step ?? null) !== (body.timeouts.step ?? null)) out.push('timeouts.step');
  if (canonical(stored.schedules) !== canonical(body.schedules)) out.push('schedules');
  return out;
}

interface PlanItem {
  workflow: string;
  version: string;
  taskQueue: string;
  from: string;
  /** `update`: the version is registered as is, and only what may change for it (its name's flow control) changes. */
  action: 'create' | 'unchanged' | 'update' | 'conflict';
  differingFields: string[];
  /** For `update`: each setting that changes, as stored and as it would be. */
  changes?: { flowControl: { from: StoredFlowControl; to: StoredFlowControl } };
}

export function registerWorkflows(program: Command): void {
  const workflows = program
    .command('workflows')
    .description('The workflow registry: register versions from your code, list, show, deprecate.');
  workflows.addHelpText(
    'after',
    examples([
      ['register what dist/workflows.js exports', 'cairn workflows register dist/workflows.js'],
      ['list', 'cairn workflows list'],
    ]),
  );

  workflows
    .command('register')
    .argument('<modules...>', 'workflow modules to import (built JavaScript)')
    .description(
      'Import the modules, find the workflow definitions they export (defineWorkflow) and register each name@version with the settings ' +
        'written beside it in code: task queue, schema digests (the schemas stay in the data plane), retry, timeouts, schedules and flow ' +
        'control. --metadata overrides retry, timeouts, schedules and flowControl. Versions are immutable: a changed one is refused, ' +
        'naming the fields; flow control belongs to the workflow name and is updated when it changed.',
    )
    .option('--dry-run', 'show what would be registered (and sent), unchanged or refused, and change nothing')
    .option(
      '--metadata <file>',
      'YAML/JSON mapping "name" or "name@version" to overrides of retry, timeouts, schedules and flowControl (defineWorkflow\'s names)',
    )
    .addHelpText(
      'after',
      examples([
        ['see what would change', 'cairn workflows register dist/workflows.js --dry-run'],
        ['override settings per environment', 'cairn workflows register dist/workflows.js --metadata prod.workflows.yaml'],
      ]),
    )
    .action(async (modules: string[], opts: { dryRun?: boolean; metadata?: string }, command: Command) => {
      const ctx = new Context(command);
      const metadata = loadMetadata(opts.metadata);
      const loaded = await ctx.out.spin('loading workflow modules', () => loadWorkflowModules(modules));
      const cp = ctx.controlPlane();
      const plan: Array<PlanItem & { body: Registration }> = [];
      // The stored flow control of each workflow name (one read per name).
      const flows = new Map<string, Promise<StoredFlowControl>>();
      const flowOf = (crossing: string): Promise<StoredFlowControl> => {
        let got = flows.get(crossing);
        if (!got) {
          got = cp
            .get<{ workflow: { flowControl: StoredFlowControl } }>(ctx.projectPath(`/workflows/${encodeURIComponent(crossing)}`))
            .then((r) => ({ concurrency: r.workflow.flowControl.concurrency, rateLimit: r.workflow.flowControl.rateLimit }));
          flows.set(crossing, got);
        }
        return got;
      };
      for (const { definition: def, from } of loaded) {
        const extra = { ...(metadata[def.name] ?? {}), ...(metadata[`${def.name}@${def.version}`] ?? {}) };
        // In strict residency mode the control plane knows the workflow by its keyed digest only.
        const crossing = await crossingWorkflowName(ctx, def.name);
        const body = { ...registrationOf(def, extra, opts.metadata), name: crossing };
        const res = await cp.request<{ workflow: VersionView }>(
          'GET',
          ctx.projectPath(`/workflows/${encodeURIComponent(crossing)}/versions/${encodeURIComponent(def.version)}`),
          { accept: [404] },
        );
        const differing = res.status === 404 ? [] : differingFields(res.body.workflow, body);
        const storedFlow = res.status === 404 || differing.length > 0 ? undefined : await flowOf(crossing);
        const flowChanges = storedFlow !== undefined && changesFlowControl(storedFlow, body);
        plan.push({
          workflow: def.name,
          version: def.version,
          taskQueue: def.taskQueue,
          from,
          action: res.status === 404 ? 'create' : differing.length > 0 ? 'conflict' : flowChanges ? 'update' : 'unchanged',
          differingFields: flowChanges ? ['flowControl'] : differing,
          ...(flowChanges && body.flowControl
            ? {
                changes: {
                  flowControl: {
                    from: storedFlow,
                    to: { concurrency: body.flowControl.concurrency, rateLimit: body.flowControl.rateLimit },
                  },
                },
              }
            : {}),
          body,
        });
      }
      const conflicts = plan.filter((p) => p.action === 'conflict');
      // A dry run shows what would be sent; a registration what was decided.
      const view = (items: typeof plan, dryRun: boolean) => ({
        dryRun,
        workflows: items.map(({ body, ...rest }) => (dryRun ? { ...rest, registration: body } : rest)),
      });
      const print = (items: typeof plan, dryRun: boolean) =>
        ctx.out.data(view(items, dryRun), () => {
          const c = ctx.out.c;
          const word = (a: PlanItem['action']) =>
            a === 'create'
              ? c.green(dryRun ? 'would register' : 'registered')
              : a === 'update'
                ? c.yellow(dryRun ? 'would update' : 'updated')
                : a === 'unchanged'
                  ? c.dim('unchanged')
                  : c.red('refused: changed');
          ctx.out.table(
            ['WORKFLOW', 'VERSION', 'TASK QUEUE', 'ACTION', 'DIFFERS IN', 'FROM'],
            items.map((p) => [p.workflow, p.version, p.taskQueue, word(p.action), p.differingFields.join(', ') || '', p.from]),
          );
          if (!dryRun) return;
          for (const p of items.filter((i) => i.action !== 'unchanged')) {
            ctx.out.line();
            if (p.changes) {
              ctx.out.line(`${c.bold(`${p.workflow}@${p.version}`)} ${c.dim('would change:')}`);
              ctx.out.fields([
                ['flow control now', flowControlText(p.changes.flowControl.from)],
                ['flow control after', flowControlText(p.changes.flowControl.to)],
              ]);
              continue;
            }
            ctx.out.line(`${c.bold(`${p.workflow}@${p.version}`)} ${c.dim('would send:')}`);
            ctx.out.fields(settingsLines(p.body));
          }
        });
      if (opts.dryRun) {
        print(plan, true);
        if (conflicts.length > 0) process.exitCode = ExitCode.CONFLICT;
        return;
      }
      if (conflicts.length > 0) {
        print(plan, false);
        throw new CliError(
          ExitCode.CONFLICT,
          `${conflicts.map((p) => `${p.workflow}@${p.version}`).join(', ')} ${conflicts.length === 1 ? 'is' : 'are'} registered with different content (${[
            ...new Set(conflicts.flatMap((p) => p.differingFields)),
          ].join(', ')}); nothing was registered.`,
          { hint: 'Registered versions are immutable: give the changed workflow a new version in defineWorkflow.' },
        );
      }
      for (const item of plan) {
        if (item.action !== 'create' && item.action !== 'update') continue;
        // The registry answers a registered version with the same content as it is, and applies the flow control sent with it.
        await ctx.out.spin(`${item.action === 'create' ? 'registering' : 'updating'} ${item.workflow}@${item.version}`, () =>
          cp.post(ctx.projectPath('/workflows'), item.body),
        );
      }
      print(plan, false);
    });

  workflows
    .command('list')
    .description('List the registered workflows and their versions, newest first.')
    .option('--name <name>', 'only this workflow')
    .option('--include-deprecated', 'show deprecated versions too')
    .addHelpText('after', examples([['everything, deprecated too', 'cairn workflows list --include-deprecated']]))
    .action(async (opts: { name?: string; includeDeprecated?: boolean }, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const name = opts.name === undefined ? undefined : await crossingWorkflowName(ctx, opts.name);
      const listed = await ctx.out.spin('listing workflows', () =>
        cp.get<{
          workflows: Array<{
            name: string;
            versions: Array<{ version: string; taskQueue: string; deprecated: boolean; registeredAt: string }>;
          }>;
        }>(ctx.projectPath('/workflows'), { name, includeDeprecated: opts.includeDeprecated ? 'true' : undefined }),
      );
      const names = await resolveWorkflowNames(
        ctx,
        listed.workflows.map((w) => w.name),
      );
      const body = { ...listed, workflows: listed.workflows.map((w) => ({ ...w, name: names.get(w.name) ?? w.name })) };
      ctx.out.data(body, () =>
        ctx.out.table(
          ['WORKFLOW', 'VERSION', 'TASK QUEUE', 'STATE', 'REGISTERED'],
          body.workflows.flatMap((w) =>
            w.versions.map((v) => [
              w.name,
              v.version,
              v.taskQueue,
              v.deprecated ? ctx.out.c.yellow('deprecated') : 'active',
              v.registeredAt,
            ]),
          ),
        ),
      );
    });

  workflows
    .command('show')
    .argument('<name>', 'workflow name')
    .argument('[version]', 'one version (default: every version)')
    .description('Show a workflow with its versions, or one version in full.')
    .addHelpText('after', examples([['one version with its settings', 'cairn workflows show order-refund 2 -o yaml']]))
    .action(async (given: string, version: string | undefined, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const name = await crossingWorkflowName(ctx, given);
      const resolved = name === given ? given : ((await resolveWorkflowNames(ctx, [name])).get(name) ?? given);
      if (version) {
        const got = await cp.get<{ workflow: VersionView & Record<string, unknown> }>(
          ctx.projectPath(`/workflows/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`),
        );
        const body = { workflow: { ...got.workflow, name: resolved } };
        const w = body.workflow;
        ctx.out.data(body, () =>
          ctx.out.fields([
            ['workflow', `${w.name}@${w.version}`],
            ['task queue', w.taskQueue],
            ['deprecated', w.deprecated],
            ['source', w.source],
            ['registered', w.registeredAt],
            ...settingsLines({
              inputSchemaDigest: w.inputSchemaDigest,
              outputSchemaDigest: w.outputSchemaDigest,
              retry: w.retry,
              timeouts: {
                ...(w.timeouts.run === null ? {} : { run: w.timeouts.run }),
                ...(w.timeouts.step === null ? {} : { step: w.timeouts.step }),
              },
              schedules: w.schedules,
            }),
          ]),
        );
        return;
      }
      const got = await cp.get<{ workflow: { name: string; versions: VersionView[]; flowControl: unknown } }>(
        ctx.projectPath(`/workflows/${encodeURIComponent(name)}`),
      );
      const body = { workflow: { ...got.workflow, name: resolved } };
      ctx.out.data(body, () => {
        ctx.out.line(`${ctx.out.c.bold(body.workflow.name)}  flow control: ${JSON.stringify(body.workflow.flowControl)}`);
        ctx.out.table(
          ['VERSION', 'TASK QUEUE', 'STATE', 'SOURCE', 'REGISTERED'],
          body.workflow.versions.map((v) => [v.version, v.taskQueue, v.deprecated ? 'deprecated' : 'active', v.source, v.registeredAt]),
        );
      });
    });

  workflows
    .command('deprecate')
    .argument('<name>', 'workflow name')
    .argument('<version>', 'version to deprecate')
    .description('Deprecate a version: new runs of it are refused; runs already started go on.')
    .addHelpText('after', examples([['retire version 1', 'cairn workflows deprecate order-refund 1']]))
    .action(async (name: string, version: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const crossing = await crossingWorkflowName(ctx, name);
      const body = await cp.post<components['schemas']['WorkflowVersionAnswer']>(
        ctx.projectPath(`/workflows/${encodeURIComponent(crossing)}/versions/${encodeURIComponent(version)}/deprecate`),
      );
      ctx.out.data(body, () => ctx.out.line(`${ctx.out.c.green('✓')} ${name}@${version} is deprecated: new runs of it are refused`));
    });
}

/** A registration's settings as `cairn workflows show` and a dry run print them. */
function settingsLines(
  r: Pick<Registration, 'inputSchemaDigest' | 'outputSchemaDigest' | 'retry' | 'timeouts' | 'schedules'> & {
    flowControl?: ResolvedFlowControl;
  },
): Array<[string, string | number | null]> {
  const lines: Array<[string, string | number | null]> = [
    [
      'retry',
      r.retry === null
        ? null
        : `maximumAttempts ${r.retry.maximumAttempts === 0 ? 'unlimited' : r.retry.maximumAttempts}, initialInterval ${r.retry.initialInterval} ms, ` +
          `backoffCoefficient ${r.retry.backoffCoefficient}, maximumInterval ${r.retry.maximumInterval} ms`,
    ],
    ['run timeout', r.timeouts.run === undefined ? null : `${r.timeouts.run} ms`],
    ['step timeout', r.timeouts.step === undefined ? null : `${r.timeouts.step} ms`],
    ['schedules', r.schedules.length === 0 ? null : r.schedules.map((s) => `${s.cron} (${s.timezone})`).join('; ')],
    ['input schema digest', r.inputSchemaDigest],
    ['output schema digest', r.outputSchemaDigest],
  ];
  if (r.flowControl) lines.push(['flow control', flowControlText(r.flowControl)]);
  return lines;
}

/** Flow control in words: each limit, or none. */
function flowControlText(f: StoredFlowControl): string {
  const parts: string[] = [];
  if (f.concurrency) parts.push(`concurrency ${f.concurrency.limit}${f.concurrency.perKey ? ' per key' : ''}`);
  if (f.rateLimit) parts.push(`rate limit ${f.rateLimit.limit} per ${f.rateLimit.periodMs} ms${f.rateLimit.perKey ? ' per key' : ''}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}
