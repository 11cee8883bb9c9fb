// workflows register / list / show / deprecate.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { Context } from '../context.js';
import { CliError, ExitCode } from '../errors.js';
import { examples } from '../help.js';
import { loadWorkflowModules } from '../workflow-modules.js';

/** What the registry route accepts beyond name, version and task queue. */
export interface RegistrationMetadata {
  inputSchema?: Record<string, unknown> | null;
  outputSchema?: Record<string, unknown> | null;
  retryPolicy?: { maxAttempts: number; initialIntervalMs?: number; maxIntervalMs?: number; backoffCoefficient?: number } | null;
  timeouts?: { runTimeoutMs?: number; stepTimeoutMs?: number };
  schedules?: Array<{ cron: string; timezone?: string }>;
  flowControl?: unknown;
}

const METADATA_FIELDS = ['inputSchema', 'outputSchema', 'retryPolicy', 'timeouts', 'schedules', 'flowControl'] as const;

interface VersionView {
  name: string;
  version: string;
  taskQueue: string;
  inputSchema: unknown;
  outputSchema: unknown;
  retryPolicy: unknown;
  timeouts: { runTimeoutMs: number | null; stepTimeoutMs: number | null };
  schedules: unknown;
  source?: string;
  registeredAt?: string;
  deprecated?: boolean;
}

/** Reads `--metadata FILE`: `{ "<name>" | "<name>@<version>": { inputSchema, retryPolicy, … } }` (YAML or JSON). */
function loadMetadata(file: string | undefined): Record<string, RegistrationMetadata> {
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
    const unknown = Object.keys(value).filter((k) => !(METADATA_FIELDS as readonly string[]).includes(k));
    if (unknown.length > 0) {
      throw new CliError(
        ExitCode.USAGE,
        `${file}: "${key}" has unknown field(s) ${unknown.join(', ')}; allowed: ${METADATA_FIELDS.join(', ')}.`,
      );
    }
  }
  return raw as Record<string, RegistrationMetadata>;
}

