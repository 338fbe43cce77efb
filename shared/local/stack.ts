import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { buildHandlers } from '../../functions/handlers';
import { STATUS_CHANGED, TERMINAL_STATES } from '../../functions/merge-on-complete';
import { registerFunctions, type FunctionName } from '../../functions/registry';
import type { ChainDependencies } from '../../functions/dependencies';
import type { Config } from '../config';
import type { Clock, Logger, Publisher } from '../ports';
import { loadSchema } from '../schema';
import { LocalBus } from './bus';
import { FaultInjector, muteInjectedCrashTraces, NO_FAULTS, type FaultPlan } from './faults';
import { DuckDbWarehouse } from './duckdb-warehouse';
import { FolderObjectStore } from './folder-store';
import { LocalPipelineRunner, type DataflowJob } from './pipeline-runner';
import { pipelineFilePath } from '../pipeline/file';

export { pipelineFilePath } from '../pipeline/file';

/** A clock the stack sets per cycle: fixed to a simulated instant, or following real time. */
export class StackClock implements Clock {
  private fixed: Date | undefined;
  set(instant: Date | undefined): void {
    this.fixed = instant;
  }
  now(): Date {
    return this.fixed ? new Date(this.fixed) : new Date();
  }
}

export interface LocalStackOptions {
  config: Config;
  /** The DuckDB file; the caller has checked or seeded it. */
  warehouseFile: string;
  logger: Logger;
  clock: StackClock;
  /** Replaces the local bus as the publisher of the two topics (the Pub/Sub emulator). */
  publisher?: (stack: { urls: Record<FunctionName, string> }) => Promise<Publisher & { close?: () => Promise<void>; deadLettered?: () => readonly unknown[] }>;
  /** Faults to inject (duplicated or reordered deliveries, crashes, failed jobs, lost events, ...). */
  faults?: FaultPlan;
}

export const DATAFLOW_EVENTS = 'dataflow-job-status';

/**
 * The whole chain on one machine: the four functions on Functions Framework servers on
 * loopback, DuckDB for BigQuery, a folder for the bucket, the local bus for Pub/Sub and
 * Eventarc, and the local runner for Dataflow.
 */
export class LocalStack {
  private constructor(
    readonly config: Config,
    readonly warehouse: DuckDbWarehouse,
    readonly store: FolderObjectStore,
    readonly bus: LocalBus,
    readonly runner: LocalPipelineRunner,
    readonly urls: Record<FunctionName, string>,
    private readonly servers: Server[],
    readonly logger: Logger,
    readonly clock: StackClock,
    private readonly externalPublisher: (Publisher & { close?: () => Promise<void>; deadLettered?: () => readonly unknown[] }) | undefined,
    /** What the functions are built from (with the injected faults), for the operator's commands. */
    readonly deps: ChainDependencies,
    readonly faults: FaultInjector,
    private readonly unmute: () => void,
  ) {}

