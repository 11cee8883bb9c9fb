// residency report, replay, doctor.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Context } from '../context.js';
import { CliError, ExitCode } from '../errors.js';
import { examples } from '../help.js';
import { HttpClient, unreachable } from '../http.js';
import { Hasher } from '@cairn/worker';
import { replayRun, journalNeedsKey, type JournalDocument, type ReplayResult } from '@cairn/worker/replay';
import { buildResidencyReport, renderMarkdown } from '../residency.js';
import { loadWorkflowModules } from '../workflow-modules.js';

/** One line of `cairn doctor`. */
export interface Check {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
  /** Warnings do not fail the command. */
  readonly warning?: boolean;
}

/** How far apart two clocks may be before doctor warns: leases, timers and schedules depend on time. */
const MAX_SKEW_MS = 2_000;

async function probe(
  kind: 'control plane' | 'gateway',
  baseUrl: string,
  checks: Check[],
): Promise<{ reachable: boolean; skewMs: number | undefined }> {
  const sentAt = Date.now();
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(5_000) });
  } catch (err) {
    const e = unreachable(kind, baseUrl, err);
    checks.push({ check: `${kind} reachable`, ok: false, detail: `${e.message} ${e.hint ?? ''}`.trim() });
    return { reachable: false, skewMs: undefined };
  }
  const receivedAt = Date.now();
  await res.body?.cancel();
  checks.push({
    check: `${kind} reachable`,
    ok: res.status === 200,
    detail: `${baseUrl}/healthz answered ${res.status} in ${receivedAt - sentAt} ms`,
  });
  const ready = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
  await ready?.body?.cancel();
  checks.push({
    check: `${kind} ready`,
    ok: ready?.status === 200,
    detail: ready ? `${baseUrl}/readyz answered ${ready.status}` : `${baseUrl}/readyz did not answer`,
  });
  // The Date header has a resolution of one second; compare with the middle of the round trip.
  const date = res.headers.get('date');
  let skewMs: number | undefined;
  if (date) {
    skewMs = Date.parse(date) + 500 - (sentAt + receivedAt) / 2;
    const tolerance = MAX_SKEW_MS + (receivedAt - sentAt) / 2;
    checks.push({
      check: `${kind} clock`,
      ok: Math.abs(skewMs) <= tolerance,
      warning: Math.abs(skewMs) > tolerance,
      detail: `${Math.abs(skewMs) <= 1000 ? 'within a second of' : `${Math.round(skewMs / 1000)} s off from`} this machine's clock`,
    });
  }
  return { reachable: true, skewMs };
}

function podReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

