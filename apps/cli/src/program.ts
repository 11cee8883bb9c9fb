// The command tree. Every command has --help with examples; global options work before or after
// the subcommand.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { registerAccount } from './commands/account.js';
import { registerDev } from './commands/dev.js';
import { registerOperations } from './commands/operations.js';
import { registerRuns } from './commands/runs.js';
import { registerTools } from './commands/tools.js';
import { registerWorkflows } from './commands/workflows.js';
import { SHELLS, completionScript, type Shell } from './completion.js';
import { CliError, ExitCode } from './errors.js';
import { examples } from './help.js';
import { OUTPUT_FORMATS } from './output.js';

/** The CLI's version, from its package.json. */
export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command('cairn');
  program
    .description('Register, run, watch, debug and review Cairn workflows.')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS))
    .option('-p, --profile <name>', 'profile to use (default: the current one, or CAIRN_PROFILE)')
    .option('--control-plane <url>', 'control-plane URL (overrides the profile; CAIRN_CONTROL_PLANE_URL)')
    .option('--project <project>', 'project name or ID (overrides the profile; CAIRN_PROJECT)')
    .option('--gateway <url>', "data plane's gateway URL (overrides the profile; CAIRN_GATEWAY_URL)")
    .option('--no-color', 'no colours (also when NO_COLOR is set or output is not a terminal)')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      examples([
        ['log in', 'cairn login --control-plane https://cairn.example.com --project prod --api-key-stdin < key.txt'],
        ['register the workflows your build exports', 'cairn workflows register dist/workflows.js --dry-run'],
        ['start a run and watch its steps', 'cairn runs start order-refund -i \'{"orderId":"o-1"}\' --watch'],
        ['check a build against a live run before rolling out', 'cairn replay 3f1c… -m dist/workflows.js'],
      ]) +
        `
Exit codes:
  0 ok, 1 failure, 2 bad arguments or input, 3 missing configuration, 4 server unreachable,
  5 refused credentials or permission, 6 not found, 7 conflict, 8 quota or rate limit,
  10 non-determinism (replay), 11 run did not complete, 12 doctor checks failed
`,
    );
  registerAccount(program);
  registerWorkflows(program);
  registerRuns(program);
  registerOperations(program);
  registerTools(program);
  registerDev(program);
  program
    .command('version')
    .description('Print the CLI version (also `cairn --version`).')
    .addHelpText('after', examples([['as JSON', 'cairn version -o json']]))
    .action((_opts: unknown, command: Command) => {
      const format = command.optsWithGlobals<{ output?: string }>().output;
      if (format === 'json') process.stdout.write(`${JSON.stringify({ version: VERSION, node: process.version })}\n`);
      else process.stdout.write(`${VERSION}\n`);
    });
  program
    .command('completion')
    .argument('<shell>', SHELLS.join(', '))
    .description('Print a shell completion script built from the command tree.')
    .addHelpText(
      'after',
      examples([
        ['bash', 'source <(cairn completion bash)'],
        ['zsh', 'cairn completion zsh > "${fpath[1]}/_cairn"'],
        ['fish', 'cairn completion fish > ~/.config/fish/completions/cairn.fish'],
      ]),
    )
    .action((shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell))
        throw new CliError(ExitCode.USAGE, `Unknown shell "${shell}": use ${SHELLS.join(', ')}.`);
      process.stdout.write(completionScript(program, shell as Shell));
    });
  // Every group and command exits 2 on bad usage, and prints its help after the error.
  const configure = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.showHelpAfterError('(add --help for usage)');
    cmd.configureHelp({ showGlobalOptions: true });
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);
  return program;
}