/** The registration body, with the registry's defaults filled in so it compares with a stored version. */
export function registrationBody(
  def: { name: string; version: string; taskQueue: string } & Partial<RegistrationMetadata>,
  extra: RegistrationMetadata,
): Record<string, unknown> {
  const pick = <K extends (typeof METADATA_FIELDS)[number]>(k: K): RegistrationMetadata[K] => (extra[k] !== undefined ? extra[k] : def[k]);
  const retry = pick('retryPolicy');
  const timeouts = pick('timeouts') ?? {};
  const body: Record<string, unknown> = {
    name: def.name,
    version: def.version,
    taskQueue: def.taskQueue,
    inputSchema: pick('inputSchema') ?? null,
    outputSchema: pick('outputSchema') ?? null,
    retryPolicy: retry
      ? {
          maxAttempts: retry.maxAttempts,
          initialIntervalMs: retry.initialIntervalMs ?? 1000,
          maxIntervalMs: retry.maxIntervalMs ?? 60_000,
          backoffCoefficient: retry.backoffCoefficient ?? 2,
        }
      : null,
    timeouts: {
      ...(timeouts.runTimeoutMs !== undefined ? { runTimeoutMs: timeouts.runTimeoutMs } : {}),
      ...(timeouts.stepTimeoutMs !== undefined ? { stepTimeoutMs: timeouts.stepTimeoutMs } : {}),
    },
    schedules: (pick('schedules') ?? []).map((s) => ({ cron: s.cron, timezone: s.timezone ?? 'UTC' })),
  };
  const flow = pick('flowControl');
  if (flow !== undefined) body['flowControl'] = flow;
  return body;
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

/** The fields of a stored version that differ from a registration body (the registry's names). */
export function differingFields(stored: VersionView, body: Record<string, unknown>): string[] {
  const out: string[] = [];
  const timeouts = body['timeouts'] as { runTimeoutMs?: number; stepTimeoutMs?: number };
  if (stored.taskQueue !== body['taskQueue']) out.push('taskQueue');
  if (canonical(stored.inputSchema) !== canonical(body['inputSchema'])) out.push('inputSchema');
  if (canonical(stored.outputSchema) !== canonical(body['outputSchema'])) out.push('outputSchema');
  if (canonical(stored.retryPolicy) !== canonical(body['retryPolicy'])) out.push('retryPolicy');
  if ((stored.timeouts.runTimeoutMs ?? null) !== (timeouts.runTimeoutMs ?? null)) out.push('timeouts.runTimeoutMs');
  if ((stored.timeouts.stepTimeoutMs ?? null) !== (timeouts.stepTimeoutMs ?? null)) out.push('timeouts.stepTimeoutMs');
  if (canonical(stored.schedules) !== canonical(body['schedules'])) out.push('schedules');
  return out;
}

interface PlanItem {
  workflow: string;
  version: string;
  taskQueue: string;
  from: string;
  action: 'create' | 'unchanged' | 'conflict';
  differingFields: string[];
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
      'Import the modules, find the workflow definitions they export (defineWorkflow) and register each name@version with its task queue ' +
        '(plus schemas, retry policy, timeouts, schedules and flow control from --metadata). Versions are immutable: a changed one is refused.',
    )
    .option('--dry-run', 'show what would be registered, unchanged or refused, and change nothing')
    .option(
      '--metadata <file>',
      'YAML/JSON mapping "name" or "name@version" to inputSchema, outputSchema, retryPolicy, timeouts, schedules, flowControl',
    )
    .addHelpText(
      'after',
      examples([
        ['see what would change', 'cairn workflows register dist/workflows.js --dry-run'],
        ['register with retry policies and schedules', 'cairn workflows register dist/workflows.js --metadata cairn.workflows.yaml'],
      ]),
    )
    .action(async (modules: string[], opts: { dryRun?: boolean; metadata?: string }, command: Command) => {
      const ctx = new Context(command);
      const metadata = loadMetadata(opts.metadata);
      const loaded = await ctx.out.spin('loading workflow modules', () => loadWorkflowModules(modules));
      const cp = ctx.controlPlane();
      const plan: Array<PlanItem & { body: Record<string, unknown> }> = [];
      for (const { definition: def, from } of loaded) {
        const extra = { ...(metadata[def.name] ?? {}), ...(metadata[`${def.name}@${def.version}`] ?? {}) };
        const body = registrationBody({ name: def.name, version: def.version, taskQueue: def.taskQueue }, extra);
        const res = await cp.request<{ workflow: VersionView }>(
          'GET',
          ctx.projectPath(`/workflows/${encodeURIComponent(def.name)}/versions/${encodeURIComponent(def.version)}`),
          { accept: [404] },
        );
        const differing = res.status === 404 ? [] : differingFields(res.body.workflow, body);
        plan.push({
          workflow: def.name,
          version: def.version,
          taskQueue: def.taskQueue,
          from,
          action: res.status === 404 ? 'create' : differing.length === 0 ? 'unchanged' : 'conflict',
          differingFields: differing,
          body,
        });
      }
      const conflicts = plan.filter((p) => p.action === 'conflict');
      const view = (items: typeof plan, dryRun: boolean) => ({
        dryRun,
        workflows: items.map(({ body: _body, ...rest }) => rest),
      });
      const print = (items: typeof plan, dryRun: boolean) =>
        ctx.out.data(view(items, dryRun), () => {
          const c = ctx.out.c;
          const word = (a: PlanItem['action']) =>
            a === 'create'
              ? c.green(dryRun ? 'would register' : 'registered')
              : a === 'unchanged'
                ? c.dim('unchanged')
                : c.red('refused: changed');
          ctx.out.table(
            ['WORKFLOW', 'VERSION', 'TASK QUEUE', 'ACTION', 'DIFFERS IN', 'FROM'],
            items.map((p) => [p.workflow, p.version, p.taskQueue, word(p.action), p.differingFields.join(', ') || '', p.from]),
          );
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
        if (item.action !== 'create') continue;
        await ctx.out.spin(`registering ${item.workflow}@${item.version}`, () => cp.post(ctx.projectPath('/workflows'), item.body));
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
      const body = await ctx.out.spin('listing workflows', () =>
        cp.get<{
          workflows: Array<{
            name: string;
            versions: Array<{ version: string; taskQueue: string; deprecated: boolean; registeredAt: string }>;
          }>;
        }>(ctx.projectPath('/workflows'), { name: opts.name, includeDeprecated: opts.includeDeprecated ? 'true' : undefined }),
      );
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
    .addHelpText('after', examples([['one version with its schemas', 'cairn workflows show order-refund 2 -o yaml']]))
    .action(async (name: string, version: string | undefined, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      if (version) {
        const body = await cp.get<{ workflow: VersionView & Record<string, unknown> }>(
          ctx.projectPath(`/workflows/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`),
        );
        const w = body.workflow;
        ctx.out.data(body, () =>
          ctx.out.fields([
            ['workflow', `${w.name}@${w.version}`],
            ['task queue', w.taskQueue],
            ['deprecated', w.deprecated ?? false],
            ['source', w.source ?? null],
            ['registered', w.registeredAt ?? null],
            ['retry policy', w.retryPolicy ? JSON.stringify(w.retryPolicy) : null],
            ['run timeout', w.timeouts.runTimeoutMs],
            ['step timeout', w.timeouts.stepTimeoutMs],
            ['schedules', JSON.stringify(w.schedules)],
            ['input schema', w.inputSchema ? JSON.stringify(w.inputSchema) : null],
            ['output schema', w.outputSchema ? JSON.stringify(w.outputSchema) : null],
          ]),
        );
        return;
      }
      const body = await cp.get<{ workflow: { name: string; versions: VersionView[]; flowControl: unknown } }>(
        ctx.projectPath(`/workflows/${encodeURIComponent(name)}`),
      );
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
      const body = await cp.post<{ workflow: VersionView }>(
        ctx.projectPath(`/workflows/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/deprecate`),
      );
      ctx.out.data(body, () => ctx.out.line(`${ctx.out.c.green('✓')} ${name}@${version} is deprecated: new runs of it are refused`));
    });
}
