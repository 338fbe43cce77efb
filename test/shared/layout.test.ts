import assert from 'node:assert/strict';
import { makePublishOps } from '../../functions/publish-ops';
import { checkSourceLayout, layoutProblems, type SourceKey } from '../../shared/layout';
import type { TableLayout } from '../../shared/ports';
import { httpCall, makeFakes } from '../support/fakes';

const day = (field?: string): TableLayout['partitioning'] => ({ type: 'DAY', ...(field ? { field } : {}) });

describe('the source layout contract (issue 10)', () => {
  const cases: { key: SourceKey; layout: TableLayout; problems: RegExp[] }[] = [
    { key: 'ussd', layout: { partitioning: day('source_timestamp'), clustering: ['operation_id'] }, problems: [] },
    { key: 'ussd', layout: { partitioning: day('created_at'), clustering: ['operation_id', 'status'] }, problems: [] },
    { key: 'ussd', layout: { partitioning: { type: 'HOUR', field: 'source_timestamp' }, clustering: ['operation_id'] }, problems: [] },
    { key: 'transactions', layout: { partitioning: day('updated_at'), clustering: ['transaction_id'] }, problems: [] },
    { key: 'ussd', layout: { clustering: [] }, problems: [/not partitioned/, /not clustered, not by operation_id/] },
    { key: 'ussd', layout: { partitioning: day(), clustering: ['operation_id'] }, problems: [/ingestion time/] },
    { key: 'ussd', layout: { partitioning: day('updated_at'), clustering: ['operation_id'] }, problems: [/partitioned on updated_at, which the reads do not bound/] },
    { key: 'transactions', layout: { partitioning: day('created_at'), clustering: ['transaction_id'] }, problems: [/partitioned on created_at/] },
    { key: 'transactions', layout: { partitioning: day('updated_at'), clustering: ['service_id', 'transaction_id'] }, problems: [/clustered by service_id, transaction_id, not by transaction_id first/] },
  ];
  for (const c of cases) {
    it(`${c.key} ${JSON.stringify(c.layout)} -> ${c.problems.length ? c.problems.map(String).join(', ') : 'prunable'}`, () => {
      const problems = layoutProblems(c.key, c.layout);
      assert.equal(problems.length, c.problems.length, problems.join('; '));
      c.problems.forEach((p, i) => assert.match(problems[i], p));
    });
  }

  it('warns once per table that cannot be pruned, naming it; a table whose metadata cannot be read is a WARNING too', async () => {
    const f = makeFakes({ SOURCE_DATASET: 'raw' });
    f.warehouse.layouts.set('raw.ussd_operations', { clustering: [] });
    f.warehouse.layouts.set('raw.transactiongu', new Error('403 Access Denied'));
    const findings = await checkSourceLayout(f.deps);
    assert.deepEqual(findings.map((x) => x.table), ['raw.ussd_operations']);
    const warnings = f.logger.at('WARNING');
    assert.equal(warnings.length, 2);
    assert.match(warnings[0].message, /^The source table raw\.ussd_operations cannot be pruned .*not partitioned/);
    assert.equal(warnings[0].fields.table, 'raw.ussd_operations');
    assert.match(warnings[1].message, /^Could not check the layout of the source table raw\.transactiongu: 403 Access Denied/);
  });

  it('no WARNING for tables that follow the contract, and none on an engine without partitioning (DuckDB)', async () => {
    const f = makeFakes();
    f.warehouse.layouts.set('main.ussd_operations', { partitioning: day('source_timestamp'), clustering: ['operation_id'] });
    assert.deepEqual(await checkSourceLayout(f.deps), [{ table: 'main.ussd_operations', problems: [] }], 'transactiongu answers null: not checked');
    assert.deepEqual(f.logger.at('WARNING'), []);
  });

  it('publishOps checks the layout at its first run only: one WARNING per instance, not one per cycle', async () => {
    const f = makeFakes();
    f.warehouse.layouts.set('main.transactiongu', { partitioning: day('updated_at'), clustering: [] });
    const publishOps = makePublishOps(f.deps);
    for (let run = 0; run < 3; run++) {
      const { req, res } = httpCall('POST', undefined);
      await publishOps(req, res);
    }
    assert.equal(f.warehouse.layoutReads.length, 2, 'both source tables read once');
    const warnings = f.logger.at('WARNING').filter((w) => /cannot be pruned/.test(w.message));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /main\.transactiongu .*not clustered, not by transaction_id/);
  });
});
