// Child processes the peer benchmark starts in their own process groups, so that stopping one
// stops everything it started, and none outlives the benchmark (also on Ctrl-C or a crash).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

const groups = new Set<number>();

process.on('exit', () => {
  for (const pgid of groups) killGroup(pgid, 'SIGKILL');
});

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

export interface GroupProcess {
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** SIGTERM to the whole group; SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Spawns `command` in a new process group with its output appended to `logFile`. */
export function spawnGroup(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd: string; logFile: string },
): GroupProcess {
  const log = openSync(options.logFile, 'a');
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  const pgid = child.pid;
  if (pgid === undefined) throw new Error(`could not start ${command}`);
  groups.add(pgid);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    exited,
    async stop(graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(pgid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pgid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // Whatever the leader left behind in its group goes too.
      killGroup(pgid, 'SIGKILL');
      groups.delete(pgid);
    },
  };
}
