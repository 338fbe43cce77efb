#!/usr/bin/env node
/**
 * `consolidate`: runs the consolidation chain on the local stack (the local composition root:
 * it reads the environment and the flags once and builds everything below).
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config';
import { parseDuration } from '../duration';
import { errorMessage } from '../errors';
import { FAULT_HELP, parseFaults } from '../local/faults';
import { auditCommand } from './audit';
import { readIdsFile, reconcileCommand, replayCommand, statusCommand } from './operations';
import { runCommand, type RunOptions } from './run';

const HELP = `consolidate: the USSD consolidation chain on the local stack

Usage:
  consolidate run [--once | --watch [--every 20m]] [--warehouse FILE.duckdb] [--state-dir DIR]
                  [--now RFC3339] [--demo-rows N] [--pubsub-emulator] [--inject FAULTS] [--verbose]
  consolidate status [--state-dir DIR] [--now RFC3339] [--limit N]
  consolidate reconcile [--warehouse FILE.duckdb] [--state-dir DIR] [--now RFC3339] [--verbose]
  consolidate replay (--from RFC3339 --to RFC3339 | --ids-file FILE) [--warehouse FILE.duckdb]
                  [--state-dir DIR] [--now RFC3339] [--verbose]
  consolidate audit [--from DAY --to DAY] [--repair] [--json] [--warehouse FILE.duckdb] [--state-dir DIR]
                  [--now RFC3339] [--verbose]
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
  --inject FAULTS   Fault injection, comma-separated (see below); failed cycles then do not stop a catch-up.
  --verbose         Also print the JSON log lines (always written to <state-dir>/logs/consolidate.log).

status              The watermark, the lease, and the newest batches (--limit, default 20) with state,
                    attempt, job, IDs, rows inserted/updated/unchanged and age; flags the batches that are
                    stuck (not moved for STUCK_AFTER) or FAILED for good. Exit 1 when one is stuck.
reconcile           Repairs every batch that stopped moving (what each run does first), under the lease,
                    and waits for the repairs to go through.
replay              Re-processes the operations changed in (--from, --to], or listed in --ids-file (one ID
                    a line), as of the watermark, without moving it; same-version rows are rewritten.
audit               Compares consolidated_table with a from-scratch consolidation of the sources per creation
                    day (default: the AUDIT_DAYS days ending on the watermark's); --repair replays the
                    operations that differ. Exit 1 when differences are left.

Faults for --inject:
__FAULTS__

Configuration comes from environment variables (see the README's table); flags win over them.`.replace(
  '__FAULTS__',
  FAULT_HELP.map(([name, text]) => `  ${name.padEnd(34)}${text}`).join('\n'),
);

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
        inject: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        'ids-file': { type: 'string' },
        limit: { type: 'string' },
        repair: { type: 'boolean' },
        json: { type: 'boolean' },
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
  if (!['run', 'status', 'reconcile', 'replay', 'audit'].includes(command)) fail(`unknown command "${command}"\n\n${HELP}`);
  if (rest.length > 0) fail(`unexpected argument(s): ${rest.join(' ')}`);
  const allowed: Record<string, string[]> = {
    run: ['once', 'watch', 'every', 'warehouse', 'state-dir', 'now', 'demo-rows', 'pubsub-emulator', 'inject', 'verbose'],
    status: ['state-dir', 'now', 'limit', 'verbose'],
    reconcile: ['warehouse', 'state-dir', 'now', 'pubsub-emulator', 'verbose'],
    replay: ['warehouse', 'state-dir', 'now', 'pubsub-emulator', 'from', 'to', 'ids-file', 'verbose'],
    audit: ['warehouse', 'state-dir', 'now', 'pubsub-emulator', 'from', 'to', 'repair', 'json', 'verbose'],
  };
  const misplaced = Object.keys(values).filter((key) => key !== 'help' && !allowed[command].includes(key));
  if (misplaced.length > 0) fail(`${misplaced.map((k) => `--${k}`).join(', ')} do(es) not apply to \`${command}\``);
  if (values.once && values.watch) fail('--once and --watch exclude each other');
  let faults;
  try {
    faults = values.inject === undefined ? undefined : parseFaults(values.inject);
  } catch (error) {
    fail(`--inject: ${errorMessage(error)}`);
  }
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
  const session = {
    config,
    now,
    warehouse: values.warehouse,
    pubsubEmulator: values['pubsub-emulator'] === true || Boolean(process.env.PUBSUB_EMULATOR_HOST),
    emulatorHost: process.env.PUBSUB_EMULATOR_HOST,
    verbose: values.verbose === true,
    out: (line: string) => process.stdout.write(`${line}\n`),
  };
  if (command === 'status') {
    const limit = Number(values.limit ?? '20');
    if (!Number.isInteger(limit) || limit < 1) fail(`--limit ${values.limit}: expected a positive whole number`);
    return statusCommand({ ...session, limit });
  }
  if (command === 'reconcile') return reconcileCommand(session);
  if (command === 'audit') return auditCommand({ ...session, from: values.from, to: values.to, repair: values.repair === true, json: values.json === true });
  if (command === 'replay') {
    const byWindow = values.from !== undefined || values.to !== undefined;
    if (byWindow === (values['ids-file'] !== undefined)) fail('replay takes either --from and --to, or --ids-file');
    if (byWindow) {
      if (values.from === undefined || values.to === undefined) fail('replay --from needs --to, and --to needs --from');
      return replayCommand({ ...session, body: { from: values.from, to: values.to } });
    }
    let ids: string[];
    try {
      ids = readIdsFile(values['ids-file']!);
    } catch (error) {
      fail(`--ids-file: ${errorMessage(error)}`);
    }
    if (ids.length === 0) fail(`--ids-file ${values['ids-file']}: no operation ID in it (one a line)`);
    return replayCommand({ ...session, body: { ids } });
  }
  const options: RunOptions = {
    ...session,
    mode: values.once ? 'once' : values.watch ? 'watch' : 'catch-up',
    everyMs,
    demoRows,
    faults,
    interactive: process.stdout.isTTY === true,
  };
  return runCommand(options);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => fail(error instanceof Error ? error.message : String(error), 1),
);
