import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reconcileUnderLease, type ReconcileAction, type RepairKind } from '../../functions/reconciler';
import { BatchStore, paths, type BatchState } from '../../shared/batch';
import { loadConfig } from '../../shared/config';
import { JsonLogger } from '../../shared/logger';
import { runCycle, type CycleReport } from '../../shared/local/cycle';
import { appendChanges, releaseArrivals, seedDemoWarehouse } from '../../shared/local/demo-data';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { describeFaults, parseFaults } from '../../shared/local/faults';
import { LocalStack, StackClock } from '../../shared/local/stack';
import { compareConsolidated, expectedConsolidation, type Comparison } from './oracle';

/** One row of the fault matrix. */
export interface Scenario {
  name: string;
  /** Faults, as `consolidate run --inject` takes them. */
  inject: string;
  /** After the cycles and the reconciler: what the operator does (e.g. replay a window once the cause is fixed). */
  operator?: (stack: LocalStack, batches: BatchState[]) => Promise<void>;
  /** Batches allowed to end FAILED for good (given up, or superseded by another batch). */
  allowFailed?: boolean;
  /** Repairs the reconciler must have made (proof that the fault was noticed and handled there). */
  expectRepairs?: RepairKind[];
}

export interface ScenarioResult {
  scenario: string;
  faults: string;
  /** How often each fault fired. */
  fired: Record<string, number>;
  cycles: number;
  /** The watermark at the end: the last tick's window end when every run got through. */
  watermark: string | undefined;
  reconcileRounds: number;
  /** Repairs by kind, made at the start of the runs and in the later reconciler rounds. */
  repairs: Record<string, number>;
  rowsChecked: number;
  /** Rows missing, doubled or different after the scheduler's ticks, before the reconciler's later runs. */
  beforeRepairs: number;
  batches: Record<string, number>;
  openBatches: string[];
  comparison: Comparison;
  reports: CycleReport[];
  ok: boolean;
}

const START = new Date('2026-05-04T06:00:00Z');
const at = (minutes: number) => new Date(START.getTime() + minutes * 60_000);

/** The scheduler's ticks and what changes in the sources before each (updates, settlements, late rows, duplicates). */
const TICKS: { clock: Date; changes?: Parameters<typeof appendChanges>[1] }[] = [
  { clock: at(62) },
  { clock: at(82), changes: { since: at(60), at: at(70), seed: 21, newOperations: 40, updates: 40, settlements: 30, lateRows: 10, duplicates: 5 } },
  { clock: at(102), changes: { since: at(80), at: at(91), seed: 22, newOperations: 30, updates: 40, settlements: 30, lateRows: 10, duplicates: 5 } },
  { clock: at(122), changes: { since: at(100), at: at(110), seed: 23, newOperations: 0, updates: 30, settlements: 40, lateRows: 10, duplicates: 0 } },
];

export const STUCK_AFTER_MINUTES = 10;

/**
 * Runs one scenario on a fresh local stack: seeded history, four scheduler ticks with waves of
 * changes under the injected faults, then the reconciler (as a later run would) until no batch
 * is open, then the from-scratch comparison as of the last window.
 */
