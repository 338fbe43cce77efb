import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../shared/config';
import { JsonLogger } from '../../shared/logger';
import { runCycle, type CycleReport } from '../../shared/local/cycle';
import { appendChanges, releaseArrivals, seedDemoWarehouse } from '../../shared/local/demo-data';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { LocalStack, StackClock } from '../../shared/local/stack';
import { compareConsolidated, expectedConsolidation, expectedRejects } from '../support/oracle';

const START = new Date('2026-03-02T08:00:00Z');
const minutes = (n: number) => new Date(START.getTime() + n * 60_000);

/**
 * Each cycle: what happens to the sources before it (beyond the seeded history and its late
 * arrivals), and the scheduler's clock for it.
 */
const CYCLES: { name: string; clock: Date; changes?: Parameters<typeof appendChanges>[1] }[] = [
  { name: 'first window: the seeded first hour', clock: minutes(62) },
  { name: 'second window: status updates, settlements and late rows of the first', clock: minutes(122) },
  {
    // Late rows with timestamps just before the previous window's end (118-120 min) arrive only
    // now: only the lookback brings them in.
    name: 'third window: new operations, updates, settlements, duplicates, and rows late for the second window',
    clock: minutes(142),
    changes: { since: minutes(120), at: minutes(128), seed: 11, newOperations: 120, updates: 80, settlements: 60, lateRows: 20, duplicates: 10 },
  },
  {
    name: 'fourth window: another wave with rows late for the third',
    clock: minutes(162),
    changes: { since: minutes(140), at: minutes(147), seed: 12, newOperations: 60, updates: 90, settlements: 70, lateRows: 20, duplicates: 10 },
  },
  {
    name: 'fifth window: settlements only, some of them late',
    clock: minutes(182),
    changes: { since: minutes(160), at: minutes(166), seed: 13, newOperations: 0, updates: 0, settlements: 80, lateRows: 10, duplicates: 0 },
  },
  { name: 'sixth window: nothing changed', clock: minutes(202) },
];

describe('the chain end to end on the local stack', function () {
  this.timeout(240_000);
  let dir: string;
  let config: Config;
  let stack: LocalStack;
  const logs: { severity: string; message: string }[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chain-e2e-'));
    const file = join(dir, 'warehouse.duckdb');
    const seeding = await DuckDbWarehouse.open(file);
    const connection = await seeding.connect();
    await seedDemoWarehouse(connection, { operations: 900, start: START, hours: 2, seed: 7 });
    // Microseconds, as BigQuery keeps them: the chain must carry every one (a TIMESTAMP through Beam keeps milliseconds only).
    const micros = (key: string) => `to_microseconds(CAST(hash(${key}) % 999 + 1 AS BIGINT))`;
    await connection.run(`UPDATE main.ussd_operations SET created_at = created_at + ${micros('operation_id')}, source_timestamp = source_timestamp + ${micros('operation_id')}`);
    await connection.run(`UPDATE main.transactiongu SET updated_at = updated_at + ${micros('transaction_id')}`);
    await seeding.close();
    config = loadConfig({ STATE_DIR: join(dir, 'state'), CHUNK_SIZE: '50', LOOKBACK: '15m', SAFETY_LAG: '2m', LOCAL_BUS_MAX_ATTEMPTS: '3' });
    stack = await LocalStack.start({ config, warehouseFile: file, logger: new JsonLogger((line) => logs.push(JSON.parse(line)), 'DEBUG'), clock: new StackClock() });
    await stack.store.create(config.watermarkObject, START.toISOString());
  });

  after(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const reports: CycleReport[] = [];
  let watermark = START;
  for (const cycle of CYCLES) {
    it(`${cycle.name}: consolidated_table equals a from-scratch consolidation`, async () => {
      const connection = await stack.warehouse.connect();
      await releaseArrivals(connection, cycle.clock);
      if (cycle.changes) await appendChanges(connection, cycle.changes);
      stack.clock.set(cycle.clock);

      const report = await runCycle(stack, { quietMs: 3_000 });
      reports.push(report);
      assert.equal(report.ok, true, report.error);
      const windowEnd = new Date(cycle.clock.getTime() - config.safetyLagMs);
      assert.equal(report.window?.to, windowEnd.toISOString());
      assert.equal(report.window?.from, new Date(watermark.getTime() - config.lookbackMs).toISOString());

      const rejects = await expectedRejects(connection, watermark, windowEnd);
      assert.deepEqual(report.rejected, { missingOperationId: rejects.missingOperationId, missingSourceTimestamp: rejects.missingSourceTimestamp });

      const expected = await expectedConsolidation(connection, windowEnd);
      const diff = await compareConsolidated(connection, '"consolidated_dataset"."consolidated_table"', expected);
      assert.deepEqual({ missing: diff.missing.slice(0, 5), unexpected: diff.unexpected.slice(0, 5), different: diff.different.slice(0, 5) }, { missing: [], unexpected: [], different: [] });
      assert.equal(diff.checked, expected.size);
      watermark = windowEnd;
    });
  }

  it('merged inserts, updates and unchanged re-reads across the cycles, and dead-lettered nothing', () => {
    const merged = reports.filter((r) => r.outcome === 'merged');
    assert.ok(merged.length >= 5, `${merged.length} cycles merged`);
    const total = (key: 'inserted' | 'updated' | 'unchanged') => merged.reduce((sum, r) => sum + (r.state?.merge?.[key] ?? 0), 0);
    assert.ok(total('inserted') > 900, `inserted ${total('inserted')}`);
    assert.ok(total('updated') > 50, `updated ${total('updated')}`);
    assert.ok(total('unchanged') > 0, `unchanged ${total('unchanged')}`);
    assert.ok(reports.every((r) => r.deadLetters === 0));
    assert.deepEqual(logs.filter((l) => l.severity === 'ERROR'), []);
    const statuses = new Set(merged.flatMap((r) => Object.keys(r.state?.merge?.statusCounts ?? {})));
    assert.deepEqual([...statuses].sort(), ['AMOUNT_MISMATCH', 'MATCHED', 'MISSING_TRANSACTION', 'PENDING', 'STATUS_MISMATCH']);
  });

  it('leaves no batch table behind and every batch MERGED', async () => {
    const tables = await stack.warehouse.query({ sql: "SELECT table_name FROM information_schema.tables WHERE table_schema = 'consolidation_staging'", params: {} });
    assert.deepEqual(tables.rows, []);
    for (const report of reports.filter((r) => r.batchId)) assert.equal(report.state?.status, 'MERGED');
  });
});

