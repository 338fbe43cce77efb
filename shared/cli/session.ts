import { existsSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config';
import { JsonLogger } from '../logger';
import type { FaultPlan } from '../local/faults';
import { emulatorPublisher } from '../local/pubsub-emulator';
import { LocalStack, StackClock } from '../local/stack';
import type { Logger } from '../ports';
import { describeHolder, leaseStanding, readLease } from '../lease';
import { FolderObjectStore } from '../local/folder-store';
import { CliError } from './exit';
import { bindOwner, ensureStateFolder } from './state-folder';

/** What every command that runs the local chain needs to know of where things are. */
export interface SessionOptions {
  config: Config;
  pubsubEmulator: boolean;
  emulatorHost?: string;
  verbose: boolean;
  faults?: FaultPlan;
  out: (line: string) => void;
}

export interface Session {
  stateDir: string;
  logFile: string;
  logger: Logger;
  warehouseFile: string;
  /** True when the warehouse is the demo's (the default, seeded on first run). */
  demoWarehouse: boolean;
}

/** The log is rotated past this size, keeping LOG_KEEP older files: it never grows without bound. */
export const LOG_MAX_BYTES = 10 * 1024 * 1024;
const LOG_KEEP = 3;

/** Renames consolidate.log to .1 (and .1 to .2, ...) once it passes `maxBytes`; the oldest is dropped. */
export function rotateLog(file: string, maxBytes = LOG_MAX_BYTES): void {
  if (!existsSync(file) || statSync(file).size < maxBytes) return;
  for (let n = LOG_KEEP - 1; n >= 1; n--) if (existsSync(`${file}.${n}`)) renameSync(`${file}.${n}`, `${file}.${n + 1}`);
  renameSync(file, `${file}.1`);
}

/** The warehouse a local command works on, from the configuration (WAREHOUSE_FILE / --warehouse). */
export function warehouseOf(config: Config): { warehouseFile: string; demoWarehouse: boolean } {
  const demoWarehouse = config.warehouseFile === '';
  return { warehouseFile: resolve(demoWarehouse ? join(config.stateDir, 'demo.duckdb') : config.warehouseFile), demoWarehouse };
}

/**
 * Opens the state folder for a command that writes to it: creates it, checks it belongs to this
 * warehouse (recording it on first use), opens the log (each line written synchronously, so none
 * is lost on exit, rotated past LOG_MAX_BYTES).
 */
export function openSession(options: Pick<SessionOptions, 'config' | 'verbose'>): Session {
  const { config } = options;
  const stateDir = resolve(config.stateDir);
  const { warehouseFile, demoWarehouse } = warehouseOf(config);
  ensureStateFolder(stateDir);
  if (!demoWarehouse && !existsSync(warehouseFile)) {
    throw new CliError(`No warehouse at ${warehouseFile}. Point --warehouse at an existing DuckDB file holding the source tables, or leave it out to use the demo warehouse.`);
  }
  bindOwner(stateDir, warehouseFile);
  mkdirSync(join(stateDir, 'logs'), { recursive: true });
  const logFile = join(stateDir, 'logs', 'consolidate.log');
  rotateLog(logFile);
  const logFd = openSync(logFile, 'a');
  const logger = new JsonLogger((line) => {
    writeSync(logFd, `${line}\n`);
    if (options.verbose) process.stderr.write(`${line}\n`);
  }, options.verbose ? 'DEBUG' : config.logLevel === 'DEBUG' ? 'DEBUG' : 'INFO');
  return { stateDir, logFile, logger, warehouseFile, demoWarehouse };
}

/**
 * Starts the local stack on the session's warehouse. A warehouse that does not meet the data
 * contract is a configuration error (exit 2); one that DuckDB cannot open (locked by another
 * process, say) is a failure (exit 1).
 */
export async function startStack(session: Session, options: SessionOptions, clock: StackClock): Promise<LocalStack> {
  const { config, out } = options;
  if (!existsSync(session.warehouseFile)) {
    throw new CliError(`No demo warehouse at ${session.warehouseFile} yet; \`consolidate run\` creates it.`);
  }
  try {
    return await LocalStack.start({
      config,
      warehouseFile: session.warehouseFile,
      logger: session.logger,
      clock,
      faults: options.faults,
      publisher: options.pubsubEmulator ? (s) => emulatorPublisher({ urls: s.urls, config, logger: session.logger, host: options.emulatorHost, out }) : undefined,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/does not hold the source tables of the data contract/.test(message)) throw new CliError(message);
    throw new CliError(/lock/i.test(message) ? `${message} (another process has the warehouse open: wait for it, or stop it)` : message, 1);
  }
}

/** Says so before a run takes over the lease of a local holder whose process is gone (an interrupted run). */
export async function announceLeaseTakeover(session: Session, config: Config, out: (line: string) => void): Promise<void> {
  const lease = await readLease({ store: new FolderObjectStore(join(session.stateDir, 'bucket')), object: config.leaseObject });
  if (lease && leaseStanding(lease, new Date(), true) === 'holder-gone') {
    out(`The lease of ${describeHolder(lease)} is taken over: that process is no longer running (an interrupted run).`);
  }
}
