// login, profiles, projects and data planes.
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { assertProfileName, configPath, ENV_OVERRIDES, loadConfig, normaliseUrl, saveConfig, type Profile } from '../config.js';
import { Context, readStdin } from '../context.js';
import { CliError, ExitCode } from '../errors.js';
import type { components } from '../gen/control-plane.js';
import { HttpClient } from '../http.js';
import { examples } from '../help.js';

type Whoami = components['schemas']['Whoami'];

type ProjectView = components['schemas']['Project'];

type DataPlaneView = components['schemas']['DataPlane'];

/** Reads a secret from the terminal without echoing it. */
async function promptSecret(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  try {
    return await new Promise<string>((resolve) => {
      rl.question(question, (answer) => {
        process.stderr.write('\n');
        resolve(answer.trim());
      });
      muted = true;
    });
  } finally {
    rl.close();
  }
}

export function registerAccount(program: Command): void {
  program
    .command('login')
    .description('Save a profile: control-plane URL, API key, project, and the gateway URL and token. Checks the key first.')
    .option('--api-key-stdin', 'read the API key from standard input')
    .option('--gateway-token-stdin', 'read the gateway token from standard input (with --api-key-stdin: the second line)')
    .option('--no-verify', 'save without asking the control plane to check the key')
    .addHelpText(
      'after',
      examples([
        [
          'log in to a local stack (key from a secret manager)',
          'pass show cairn/dev | cairn login --control-plane http://127.0.0.1:8080 --api-key-stdin --project default',
        ],
        ['add the gateway to the same profile', 'echo "$GT" | cairn login --gateway http://127.0.0.1:8081 --gateway-token-stdin'],
        [
          'a second profile for production',
          'cairn login --profile prod --control-plane https://cairn.example.com --project prod --api-key-stdin < key.txt',
        ],
      ]),
    )
    .action(async (opts: { apiKeyStdin?: boolean; gatewayTokenStdin?: boolean; verify: boolean }, command: Command) => {
      const ctx = new Context(command);
      const config = loadConfig();
      const name = ctx.settings.profile;
      const current: Profile = { ...(config.profiles[name] ?? {}) };
      const s = ctx.settings;
      if (s.controlPlaneUrl) current.controlPlaneUrl = normaliseUrl(s.controlPlaneUrl, 'control-plane URL');
      if (s.gatewayUrl) current.gatewayUrl = normaliseUrl(s.gatewayUrl, 'gateway URL');
      if (s.project) current.project = s.project;
      if (opts.apiKeyStdin || opts.gatewayTokenStdin) {
        const lines = (await readStdin()).split(/\r?\n/).map((l) => l.trim());
        if (opts.apiKeyStdin) current.apiKey = lines.shift() || undefined;
        if (opts.gatewayTokenStdin) current.gatewayToken = lines.shift() || undefined;
        if (opts.apiKeyStdin && !current.apiKey) throw new CliError(ExitCode.USAGE, 'Standard input held no API key.');
        if (opts.gatewayTokenStdin && !current.gatewayToken) throw new CliError(ExitCode.USAGE, 'Standard input held no gateway token.');
      } else if (process.env[ENV_OVERRIDES.apiKey]) {
        current.apiKey = process.env[ENV_OVERRIDES.apiKey];
      } else if (!current.apiKey && process.stdin.isTTY) {
        current.apiKey = (await promptSecret('API key: ')) || undefined;
      }
      if (!opts.gatewayTokenStdin && process.env[ENV_OVERRIDES.gatewayToken])
        current.gatewayToken = process.env[ENV_OVERRIDES.gatewayToken];
      if (!current.controlPlaneUrl && !current.gatewayUrl) {
        throw new CliError(
          ExitCode.USAGE,
          'Give the control plane to log in to with --control-plane URL (or the gateway with --gateway URL).',
        );
      }
      let who: Whoami | undefined;
      if (opts.verify && current.controlPlaneUrl && current.apiKey) {
        const cp = new HttpClient('control plane', current.controlPlaneUrl, current.apiKey);
        who = await ctx.out.spin(`checking the API key with ${current.controlPlaneUrl}`, () => cp.get<Whoami>('/v1/whoami'));
        if (!current.project) {
          const { projects } = await cp.get<{ projects: ProjectView[] }>('/v1/projects');
          const own = who.projectId ? projects.find((p) => p.id === who!.projectId) : projects.length === 1 ? projects[0] : undefined;
          if (own) current.project = own.name;
        }
      }
      config.profiles[name] = current;
      config.currentProfile ??= name;
      const file = saveConfig(config);
      const view = {
        profile: name,
        file,
        controlPlaneUrl: current.controlPlaneUrl ?? null,
        project: current.project ?? null,
        gatewayUrl: current.gatewayUrl ?? null,
        apiKey: current.apiKey ? 'set' : 'not set',
        gatewayToken: current.gatewayToken ? 'set' : 'not set',
        role: who?.role ?? null,
        keyId: who?.keyId ?? null,
      };
      ctx.out.data(view, () => {
        ctx.out.line(`${ctx.out.c.green('✓')} saved profile ${ctx.out.c.bold(name)} in ${file}`);
        if (who) ctx.out.line(`  key ${who.keyId} (${who.role}${who.projectId ? '' : ', organisation-wide'})`);
        if (!current.project) ctx.out.line(ctx.out.c.yellow('  no project set: add one with --project NAME'));
      });
    });

  const profiles = program.command('profiles').description('List, show, switch and delete the saved profiles.');
  profiles.addHelpText(
    'after',
    examples([
      ['see every profile', 'cairn profiles list'],
      ['switch to prod', 'cairn profiles use prod'],
    ]),
  );
  profiles
    .command('list')
    .description('List the saved profiles; * marks the current one.')
    .addHelpText('after', examples([['as JSON', 'cairn profiles list -o json']]))
    .action((_opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const config = loadConfig();
      const rows = Object.entries(config.profiles).map(([name, p]) => ({
        name,
        current: name === (config.currentProfile ?? 'default'),
        controlPlaneUrl: p.controlPlaneUrl ?? null,
        project: p.project ?? null,
        gatewayUrl: p.gatewayUrl ?? null,
      }));
      ctx.out.data({ file: configPath(), profiles: rows }, () =>
        ctx.out.table(
          ['', 'PROFILE', 'CONTROL PLANE', 'PROJECT', 'GATEWAY'],
          rows.map((r) => [r.current ? '*' : '', r.name, r.controlPlaneUrl, r.project, r.gatewayUrl]),
        ),
      );
    });
  profiles
    .command('show')
    .description('Show the settings in effect (profile, environment and flags combined); secrets are masked.')
    .addHelpText('after', examples([['what would a command use', 'CAIRN_PROJECT=staging cairn profiles show']]))
    .action((_opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const s = ctx.settings;
      const mask = (v: string | undefined) => (v ? `${v.slice(0, 4)}…` : null);
      const view = {
        profile: s.profile,
        file: configPath(),
        controlPlaneUrl: s.controlPlaneUrl ?? null,
        project: s.project ?? null,
        gatewayUrl: s.gatewayUrl ?? null,
        apiKey: mask(s.apiKey),
        gatewayToken: mask(s.gatewayToken),
        sources: s.sources,
      };
      ctx.out.data(view, () =>
        ctx.out.fields([
          ['profile', s.profile],
          ['control plane', `${view.controlPlaneUrl ?? '-'}${s.sources.controlPlaneUrl ? ` (${s.sources.controlPlaneUrl})` : ''}`],
          ['project', `${view.project ?? '-'}${s.sources.project ? ` (${s.sources.project})` : ''}`],
          ['API key', `${view.apiKey ?? '-'}${s.sources.apiKey ? ` (${s.sources.apiKey})` : ''}`],
          ['gateway', `${view.gatewayUrl ?? '-'}${s.sources.gatewayUrl ? ` (${s.sources.gatewayUrl})` : ''}`],
          ['gateway token', `${view.gatewayToken ?? '-'}${s.sources.gatewayToken ? ` (${s.sources.gatewayToken})` : ''}`],
          ['file', view.file],
        ]),
      );
    });
  profiles
    .command('use')
    .argument('<name>', 'profile name')
    .description('Make a profile the current one.')
    .addHelpText('after', examples([['switch', 'cairn profiles use prod']]))
    .action((name: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      assertProfileName(name);
      const config = loadConfig();
      if (!config.profiles[name]) {
        throw new CliError(ExitCode.NOT_FOUND, `There is no profile "${name}".`, {
          hint: 'Create it with `cairn login --profile NAME …`.',
        });
      }
      config.currentProfile = name;
      saveConfig(config);
      ctx.out.data({ currentProfile: name }, () => ctx.out.line(`current profile: ${name}`));
    });
  profiles
    .command('delete')
    .argument('<name>', 'profile name')
    .description('Delete a saved profile (its API key and token go with it).')
    .addHelpText('after', examples([['forget the old staging profile', 'cairn profiles delete staging']]))
    .action((name: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const config = loadConfig();
      if (!config.profiles[name]) throw new CliError(ExitCode.NOT_FOUND, `There is no profile "${name}".`);
      delete config.profiles[name];
      if (config.currentProfile === name) config.currentProfile = undefined;
      saveConfig(config);
      ctx.out.data({ deleted: name }, () => ctx.out.line(`deleted profile ${name}`));
    });

  const projects = program.command('projects').description('Projects (environments) the API key can see.');
  projects.addHelpText(
    'after',
    examples([
      ['list', 'cairn projects list'],
      ['create staging', 'cairn projects create staging'],
    ]),
  );
  projects
    .command('list')
    .description('List the projects the API key can see.')
    .addHelpText('after', examples([['names only', "cairn projects list -o json | jq -r '.projects[].name'"]]))
    .action(async (_opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const body = await ctx.out.spin('listing projects', () => cp.get<{ projects: ProjectView[] }>('/v1/projects'));
      ctx.out.data(body, () =>
        ctx.out.table(
          ['NAME', 'ID', 'CREATED'],
          body.projects.map((p) => [p.name, p.id, p.createdAt]),
        ),
      );
    });
  projects
    .command('show')
    .argument('[project]', "name or ID (default: the profile's project)")
    .description('Show one project.')
    .addHelpText('after', examples([['the current project', 'cairn projects show']]))
    .action(async (project: string | undefined, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const body = await cp.get<{ project: ProjectView }>(`/v1/projects/${encodeURIComponent(project ?? ctx.project())}`);
      ctx.out.data(body, () =>
        ctx.out.fields([
          ['name', body.project.name],
          ['id', body.project.id],
          ['created', body.project.createdAt],
        ]),
      );
    });
  projects
    .command('create')
    .argument('<name>', 'project name (e.g. prod, staging)')
    .description('Create a project (needs an organisation-wide admin key).')
    .addHelpText('after', examples([['a staging environment', 'cairn projects create staging']]))
    .action(async (name: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const body = await cp.post<{ project: ProjectView }>('/v1/projects', { name });
      ctx.out.data(body, () => ctx.out.line(`${ctx.out.c.green('✓')} created project ${body.project.name} (${body.project.id})`));
    });

  const dataPlanes = program.command('data-planes').description('Register data planes, list them, revoke their credentials.');
  dataPlanes.addHelpText(
    'after',
    examples([
      ['register one and get its helm install line', 'cairn data-planes create eu-prod'],
      ['revoke', 'cairn data-planes revoke 0190a1b2-…'],
    ]),
  );
  dataPlanes
    .command('create')
    .argument('<name>', 'a name for the data plane (e.g. eu-prod)')
    .description('Register a data plane: prints its credential once, and the commands that install it with helm/cairn-data-plane.')
    .option('--namespace <ns>', 'Kubernetes namespace for the install line', 'cairn')
    .option('--release <name>', 'Helm release name for the install line', 'cairn')
    .option('--secret <name>', 'Secret that will hold the credential', 'cairn-dp-credential')
    .option(
      '--grpc-address <host:port>',
      "the control plane's gRPC address the data plane dials (default: the control-plane host, port 443 for https, 7233 for http)",
    )
    .option('--chart <path>', 'chart reference for the install line', 'helm/cairn-data-plane')
    .addHelpText(
      'after',
      examples([
        ['register and install', 'cairn data-planes create eu-prod --namespace cairn'],
        ['keep the credential from a script', 'cairn data-planes create eu-prod -o json | jq -r .credential'],
      ]),
    )
    .action(
      async (
        name: string,
        opts: { namespace: string; release: string; secret: string; grpcAddress?: string; chart: string },
        command: Command,
      ) => {
        const ctx = new Context(command);
        const cp = ctx.controlPlane();
        const body = await ctx.out.spin('registering the data plane', () =>
          cp.post<{ dataPlane: DataPlaneView; credential: string }>(ctx.projectPath('/data-planes'), { name }),
        );
        const cpUrl = new URL(cp.baseUrl);
        const tls = cpUrl.protocol === 'https:';
        const address = opts.grpcAddress ?? `${cpUrl.hostname}:${tls ? 443 : 7233}`;
        const secretCommand = `kubectl -n ${opts.namespace} create secret generic ${opts.secret} --from-literal=credential='${body.credential}'`;
        const helmInstall = [
          `helm install ${opts.release} ${opts.chart} --namespace ${opts.namespace}`,
          `--set controlPlane.address=${address}`,
          ...(tls ? [] : ['--set controlPlane.tls.enabled=false']),
          `--set dataPlane.id=${body.dataPlane.id}`,
          `--set dataPlane.credential.existingSecret=${opts.secret}`,
          '-f values.yaml',
        ].join(' ');
        ctx.out.data({ ...body, secretCommand, helmInstall }, () => {
          const c = ctx.out.c;
          ctx.out.line(`${c.green('✓')} registered data plane ${c.bold(body.dataPlane.name)} (${body.dataPlane.id})`);
          ctx.out.line('');
          ctx.out.line(`${c.bold('Credential')} ${c.yellow('(shown once: store it now)')}`);
          ctx.out.line(`  ${body.credential}`);
          ctx.out.line('');
          ctx.out.line(c.bold('Install'));
          ctx.out.line(`  ${secretCommand}`);
          ctx.out.line(`  ${helmInstall}`);
          ctx.out.line('');
          ctx.out.line(
            c.dim('  values.yaml holds your payload store, encryption keys, images and NetworkPolicy CIDRs: see docs/install.md.'),
          );
        });
      },
    );
  dataPlanes
    .command('list')
    .description('List the data planes of the project.')
    .addHelpText('after', examples([['list', 'cairn data-planes list']]))
    .action(async (_opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const body = await ctx.out.spin('listing data planes', () =>
        cp.get<{ dataPlanes: DataPlaneView[] }>(ctx.projectPath('/data-planes')),
      );
      ctx.out.data(body, () =>
        ctx.out.table(
          ['NAME', 'ID', 'STATE', 'CREATED'],
          body.dataPlanes.map((d) => [
            d.name,
            d.id,
            d.revokedAt ? ctx.out.c.red(`revoked ${d.revokedAt}`) : ctx.out.c.green('active'),
            d.createdAt,
          ]),
        ),
      );
    });
  dataPlanes
    .command('revoke')
    .argument('<id>', 'data plane ID')
    .description("Revoke a data plane's credential: its gateway calls fail at once and its workers disconnect within seconds.")
    .addHelpText('after', examples([['revoke', 'cairn data-planes revoke 0190a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b']]))
    .action(async (id: string, _opts: unknown, command: Command) => {
      const ctx = new Context(command);
      const cp = ctx.controlPlane();
      const body = await cp.request<{ dataPlane: DataPlaneView }>('DELETE', ctx.projectPath(`/data-planes/${encodeURIComponent(id)}`));
      ctx.out.data(body.body, () => ctx.out.line(`${ctx.out.c.green('✓')} revoked data plane ${id}`));
    });
}