async function kubernetesChecks(
  opts: { kubeconfig?: string; context?: string; namespace: string; release: string; credentialSecret?: string },
  checks: Check[],
): Promise<void> {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(opts.kubeconfig!);
    if (opts.context) kc.setCurrentContext(opts.context);
  } catch (err) {
    checks.push({ check: 'kubeconfig', ok: false, detail: `cannot load ${opts.kubeconfig}: ${(err as Error).message}` });
    return;
  }
  const cluster = kc.getCurrentCluster();
  const api = kc.makeApiClient(CoreV1Api);
  const where = `${cluster?.server ?? '?'} namespace ${opts.namespace}`;
  let pods: V1Pod[];
  try {
    pods = (await api.listNamespacedPod({ namespace: opts.namespace, labelSelector: `app.kubernetes.io/instance=${opts.release}` })).items;
  } catch (err) {
    checks.push({ check: 'kubernetes API', ok: false, detail: `listing pods in ${where} failed: ${kubeError(err)}` });
    return;
  }
  checks.push({ check: 'kubernetes API', ok: true, detail: `${where}: ${pods.length} pod(s) of release ${opts.release}` });
  for (const component of ['gateway', 'worker']) {
    const mine = pods.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] === component);
    const ready = mine.filter(podReady);
    const notReady = mine.filter((p) => !podReady(p)).map((p) => `${p.metadata?.name ?? '?'} (${p.status?.phase ?? 'unknown'})`);
    const restarts = mine.reduce((n, p) => n + (p.status?.containerStatuses ?? []).reduce((m, c) => m + c.restartCount, 0), 0);
    checks.push({
      check: `${component} pods`,
      ok: mine.length > 0 && ready.length > 0,
      detail:
        mine.length === 0
          ? `no ${component} pod with app.kubernetes.io/instance=${opts.release} in ${opts.namespace}: is the release installed there (--release, --namespace)?`
          : `${ready.length}/${mine.length} ready${notReady.length > 0 ? `; not ready: ${notReady.join(', ')}` : ''}${restarts > 0 ? `; ${restarts} restart(s)` : ''}`,
    });
  }
  // The credential Secret: the one the pods' CAIRN_DP_CREDENTIAL refers to, else the chart's default name.
  let ref: { name: string; key: string } | undefined;
  for (const pod of pods) {
    for (const c of pod.spec?.containers ?? []) {
      const env = (c.env ?? []).find((e) => e.name === 'CAIRN_DP_CREDENTIAL');
      const s = env?.valueFrom?.secretKeyRef;
      if (s?.name) ref ??= { name: s.name, key: s.key };
    }
  }
  const fullname = opts.release.includes('cairn-data-plane') ? opts.release : `${opts.release}-cairn-data-plane`;
  ref = opts.credentialSecret
    ? { name: opts.credentialSecret, key: ref?.key ?? 'credential' }
    : (ref ?? { name: `${fullname}-credential`, key: 'credential' });
  try {
    const secret = await api.readNamespacedSecret({ name: ref.name, namespace: opts.namespace });
    const value = secret.data?.[ref.key];
    const decoded = value ? Buffer.from(value, 'base64').toString('utf8') : '';
    checks.push({
      check: 'credential secret',
      ok: decoded !== '',
      detail:
        decoded === ''
          ? `Secret ${ref.name} has no key "${ref.key}": put the data plane's credential there (\`cairn data-planes create\` prints it once)`
          : `Secret ${ref.name} holds "${ref.key}"${decoded.startsWith('cdp_') ? ' (a data-plane credential)' : ' (not starting with cdp_: check it is the credential the control plane issued)'}`,
      ...(decoded !== '' && !decoded.startsWith('cdp_') ? { warning: true } : {}),
    });
  } catch (err) {
    checks.push({
      check: 'credential secret',
      ok: false,
      detail: `reading Secret ${ref.name} in ${opts.namespace} failed: ${kubeError(err)}`,
    });
  }
}

function kubeError(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string; cause?: { code?: string } };
  if (typeof e.code === 'number') {
    let reason: string;
    try {
      const body = (typeof e.body === 'string' ? JSON.parse(e.body) : e.body) as { message?: string } | undefined;
      reason = body?.message ?? '';
    } catch {
      reason = '';
    }
    return `HTTP ${e.code}${reason ? `: ${reason}` : ''}${e.code === 403 ? ' (the kubeconfig user needs get/list on pods and get on secrets)' : ''}`;
  }
  return e.cause?.code ?? e.message ?? String(err);
}

