import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { LAST_AUDIT_OBJECT, runAudit, type AuditReport } from '../../functions/audit';
import { BatchStore, paths } from '../../shared/batch';
import { loadConfig, type Config } from '../../shared/config';
import { JsonLogger } from '../../shared/logger';
import { runCycle } from '../../shared/local/cycle';
import { appendChanges, releaseArrivals, seedDemoWarehouse } from '../../shared/local/demo-data';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { localReplayer } from '../../shared/local/replayer';
import { LocalStack, StackClock } from '../../shared/local/stack';
import { pipelineFilePath } from '../../shared/pipeline/file';
import { compareConsolidated, expectedConsolidation } from '../support/oracle';

const START = new Date('2026-03-02T22:00:00Z');
const minutes = (n: number) => new Date(START.getTime() + n * 60_000);
const TABLE = '"consolidated_dataset"."consolidated_table"';

/**
 * The audit on the local stack: three cycles over two creation days (the seeded history starts
 * at 22:00 and crosses midnight), then the sources are changed behind the chain's back in the
 * three ways no cycle can see, and the audit must find each, and --repair must put right what a
 * replay can put right.
 */
describe('consolidate audit on the local stack', function () {
  this.timeout(240_000);
  let dir: string;
  let config: Config;
  let stack: LocalStack;
  let connection: DuckDBConnection;
  const logs: { severity: string; message: string }[] = [];
  const watermark = minutes(160);

  const audit = (repair = false, days: { from?: string; to?: string } = {}): Promise<AuditReport> =>
    runAudit({ ...stack.deps, pipeline: { text: readFileSync(pipelineFilePath(), 'utf8'), file: pipelineFilePath() }, replayer: localReplayer(stack, 3_000) }, { ...days, repair });
  const oracle = async () => compareConsolidated(connection, TABLE, await expectedConsolidation(connection, watermark));
  const one = async (sql: string) => (await connection.runAndReadAll(sql)).getRows()[0];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-e2e-'));
    const file = join(dir, 'warehouse.duckdb');
    const seeding = await DuckDbWarehouse.open(file);
    await seedDemoWarehouse(await seeding.connect(), { operations: 600, start: START, hours: 2, seed: 5 });
    await seeding.close();
    config = loadConfig({ STATE_DIR: join(dir, 'state'), CHUNK_SIZE: '100', LOOKBACK: '15m', SAFETY_LAG: '2m', REPLAY_MAX_IDS: '3', AUDIT_DAYS: '2' });
    stack = await LocalStack.start({ config, warehouseFile: file, logger: new JsonLogger((line) => logs.push(JSON.parse(line)), 'DEBUG'), clock: new StackClock() });
    await stack.store.create(config.watermarkObject, START.toISOString());
    connection = await stack.warehouse.connect();
    for (const [clock, changes] of [
      [minutes(62), undefined],
      [minutes(122), undefined],
      [minutes(162), { since: minutes(120), at: minutes(140), seed: 3, newOperations: 60, updates: 60, settlements: 40, lateRows: 10, duplicates: 5 }],
    ] as const) {
      await releaseArrivals(connection, clock);
      if (changes) await appendChanges(connection, changes);
      stack.clock.set(clock);
      const report = await runCycle(stack, { quietMs: 3_000 });
      assert.equal(report.ok, true, report.error);
    }
    const diff = await oracle();
    assert.deepEqual([diff.missing, diff.unexpected, diff.different], [[], [], []], 'the chain itself left the table wrong');
  });

  after(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports nothing on a clean run, and records each day it checked', async () => {
    const report = await audit();
    assert.equal(report.outcome, 'clean');
    assert.deepEqual(report.days, { from: '2026-03-02', to: '2026-03-03' });
    assert.equal(report.asOf, watermark.toISOString());
    assert.deepEqual(report.differences, []);
    assert.deepEqual(report.results.map((r) => [r.day, r.outcome]), [['2026-03-02', 'clean'], ['2026-03-03', 'clean']]);
    const [rows] = await one(`SELECT count(*) FROM ${TABLE}`);
    assert.equal(report.results.reduce((sum, r) => sum + r.actualRows, 0), Number(rows));
    assert.ok(report.results.every((r) => r.expectedRows === r.actualRows && r.expectedFingerprint === r.actualFingerprint && r.expectedFingerprint !== null));
    const recorded = await connection.runAndReadAll(`SELECT CAST(day AS VARCHAR), outcome, expected_rows, missing_rows + extra_rows + different_rows FROM "consolidated_dataset"."consolidation_audit" WHERE audit_id = '${report.auditId}' ORDER BY day`);
    assert.deepEqual(recorded.getRows().map((r) => r.map(String)), report.results.map((r) => [r.day, 'clean', String(r.expectedRows), '0']));
    assert.equal(JSON.parse((await stack.store.read(LAST_AUDIT_OBJECT))!.data).auditId, report.auditId);
  });

  let lateOperation: string;
  let agentOperations: string[];
  let deletedOperation: string;
  let pendingOperation: string;

  it('finds a late row beyond the lookback, a changed agent name and a deleted source row; leaves a row within the lookback to the chain', async () => {
    // A version of an operation that arrives now, stamped an hour before the watermark: no window will read it again.
    [lateOperation] = (await one(`SELECT operation_id FROM main.ussd_operations WHERE operation_id IS NOT NULL GROUP BY operation_id HAVING max(source_timestamp) < TIMESTAMPTZ '2026-03-02 23:00:00+00' AND arg_max(status, source_timestamp) <> 'TIMEOUT' ORDER BY operation_id LIMIT 1`)) as string[];
    await connection.run(`INSERT INTO main.ussd_operations SELECT * REPLACE ('TIMEOUT' AS status, TIMESTAMPTZ '2026-03-02 23:40:00+00' AS source_timestamp) FROM main.ussd_operations WHERE operation_id = '${lateOperation}' QUALIFY ROW_NUMBER() OVER (ORDER BY source_timestamp DESC) = 1`);
    // A version stamped within the lookback: the next cycle brings it; not a difference.
    [pendingOperation] = (await one(`SELECT operation_id FROM main.ussd_operations WHERE operation_id IS NOT NULL AND operation_id <> '${lateOperation}' GROUP BY operation_id HAVING max(source_timestamp) < TIMESTAMPTZ '2026-03-03 00:00:00+00' ORDER BY operation_id LIMIT 1`)) as string[];
    await connection.run(`INSERT INTO main.ussd_operations SELECT * REPLACE ('FAILED' AS status, TIMESTAMPTZ '2026-03-03 00:35:00+00' AS source_timestamp) FROM main.ussd_operations WHERE operation_id = '${pendingOperation}' QUALIFY ROW_NUMBER() OVER (ORDER BY source_timestamp DESC) = 1`);
    // An agent renamed: reference data carries no timestamp.
    const [agent] = (await one(`SELECT u.agent_code FROM main.ussd_operations AS u JOIN main.agents AS a USING (agent_code) WHERE u.operation_id IS NOT NULL GROUP BY u.agent_code ORDER BY count(DISTINCT u.operation_id), u.agent_code LIMIT 1`)) as string[];
    await connection.run(`UPDATE main.agents SET agent_name = agent_name || ' (renamed)' WHERE agent_code = '${agent}'`);
    agentOperations = (await connection.runAndReadAll(`SELECT DISTINCT operation_id FROM main.ussd_operations WHERE agent_code = '${agent}' AND operation_id IS NOT NULL AND operation_id NOT IN ('${pendingOperation}', '${lateOperation}') AND source_timestamp IS NOT NULL ORDER BY 1`)).getRows().map((r) => String(r[0]));
    assert.ok(agentOperations.length >= 1);
    // Every row of an operation deleted at the source.
    [deletedOperation] = (await one(`SELECT operation_id FROM ${TABLE} WHERE operation_id NOT IN ('${lateOperation}', '${pendingOperation}') AND operation_id NOT IN (SELECT operation_id FROM main.ussd_operations WHERE agent_code = '${agent}' AND operation_id IS NOT NULL) ORDER BY operation_id DESC LIMIT 1`)) as string[];
    await connection.run(`DELETE FROM main.ussd_operations WHERE operation_id = '${deletedOperation}'`);

    const report = await audit();
    assert.equal(report.outcome, 'differs');
    const counted = report.differences.filter((x) => x.hold !== 'pending');
    const byId = new Map(counted.map((x) => [x.operationId, x]));
    assert.deepEqual(byId.get(lateOperation)?.kind, 'different');
    assert.ok(byId.get(lateOperation)!.columns.includes('ussd_status'), byId.get(lateOperation)!.columns.join());
    for (const id of agentOperations) {
      assert.equal(byId.get(id)?.kind, 'different', id);
      assert.deepEqual(byId.get(id)!.columns, ['agent_name'], id);
    }
    assert.equal(byId.get(deletedOperation)?.kind, 'extra');
    assert.equal(byId.get(deletedOperation)?.hold, 'orphan');
    assert.deepEqual([...byId.keys()].sort(), [lateOperation, ...agentOperations, deletedOperation].sort());
    assert.deepEqual(report.differences.filter((x) => x.hold === 'pending').map((x) => x.operationId), [pendingOperation]);
    const total = (key: 'missing' | 'extra' | 'different' | 'pending') => report.results.reduce((sum, r) => sum + r[key], 0);
    assert.deepEqual([total('missing'), total('extra'), total('different'), total('pending')], [0, 1, 1 + agentOperations.length, 1]);
    // Without --repair nothing changes.
    const diff = await oracle();
    assert.ok(diff.different.length > 0);
  });

  it('--repair replays exactly the differing operations (in chunks of REPLAY_MAX_IDS) and the oracle holds again, the orphan reported and kept', async () => {
    const before = (await connection.runAndReadAll(`SELECT operation_id, batch_id FROM ${TABLE} ORDER BY 1`)).getRows();
    const report = await audit(true);
    const repaired = [lateOperation, ...agentOperations].sort();
    assert.deepEqual(report.repair?.orphans, [deletedOperation]);
    assert.equal(report.repair?.replayed, repaired.length);
    assert.equal(report.repair?.replays.length, Math.ceil(repaired.length / 3));
    assert.ok(report.repair!.replays.every((r) => r.ok && r.merged));
    assert.equal(report.repair?.verified, true);
    // Only the replayed operations were rewritten.
    const after = new Map((await connection.runAndReadAll(`SELECT operation_id, batch_id FROM ${TABLE}`)).getRows().map(([id, batch]) => [String(id), String(batch)]));
    const rewritten = before.filter(([id, batch]) => after.get(String(id)) !== String(batch)).map(([id]) => String(id)).sort();
    assert.deepEqual(rewritten, repaired);

    const diff = await oracle();
    assert.deepEqual(diff.missing, []);
    assert.deepEqual(diff.different.filter((x) => x.operation_id !== pendingOperation), []);
    assert.deepEqual(diff.unexpected, [deletedOperation]);
    // The orphan is still there and still reported: the day of the orphan differs, the other is repaired.
    assert.equal(report.outcome, 'differs');
    const [orphans] = await one(`SELECT count(*) FROM ${TABLE} WHERE operation_id = '${deletedOperation}'`);
    assert.equal(Number(orphans), 1);
    assert.ok(logs.some((l) => l.severity === 'WARNING' && /orphans/.test(l.message)));
    assert.deepEqual(report.repair?.remaining?.map((x) => x.operationId), [deletedOperation]);
    const outcomes = new Map(report.results.map((r) => [r.day, r.outcome]));
    const orphanDay = report.differences.find((x) => x.operationId === deletedOperation)!.day;
    assert.equal(outcomes.get(orphanDay), 'differs');
    for (const [day, outcome] of outcomes) if (day !== orphanDay) assert.match(outcome, /^(repaired|clean)$/);
  });

  it('a second audit finds only the orphan', async () => {
    const report = await audit();
    assert.deepEqual(report.differences.filter((x) => x.hold !== 'pending').map((x) => [x.operationId, x.kind]), [[deletedOperation, 'extra']]);
  });

  it('leaves to the chain what changed after the start of a batch still in flight, and counts it once the batch is closed', async () => {
    const [operation] = (await one(`SELECT operation_id FROM main.ussd_operations WHERE operation_id IS NOT NULL AND operation_id NOT IN ('${lateOperation}', '${pendingOperation}', '${deletedOperation}') GROUP BY operation_id HAVING max(source_timestamp) < TIMESTAMPTZ '2026-03-02 23:00:00+00' AND arg_max(status, source_timestamp) <> 'FAILED' ORDER BY operation_id DESC LIMIT 1`)) as string[];
    await connection.run(`INSERT INTO main.ussd_operations SELECT * REPLACE ('FAILED' AS status, TIMESTAMPTZ '2026-03-02 23:50:00+00' AS source_timestamp) FROM main.ussd_operations WHERE operation_id = '${operation}' QUALIFY ROW_NUMBER() OVER (ORDER BY source_timestamp DESC) = 1`);
    const batchId = '20260303T004000Z-0a0a0a';
    await new BatchStore(stack.store).createManifest({ batchId, window: { from: '2026-03-02T23:30:00.000Z', to: watermark.toISOString() }, chunkCount: 1, idCount: 1, chunkSize: 100, rejected: { missingOperationId: 0, missingSourceTimestamp: 0 }, createdAt: watermark.toISOString() });
    await stack.store.create(paths.open(batchId), JSON.stringify({ batchId }));

    const inFlight = await audit();
    assert.equal(inFlight.openBatches, 1);
    assert.equal(inFlight.settledBefore, '2026-03-02T23:30:00.000Z');
    assert.equal(inFlight.differences.find((x) => x.operationId === operation)?.hold, 'pending');

    await stack.store.delete(paths.open(batchId));
    const closed = await audit();
    assert.equal(closed.openBatches, 0);
    const found = closed.differences.find((x) => x.operationId === operation);
    assert.equal(found?.hold, undefined);
    assert.ok(found?.columns.includes('ussd_status'));
  });

  it('refuses days it cannot audit', async () => {
    await assert.rejects(audit(false, { from: '2026-03-04', to: '2026-03-03' }), /after --to/);
    await assert.rejects(audit(false, { to: '2026-03-09' }), /after the watermark's day/);
    await assert.rejects(audit(false, { from: '2026-02-30' }), /expected a day/);
  });
});
