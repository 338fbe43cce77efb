import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config';
import { formatDuration } from '../duration';
import { paths } from '../batch';
import { describeFaults } from '../local/faults';
import { DEMO_DEFAULTS, releaseArrivals, seedDemoWarehouse } from '../local/demo-data';
import { DuckDbWarehouse } from '../local/duckdb-warehouse';
import { FolderObjectStore } from '../local/folder-store';
import { runCycle, type CycleReport } from '../local/cycle';
import { StackClock, type LocalStack } from '../local/stack';
import { CliError, EXIT } from './exit';
import { Interrupt } from './interrupt';
import { emptyTotals, addToTotals, formatCycle, formatTotals, ProgressLine, type RunTotals } from './report';
import { announceLeaseTakeover, openSession, startStack, type Session, type SessionOptions } from './session';
import { recordRunClock } from './state-folder';

export interface RunOptions extends SessionOptions {
  mode: 'once' | 'watch' | 'catch-up';
  everyMs: number;
  now?: Date;
  demoRows?: number;
  /** Show the progress line (on stderr): redrawn in place on a terminal, a line a second elsewhere. */
  progress: boolean;
  tty: boolean;
  /** Allow a window end further than `maxAheadMs` beyond the real clock. */
  force: boolean;
  maxAheadMs: number;
  err: (text: string) => void;
}

/** One cycle as `run --json` reports it. */
export interface CycleResult {
  cycle: number;
  outcome: CycleReport['outcome'];
  ok: boolean;
  batchId: string | null;
  window: { from: string; to: string } | null;
  watermark: string | null;
  ids: number;
  inserted: number;
  updated: number;
  unchanged: number;
  rejectedRows: number;
  jobState: string | null;
  error: string | null;
  elapsedMs: number | null;
}

export interface RunOutcome {
  code: number;
  results: CycleResult[];
  totals: RunTotals;
  stopped: boolean;
}

const DEMO_SCHEMA_PROBE = "SELECT COUNT(*) AS n FROM information_schema.schemata WHERE schema_name = 'demo_arrivals'";

function resultOf(n: number, report: CycleReport): CycleResult {
  const merge = report.state?.merge;
  const rejected = report.rejected ? Object.values(report.rejected).reduce<number>((sum, v) => sum + (typeof v === 'number' ? v : 0), 0) : 0;
  return {
    cycle: n,
    outcome: report.outcome,
    ok: report.ok,
    batchId: report.batchId ?? null,
    window: report.window ?? null,
    watermark: report.watermark ?? null,
    ids: report.idCount,
    inserted: merge?.inserted ?? 0,
    updated: merge?.updated ?? 0,
    unchanged: merge?.unchanged ?? 0,
    rejectedRows: rejected,
    jobState: report.jobState ?? null,
    error: report.error ?? null,
    elapsedMs: report.stagesMs ? Math.round(report.stagesMs.total) : null,
  };
}

