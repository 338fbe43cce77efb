/** The exit codes of `consolidate`, the same for every command (the README's table). */
export const EXIT = {
  /** All well. */
  ok: 0,
  /** Something failed or needs a person: a cycle failed, a batch is stuck, looping or FAILED for good, the lease is held. */
  failed: 1,
  /** Bad usage or configuration, including a warehouse that does not meet the data contract. */
  usage: 2,
  /** Stopped by a second Ctrl-C (128 + SIGINT). */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A refusal the command explains and maps to its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.usage,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
