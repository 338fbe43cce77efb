import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { pipelinePlanOf, planSelectUnresolved } from '../../shared/local/pipeline-runner';
import { pipelineFilePath } from '../../shared/pipeline/file';
import type { Statement } from '../../shared/ports';
import * as audit from '../../shared/sql/audit';
import { bigqueryDialect, duckdbDialect, type SqlDialect } from '../../shared/sql/dialect';

/**
 * The audit's statements: golden BigQuery renderings (UPDATE_GOLDEN=1 rewrites them, as for
 * statements.test.ts), no value spliced, and the from-scratch side built from the pipeline file.
 */

const GOLDEN_DIR = join(__dirname, 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const sources = {
  ussd: { dataset: 'source_dataset', table: 'ussd_operations' },
  transactions: { dataset: 'source_dataset', table: 'transactiongu' },
  services: { dataset: 'source_dataset', table: 'services' },
  agents: { dataset: 'source_dataset', table: 'agents' },
};
const consolidated = { dataset: 'consolidated_dataset', table: 'consolidated_table' };
const days = { from: '2026-01-14', to: '2026-01-15' };
const AS_OF = '2026-01-15T10:20:00.000Z';

export async function fromScratch(d: SqlDialect): Promise<string> {
  const file = pipelineFilePath();
  return planSelectUnresolved(pipelinePlanOf(readFileSync(file, 'utf8'), audit.fromScratchVariables(d, sources), file), d);
}

const RENDERINGS: Record<string, (d: SqlDialect) => Promise<Statement>> = {
  auditDaySummary: async (d) => audit.auditDaySummary(d, consolidated, await fromScratch(d), days, AS_OF),
  auditDrillDown: async (d) => audit.auditDrillDown(d, consolidated, await fromScratch(d), days, AS_OF, ['2026-01-15']),
  insertAuditRecords: async (d) =>
    audit.insertAuditRecords(d, { dataset: 'consolidated_dataset', table: 'consolidation_audit' }, [
      { auditId: 'audit-20260115T103000Z-abc123', auditedAt: '2026-01-15T10:30:00.000Z', asOf: AS_OF, day: '2026-01-14', expectedRows: 10, actualRows: 10, expectedFingerprint: '42', actualFingerprint: '42', missing: 0, extra: 0, different: 0, pending: 0, replayed: 0, outcome: 'clean', sampleIds: null },
      { auditId: 'audit-20260115T103000Z-abc123', auditedAt: '2026-01-15T10:30:00.000Z', asOf: AS_OF, day: '2026-01-15', expectedRows: 12, actualRows: 11, expectedFingerprint: '7', actualFingerprint: '-3', missing: 1, extra: 0, different: 0, pending: 0, replayed: 1, outcome: 'repaired', sampleIds: 'OP0000000001' },
    ]),
};

describe('the audit statements', () => {
  it('covers every exported statement', () => {
    const builders = Object.entries(audit).filter(([name, v]) => typeof v === 'function' && !['comparedColumns', 'fromScratchVariables'].includes(name)).map(([name]) => name).sort();
    assert.deepStrictEqual(Object.keys(RENDERINGS).sort(), builders);
  });

  for (const [name, render] of Object.entries(RENDERINGS)) {
    describe(name, () => {
      it(`BigQuery: matches golden/${name}.bigquery.sql, with every value a parameter`, async () => {
        const statement = await render(bigqueryDialect('my-project'));
        const golden = join(GOLDEN_DIR, `${name}.bigquery.sql`);
        if (UPDATE) {
          mkdirSync(GOLDEN_DIR, { recursive: true });
          writeFileSync(golden, `${statement.sql}\n`);
        }
        assert.equal(`${statement.sql}\n`, readFileSync(golden, 'utf8'));
        const referenced = [...new Set([...statement.sql.matchAll(/@([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]))].sort();
        assert.deepStrictEqual(referenced, Object.keys(statement.params).sort());
        for (const p of Object.values(statement.params)) for (const v of [p.value].flat()) if (typeof v === 'string' && v.length > 3) assert.ok(!statement.sql.includes(v), `${v} spliced`);
        assert.doesNotMatch(statement.sql, /"step_|list_contains|EXCLUDE|hash\(/);
      });
    });
  }

  it('compares every business column of the schema and neither batch_id nor consolidated_at', () => {
    const names = audit.comparedColumns().map((f) => f.name);
    assert.ok(names.includes('operation_id') && names.includes('agent_name') && names.includes('version_ts'));
    assert.ok(!names.includes('batch_id') && !names.includes('consolidated_at'));
  });

  it('DuckDB: the fingerprint of a day does not depend on the order of its rows, and changes with any value', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const c = await instance.connect();
    const d = duckdbDialect;
    const fingerprint = async (rows: string) =>
      String((await c.runAndReadAll(`SELECT ${d.hashAggregate(d.rowHash(['a', 'b']))} FROM (VALUES ${rows}) AS t(a, b)`)).getRows()[0][0]);
    assert.equal(await fingerprint("(1, 'x'), (2, 'y'), (3, NULL)"), await fingerprint("(3, NULL), (1, 'x'), (2, 'y')"));
    assert.notEqual(await fingerprint("(1, 'x'), (2, 'y')"), await fingerprint("(1, 'x'), (2, 'z')"));
    assert.notEqual(await fingerprint("(1, 'x'), (2, NULL)"), await fingerprint("(1, 'x'), (2, 'NULL')"));
    c.closeSync();
    instance.closeSync();
  });
});
