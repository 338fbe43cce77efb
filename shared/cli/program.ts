import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../config';
import { parseDuration } from '../duration';
import { errorMessage } from '../errors';
import { FAULT_HELP } from '../local/faults';
import { parseRfc3339 } from '../rfc3339';
import { CliError, EXIT } from './exit';
import type { ConnectionFlags } from './settings';

/**
 * The command line of `consolidate`, on commander: one registration per command (its options,
 * help and examples), shared option groups, and one mapping of every outcome to an exit code.
 */

/** Where a command writes: its human lines, its JSON document, its progress. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** True when stdout is a terminal: progress is redrawn in place. */
  tty: boolean;
  env: NodeJS.ProcessEnv;
}

/** One command of the tool: how it is declared, and what it does with its parsed options. */
export interface CommandSpec {
  name: string;
  summary: string;
  /** Declares the command's own options, arguments, description and examples. */
  declare(command: Command): void;
  /** Runs the command; resolves to its exit code. */
  run(options: Record<string, unknown> & ConnectionFlags, io: Io, args: string[]): Promise<number>;
}

export const HELP_WIDTH = 100;

export function version(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', ...(__dirname.includes(join('dist', 'shared')) ? ['..'] : []), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

// ---- argument parsers: each throws InvalidArgumentError, which commander reports as bad usage (exit 2)

export function timeArg(value: string): Date {
  const parsed = parseRfc3339(value);
  if (parsed instanceof Date) return parsed;
  throw new InvalidArgumentError(parsed.problem);
}

export function durationArg(value: string): number {
  const ms = parseDuration(value);
  if (!ms) throw new InvalidArgumentError('expected a duration such as 90s, 20m, 2h or 7d');
  return ms;
}

export function positiveIntArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

// ---- option groups shared by the commands that touch state

/** Where the state and the warehouse are: accepted by every command that reads or writes them. */
export function connectionOptions(command: Command, withWarehouse = true): Command {
  command
    .addOption(new Option('--backend <backend>', 'where the chain runs: local (DuckDB and a folder) or gcp (BigQuery, Cloud Storage, Dataflow)').choices(['local', 'gcp']))
    .option('--state-dir <dir>', 'local: the state folder (watermark, batches, logs); default .consolidation')
    .option('--project <id>', 'gcp: the Google Cloud project')
    .option('--bucket <name>', 'gcp: the state bucket')
    .option('--region <region>', 'gcp: the region of the Dataflow jobs')
    .option('--profile <name>', 'a profile of the configuration file (see --config)')
    .option('--config <file>', 'the configuration file; default $CONSOLIDATE_CONFIG or ~/.config/consolidate/config.yaml');
  if (withWarehouse) command.option('--warehouse <file>', 'local: the DuckDB file of the source tables; default the demo warehouse <state-dir>/demo.duckdb');
  return command.option('-v, --verbose', 'also print the JSON log lines (always written to <state-dir>/logs/consolidate.log)');
}

export function jsonOption(command: Command): Command {
  return command.option('--json', 'print one JSON document (the README\'s "JSON output") instead of text');
}

export function nowOption(command: Command): Command {
  return command.option('--now <time>', 'fix the clock (RFC 3339 with an offset, e.g. 2026-01-15T10:00:00Z)', timeArg);
}

export function examples(command: Command, lines: string[]): Command {
  return command.addHelpText('after', `\nExamples:\n${lines.map((line) => `  ${line}`).join('\n')}`);
}

export const FAULTS_HELP = FAULT_HELP.map(([name, text]) => `  ${name.padEnd(34)}${text}`).join('\n');

/** The program with every command registered; `state.code` receives the command's exit code. */
export function buildProgram(specs: CommandSpec[], io: Io, state: { code: number }): Command {
  const program = new Command('consolidate')
    .description('The USSD consolidation chain: run it locally, and operate it locally or on Google Cloud.')
    .version(version(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'print help (also: consolidate help COMMAND)')
    .helpCommand('help [command]', 'print the help of a command')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(consolidate help COMMAND prints its options)')
    .configureHelp({ helpWidth: HELP_WIDTH, sortSubcommands: false })
    .configureOutput({ writeOut: (text) => io.out(text.replace(/\n$/, '')), writeErr: (text) => io.err(text.replace(/\n$/, '')), getOutHelpWidth: () => HELP_WIDTH, getErrHelpWidth: () => HELP_WIDTH })
    .exitOverride();
  examples(program, [
    'consolidate run                        # the demo warehouse, until caught up',
    'consolidate status --json              # for a cron job: exit 1 when a batch needs a person',
    'consolidate help replay                # one command\'s options and examples',
  ]);
  for (const spec of specs) {
    const command = program.command(spec.name).summary(spec.summary).configureHelp({ helpWidth: HELP_WIDTH }).exitOverride();
    command.configureOutput({ writeOut: (text) => io.out(text.replace(/\n$/, '')), writeErr: (text) => io.err(text.replace(/\n$/, '')), getOutHelpWidth: () => HELP_WIDTH, getErrHelpWidth: () => HELP_WIDTH });
    command.showSuggestionAfterError(true).showHelpAfterError(`(consolidate help ${spec.name} prints its options)`);
    spec.declare(command);
    command.action(async (...received: unknown[]) => {
      const cmd = received[received.length - 1] as Command;
      const args = received.slice(0, -2).filter((a): a is string => typeof a === 'string');
      try {
        state.code = await spec.run(cmd.opts(), io, args);
      } catch (error) {
        state.code = reportFailure(error, io);
      }
    });
  }
  return program;
}

/** Says what went wrong on stderr; returns the exit code of that kind of failure. */
export function reportFailure(error: unknown, io: Pick<Io, 'err'>): number {
  if (error instanceof CliError) {
    io.err(`consolidate: ${error.message}`);
    return error.exitCode;
  }
  if (error instanceof ConfigError) {
    io.err(`consolidate: ${error.message}`);
    return EXIT.usage;
  }
  io.err(`consolidate: ${errorMessage(error)}`);
  return EXIT.failed;
}

/** Parses and runs; resolves to the exit code (help and version 0, usage errors 2). */
export async function runProgram(specs: CommandSpec[], argv: string[], io: Io): Promise<number> {
  const state = { code: EXIT.ok as number };
  const program = buildProgram(specs, io, state);
  if (argv.length === 0) {
    io.err(program.helpInformation().replace(/\n$/, ''));
    return EXIT.usage;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(error.code)) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return EXIT.usage;
    }
    return reportFailure(error, io);
  }
  return state.code;
}