export function registerTools(program: Command): void {
  const residency = program.command('residency').description('The boundary contract between the planes, for compliance review.');
  residency.addHelpText('after', examples([['as Markdown for a review', 'cairn residency report > boundary.md']]));
  residency
    .command('report')
    .description(
      'Render every field that crosses from the data plane to the control plane, with its residency class, bounds and what it carries, from the proto descriptors. Markdown by default; --output json/yaml for tools.',
    )
    .option('--format <format>', 'markdown or json (same as --output json)', 'markdown')
    .addHelpText(
      'after',
      examples([
        ['Markdown', 'cairn residency report'],
        ['JSON for a policy check', 'cairn residency report -o json | jq .totals'],
      ]),
    )
    .action((opts: { format: string }, command: Command) => {
      const ctx = new Context(command);
      if (!['markdown', 'json'].includes(opts.format))
        throw new CliError(ExitCode.USAGE, `Unknown format "${opts.format}": use markdown or json.`);
      const report = buildResidencyReport();
      const format = opts.format === 'json' ? 'json' : ctx.out.format;
      if (format === 'json') ctx.out.line(JSON.stringify(report, null, 2));
      else if (format === 'yaml') ctx.out.data(report, () => undefined);
      else ctx.out.write(renderMarkdown(report) + '\n');
      if (report.problems.length > 0) process.exitCode = ExitCode.FAILURE;
    });

  program
    .command('replay')
    .argument('<run>', 'run ID')
    .requiredOption('-m, --module <paths...>', 'workflow module(s) with the code to check (built JavaScript)')
    .option('--hmac-key-file <path>', "file holding the data plane's CAIRN_DP_HMAC_KEY (base64); or set CAIRN_DP_HMAC_KEY")
    .option('--timeout <seconds>', 'give up after this long', '120')
    .description(
      "Fetch a run's journal from the gateway and replay it against local workflow code, without executing any step. " +
        'Exit 0 when the code matches the journal, 10 with the first differing call (position, expected and actual) when it does not, ' +
        '3 when this environment lacks what the code needs to reach a journaled call (its model configuration, the HMAC key). ' +
        'Run it in CI before rolling out a change to a workflow version with runs in flight.',
    )
    .addHelpText(
      'after',
      examples([
        ['check a running refund against the new build', 'cairn replay 3f1c… -m dist/workflows.js'],
        [
          'in CI, for the last 20 runs',
          "for r in $(cairn runs list --workflow order-refund --limit 20 -o json | jq -r '.runs[].runId'); do cairn replay $r -m dist/workflows.js || exit 1; done",
        ],
      ]),
    )
    .action(async (id: string, opts: { module: string[]; hmacKeyFile?: string; timeout: string }, command: Command) => {
      const ctx = new Context(command);
      const gw = ctx.gateway();
      const [meta, doc] = await ctx.out.spin(`fetching the journal of run ${id}`, () =>
        Promise.all([
          gw.get<{ run: { runId: string; workflow: string; version: string | null; status: string } }>(
            `/v1/runs/${encodeURIComponent(id)}`,
          ),
          gw.get<JournalDocument>(`/v1/runs/${encodeURIComponent(id)}/journal`),
        ]),
      );
      const loaded = await loadWorkflowModules(opts.module);
      const version = meta.run.version;
      const match = loaded.find((l) => l.definition.name === meta.run.workflow && l.definition.version === version);
      if (!match) {
        const have = loaded.filter((l) => l.definition.name === meta.run.workflow).map((l) => l.definition.version);
        throw new CliError(
          ExitCode.USAGE,
          `Run ${id} is on ${meta.run.workflow}@${version ?? '?'}, which ${opts.module.join(', ')} do${opts.module.length === 1 ? 'es' : ''} not define${
            have.length > 0 ? ` (they define version${have.length > 1 ? 's' : ''} ${have.join(', ')})` : ''
          }.`,
          { hint: 'Keep the code of every version with runs in flight, and point --module at the build that has it.' },
        );
      }
      let key: Hasher | undefined;
      const keyText = opts.hmacKeyFile ? readFileSync(opts.hmacKeyFile, 'utf8').trim() : process.env['CAIRN_DP_HMAC_KEY'];
      if (keyText) {
        // One base64 key, or the data plane's ring during an HMAC key rotation (id:base64key,…).
        try {
          key = Hasher.parse(keyText);
        } catch (err) {
          throw new CliError(ExitCode.USAGE, err instanceof Error ? err.message.replace(/^\[CAIRN-\d+\] /, '') : String(err));
        }
      } else if (journalNeedsKey(doc)) {
        throw new CliError(
          ExitCode.CONFIG,
          `The journal of run ${id} has calls with keys (or ctx.parallel branches); their digests need the data plane's HMAC key.`,
          {
            hint: "Give CAIRN_DP_HMAC_KEY (the workers' value) in the environment or with --hmac-key-file.",
          },
        );
      }
      const timeoutMs = Number(opts.timeout) * 1000;
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
        throw new CliError(ExitCode.USAGE, `--timeout must be a number of seconds, got "${opts.timeout}".`);
      let timer: NodeJS.Timeout | undefined;
      const result = await ctx.out.spin(`replaying ${doc.entries.length} journal entries`, () =>
        Promise.race([
          replayRun(doc, match.definition, key),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new CliError(ExitCode.FAILURE, `The replay of run ${id} did not finish within ${opts.timeout} s.`)),
              timeoutMs,
            );
            timer.unref();
          }),
        ]).finally(() => clearTimeout(timer)),
      );
      const seedWithheld = doc.seed === null;
      const view = {
        runId: id,
        workflow: meta.run.workflow,
        version,
        runStatus: meta.run.status,
        module: match.from,
        seedWithheld,
        ...result,
      };
      ctx.out.data(view, () => {
        printReplay(ctx, view);
        if (seedWithheld)
          ctx.out.note(
            ctx.out.c.dim(
              "note: the gateway served the journal without the run's seed (this token lacks the admin scope), so ctx.random() and ctx.uuid() " +
                'drew other values than the run did; replay with an admin-scoped token for an exact replay',
            ),
          );
      });
      if (!result.ok) process.exitCode = result.outcome === 'unreplayable' ? ExitCode.CONFIG : ExitCode.NON_DETERMINISM;
    });

  program
    .command('doctor')
    .description(
      'Check the control plane and the gateway (reachable, ready, key and token accepted, clock skew); with a kubeconfig, the data-plane release: pods, readiness and the credential Secret. Exit 12 when a check fails.',
    )
    .option('--kubeconfig <path>', "kubeconfig of the data plane's cluster (default: $KUBECONFIG when set)")
    .option('--context <name>', 'kubeconfig context')
    .option('-n, --namespace <ns>', 'namespace of the data-plane release', 'cairn')
    .option('--release <name>', 'Helm release name of the data plane', 'cairn')
    .option('--credential-secret <name>', 'Secret holding the credential (default: the one the pods use)')
    .addHelpText(
      'after',
      examples([
        ['servers only', 'cairn doctor'],
        ['and the cluster', 'cairn doctor --kubeconfig ~/.kube/prod --namespace cairn --release cairn'],
      ]),
    )
    .action(
      async (
        opts: { kubeconfig?: string; context?: string; namespace: string; release: string; credentialSecret?: string },
        command: Command,
      ) => {
        const ctx = new Context(command);
        const s = ctx.settings;
        const checks: Check[] = [];
        await ctx.out.spin('checking', async () => {
          if (s.controlPlaneUrl) {
            const cpUrl = new HttpClient('control plane', s.controlPlaneUrl, undefined).baseUrl;
            const { reachable } = await probe('control plane', cpUrl, checks);
            if (reachable) {
              const doc = await fetch(`${cpUrl}/openapi.json`, { signal: AbortSignal.timeout(5_000) })
                .then((r) => (r.ok ? (r.json() as Promise<{ info?: { version?: string; title?: string } }>) : undefined))
                .catch(() => undefined);
              checks.push({
                check: 'control plane API version',
                ok: doc?.info?.version !== undefined,
                detail: doc?.info?.version ? `${doc.info.title ?? 'API'} version ${doc.info.version}` : 'no /openapi.json',
              });
              if (s.apiKey) {
                try {
                  const who = await ctx.controlPlane().get<{ keyId: string; role: string; projectId: string | null }>('/v1/whoami');
                  checks.push({
                    check: 'API key',
                    ok: true,
                    detail: `key ${who.keyId}, role ${who.role}${who.projectId ? '' : ', organisation-wide'}`,
                  });
                  if (s.project) {
                    const p = await ctx
                      .controlPlane()
                      .get<{ project: { id: string; name: string } }>(ctx.projectPath())
                      .then(
                        (b) => b.project,
                        (err: unknown) => err as CliError,
                      );
                    checks.push(
                      p instanceof Error
                        ? { check: 'project', ok: false, detail: p.message }
                        : { check: 'project', ok: true, detail: `${p.name} (${p.id})` },
                    );
                  }
                } catch (err) {
                  checks.push({ check: 'API key', ok: false, detail: err instanceof Error ? err.message : String(err) });
                }
              } else checks.push({ check: 'API key', ok: false, detail: 'none configured: `cairn login` or CAIRN_API_KEY' });
            }
          } else
            checks.push({
              check: 'control plane',
              ok: false,
              detail: 'no URL configured: `cairn login --control-plane URL` or CAIRN_CONTROL_PLANE_URL',
            });
          if (s.gatewayUrl) {
            const gwUrl = new HttpClient('gateway', s.gatewayUrl, undefined).baseUrl;
            const { reachable } = await probe('gateway', gwUrl, checks);
            if (reachable && s.gatewayToken) {
              // An unknown run: the gateway asks the control plane, so 404 proves token, gateway and its control-plane link.
              const res = await ctx
                .gateway()
                .request<{ error?: { code: string; message: string } }>('GET', `/v1/runs/${randomUUID()}`, { accept: [404] })
                .catch((err: unknown) => err as CliError);
              checks.push(
                res instanceof Error
                  ? { check: 'gateway token and control-plane link', ok: false, detail: res.message }
                  : {
                      check: 'gateway token and control-plane link',
                      ok: res.status === 404 && res.body.error?.code === 'CAIRN-1105',
                      detail: 'token accepted; the gateway reached the control plane with its data-plane credential',
                    },
              );
            } else if (reachable)
              checks.push({
                check: 'gateway token',
                ok: false,
                detail: 'none configured: `cairn login --gateway-token-stdin` or CAIRN_GATEWAY_TOKEN',
              });
          }
          const kubeconfig = opts.kubeconfig ?? process.env['KUBECONFIG'];
          if (kubeconfig) {
            if (!existsSync(kubeconfig)) checks.push({ check: 'kubeconfig', ok: false, detail: `${kubeconfig} does not exist` });
            else await kubernetesChecks({ ...opts, kubeconfig }, checks);
          }
        });
        const failed = checks.filter((c) => !c.ok && !c.warning);
        ctx.out.data({ ok: failed.length === 0, checks }, () => {
          const c = ctx.out.c;
          for (const check of checks) {
            const mark = check.ok ? c.green('✓') : check.warning ? c.yellow('!') : c.red('✗');
            ctx.out.line(`${mark} ${check.check.padEnd(38)} ${check.ok ? c.dim(check.detail) : check.detail}`);
          }
          ctx.out.line(failed.length === 0 ? c.green('all checks passed') : c.red(`${failed.length} check(s) failed`));
        });
        if (failed.length > 0) process.exitCode = ExitCode.CHECKS_FAILED;
      },
    );
}