export async function runScenario(scenario: Scenario, seed: number): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), 'fault-matrix-'));
  const plan = parseFaults(`${scenario.inject},seed:${seed}`);
  const faults = describeFaults(plan);
  const file = join(dir, 'warehouse.duckdb');
  const seeding = await DuckDbWarehouse.open(file);
  await seedDemoWarehouse(await seeding.connect(), { operations: 360, start: START, hours: 2, seed });
  await seeding.close();
  const config = loadConfig({
    STATE_DIR: join(dir, 'state'),
    CHUNK_SIZE: '40',
    LOOKBACK: '15m',
    SAFETY_LAG: '2m',
    LOCAL_BUS_MAX_ATTEMPTS: '6',
    STUCK_AFTER: `${STUCK_AFTER_MINUTES}m`,
    LEASE_DURATION: '5m',
    MAX_ATTEMPTS: '3',
  });
  const stack = await LocalStack.start({ config, warehouseFile: file, logger: new JsonLogger(() => undefined), clock: new StackClock(), faults: plan });
  try {
    await stack.store.create(config.watermarkObject, START.toISOString());
    const connection = await stack.warehouse.connect();
    const reports: CycleReport[] = [];
    let last = START;
    for (const tick of TICKS) {
      await releaseArrivals(connection, tick.clock);
      if (tick.changes) await appendChanges(connection, tick.changes);
      stack.clock.set(tick.clock);
      reports.push(await runCycle(stack, { quietMs: 600, timeoutMs: 60_000, concurrentCalls: plan.concurrent ? 2 : 1 }));
      await stack.settle();
      last = tick.clock;
    }

    // A last tick whose publishOps died left its window unread: the scheduler's retry reads it.
    const windowEnd = new Date(last.getTime() - config.safetyLagMs);
    let retries = 0;
    while (retries < 3 && (await stack.store.read(config.watermarkObject))?.data.trim() !== windowEnd.toISOString()) {
      retries++;
      reports.push(await runCycle(stack, { quietMs: 600, timeoutMs: 60_000 }));
      await stack.settle();
    }

    // What the table lacks before the repairs (a batch stuck at the last tick shows here).
    const expected = await expectedConsolidation(connection, windowEnd);
    const early = await compareConsolidated(connection, '"consolidated_dataset"."consolidated_table"', expected);
    const beforeRepairs = early.missing.length + early.different.length + early.duplicated.length + early.unexpected.length;

    // Later runs: the reconciler repairs whatever stopped moving, until no batch is open.
    const repairs: Record<string, number> = {};
    for (const action of reports.flatMap((r) => r.reconciled ?? [])) {
      if (action.action !== 'waiting' && action.action !== 'closed') repairs[action.action] = (repairs[action.action] ?? 0) + 1;
    }
    let rounds = 0;
    let clock = last;
    while (rounds < 6 && (await stack.store.list(paths.openBatches)).length > 0) {
      rounds++;
      clock = new Date(clock.getTime() + (STUCK_AFTER_MINUTES + 1) * 60_000);
      stack.clock.set(clock);
      let actions: ReconcileAction[] = [];
      try {
        actions = await reconcileUnderLease(stack.deps);
      } catch {
        // A crash injected into a repair: the next round tries again.
      }
      for (const action of actions) {
        if (action.action !== 'waiting' && action.action !== 'closed') repairs[action.action] = (repairs[action.action] ?? 0) + 1;
      }
      await stack.settle();
    }
    const batches = await allBatches(stack);
    if (scenario.operator) {
      await scenario.operator(stack, batches);
      await stack.settle();
    }

    const watermark = (await stack.store.read(config.watermarkObject))?.data.trim();
    const comparison = await compareConsolidated(connection, '"consolidated_dataset"."consolidated_table"', expected);
    const finalBatches = await allBatches(stack);
    const byStatus: Record<string, number> = {};
    for (const b of finalBatches) {
      const key = b.status === 'FAILED' ? (b.supersededBy ? 'SUPERSEDED' : b.final ? 'FAILED-FINAL' : 'FAILED') : b.status;
      byStatus[key] = (byStatus[key] ?? 0) + 1;
    }
    const openBatches = await stack.store.list(paths.openBatches);
    const clean = comparison.missing.length + comparison.unexpected.length + comparison.duplicated.length + comparison.different.length === 0;
    const settledBatches = finalBatches.every((b) => b.status === 'MERGED' || (b.status === 'FAILED' && b.final && (scenario.allowFailed || b.supersededBy)));
    return {
      scenario: scenario.name,
      faults,
      fired: { ...stack.faults.fired, ...(plan.concurrent ? { concurrent: reports.reduce((n, r) => n + (r.refused ?? 0), 0) } : {}) },
      cycles: reports.length,
      watermark,
      reconcileRounds: rounds,
      repairs,
      rowsChecked: comparison.checked,
      beforeRepairs,
      batches: byStatus,
      openBatches,
      comparison,
      reports,
      ok: clean && watermark === windowEnd.toISOString() && openBatches.length === 0 && settledBatches && comparison.checked === expected.size && (scenario.expectRepairs ?? []).every((kind) => (repairs[kind] ?? 0) > 0),
    };
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function allBatches(stack: LocalStack): Promise<BatchState[]> {
  const batches = new BatchStore(stack.store);
  const states = (await stack.store.list('batches/')).filter((p) => p.endsWith('/state.json'));
  const result: BatchState[] = [];
  for (const path of states) {
    const state = await batches.readState(path.split('/')[1]);
    if (state) result.push(state.state);
  }
  return result;
}
