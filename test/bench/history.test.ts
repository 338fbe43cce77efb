import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { historySpanMs, mixFor } from '../../bench/generate';
import type { HistoryReport } from '../../bench/history';
import { parseArgs, runHistoryBenchmark } from '../../bench/run';

/**
 * A small run of `npm run bench -- --history` (200 changes over 2,000 and 20,000 operations of
 * history, 200 a day: 10 and 100 days, the larger beyond OPERATION_MAX_AGE), so that the history
 * mode cannot rot: its warehouses, the chain against the bare engine, and its reports.
 */
describe('the benchmark\'s history mode (smoke run)', function () {
  this.timeout(300_000);
  let out: string;
  let report: HistoryReport;

  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'bench-history-'));
    const options = parseArgs(['--history', '2000,20000', '--changed', '200', '--per-day', '200', '--out', out]);
    report = await runHistoryBenchmark({ ...options, history: options.history!, log: () => undefined, childOutput: 'capture' });
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  it('the same changes over each history: the chain\'s table equals the bare engine\'s, and the MERGE did what was generated', () => {
    assert.deepEqual(report.problems.filter((p) => !/times the cycle at/.test(p)), [], 'timings aside, nothing is wrong');
    assert.deepEqual(report.results.map((r) => [r.history, r.days, r.changed]), [[2000, 10, 200], [20000, 100, 200]]);
    for (const r of report.results) {
      assert.equal(r.matched, true);
      assert.equal(r.chain.idCount, 200);
      assert.deepEqual([r.chain.merge.inserted, r.chain.merge.updated, r.chain.merge.unchanged], [r.mix.inserted, r.mix.updated, r.mix.lookback]);
      assert.equal(r.bare.comparison.chainRows, r.history + r.mix.inserted);
    }
    assert.ok(report.growth && report.growth.chain > 0 && report.growth.bare > 0);
  });

  it('writes history.json, history.svg (before and after) and the history section of results.md', () => {
    assert.equal((JSON.parse(readFileSync(join(out, 'history.json'), 'utf8')) as HistoryReport).results.length, 2);
    assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /## History: the same changes over a longer history[\s\S]*\| 20,000 \| 100 \|/);
    const svg = readFileSync(join(out, 'history.svg'), 'utf8');
    assert.equal(svg.match(/<polyline /g)?.length, 3);
    assert.match(svg, /before: the chain, unbounded reads/);
  });

  it('accumulates the history at the same daily rate: ten times the operations over ten times the days', () => {
    const day = 86_400_000;
    assert.equal(historySpanMs(mixFor(100_000, { operations: 1_000_000, perDay: 25_000 })), 40 * day);
    assert.equal(historySpanMs(mixFor(100_000, { operations: 10_000_000, perDay: 25_000 })), 400 * day);
    assert.throws(() => mixFor(100_000, { operations: 10_000, perDay: 1_000 }), /cannot hold/);
  });

  it('reads its options from the command line', () => {
    assert.deepEqual(parseArgs(['--history']).history, { sizes: [1_000_000, 10_000_000], changed: 100_000, perDay: 25_000 });
    assert.equal(parseArgs(['--history']).repeat, 1);
    assert.deepEqual(parseArgs(['--history', '1000000,30000000', '--changed', '50000', '--per-day', '100000', '--repeat', '2']).history, { sizes: [1_000_000, 30_000_000], changed: 50_000, perDay: 100_000 });
    assert.equal(parseArgs(['--repeat', '2', '--history']).repeat, 2);
    assert.equal(parseArgs([]).history, undefined);
    assert.throws(() => parseArgs(['--history', '1000000,x']), /--history takes a positive integer/);
  });
});
