import { join, resolve } from 'node:path';
import { Option } from 'commander';
import { parseDuration } from '../duration';
import { errorMessage } from '../errors';
import { CliError, EXIT } from './exit';
import { jsonDocument } from './json';
import type { OperationOptions } from './operations';
import { connectionOptions, durationArg, timeArg, examples, FAULTS_HELP, jsonOption, nowOption, positiveIntArg, type CommandSpec, type Io } from './program';
import { resolveSettings, type ConnectionFlags } from './settings';
import { checkOwner, folderNow, readOwner, requireStateFolder } from './state-folder';

// The chain, DuckDB and the Google Cloud clients load only when a command runs, so that help,
// version and usage errors answer at once.
const operations = () => require('./operations') as typeof import('./operations');

/**
 * The commands of `consolidate`, one entry each. Wiring another one is an entry here: its
 * options (with `connectionOptions` and `jsonOption` where they apply), help, examples and run.
 */

type Flags = Record<string, unknown> & ConnectionFlags;

/** The options every operation shares, from the flags and the resolved configuration. */
function operationOptions(flags: Flags, io: Io): OperationOptions {
  const settings = resolveSettings(flags, io.env);
  return {
    config: settings.config,
    tool: settings.tool,
    now: flags.now as Date | undefined,
    pubsubEmulator: flags.pubsubEmulator === true || Boolean(io.env.PUBSUB_EMULATOR_HOST),
    emulatorHost: io.env.PUBSUB_EMULATOR_HOST,
    verbose: flags.verbose === true,
    out: io.out,
  };
}

function localOnly(options: OperationOptions, command: string, instead: string): void {
  if (options.config.backend === 'gcp') throw new CliError(`\`${command}\` works on the local stack only; ${instead}`);
}

/**
 * Runs a command that prints its own JSON body when asked (`json`), and prints that body in the
 * one envelope; what is not JSON (a refusal) goes to stderr as it was.
 */
async function inEnvelope(name: string, json: boolean, io: Io, command: (out: (line: string) => void) => Promise<number>): Promise<number> {
  const lines: string[] = [];
  const code = await command(json ? (line) => lines.push(line) : io.out);
  if (!json) return code;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(lines.join('\n')) as Record<string, unknown>;
  } catch {
    for (const line of lines) io.err(line);
    return code;
  }
  io.out(jsonDocument(name, code, body));
  return code;
}

