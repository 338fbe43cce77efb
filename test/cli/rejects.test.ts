import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rejectsCommand, type RejectsOptions } from '../../shared/cli/rejects';
import { loadConfig } from '../../shared/config';
import { runCycle } from '../../shared/local/cycle';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { JsonLogger } from '../../shared/logger';
import { LocalStack, StackClock } from '../../shared/local/stack';
import { duckdbCreateTable, loadSchema } from '../../shared/schema';
import { consolidate } from '../support/cli';

/** A user's warehouse with good rows and one row of each of three reject classes, consolidated by one cycle. */
describe('consolidate rejects', function () {
  this.timeout(60_000);
  let dir: string;
  let file: string;
  let batchId: string;
  const config = (warehouseFile = file) => loadConfig({ STATE_DIR: join(dir, 'state'), WAREHOUSE_FILE: warehouseFile });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rejects-'));
    file = join(dir, 'ops.duckdb');
    const warehouse = await DuckDbWarehouse.open(file);
    const c = await warehouse.connect();
    for (const name of ['ussd_operations', 'transactiongu', 'services', 'agents'] as const) await c.run(duckdbCreateTable(`main."${name}"`, loadSchema(name)));
    await c.run(`INSERT INTO main.ussd_operations VALUES
      ('OP1', 'S-1', '221770000001', '*144#', 'CASHIN', 5000, 'XOF', 'SUCCESS', NULL, NULL, '2026-05-01T09:00:00Z', '2026-05-01T09:04:00Z'),
      ('  ', 'S-2', '221770000002', '*144#', 'CASHIN', 5000, 'XOF', 'SUCCESS', NULL, NULL, '2026-05-01T09:00:00Z', '2026-05-01T09:05:00Z'),
      ('OP3', 'S-3', '221770000003', '*144#', 'CASHIN', 5000, 'XOF', 'SUCCESS', NULL, NULL, NULL, '2026-05-01T09:06:00Z'),
      ('OP4', 'S-4', '221770000004', '*144#', 'CASHIN', 5000, 'XOF', 'SUCCESS', NULL, NULL, '2026-05-01T09:07:00Z', '2999-01-01T00:00:00Z')`);
    c.closeSync();
    await warehouse.close();
    const stack = await LocalStack.start({ config: config(), warehouseFile: file, logger: new JsonLogger(() => undefined), clock: new StackClock() });
    try {
      stack.clock.set(new Date('2026-05-01T09:30:00Z'));
      const report = await runCycle(stack, { quietMs: 1_000 });
      assert.equal(report.ok, true, report.error);
      assert.deepEqual(report.rejected, { MISSING_CREATED_AT: 1, MISSING_OPERATION_ID: 1, TIMESTAMP_OUT_OF_RANGE: 1 });
      batchId = report.batchId as string;
    } finally {
      await stack.stop();
    }
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  async function rejects(options: Partial<RejectsOptions>): Promise<{ code: number; lines: string[] }> {
    const lines: string[] = [];
    const code = await rejectsCommand({ config: config(), pubsubEmulator: false, verbose: false, out: (l) => lines.push(l), limit: 100, json: false, ...options });
    return { code, lines };
  }

  it('lists every quarantined row with its reason, its batch and its ID as stored, and counts them per reason', async () => {
    const { code, lines } = await rejects({});
    assert.equal(code, 0);
    assert.equal(lines[0], 'Quarantine consolidated_dataset.quarantine: 3 row(s): MISSING_CREATED_AT 1 · MISSING_OPERATION_ID 1 · TIMESTAMP_OUT_OF_RANGE 1');
    assert.match(lines[1], /^ {2}first seen +batch +table +reason +ID as stored/);
    assert.equal(lines.length, 5);
    assert.ok(lines.some((l) => l.includes('MISSING_OPERATION_ID') && l.includes('"  "') && l.includes(batchId)), 'the blank ID shown as stored, quoted');
  });

  it('--reason and --batch filter; --json gives the rows and the counts', async () => {
    const byReason = await rejects({ reason: 'TIMESTAMP_OUT_OF_RANGE', json: true });
    assert.equal(byReason.code, 0);
    const body = JSON.parse(byReason.lines.join('\n'));
    assert.deepEqual([body.total, body.counts, body.rows.length, body.rows[0].operation_id, body.rows[0].batch_id], [1, { TIMESTAMP_OUT_OF_RANGE: 1 }, 1, 'OP4', batchId]);
    const other = await rejects({ batchId: '20260101T000000Z-000000' });
    assert.deepEqual(other, { code: 0, lines: ['Quarantine consolidated_dataset.quarantine (batch 20260101T000000Z-000000): 0 row(s)'] });
    const limited = await rejects({ batchId, limit: 1 });
    assert.match(limited.lines.at(-1) ?? '', /^ {2}… 2 more \(--limit 1\)/);
  });

  it('refuses bad usage with exit code 2, naming the reasons', async () => {
    const bad = await rejects({ reason: 'NOPE' });
    assert.equal(bad.code, 2);
    assert.match(bad.lines[0], /--reason "NOPE" is not a reason; the reasons are MISSING_OPERATION_ID, .*TRANSACTION_WITHOUT_UPDATED_AT$/);
    assert.equal((await rejects({ batchId: 'yesterday' })).code, 2);
  });

  it('through the command line: `consolidate rejects --reason ... --json` in the one JSON envelope; a bad reason exits 2', async () => {
    const args = ['--warehouse', file, '--state-dir', join(dir, 'state')];
    const ran = await consolidate(['rejects', '--reason', 'MISSING_CREATED_AT', '--json', ...args]);
    assert.equal(ran.code, 0, ran.stderr);
    const document = JSON.parse(ran.stdout);
    assert.deepEqual([document.command, document.exitCode, document.total, document.counts, document.rows[0].operation_id], ['rejects', 0, 1, { MISSING_CREATED_AT: 1 }, 'OP3']);
    const text = await consolidate(['rejects', ...args]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^Quarantine consolidated_dataset\.quarantine: 3 row\(s\)/);
    const bad = await consolidate(['rejects', '--reason', 'NOPE', ...args]);
    assert.equal(bad.code, 2);
  });

  it('a missing warehouse -> exit code 1 with the path', async () => {
    const lines: string[] = [];
    const code = await rejectsCommand({ config: config(join(dir, 'none.duckdb')), pubsubEmulator: false, verbose: false, out: (l) => lines.push(l), limit: 10, json: false });
    assert.equal(code, 1);
    assert.match(lines[0], /no warehouse at .*none\.duckdb/);
  });
});
