#!/usr/bin/env node
// The `cairn` command. Errors are printed as "error: what was wrong" plus what to do next, and
// the process exits with one of the documented codes (see errors.ts).
import { CommanderError } from 'commander';
import { CliError, ExitCode } from './errors.js';
import { colorsFor } from './output.js';
import { buildProgram } from './program.js';

// `cairn … | head`: the reader has gone, so the rest of the output has nowhere to go. Stop quietly,
// as other command-line tools do, instead of crashing with EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.OK);
    throw err;
  });
}

const program = buildProgram();
// `cairn --version` / `-V` as the first argument; subcommands keep `--version` for workflow versions.
const argv = process.argv[2] === '--version' || process.argv[2] === '-V' ? [...process.argv.slice(0, 2), 'version'] : process.argv;
try {
  await program.parseAsync(argv);
} catch (err) {
  const c = colorsFor(process.stderr, process.argv.includes('--no-color'));
  if (err instanceof CommanderError) {
    // Help and version are not errors; commander already printed usage problems.
    process.exitCode =
      err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  } else if (err instanceof CliError) {
    process.stderr.write(`${c.red('error:')} ${err.message}${err.code ? c.dim(` [${err.code}]`) : ''}\n`);
    if (err.hint) process.stderr.write(`${c.dim('hint:')} ${err.hint}\n`);
    process.exitCode = err.exitCode;
  } else {
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`${c.red('error:')} unexpected failure: ${message}\n`);
    process.stderr.write(
      `${c.dim('hint:')} this is a bug in the cairn CLI or a server answered outside its contract; please report it with the command you ran.\n`,
    );
    process.exitCode = ExitCode.FAILURE;
  }
}