const run: CommandSpec = {
  name: 'run',
  summary: 'run the chain on the local stack (catch-up, one cycle, or every 20 minutes)',
  declare(command) {
    command.description(
      'Runs publishOps -> collectIds -> launchDataflow -> mergeOnComplete on this machine: DuckDB for BigQuery, a folder for ' +
        'the bucket, a local bus for Pub/Sub and Eventarc, a local runner for Dataflow. Without --once or --watch it catches up: ' +
        'one cycle per --every of simulated time from the watermark until the window reaches --now (the demo\'s end for the ' +
        'demo warehouse, the real time otherwise), with one progress line and the totals at the end. Without a watermark yet, ' +
        'the first cycle covers everything from INITIAL_WATERMARK, or MAX_WINDOW of it when that is set, and the next ' +
        'cycles read MAX_WINDOW at a time (printing how far behind they are), as the deployed chain does.',
    );
    command
      .addOption(new Option('--once', 'one cycle, through the MERGE, then exit').conflicts('watch'))
      .addOption(new Option('--watch', 'a cycle every --every of real time until Ctrl-C; the warehouse is open only during a cycle').conflicts(['once', 'now']))
      .option('--every <duration>', 'scheduler period: the step of catch-up cycles, the period of --watch', durationArg, 20 * 60_000);
    nowOption(command)
      .option('--force', 'allow --now further beyond the real clock than MAX_AHEAD (default 1h)')
      .option('--demo-rows <n>', 'operations in a newly created demo warehouse (default 4000)', positiveIntArg)
      .option('--pubsub-emulator', 'carry the two topics through the Pub/Sub emulator (also when PUBSUB_EMULATOR_HOST is set)')
      .option('--inject <faults>', 'fault injection, comma-separated (below); failed cycles then do not stop a catch-up')
      .option('--progress', 'show the progress line even when stdout is not a terminal (on stderr)')
      .option('--no-progress', 'never show the progress line');
    connectionOptions(command);
    jsonOption(command);
    command.addHelpText('after', `\nFaults for --inject:\n${FAULTS_HELP}`);
    examples(command, [
      'consolidate run                                     # the demo warehouse, created on first run',
      'consolidate run --once --warehouse ops.duckdb --state-dir ops-state --now 2026-05-01T09:30:00Z',
      'consolidate run --watch --every 20m --warehouse ops.duckdb --state-dir ops-state',
    ]);
  },
  async run(flags, io) {
    const options = operationOptions(flags, io);
    localOnly(options, 'run', 'on Google Cloud, Cloud Scheduler runs the chain (`gcloud scheduler jobs run <name_prefix>-publish-ops --location REGION` starts a cycle now).');
    const { parseFaults } = (require('../local/faults') as typeof import('../local/faults'));
    const { runCommand } = (require('./run') as typeof import('./run'));
    let faults;
    try {
      faults = flags.inject === undefined ? undefined : parseFaults(String(flags.inject));
    } catch (error) {
      throw new CliError(`--inject: ${errorMessage(error)}`);
    }
    const settings = resolveSettings(flags, io.env);
    const maxAhead = settings.tool.MAX_AHEAD ?? '1h';
    const maxAheadMs = parseDuration(maxAhead);
    if (maxAheadMs === undefined) throw new CliError(`MAX_AHEAD (${JSON.stringify(maxAhead)}) must be a duration such as 1h or 2d`);
    const json = flags.json === true;
    const outcome = await runCommand({
      ...options,
      out: json ? () => undefined : io.out,
      err: io.err,
      faults,
      mode: flags.once ? 'once' : flags.watch ? 'watch' : 'catch-up',
      everyMs: flags.every as number,
      demoRows: flags.demoRows as number | undefined,
      progress: flags.progress === undefined ? io.tty : flags.progress === true,
      tty: io.tty,
      force: flags.force === true,
      maxAheadMs,
    });
    if (json) io.out(jsonDocument('run', outcome.code, { stopped: outcome.stopped, results: outcome.results, totals: outcome.totals }));
    return outcome.code;
  },
};

const status: CommandSpec = {
  name: 'status',
  summary: 'the watermark, the lease and the newest batches; exit 1 when one needs a person',
  declare(command) {
    command.description(
      'Shows the watermark, the lease and the newest batches (state, attempt, job, IDs, rows inserted/updated/unchanged, age), ' +
        'and flags those that need a person: stuck (not moved for STUCK_AFTER), looping (at MAX_ATTEMPTS), FAILED for good. ' +
        'Exits 1 when one is flagged. Reads only: it never creates or changes anything.',
    );
    nowOption(command).option('--limit <n>', 'how many of the newest batches to show', positiveIntArg, 20);
    connectionOptions(command);
    jsonOption(command);
    examples(command, ['consolidate status', 'consolidate status --json --limit 5', 'consolidate status --backend gcp --project my-project --bucket my-state-bucket']);
  },
  async run(flags, io) {
    const json = flags.json === true;
    const { code, report } = await operations().statusCommand({ ...operationOptions(flags, io), limit: flags.limit as number, json });
    if (json) io.out(jsonDocument('status', code, { status: report }));
    return code;
  },
};

const reconcile: CommandSpec = {
  name: 'reconcile',
  summary: 'repair the batches that stopped moving, now, under the lease',
  declare(command) {
    command.description(
      'Runs the reconciler now (what every run does first), under the lease: a batch that has not moved for STUCK_AFTER is ' +
        'announced again, checked against Dataflow, relaunched, given up or closed. Locally it waits for the repairs to finish; ' +
        'on Google Cloud it runs the same code with the same adapters as the functions, and the chain carries on by itself.',
    );
    nowOption(command).option('--pubsub-emulator', 'local: carry the topics through the Pub/Sub emulator');
    connectionOptions(command);
    examples(command, ['consolidate reconcile', 'consolidate reconcile --backend gcp --profile prod']);
  },
  async run(flags, io) {
    return operations().reconcileCommand(operationOptions(flags, io));
  },
};