  static async start(options: LocalStackOptions): Promise<LocalStack> {
    const { config, logger, clock } = options;
    const faults = new FaultInjector(options.faults ?? NO_FAULTS, logger);
    const unmute = faults.active ? muteInjectedCrashTraces() : () => undefined;
    const warehouse = await DuckDbWarehouse.open(options.warehouseFile, { logger });
    const stateDir = resolve(config.stateDir);
    const store = new FolderObjectStore(join(stateDir, 'bucket'));
    const bus = new LocalBus({
      maxAttempts: config.localBusMaxAttempts,
      concurrency: config.localBusConcurrency,
      deadLetterDir: join(stateDir, 'dead-letter'),
      logger,
      faults,
    });
    const runner = new LocalPipelineRunner({
      warehouse,
      pipelineFile: pipelineFilePath(),
      project: 'local',
      region: config.region,
      clock,
      logger,
      outcome: (request) => faults.jobOutcome(request.attempt),
      emit: async (job: DataflowJob) => {
        if (faults.loseEvent(job.currentState, Number(job.labels.attempt ?? '1'))) return;
        bus.emitEvent({
          topic: DATAFLOW_EVENTS,
          type: STATUS_CHANGED,
          source: `//dataflow.googleapis.com/projects/local/locations/${config.region}`,
          subject: `jobs/${job.id}`,
          extensions: { job: job.name },
          data: { payload: job },
        });
      },
    });
    try {
      await checkSourceTables(warehouse, config);
    } catch (error) {
      await warehouse.close();
      unmute();
      throw error;
    }
    await warehouse.ensureTable(config.tables.consolidated, loadSchema('consolidated_table'), { partitionField: 'created_at', clusterFields: ['operation_id'] });
    await warehouse.ensureTable(config.tables.quarantine, loadSchema('quarantine'), { partitionField: 'first_seen_at', clusterFields: ['reason', 'batch_id'] });

    // The servers start before the publisher is known (the emulator's push endpoints need
    // their URLs), so the handlers publish through a forwarder set just below.
    let publisher: Publisher = bus;
    const deps: ChainDependencies = {
      config,
      warehouse: faults.warehouse(warehouse),
      store: faults.store(store),
      publisher: faults.publisher({
        publish: async (topic, message) => {
          const messageId = await publisher.publish(topic, message);
          // The local bus reports its own traffic; traffic through the emulator is reported here.
          if (publisher !== bus) bus.events.emit('published', { topic, messageId, data: message.data });
          return messageId;
        },
      }),
      launcher: faults.launcher(runner),
      clock,
      leaseClock: { now: () => new Date() },
      logger,
    };
    registerFunctions(buildHandlers(deps));
    const servers: Server[] = [];
    const urls = {} as Record<FunctionName, string>;
    for (const name of ['publishOps', 'collectIds', 'launchDataflow', 'mergeOnComplete'] as const) {
      const server = getTestServer(name);
      await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
      servers.push(server);
      urls[name] = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    }
    bus.subscribe(config.idsTopic, 'collect-ids', urls.collectIds);
    bus.subscribe(config.batchesTopic, 'launch-dataflow', urls.launchDataflow);
    bus.subscribe(DATAFLOW_EVENTS, 'merge-on-complete', urls.mergeOnComplete);
    let external: (Publisher & { close?: () => Promise<void>; deadLettered?: () => readonly unknown[] }) | undefined;
    try {
      external = options.publisher ? await options.publisher({ urls }) : undefined;
    } catch (error) {
      await Promise.all(servers.map((server) => new Promise<void>((done) => server.close(() => done()))));
      await warehouse.close();
      unmute();
      throw error;
    }
    if (external) publisher = external;
    return new LocalStack(config, warehouse, store, bus, runner, urls, servers, logger, clock, external, deps, faults, unmute);
  }

  /** True when no message is moving and no job is running (the emulator's queue is not visible). */
  quiet(): boolean {
    return this.bus.isIdle() && this.runner.jobs().every((job) => isTerminal(job.currentState));
  }

  /** Waits until no message is moving and no job is running (a job's last event may set messages moving again). */
  async settle(): Promise<void> {
    for (let round = 0; round < 20 && !this.quiet(); round++) {
      await this.bus.idle();
      await this.runner.idle();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Messages dead-lettered so far, by the local bus or the emulator. */
  deadLetterCount(): number {
    return this.bus.deadLettered().length + (this.externalPublisher?.deadLettered?.().length ?? 0);
  }

  async stop(): Promise<void> {
    this.bus.close();
    await this.externalPublisher?.close?.();
    await Promise.all(
      this.servers.map((server) => {
        server.closeAllConnections();
        return new Promise<void>((done) => server.close(() => done()));
      }),
    );
    await this.runner.idle();
    await this.warehouse.close();
    this.unmute();
  }
}

const SOURCES = [
  ['ussd', 'ussd_operations'],
  ['transactions', 'transactiongu'],
  ['services', 'services'],
  ['agents', 'agents'],
] as const;

/** Fails with one message naming every missing source table or column; reads, never alters. */
export async function checkSourceTables(warehouse: DuckDbWarehouse, config: Config): Promise<void> {
  const problems: string[] = [];
  for (const [key, schemaName] of SOURCES) {
    const ref = config.tables[key];
    const found = await warehouse.query({
      sql: 'SELECT column_name FROM information_schema.columns WHERE table_schema = $schema AND table_name = $table',
      params: { schema: { type: 'STRING', value: ref.dataset }, table: { type: 'STRING', value: ref.table } },
    });
    const columns = new Set(found.rows.map((r) => String(r.column_name)));
    if (columns.size === 0) {
      problems.push(`table ${ref.dataset}.${ref.table} is missing`);
      continue;
    }
    const missing = loadSchema(schemaName).map((f) => f.name).filter((c) => !columns.has(c));
    if (missing.length > 0) problems.push(`table ${ref.dataset}.${ref.table} lacks column(s) ${missing.join(', ')}`);
  }
  if (problems.length > 0) throw new Error(`The warehouse does not hold the source tables of the data contract: ${problems.join('; ')}`);
}

export function isTerminal(state: string): boolean {
  return TERMINAL_STATES.has(state);
}
