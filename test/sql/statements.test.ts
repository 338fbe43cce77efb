import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Statement } from '../../shared/ports';
import { bigqueryDialect } from '../../shared/sql/dialect';
import * as statements from '../../shared/sql/statements';

/**
 * Golden tests of the BigQuery rendering of every statement in shared/sql/statements.ts: each is
 * rendered with fixed tables and values and compared with test/sql/golden/<statement>.bigquery.sql.
 *
 * After a deliberate change to a statement, review the new SQL and rewrite the golden files with
 *   UPDATE_GOLDEN=1 npx mocha test/sql/statements.test.ts
 * then read the diff of test/sql/golden before committing it.
 */

const GOLDEN_DIR = join(__dirname, 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

const d = bigqueryDialect('my-project');
const source = {
  ussd: { dataset: 'source_dataset', table: 'ussd_operations' },
  transactions: { dataset: 'source_dataset', table: 'transactiongu' },
};
const staging = (table: string) => ({ dataset: 'consolidation_staging', table });
const consolidated = { dataset: 'consolidated_dataset', table: 'consolidated_table' };
const BATCH_ID = '20260115T102000Z-1a2b3c';
const window = { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z' };

/** One rendering per exported statement; the test fails if a statement has none. */
const RENDERINGS: Record<string, () => Statement> = {
  changedOperationIds: () => statements.changedOperationIds(d, source, window),
  quarantineRejectedRows: () =>
    statements.quarantineRejectedRows(d, { ...source, quarantine: { dataset: 'consolidated_dataset', table: 'quarantine' } }, window, { batchId: BATCH_ID, seenAt: '2026-01-15T10:22:00.000Z' }),
  quarantinedByBatch: () => statements.quarantinedByBatch(d, { dataset: 'consolidated_dataset', table: 'quarantine' }, BATCH_ID),
  quarantineCounts: () => statements.quarantineCounts(d, { dataset: 'consolidated_dataset', table: 'quarantine' }, { reason: 'MISSING_CREATED_AT' }),
  listQuarantine: () => statements.listQuarantine(d, { dataset: 'consolidated_dataset', table: 'quarantine' }, { batchId: BATCH_ID, limit: 100 }),
  duplicateReferenceKeys: () =>
    statements.duplicateReferenceKeys(d, { services: { dataset: 'source_dataset', table: 'services' }, agents: { dataset: 'source_dataset', table: 'agents' } }),
  enrichedCreationDays: () => statements.enrichedCreationDays(d, staging('enriched_20260115t102000z_1a2b3c')),
  createBatchParams: () => statements.createBatchParams(d, staging('params_20260115t102000z_1a2b3c'), { batchId: BATCH_ID, windowTo: window.to }),
  enrichedProfile: () => statements.enrichedProfile(d, staging('enriched_20260115t102000z_1a2b3c')),
  mergeEnriched: () =>
    statements.mergeEnriched(d, { target: consolidated, enriched: staging('enriched_20260115t102000z_1a2b3c') }, { batchId: BATCH_ID, consolidatedAt: '2026-01-15T10:31:07.000Z', days: ['2026-01-14', '2026-01-15'], force: false }),
  consolidatedStatusCounts: () => statements.consolidatedStatusCounts(d, consolidated),
};

function paramValues(statement: Statement): string[] {
  return Object.values(statement.params).flatMap((p) => (Array.isArray(p.value) ? p.value : [p.value])).filter((v): v is string => typeof v === 'string');
}

describe('BigQuery rendering of the statements (golden files)', () => {
  it('covers every exported statement', () => {
    const exported = Object.entries(statements).filter(([, v]) => typeof v === 'function').map(([name]) => name).sort();
    assert.deepStrictEqual(Object.keys(RENDERINGS).sort(), exported);
  });

  for (const [name, render] of Object.entries(RENDERINGS)) {
    describe(name, () => {
      const statement = render();
      const golden = join(GOLDEN_DIR, `${name}.bigquery.sql`);

      it(`matches golden/${name}.bigquery.sql`, () => {
        const sql = `${statement.sql}\n`;
        if (UPDATE) {
          mkdirSync(GOLDEN_DIR, { recursive: true });
          writeFileSync(golden, sql);
        }
        assert.equal(sql, readFileSync(golden, 'utf8'));
      });

      it('splices no parameter value into the SQL text', () => {
        for (const value of paramValues(statement)) assert.ok(!statement.sql.includes(value), `${JSON.stringify(value)} appears in the SQL`);
      });

      it('references exactly its parameters, as @name', () => {
        const referenced = [...new Set([...statement.sql.matchAll(/@([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]))].sort();
        assert.deepStrictEqual(referenced, Object.keys(statement.params).sort());
      });

      it('names tables only as backticked `project.dataset.table`', () => {
        const ctes = new Set([...statement.sql.matchAll(/(?:WITH|,)\s+([a-z_]+) AS \(/g)].map((m) => m[1]));
        const tables = [...statement.sql.matchAll(/(?<!DISTINCT )\b(?:FROM|JOIN|INTO|TABLE)\s+(\S+)/g)].map((m) => m[1]).filter((t) => t !== '(' && !ctes.has(t));
        assert.ok(tables.length > 0);
        for (const table of tables) assert.match(table, /^`my-project\.[a-z_]+\.[a-z0-9_]+`$/);
      });
    });
  }
});