describe('the oracle comparison catches what a chain without lookback misses', function () {
  this.timeout(120_000);
  let dir: string;
  let stack: LocalStack;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chain-nolookback-'));
    const file = join(dir, 'warehouse.duckdb');
    const seeding = await DuckDbWarehouse.open(file);
    const connection = await seeding.connect();
    await seedDemoWarehouse(connection, { operations: 900, start: START, hours: 2, seed: 7 });
    // Microseconds, as BigQuery keeps them: the chain must carry every one (a TIMESTAMP through Beam keeps milliseconds only).
    const micros = (key: string) => `to_microseconds(CAST(hash(${key}) % 999 + 1 AS BIGINT))`;
    await connection.run(`UPDATE main.ussd_operations SET created_at = created_at + ${micros('operation_id')}, source_timestamp = source_timestamp + ${micros('operation_id')}`);
    await connection.run(`UPDATE main.transactiongu SET updated_at = updated_at + ${micros('transaction_id')}`);
    await seeding.close();
    const config = loadConfig({ STATE_DIR: join(dir, 'state'), LOOKBACK: '0m', SAFETY_LAG: '2m' });
    stack = await LocalStack.start({ config, warehouseFile: file, logger: new JsonLogger(() => undefined), clock: new StackClock() });
    await stack.store.create(config.watermarkObject, START.toISOString());
  });

  after(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('LOOKBACK=0m: rows late for the previous window are not consolidated, and the comparison reports them', async () => {
    const connection = await stack.warehouse.connect();
    for (const cycle of CYCLES.slice(0, 3)) {
      await releaseArrivals(connection, cycle.clock);
      if (cycle.changes) await appendChanges(connection, cycle.changes);
      stack.clock.set(cycle.clock);
      assert.equal((await runCycle(stack, { quietMs: 3_000 })).ok, true);
    }
    const expected = await expectedConsolidation(connection, minutes(140));
    const diff = await compareConsolidated(connection, '"consolidated_dataset"."consolidated_table"', expected);
    assert.ok(diff.different.length + diff.missing.length > 0, 'late rows went unnoticed');
  });
});
