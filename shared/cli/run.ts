import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config';
import { formatDuration } from '../duration';
import type { Logger } from '../ports';
import { describeFaults } from '../local/faults';
import { paths } from '../batch';
import { DEMO_DEFAULTS, releaseArrivals, seedDemoWarehouse } from '../local/demo-data';
import { DuckDbWarehouse } from '../local/duckdb-warehouse';
import { FolderObjectStore } from '../local/folder-store';
import { runCycle, type CycleProgress, type CycleReport } from '../local/cycle';
import { StackClock, type LocalStack } from '../local/stack';
import { formatCycle, ProgressLine } from './report';
import { openSession, startStack, type SessionOptions } from './session';

export interface RunOptions extends SessionOptions {
  mode: 'once' | 'watch' | 'catch-up';
  everyMs: number;
  now?: Date;
  demoRows?: number;
  interactive: boolean;
}

const DEMO_SCHEMA_PROBE = "SELECT COUNT(*) AS n FROM information_schema.schemata WHERE schema_name = 'demo_arrivals'";

/** `consolidate run`: prepares the warehouse, starts the local stack, runs the cycles, prints their summaries. */
export async function runCommand(options: RunOptions): Promise<number> {
  const { config, out } = options;
  const session = openSession(options);
  const { stateDir, logFile, logger, warehouseFile } = session;
  if (!session.demoWarehouse && !existsSync(warehouseFile)) {
    out(`consolidate: no warehouse at ${warehouseFile}. Point --warehouse at an existing DuckDB file holding the source tables, or leave it out to use the demo warehouse.`);
    return 2;
  }
  let demoEndAt: Date | undefined;
  if (session.demoWarehouse) demoEndAt = await prepareDemo(warehouseFile, config, options, logger);

  const clock = new StackClock();
  const stack = await startStack(session, options, clock);
  if (!stack) return 1;
  const faulty = stack.faults.active;
  const isDemo = Number((await stack.warehouse.query({ sql: DEMO_SCHEMA_PROBE, params: {} })).rows[0]?.n ?? 0) > 0;
  out(`Local stack up: warehouse ${warehouseFile}${isDemo ? ' (demo)' : ''}, state ${stateDir}, ${options.pubsubEmulator ? 'Pub/Sub emulator' : 'local bus'}; log ${logFile}`);
  if (faulty) out(`Injecting faults: ${describeFaults(stack.faults.plan)}`);

  const progress = new ProgressLine(options.interactive, (text) => process.stdout.write(text));
  let failures = 0;
  const cycle = async (n: number, at: Date | undefined): Promise<CycleReport> => {
    clock.set(at);
    if (isDemo) {
      const upTo = at ?? clock.now();
      const released = await stack.warehouse.withConnection((connection) => releaseArrivals(connection, upTo));
      if (released.ussd + released.transactions > 0) logger.info('Demo: late rows arrived', { ...released, upTo: upTo.toISOString() });
    }
    const report = await runCycle(stack, {
      onProgress: (p: CycleProgress) => progress.show(`cycle ${n} · ${p.stage} · IDs published ${p.idsPublished} · rows merged ${p.rowsMerged}`),
      quietMs: options.pubsubEmulator ? 20_000 : 2_000,
      concurrentCalls: stack.faults.plan.concurrent ? 2 : 1,
    });
    progress.clear();
    // With faults, repairs and redeliveries may still be moving other batches: let them finish.
    if (faulty) await stack.settle();
    for (const line of formatCycle(n, report)) out(line);
    if (!report.ok) failures++;
    return report;
  };

  try {
    const target = options.now ?? (isDemo ? new Date((demoEndAt ?? demoEnd()).getTime() + config.safetyLagMs) : undefined);
    if (options.mode === 'once') {
      await cycle(1, target);
    } else if (options.mode === 'watch') {
      await watch(options, cycle, out);
    } else {
      await catchUp(stack, config, target ?? new Date(), options.everyMs, cycle, out, faulty);
    }
  } finally {
    if (faulty) out(`Faults fired: ${Object.entries(stack.faults.fired).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'}`);
    // Repairs the last run's reconciler started (a relaunch, say) finish before the stack stops.
    await stack.settle();
    await stack.stop();
  }
  if (failures > 0) {
    out(`consolidate: ${failures} cycle(s) failed; see ${logFile}`);
    return 1;
  }
  return 0;
}

function demoEnd(): Date {
  return new Date(DEMO_DEFAULTS.start.getTime() + DEMO_DEFAULTS.hours * 3_600_000);
}

