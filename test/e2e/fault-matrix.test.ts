import assert from 'node:assert/strict';
import { runCycle } from '../../shared/local/cycle';
import { allBatches, runScenario, type Scenario, type ScenarioResult } from '../support/fault-harness';

/** Faults a later replay repairs: the job fails at every attempt until the operator fixes the cause. */
async function fixCauseAndReplay(stack: Parameters<NonNullable<Scenario['operator']>>[0]): Promise<void> {
  stack.faults.plan.job = undefined;
  const failed = (await allBatches(stack)).filter((b) => b.status === 'FAILED' && b.final && !b.supersededBy);
  for (const batch of failed) {
    const manifest = JSON.parse((await stack.store.read(`batches/${batch.batchId}/manifest.json`))!.data) as { window: { from: string; to: string } };
    const report = await runCycle(stack, { body: manifest.window, quietMs: 600 });
    assert.equal(report.ok, true, `replay of ${batch.batchId}: ${report.error}`);
  }
}

const SCENARIOS: Scenario[] = [
  { name: 'no fault (control)', inject: '' },
  { name: 'duplicated deliveries', inject: 'duplicate' },
  { name: 'reordered deliveries', inject: 'reorder' },
  { name: 'a message delivered after later ones', inject: 'delay' },
  { name: 'duplicated, reordered and delayed', inject: 'duplicate,reorder,delay' },
  { name: 'publishOps dies before the manifest (an orphan)', inject: 'crash:publish.before-manifest', expectRepairs: ['orphan-removed'] },
  { name: 'publishOps dies before the seal', inject: 'crash:publish.before-seal', expectRepairs: ['seal-republished'] },
  { name: 'publishOps dies before the watermark', inject: 'crash:publish.before-watermark' },
  { name: 'collectIds dies before acknowledging a chunk', inject: 'crash:collect.before-ack' },
  { name: 'launchDataflow dies before recording the job', inject: 'crash:launch.before-record' },
  { name: 'mergeOnComplete dies before marking the batch', inject: 'crash:merge.before-mark' },
  { name: 'two publishOps runs at the same time', inject: 'concurrent' },
  { name: 'Dataflow job ends FAILED', inject: 'job-failed', expectRepairs: ['relaunched'] },
  { name: 'Dataflow job ends CANCELLED', inject: 'job-cancelled', expectRepairs: ['relaunched'] },
  { name: 'statusChanged event never arrives', inject: 'lose-status', expectRepairs: ['merged'] },
  { name: 'MERGE fails once with a concurrent update', inject: 'merge-conflict' },
  { name: 'job fails at every attempt; operator replays', inject: 'job-failed-always', allowFailed: true, operator: fixCauseAndReplay, expectRepairs: ['relaunched', 'gave-up'] },
  { name: 'concurrent runs, publishOps dies after the seal', inject: 'concurrent,crash:publish.before-watermark,duplicate' },
  {
    name: 'everything at once',
    inject: 'duplicate,reorder,delay,crash:publish.before-seal,crash:collect.before-ack,crash:launch.before-record,crash:merge.before-mark,job-failed,lose-status,merge-conflict',
  },
];

describe('fault matrix: nothing lost, nothing doubled (invariants 1-3)', function () {
  this.timeout(120_000);
  const results: ScenarioResult[] = [];

  after(() => {
    if (results.length === 0) return;
    const rows = results.map((r) => [
      r.scenario,
      r.faults.length > 48 ? `${r.faults.slice(0, 45)}...` : r.faults,
      Object.values(r.fired).reduce((a, b) => a + b, 0).toString(),
      String(r.cycles),
      Object.entries(r.repairs).map(([k, n]) => `${k} ${n}`).join(', ') || '-',
      String(r.beforeRepairs),
      String(r.rowsChecked),
      r.ok ? 'ok' : 'FAILED',
    ]);
    const header = ['scenario', 'faults injected', 'fired', 'cycles', 'reconciler repairs', 'rows off before repairs', 'rows checked', 'result'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
    const line = (cells: string[]) => `  | ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
    console.log(['', line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n'));
  });

  SCENARIOS.forEach((scenario, index) => {
    it(`${scenario.name}: the consolidated table equals the from-scratch consolidation, no batch stuck`, async () => {
      const result = await runScenario(scenario, 100 + index);
      results.push(result);
      const { comparison } = result;
      assert.deepEqual(
        { missing: comparison.missing.slice(0, 3), unexpected: comparison.unexpected.slice(0, 3), duplicated: comparison.duplicated.slice(0, 3), different: comparison.different.slice(0, 3) },
        { missing: [], unexpected: [], duplicated: [], different: [] },
      );
      assert.deepEqual(result.openBatches, [], `batches still open: ${JSON.stringify(result.batches)}`);
      assert.ok(result.rowsChecked > 300, `${result.rowsChecked} rows checked`);
      assert.equal(result.ok, true, `batches: ${JSON.stringify(result.batches)}, repairs: ${JSON.stringify(result.repairs)}`);
      if (scenario.inject) assert.ok(Object.keys(result.fired).length > 0, 'no fault fired');
      // A batch left stuck by the last tick shows in the comparison until the reconciler repairs it.
      if (scenario.expectRepairs?.includes('merged')) assert.ok(result.beforeRepairs > 0, 'the comparison saw nothing missing before the repairs');
    });
  });
});
