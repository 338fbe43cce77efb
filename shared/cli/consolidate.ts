#!/usr/bin/env node
/**
 * `consolidate`: runs the consolidation chain on the local stack (the local composition root:
 * it reads the environment and the flags once and builds everything below).
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config';
import { parseDuration } from '../duration';
import { runCommand, type RunOptions } from './run';

const HELP = `consolidate: the USSD consolidation chain on the local stack

Usage:
  consolidate run [--once | --watch [--every 20m]] [--warehouse FILE.duckdb] [--state-dir DIR]
                  [--now RFC3339] [--demo-rows N] [--pubsub-emulator] [--verbose]
  consolidate --help

run                 Runs publishOps -> collectIds -> launchDataflow -> mergeOnComplete on this machine:
                    DuckDB for BigQuery, a folder for the bucket, a local bus for Pub/Sub and Eventarc,
                    a local runner for Dataflow. Without --once or --watch it runs cycles (one per
                    --every of simulated time) until the watermark has caught up with --now, then exits.
  --once            One cycle, through the MERGE, then exit (non-zero if any step failed).
  --watch           A cycle every --every of real time until interrupted (Ctrl-C).
  --every D         Scheduler period (default 20m): the step of catch-up cycles, the period of --watch.
  --warehouse F     An existing DuckDB file holding the source tables (schema main). Its source tables
                    are never seeded or altered; consolidated_table is created if missing. Default: the
                    demo warehouse <state-dir>/demo.duckdb, created and seeded on first run.
  --state-dir D     The local bucket (watermark, batches), logs and dead letters (default .consolidation).
  --now T           Fixes the clock (RFC 3339): the window ends at T minus SAFETY_LAG. Default: the
                    demo's end for the demo warehouse, the real time otherwise.
  --demo-rows N     Operations in a newly created demo warehouse (default 4000).
  --pubsub-emulator Carry the two topics through the Pub/Sub emulator (push subscriptions to the
                    function servers) instead of the local bus; also when PUBSUB_EMULATOR_HOST is set.
  --verbose         Also print the JSON log lines (always written to <state-dir>/logs/consolidate.log).

Configuration comes from environment variables (see the README's table); flags win over them.`;

function fail(message: string, code = 2): never {
  process.stderr.write(`consolidate: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        once: { type: 'boolean' },
        watch: { type: 'boolean' },
        every: { type: 'string' },
        warehouse: { type: 'string' },
        'state-dir': { type: 'string' },
        now: { type: 'string' },
        'demo-rows': { type: 'string' },
        'pubsub-emulator': { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    fail(`${error instanceof Error ? error.message : String(error)}\n\n${HELP}`);
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    process.stdout.write(`${HELP}\n`);
    return values.help ? 0 : 2;
  }
  const [command, ...rest] = positionals;
  if (command !== 'run') fail(`unknown command "${command}"\n\n${HELP}`);
  if (rest.length > 0) fail(`unexpected argument(s): ${rest.join(' ')}`);
  if (values.once && values.watch) fail('--once and --watch exclude each other');
  const everyMs = parseDuration(values.every ?? '20m');
  if (!everyMs) fail(`--every ${values.every}: expected a duration such as 20m`);
  let now: Date | undefined;
  if (values.now !== undefined) {
    now = new Date(values.now);
    if (!/^\d{4}-\d\d-\d\dT/.test(values.now) || Number.isNaN(now.getTime())) fail(`--now ${values.now}: expected an RFC 3339 timestamp such as 2026-01-15T10:00:00Z`);
    if (values.watch) fail('--now fixes the clock; --watch follows real time. Use --now with --once or with catch-up (no mode flag).');
  }
  let demoRows: number | undefined;
  if (values['demo-rows'] !== undefined) {
    demoRows = Number(values['demo-rows']);
    if (!Number.isInteger(demoRows) || demoRows < 1) fail(`--demo-rows ${values['demo-rows']}: expected a positive whole number`);
  }

  const env: Record<string, string | undefined> = { ...process.env, CONSOLIDATION_BACKEND: 'local' };
  if (values['state-dir']) env.STATE_DIR = values['state-dir'];
  if (values.warehouse) env.WAREHOUSE_FILE = values.warehouse;
  let config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  const options: RunOptions = {
    config,
    mode: values.once ? 'once' : values.watch ? 'watch' : 'catch-up',
    everyMs,
    now,
    demoRows,
    warehouse: values.warehouse,
    pubsubEmulator: values['pubsub-emulator'] === true || Boolean(process.env.PUBSUB_EMULATOR_HOST),
    emulatorHost: process.env.PUBSUB_EMULATOR_HOST,
    verbose: values.verbose === true,
    interactive: process.stdout.isTTY === true,
    out: (line) => process.stdout.write(`${line}\n`),
  };
  return runCommand(options);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => fail(error instanceof Error ? error.message : String(error), 1),
);