/** Creates and seeds the demo warehouse on first run; its watermark starts at the demo's start. */
async function prepareDemo(file: string, config: Config, options: RunOptions, logger: Logger): Promise<Date> {
  const end = demoEnd();
  if (existsSync(file)) return end;
  mkdirSync(resolve(file, '..'), { recursive: true });
  const started = performance.now();
  const warehouse = await DuckDbWarehouse.open(file, { logger });
  try {
    const summary = await seedDemoWarehouse(await warehouse.connect(), { ...DEMO_DEFAULTS, operations: options.demoRows ?? DEMO_DEFAULTS.operations });
    options.out(
      `Demo warehouse created at ${file}: ${summary.operations} operations, ${summary.ussdRows} USSD rows, ${summary.transactionRows} transaction rows ` +
        `from ${summary.start.toISOString()} to ${summary.end.toISOString()} (${summary.lateRowsHeld} late rows to arrive) in ${Math.round(performance.now() - started)} ms`,
    );
  } finally {
    await warehouse.close();
  }
  const store = new FolderObjectStore(join(resolve(config.stateDir), 'bucket'));
  await store.create(config.watermarkObject, DEMO_DEFAULTS.start.toISOString());
  return end;
}

/**
 * Runs cycles the way the scheduler would have, one per `everyMs` of simulated time, from the
 * watermark until the window reaches `target`. Without a watermark yet, the first cycle runs at
 * `target` and covers everything from INITIAL_WATERMARK, or MAX_WINDOW of it. Simulated time never
 * goes back: while MAX_WINDOW cuts windows short, the next cycles run at the same time and read
 * MAX_WINDOW at a time, as the deployed chain catches up.
 */
async function catchUp(
  stack: LocalStack,
  config: Config,
  target: Date,
  everyMs: number,
  cycle: (n: number, at: Date) => Promise<CycleReport>,
  out: (line: string) => void,
  faulty: boolean,
): Promise<void> {
  let stalled = 0;
  let previous: number | undefined;
  let lastAt: number | undefined;
  for (let n = 1; ; n++) {
    const stored = await stack.store.read(config.watermarkObject);
    const watermark = stored ? new Date(stored.data.trim()) : undefined;
    if (watermark && watermark.getTime() >= target.getTime() - config.safetyLagMs) {
      out(`Caught up: watermark ${watermark.toISOString()} (target ${target.toISOString()} minus a safety lag of ${config.safetyLagMs / 1000}s).`);
      if (faulty) await settleOpenBatches(stack, watermark, everyMs, n, cycle, out);
      return;
    }
    stalled = watermark?.getTime() === previous ? stalled + 1 : 0;
    previous = watermark?.getTime();
    if (stalled >= 5) {
      out(`consolidate: the watermark has not moved in 5 runs; stopping.`);
      return;
    }
    const at = watermark ? new Date(Math.max(lastAt ?? -Infinity, Math.min(target.getTime(), watermark.getTime() + config.safetyLagMs + everyMs))) : target;
    lastAt = at.getTime();
    const report = await cycle(n, at);
    // Without faults a failed cycle stops the catch-up; with injected faults, failures are the
    // point: the next runs (and their reconciler) must repair them, unless the watermark stalls.
    if (!report.ok && !faulty) return;
  }
}

/** With faults, the scheduler keeps ticking after the catch-up until the reconciler has closed every batch. */
async function settleOpenBatches(
  stack: LocalStack,
  watermark: Date,
  everyMs: number,
  done: number,
  cycle: (n: number, at: Date) => Promise<CycleReport>,
  out: (line: string) => void,
): Promise<void> {
  let at = new Date(watermark.getTime() + stack.config.safetyLagMs);
  for (let extra = 0; extra < 3; extra++) {
    const open = await stack.store.list(paths.openBatches);
    if (open.length === 0) return;
    out(`${open.length} batch(es) still open; the scheduler ticks again so that the reconciler repairs them.`);
    at = new Date(at.getTime() + everyMs);
    await cycle(done + extra, at);
  }
}

async function watch(options: RunOptions, cycle: (n: number, at: Date | undefined) => Promise<CycleReport>, out: (line: string) => void): Promise<void> {
  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  out(`Watching: a cycle every ${formatDuration(options.everyMs)}; Ctrl-C stops after the current cycle.`);
  for (let n = 1; !stopping; n++) {
    const next = Date.now() + options.everyMs;
    await cycle(n, undefined);
    while (!stopping && Date.now() < next) await new Promise((r) => setTimeout(r, Math.min(500, next - Date.now())));
  }
}