const replay: CommandSpec = {
  name: 'replay',
  summary: 're-process a window of changes or a list of operations, without moving the watermark',
  declare(command) {
    command.description(
      'Re-processes the operations changed in (--from, --to], or listed in --ids-file (one ID a line, # comments), as of the ' +
        'watermark, without moving it; rows of the same version are rewritten (a fix in services or agents reaches them). ' +
        'Locally the replay runs through the whole chain and is followed to its MERGE; on Google Cloud it is a POST to the ' +
        'deployed publishOps with your identity token (set PUBLISH_OPS_URL).',
    );
    command
      .addOption(new Option('--from <time>', 'start of the window, exclusive (RFC 3339 with an offset)').argParser(timeArg).conflicts('idsFile'))
      .addOption(new Option('--to <time>', 'end of the window, inclusive').argParser(timeArg).conflicts('idsFile'))
      .option('--ids-file <file>', 'a file of operation IDs, one a line');
    nowOption(command).option('--pubsub-emulator', 'local: carry the topics through the Pub/Sub emulator');
    connectionOptions(command);
    examples(command, ['consolidate replay --from 2026-01-15T06:00:00Z --to 2026-01-15T07:00:00Z', 'consolidate replay --ids-file ids.txt --backend gcp --profile prod']);
  },
  async run(flags, io) {
    const options = operationOptions(flags, io);
    const { readIdsFile, replayCommand } = operations();
    const from = flags.from as Date | undefined;
    const to = flags.to as Date | undefined;
    if (flags.idsFile !== undefined) return replayCommand({ ...options, body: { ids: readIdsFile(String(flags.idsFile)) } });
    if (!from || !to) throw new CliError('replay takes --from and --to (a window), or --ids-file (a list of operations)');
    if (from.getTime() >= to.getTime()) throw new CliError(`--from ${from.toISOString()} must be before --to ${to.toISOString()}`);
    return replayCommand({ ...options, body: { from: from.toISOString(), to: to.toISOString() } });
  },
};

const prune: CommandSpec = {
  name: 'prune',
  summary: 'delete the state of batches finished longer ago than --older-than',
  declare(command) {
    command.description(
      'Deletes the objects of finished batches (MERGED, or FAILED for good) that have not changed for --older-than. Open ' +
        'batches, the watermark and the lease are never touched. On Google Cloud the bucket\'s lifecycle rule does this after 30 days.',
    );
    command.requiredOption('--older-than <duration>', 'age of the batches to delete, e.g. 7d', durationArg).option('--dry-run', 'list what would be deleted, delete nothing');
    nowOption(command);
    connectionOptions(command);
    jsonOption(command);
    examples(command, ['consolidate prune --older-than 7d', 'consolidate prune --older-than 30d --dry-run']);
  },
  async run(flags, io) {
    const options = operationOptions(flags, io);
    const { config } = options;
    const { pruneBatches } = (require('./prune') as typeof import('./prune'));
    let store;
    let now = options.now ?? new Date();
    if (config.backend === 'gcp') store = (require('../gcp/operator') as typeof import('../gcp/operator')).stateBucketStore(config);
    else {
      const stateDir = resolve(config.stateDir);
      requireStateFolder(stateDir);
      if (config.warehouseFile) checkOwner(stateDir, (require('./session') as typeof import('./session')).warehouseOf(config).warehouseFile);
      if (!options.now) now = folderNow(readOwner(stateDir)).now;
      store = new (require('../local/folder-store') as typeof import('../local/folder-store')).FolderObjectStore(join(stateDir, 'bucket'));
    }
    const dryRun = flags.dryRun === true;
    const result = await pruneBatches(store, now, flags.olderThan as number, dryRun);
    if (flags.json) io.out(jsonDocument('prune', EXIT.ok, { dryRun, ...result }));
    else io.out(`${dryRun ? 'Would delete' : 'Deleted'} ${result.pruned.length} finished batch(es) (${result.objects} objects); ${result.kept} batch(es) kept.`);
    return EXIT.ok;
  },
};

