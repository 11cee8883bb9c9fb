// Exit codes and the one error type the commands throw. The codes are part of the CLI's contract
// (scripts and CI branch on them), so they never change meaning; new ones are only added.

/** Stable exit codes of every `cairn` command. */
export const ExitCode = {
  /** The command did what it was asked. */
  OK: 0,
  /** Something failed that none of the codes below describe (a server error, a bug). */
  FAILURE: 1,
  /** Bad arguments or input: a missing argument, an unknown option, malformed JSON, a value a server refused as invalid (400). */
  USAGE: 2,
  /**
   * No usable configuration: no control-plane URL, API key, project, gateway URL or token; for
   * `cairn replay`, what the workflow code needs to reach a journaled call (its models, the HMAC key).
   */
  CONFIG: 3,
  /** A server could not be reached (connection refused, DNS, timeout) or answered 503. */
  UNREACHABLE: 4,
  /** The server refused the credentials (401) or the role lacks the permission (403). */
  AUTH: 5,
  /** The thing named does not exist (404). */
  NOT_FOUND: 6,
  /** The request conflicts with the current state (409): a changed registered version, an ended run. */
  CONFLICT: 7,
  /** A quota or rate limit refused the request (429). */
  LIMITED: 8,
  /** `cairn replay`: the local workflow code does not match the run's journal. */
  NON_DETERMINISM: 10,
  /** `runs watch` / `runs start --wait`: the run ended, but not `completed`. */
  RUN_NOT_COMPLETED: 11,
  /** `cairn doctor`: at least one check failed. */
  CHECKS_FAILED: 12,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error shown to the user as is: what was wrong, and what to do next. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** The server's `CAIRN-NNNN` code, when a server refused. */
  readonly code: string | undefined;
  /** What to do next, printed on its own line. */
  readonly hint: string | undefined;

  constructor(exitCode: ExitCode, message: string, options: { code?: string | undefined; hint?: string | undefined } = {}) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.code = options.code;
    this.hint = options.hint;
  }
}

/** The exit code for an HTTP status a server answered with. */
export function exitCodeForStatus(status: number): ExitCode {
  if (status === 400 || status === 413 || status === 415) return ExitCode.USAGE;
  if (status === 401 || status === 403) return ExitCode.AUTH;
  if (status === 404) return ExitCode.NOT_FOUND;
  if (status === 409) return ExitCode.CONFLICT;
  if (status === 429) return ExitCode.LIMITED;
  if (status === 503) return ExitCode.UNREACHABLE;
  return ExitCode.FAILURE;
}