/** `consolidate run`: prepares the warehouse, runs the cycles on the local stack, prints their summaries and the totals. */
export async function runCommand(options: RunOptions): Promise<RunOutcome> {
  const { config, out } = options;
  const session = openSession(options);
  let demoEndAt: Date | undefined;
  if (session.demoWarehouse) demoEndAt = await prepareDemo(session.warehouseFile, config, options);
  const isDemo = session.demoWarehouse || (await probeDemo(session));
  const target = options.now ?? (isDemo ? new Date((demoEndAt ?? demoEnd()).getTime() + config.safetyLagMs) : undefined);
  if (target) checkAhead(target, config, options);
  await announceLeaseTakeover(session, config, out);

  const interrupt = new Interrupt(options.mode === 'watch' ? 'Stopping after the current cycle (Ctrl-C again quits at once).' : 'Stopping after the current cycle; the next run resumes from the watermark (Ctrl-C again quits at once).', options.err);
  const progress = new ProgressLine(options.progress, options.tty, options.err);
  const results: CycleResult[] = [];
  const totals = emptyTotals();
  const clock = new StackClock();
  const started = performance.now();
  let failures = 0;
  let stack: LocalStack | undefined;
  const describe = (s: LocalStack) => {
    out(`Local stack up: warehouse ${session.warehouseFile}${isDemo ? ' (demo)' : ''}, state ${session.stateDir}, ${options.pubsubEmulator ? 'Pub/Sub emulator' : 'local bus'}; log ${session.logFile}`);
    if (s.faults.active) out(`Injecting faults: ${describeFaults(s.faults.plan)}`);
  };

  const cycle = async (s: LocalStack, n: number, at: Date | undefined, onStage?: (stage: string, ids: number) => void): Promise<CycleReport> => {
    clock.set(at);
    if (isDemo) {
      const upTo = at ?? clock.now();
      const released = await s.warehouse.withConnection((connection) => releaseArrivals(connection, upTo));
      if (released.ussd + released.transactions > 0) session.logger.info('Demo: late rows arrived', { ...released, upTo: upTo.toISOString() });
    }
    const report = await runCycle(s, {
      onProgress: (p) => onStage?.(p.stage, p.idsPublished),
      quietMs: options.pubsubEmulator ? 20_000 : 2_000,
      concurrentCalls: s.faults.plan.concurrent ? 2 : 1,
    });
    // With faults, repairs and redeliveries may still be moving other batches: let them finish.
    if (s.faults.active) await s.settle();
    const result = resultOf(n, report);
    results.push(result);
    addToTotals(totals, result);
    if (!report.ok) failures++;
    return report;
  };

  /** The progress line of a single cycle (--once, --watch): its stage and the IDs published so far. */
  const stages = (n: number) => (stage: string, ids: number) => progress.show(`cycle ${n}: ${stage} · IDs published ${ids}`, ids === 0);

  const print = (n: number, report: CycleReport) => {
    progress.clear();
    for (const line of formatCycle(n, report)) out(line);
  };

  try {
    if (options.mode === 'watch') {
      await watch(options, interrupt, async (n) => {
        // The warehouse is open only while a cycle runs, so other readers and commands can use it in between.
        const s = await startStack(session, options, clock);
        try {
          if (n === 1) describe(s);
          print(n, await cycle(s, n, undefined, stages(n)));
          await s.settle();
        } finally {
          await s.stop();
        }
      });
    } else {
      stack = await startStack(session, options, clock);
      describe(stack);
      if (options.mode === 'once') {
        print(1, await cycle(stack, 1, target, stages(1)));
      } else {
        await catchUp(stack, config, target ?? new Date(), options, interrupt, progress, totals, started, cycle, print);
      }
    }
  } finally {
    progress.clear();
    if (stack) {
      if (stack.faults.active) out(`Faults fired: ${Object.entries(stack.faults.fired).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'}`);
      // Repairs the last run's reconciler started (a relaunch, say) finish before the stack stops.
      await stack.settle();
      await stack.stop();
    }
    interrupt.dispose();
    recordRunClock(session.stateDir, options.mode === 'watch' ? undefined : target);
  }
  totals.elapsedMs = performance.now() - started;
  if (results.length > 1 || options.mode !== 'once') for (const line of formatTotals(totals)) out(line);
  if (interrupt.stopping && options.mode !== 'watch') {
    out(`Stopped at your request after ${results.length} cycle(s); the watermark is where the last finished cycle left it.`);
    return { code: EXIT.interrupted, results, totals, stopped: true };
  }
  if (failures > 0) {
    out(`consolidate: ${failures} cycle(s) failed; see ${session.logFile}`);
    return { code: EXIT.failed, results, totals, stopped: false };
  }
  return { code: EXIT.ok, results, totals, stopped: false };
}

