import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { consolidate } from '../support/cli';

/** `consolidate audit` and the audit line of `consolidate status`, as a user runs them. */
describe('consolidate audit (the CLI)', function () {
  this.timeout(180_000);
  let dir: string;
  let renamed: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cli-audit-'));
    const run = await consolidate(['run', '--demo-rows', '300', '--state-dir', dir]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 and says clean when consolidated_table equals the sources; status shows the last audit', async () => {
    const never = await consolidate(['status', '--state-dir', dir]);
    assert.match(never.stdout, /^Audit {6}never run/m);
    const { code, stdout } = await consolidate(['audit', '--state-dir', dir]);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /^ {2}2026-01-15 +300 +300 +0 +0 +0 +0 +0 +clean$/m);
    assert.match(stdout, /^Outcome: clean$/m);
    const status = await consolidate(['status', '--state-dir', dir]);
    assert.match(status.stdout, /^Audit {6}clean at \S+ \(days 2026-01-13 → 2026-01-15\)$/m);
  });

  it('exits 1 and names the operations and columns when a reference changed', async () => {
    const warehouse = await DuckDbWarehouse.open(join(dir, 'demo.duckdb'));
    const { rows } = await warehouse.query({ sql: "SELECT count(DISTINCT u.operation_id) AS n FROM main.ussd_operations AS u WHERE u.agent_code = (SELECT min(agent_code) FROM main.agents) AND u.operation_id IS NOT NULL AND u.source_timestamp IS NOT NULL", params: {} });
    renamed = Number(rows[0].n);
    await warehouse.query({ sql: "UPDATE main.agents SET agent_name = 'Renamed' WHERE agent_code = (SELECT min(agent_code) FROM main.agents)", params: {} });
    await warehouse.close();
    assert.ok(renamed > 0);

    const { code, stdout } = await consolidate(['audit', '--state-dir', dir]);
    assert.equal(code, 1, stdout);
    assert.match(stdout, new RegExp(`^ {2}2026-01-15 +300 +300 +0 +0 +${renamed} +0 +0 +differs$`, 'm'));
    assert.match(stdout, /^ {2}OP\d+ {2}2026-01-15 {2}different: agent_name$/m);
    assert.match(stdout, /consolidate audit --repair/);
  });

  it('--repair replays them, audits again and exits 0 (--json: the report as data); the next audit is clean', async () => {
    const repair = await consolidate(['audit', '--state-dir', dir, '--repair', '--json']);
    assert.equal(repair.code, 0, repair.stdout);
    const report = JSON.parse(repair.stdout) as { outcome: string; differences: { kind: string; columns: string[] }[]; results: { outcome: string; replayed: number }[]; repair: { verified: boolean } };
    assert.equal(report.outcome, 'repaired');
    assert.equal(report.differences.length, renamed);
    assert.ok(report.differences.every((x) => x.kind === 'different' && x.columns.join() === 'agent_name'));
    assert.deepEqual(report.results.map((r) => [r.outcome, r.replayed]), [['repaired', renamed]]);
    assert.equal(report.repair.verified, true);
    const again = await consolidate(['audit', '--state-dir', dir]);
    assert.equal(again.code, 0, again.stdout);
    assert.match(again.stdout, /^Outcome: clean$/m);
  });

  const misuse: [string, string[], RegExp][] = [
    ['a day that does not exist', ['--from', '2026-02-30'], /--from 2026-02-30: expected a day/],
  ];
  for (const [name, args, message] of misuse) {
    it(`exits 2 on ${name}`, async () => {
      const { code, stdout, stderr } = await consolidate(['audit', '--state-dir', dir, ...args]);
      assert.equal(code, 2, stdout + stderr);
      assert.match(stdout + stderr, message);
    });
  }
});