const sql: CommandSpec = {
  name: 'sql',
  summary: 'run one read-only query on the local warehouse',
  declare(command) {
    command
      .description('Runs one SQL query on the local warehouse, opened read-only (DuckDB SQL; the consolidated table is consolidated_dataset.consolidated_table).')
      .argument('<query>', 'the SQL query');
    connectionOptions(command);
    jsonOption(command);
    examples(command, [
      'consolidate sql "SELECT reconciliation_status, COUNT(*) AS n FROM consolidated_dataset.consolidated_table GROUP BY 1 ORDER BY 1"',
      'consolidate sql --json "SELECT * FROM consolidated_dataset.consolidated_table WHERE operation_id = \'OP0000000001\'"',
    ]);
  },
  async run(flags, io, args) {
    const options = operationOptions(flags, io);
    localOnly(options, 'sql', 'on Google Cloud, query BigQuery (`bq query --use_legacy_sql=false "SELECT ..."`).');
    const { formatRows, querySql } = (require('./sql') as typeof import('./sql'));
    const { warehouseOf } = (require('./session') as typeof import('./session'));
    const { columns, rows } = await querySql(warehouseOf(options.config).warehouseFile, args[0]);
    if (flags.json) io.out(jsonDocument('sql', EXIT.ok, { columns, rows }));
    else for (const line of formatRows(columns, rows)) io.out(line);
    return EXIT.ok;
  },
};

const audit: CommandSpec = {
  name: 'audit',
  summary: 'compare consolidated_table with a from-scratch consolidation per creation day; --repair replays the differences',
  declare(command) {
    command.description(
      'Compares consolidated_table with a from-scratch consolidation of the sources per creation day (default: the ' +
        "AUDIT_DAYS days ending on the watermark's); --repair replays the operations that differ. Exit 1 when differences are left. " +
        'On Google Cloud it runs the same audit with the functions\' adapters (BigQuery, the state bucket), and --repair POSTs the ' +
        'replays to the deployed publishOps with your identity token (set PUBLISH_OPS_URL).',
    );
    command
      .option('--from <day>', 'first creation day, YYYY-MM-DD')
      .option('--to <day>', 'last creation day, YYYY-MM-DD (included)')
      .option('--repair', 'replay the operations that differ, then audit again');
    nowOption(command).option('--pubsub-emulator', 'local: carry the topics through the Pub/Sub emulator');
    connectionOptions(command);
    jsonOption(command);
    examples(command, ['consolidate audit', 'consolidate audit --from 2026-01-15 --to 2026-01-15 --repair', 'consolidate audit --json', 'consolidate audit --backend gcp --profile prod']);
  },
  async run(flags, io) {
    const options = operationOptions(flags, io);
    const { auditCommand } = require('./audit') as typeof import('./audit');
    const json = flags.json === true;
    return inEnvelope('audit', json, io, (out) => auditCommand({ ...options, out, from: flags.from as string | undefined, to: flags.to as string | undefined, repair: flags.repair === true, json }));
  },
};

const rejects: CommandSpec = {
  name: 'rejects',
  summary: 'list the quarantined source rows (those that cannot be consolidated) and their counts per reason',
  declare(command) {
    command.description(
      'Lists the quarantine table, newest first, with the count per reason: every source row that cannot ' +
        'be consolidated (blank ID, missing or out-of-range timestamp, ...), the batch that first saw it and its ID as stored. ' +
        'Locally it reads the DuckDB warehouse; on Google Cloud the quarantine table in BigQuery, with your credentials.',
    );
    command
      .option('--reason <reason>', 'only this reason, e.g. MISSING_OPERATION_ID')
      .option('--batch <id>', 'only the rows first quarantined by this batch')
      .option('--limit <n>', 'most rows listed (the counts cover every row)', positiveIntArg, 100);
    connectionOptions(command);
    jsonOption(command);
    examples(command, ['consolidate rejects', 'consolidate rejects --reason MISSING_CREATED_AT --json', 'consolidate rejects --backend gcp --profile prod --batch 20260115T102000Z-1a2b3c']);
  },
  async run(flags, io) {
    const options = operationOptions(flags, io);
    const { rejectsCommand } = require('./rejects') as typeof import('./rejects');
    const json = flags.json === true;
    return inEnvelope('rejects', json, io, (out) => rejectsCommand({ ...options, out, reason: flags.reason as string | undefined, batchId: flags.batch as string | undefined, limit: flags.limit as number, json }));
  },
};

/** Every command, in the order `consolidate --help` lists them. */
export const COMMANDS: CommandSpec[] = [run, status, reconcile, replay, audit, rejects, prune, sql];