/** Refuses a window end so far beyond the real clock that it is surely a typo (unless --force). */
function checkAhead(target: Date, config: Config, options: RunOptions): void {
  const ahead = target.getTime() - config.safetyLagMs - Date.now();
  if (ahead > options.maxAheadMs && !options.force) {
    throw new CliError(
      `--now ${target.toISOString()} would move the watermark ${formatDuration(Math.round(ahead / 60_000) * 60_000 || ahead)} beyond the real clock ` +
        `(more than MAX_AHEAD ${formatDuration(options.maxAheadMs)}): every later run would then find nothing to do. Check the date, or add --force if it is meant.`,
    );
  }
}

async function probeDemo(session: Session): Promise<boolean> {
  if (!existsSync(session.warehouseFile)) return false;
  const warehouse = await DuckDbWarehouse.open(session.warehouseFile, { logger: session.logger });
  try {
    return Number((await warehouse.query({ sql: DEMO_SCHEMA_PROBE, params: {} })).rows[0]?.n ?? 0) > 0;
  } finally {
    await warehouse.close();
  }
}

function demoEnd(): Date {
  return new Date(DEMO_DEFAULTS.start.getTime() + DEMO_DEFAULTS.hours * 3_600_000);
}

/** Creates and seeds the demo warehouse on first run, showing its progress; its watermark starts at the demo's start. */
async function prepareDemo(file: string, config: Config, options: RunOptions): Promise<Date> {
  const end = demoEnd();
  if (existsSync(file)) return end;
  mkdirSync(resolve(file, '..'), { recursive: true });
  const operations = options.demoRows ?? DEMO_DEFAULTS.operations;
  const progress = new ProgressLine(options.progress, options.tty, options.err);
  const started = performance.now();
  progress.show(`Creating the demo warehouse: 0 of ${operations} operations`, true);
  const warehouse = await DuckDbWarehouse.open(file);
  try {
    const summary = await seedDemoWarehouse(await warehouse.connect(), { ...DEMO_DEFAULTS, operations }, (p) =>
      progress.show(p.writing ? `Creating the demo warehouse: writing ${p.total} operations` : `Creating the demo warehouse: ${p.generated} of ${p.total} operations`, p.writing),
    );
    progress.clear();
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

type Cycle = (s: LocalStack, n: number, at: Date, onStage?: (stage: string, ids: number) => void) => Promise<CycleReport>;

/**
 * Runs cycles the way the scheduler would have, one per `everyMs` of simulated time, from the
 * watermark until the window reaches `target`, with one progress line; consecutive empty windows
 * are printed as one line. Without a watermark yet, the first cycle runs at `target` and covers
 * everything from INITIAL_WATERMARK, or MAX_WINDOW of it. Simulated time never goes back: while
 * MAX_WINDOW cuts windows short, the next cycles run at the same time and read MAX_WINDOW at a
 * time, as the deployed chain catches up.
 */
async function catchUp(
  stack: LocalStack,
  config: Config,
  target: Date,
  options: RunOptions,
  interrupt: Interrupt,
  progress: ProgressLine,
  totals: RunTotals,
  started: number,
  cycle: Cycle,
  print: (n: number, report: CycleReport) => void,
): Promise<void> {
  const { everyMs, out } = options;
  const faulty = stack.faults.active;
  let stalled = 0;
  let previous: number | undefined;
  let lastAt: number | undefined;
  let empty: { first: number; last: number; from?: string; to?: string } | undefined;
  const flushEmpty = () => {
    if (!empty) return;
    progress.clear();
    const span = empty.from && empty.to ? ` (${empty.from} → ${empty.to})` : '';
    out(empty.first === empty.last ? `cycle ${empty.first}: no operation changed${span}` : `cycles ${empty.first}–${empty.last}: ${empty.last - empty.first + 1} windows with no operation changed${span}`);
    empty = undefined;
  };
  const firstWatermark = await readWatermark(stack, config);
  const windows = firstWatermark ? Math.max(1, Math.ceil((target.getTime() - config.safetyLagMs - firstWatermark.getTime()) / everyMs)) : 1;
  for (let n = 1; ; n++) {
    const watermark = await readWatermark(stack, config);
    if (watermark && watermark.getTime() >= target.getTime() - config.safetyLagMs) {
      flushEmpty();
      out(`Caught up: watermark ${watermark.toISOString()} (target ${target.toISOString()} minus a safety lag of ${config.safetyLagMs / 1000}s).`);
      if (faulty) await settleOpenBatches(stack, watermark, everyMs, n, cycle, print, out);
      return;
    }
    if (interrupt.stopping) {
      flushEmpty();
      return;
    }
    stalled = watermark?.getTime() === previous ? stalled + 1 : 0;
    previous = watermark?.getTime();
    if (stalled >= 5) {
      flushEmpty();
      out(`consolidate: the watermark has not moved in 5 runs; stopping.`);
      totals.failed++;
      return;
    }
    const at = watermark ? new Date(Math.max(lastAt ?? -Infinity, Math.min(target.getTime(), watermark.getTime() + config.safetyLagMs + everyMs))) : target;
    lastAt = at.getTime();
    const total = Math.max(windows, n);
    const show = (stage: string, ids: number) => {
      const done = n - 1;
      const elapsed = performance.now() - started;
      const left = done > 0 ? ` · about ${formatLeft((elapsed / done) * (total - done))} left` : '';
      progress.show(`catch-up: window ${n} of ${total} (${stage}) · operations so far ${totals.ids + ids} · rows merged ${totals.inserted + totals.updated}${left}`);
    };
    show('starting', 0);
    const report = await cycle(stack, n, at, show);
    // A window that MAX_WINDOW cut short is printed, with how far behind the run still is.
    if (report.ok && (report.outcome === 'empty' || report.outcome === 'up-to-date') && !report.catchUp) {
      empty ??= { first: n, last: n, from: report.window?.from };
      empty.last = n;
      empty.to = report.window?.to ?? empty.to;
    } else {
      flushEmpty();
      print(n, report);
    }
    // Without faults a failed cycle stops the catch-up; with injected faults, failures are the
    // point: the next runs (and their reconciler) must repair them, unless the watermark stalls.
    if (!report.ok && !faulty) return;
  }
}

function formatLeft(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

async function readWatermark(stack: LocalStack, config: Config): Promise<Date | undefined> {
  const stored = await stack.store.read(config.watermarkObject);
  return stored ? new Date(stored.data.trim()) : undefined;
}

/** With faults, the scheduler keeps ticking after the catch-up until the reconciler has closed every batch. */
async function settleOpenBatches(stack: LocalStack, watermark: Date, everyMs: number, done: number, cycle: Cycle, print: (n: number, report: CycleReport) => void, out: (line: string) => void): Promise<void> {
  let at = new Date(watermark.getTime() + stack.config.safetyLagMs);
  for (let extra = 0; extra < 3; extra++) {
    const open = await stack.store.list(paths.openBatches);
    if (open.length === 0) return;
    out(`${open.length} batch(es) still open; the scheduler ticks again so that the reconciler repairs them.`);
    at = new Date(at.getTime() + everyMs);
    print(done + extra, await cycle(stack, done + extra, at));
  }
}

async function watch(options: RunOptions, interrupt: Interrupt, cycle: (n: number) => Promise<void>): Promise<void> {
  options.out(`Watching: a cycle every ${formatDuration(options.everyMs)}; the warehouse is open only during a cycle; Ctrl-C stops after the current cycle.`);
  for (let n = 1; !interrupt.stopping; n++) {
    const next = Date.now() + options.everyMs;
    await cycle(n);
    if (!interrupt.stopping) options.out(`Next cycle at ${new Date(next).toISOString()}; the warehouse is free until then.`);
    await interrupt.sleepUntil(next);
  }
}
