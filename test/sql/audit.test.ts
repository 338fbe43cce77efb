import assert from 'node:assert/strict';
import { DuckDBInstance } from '@duckdb/node-api';
import * as audit from '../../shared/sql/audit';
import { duckdbDialect } from '../../shared/sql/dialect';

/**
 * What the audit's statements rest on. Their renderings are cases of test/sql/cases.ts: golden
 * BigQuery text, GoogleSQL analysis and the differential evaluation against DuckDB.
 */
describe('the audit statements', () => {
  it('compare every business column of the schema and neither batch_id nor consolidated_at', () => {
    const names = audit.comparedColumns().map((f) => f.name);
    assert.ok(names.includes('operation_id') && names.includes('agent_name') && names.includes('version_ts'));
    assert.ok(!names.includes('batch_id') && !names.includes('consolidated_at'));
  });

  it('DuckDB: the fingerprint of a day does not depend on the order of its rows, and changes with any value', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const c = await instance.connect();
    const d = duckdbDialect;
    const fingerprint = async (rows: string) => String((await c.runAndReadAll(`SELECT ${d.hashAggregate(d.rowHash(['a', 'b']))} FROM (VALUES ${rows}) AS t(a, b)`)).getRows()[0][0]);
    assert.equal(await fingerprint("(1, 'x'), (2, 'y'), (3, NULL)"), await fingerprint("(3, NULL), (1, 'x'), (2, 'y')"));
    assert.notEqual(await fingerprint("(1, 'x'), (2, 'y')"), await fingerprint("(1, 'x'), (2, 'z')"));
    assert.notEqual(await fingerprint("(1, 'x'), (2, NULL)"), await fingerprint("(1, 'x'), (2, 'NULL')"));
    c.closeSync();
    instance.closeSync();
  });
});
