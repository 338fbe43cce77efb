import { existsSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config';
import { JsonLogger } from '../logger';
import type { FaultPlan } from '../local/faults';
import { emulatorPublisher } from '../local/pubsub-emulator';
import { LocalStack, StackClock } from '../local/stack';
import type { Logger } from '../ports';

/** What every command that runs the chain needs to know of where things are. */
export interface SessionOptions {
  config: Config;
  /** Set when the user named a warehouse: it must exist and is never seeded. */
  warehouse?: string;
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

/** The log file (opened once; each line written synchronously, so none is lost on exit) and the warehouse's path. */
export function openSession(options: SessionOptions): Session {
  const { config } = options;
  const stateDir = resolve(config.stateDir);
  mkdirSync(join(stateDir, 'logs'), { recursive: true });
  const logFile = join(stateDir, 'logs', 'consolidate.log');
  const logFd = openSync(logFile, 'a');
  const logger = new JsonLogger((line) => {
    writeSync(logFd, `${line}\n`);
    if (options.verbose) process.stderr.write(`${line}\n`);
  }, options.verbose ? 'DEBUG' : config.logLevel === 'DEBUG' ? 'DEBUG' : 'INFO');
  const warehouseFile = resolve(options.warehouse ?? (config.warehouseFile || join(stateDir, 'demo.duckdb')));
  const demoWarehouse = options.warehouse === undefined && config.warehouseFile === '';
  return { stateDir, logFile, logger, warehouseFile, demoWarehouse };
}

/** Starts the local stack on the session's warehouse; says what is wrong and returns undefined when it cannot. */
export async function startStack(session: Session, options: SessionOptions, clock: StackClock): Promise<LocalStack | undefined> {
  const { config, out } = options;
  if (!existsSync(session.warehouseFile)) {
    out(
      session.demoWarehouse
        ? `consolidate: no demo warehouse at ${session.warehouseFile} yet; \`consolidate run\` creates it.`
        : `consolidate: no warehouse at ${session.warehouseFile}. Point --warehouse at an existing DuckDB file holding the source tables, or leave it out to use the demo warehouse.`,
    );
    return undefined;
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
    out(`consolidate: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}