function printReplay(ctx: Context, view: { runId: string; workflow: string; version: string | null; module: string } & ReplayResult): void {
  const c = ctx.out.c;
  const call = (x: { kind: string; name: string; keyDigest: string | null } | null) =>
    x === null
      ? c.dim('(nothing: the workflow ends before it)')
      : `${x.kind} "${x.name}"${x.keyDigest ? c.dim(` key ${x.keyDigest.slice(0, 12)}…`) : ''}`;
  if (!view.ok && view.outcome === 'unreplayable') {
    ctx.out.line(`${c.red('✗ cannot replay')}: ${view.message.replace(/^The workflow/, 'the workflow')}`);
    ctx.out.line(
      c.dim(
        `  run ${view.runId} (${view.workflow}@${view.version ?? '?'}) against ${view.module}; ${view.replayedCalls} call(s) replayed before it`,
      ),
    );
    ctx.out.line(
      c.dim(
        'hint: Replay with the environment your workers have for their models (the variables the workflow module reads); ' +
          'a replay answers model calls from the journal and calls no model.',
      ),
    );
    return;
  }
  if (!view.ok && view.outcome === 'diverged') {
    ctx.out.line(`${c.red('✗ diverged')} replaying run ${view.runId} (${view.workflow}@${view.version ?? '?'}) against ${view.module}`);
    ctx.out.line(`  ${view.message}`);
    return;
  }
  if (!view.ok) {
    ctx.out.line(
      `${c.red('✗ non-determinism')} replaying run ${view.runId} (${view.workflow}@${view.version ?? '?'}) against ${view.module}`,
    );
    ctx.out.line(`  at position ${c.bold(String(view.position))}`);
    ctx.out.line(`  ${c.green('- expected')} (journal): ${call(view.expected)}`);
    ctx.out.line(`  ${c.red('+ actual')}   (code):    ${call(view.actual)}`);
    if (
      view.expected &&
      view.actual &&
      view.expected.kind === view.actual.kind &&
      view.expected.name === view.actual.name &&
      view.expected.keyDigest !== view.actual.keyDigest
    ) {
      ctx.out.line(
        c.dim(
          "  Only the key digests differ: if the call's key did not change in code, the HMAC key given is not the workers' CAIRN_DP_HMAC_KEY.",
        ),
      );
    }
    ctx.out.line(
      c.dim(
        `  ${view.replayedCalls} call(s) matched before it. Keep the calls of a version compatible with its runs, or define a new version.`,
      ),
    );
    return;
  }
  const how =
    view.outcome === 'continues'
      ? `the code continues with ${view.next ? `${view.next.kind} "${view.next.name}"` : 'a new call'} where the journal ends`
      : view.outcome === 'waiting'
        ? 'the code waits where the journal ends'
        : view.outcome === 'failed'
          ? `the code ends with ${view.error?.name ?? 'an error'} as the journal does`
          : 'the code completes where the journal ends';
  ctx.out.line(`${c.green('✓ deterministic')}: run ${view.runId} (${view.workflow}@${view.version ?? '?'}) replays against ${view.module}`);
  ctx.out.line(c.dim(`  ${view.journalEntries} journal entries, ${view.replayedCalls} results replayed; ${how}`));
}
