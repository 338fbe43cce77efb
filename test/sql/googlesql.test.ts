import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { duckdbDialect } from '../../shared/sql/dialect';
import { enrichedField } from '../../shared/sql/statements';
import { analyze } from '../support/googlesql';
import { analyzedEnrichment, bigquery, CASES, catalogWith, NOT_STATEMENTS, PROJECT, schemaOf } from './cases';

/**
 * Every BigQuery statement of test/sql/cases.ts, and the pipeline file's ReadFromBigQuery query,
 * analysed by GoogleSQL (ZetaSQL) against a catalog built from shared/schema/*.json, each
 * parameter declared with the type the BigQuery adapter sends.
 */

const SQL_DIR = join(__dirname, '..', '..', 'shared', 'sql');

describe('GoogleSQL analysis of every BigQuery statement (ZetaSQL)', () => {
  it('has a case for every statement function exported from shared/sql/', () => {
    const exported = readdirSync(SQL_DIR)
      .filter((file) => file.endsWith('.ts'))
      .flatMap((file) => Object.entries(require(join(SQL_DIR, file)) as Record<string, unknown>).filter(([, v]) => typeof v === 'function').map(([name]) => name));
    const statementsWithCases = new Set(CASES.map((c) => c.statement));
    const missing = exported.filter((name) => !statementsWithCases.has(name) && !NOT_STATEMENTS.includes(name));
    assert.deepEqual(missing, [], `add a case to test/sql/cases.ts for: ${missing.join(', ')}`);
    const stale = [...statementsWithCases, ...NOT_STATEMENTS].filter((name) => !exported.includes(name));
    assert.deepEqual(stale, [], `cases.ts names functions that shared/sql/ no longer exports: ${stale.join(', ')}`);
  });

  // The enriched table's schema is what the pipeline file's query and MapToFields produce.
  let enrichment: ReturnType<typeof analyzedEnrichment>;
  before(() => {
    enrichment = analyzedEnrichment();
    enrichment.catch(() => undefined); // reported by the tests that await it
  });

  describe('the pipeline file (shared/pipeline/consolidation.yaml) with BigQuery names', () => {
    it('its ReadFromBigQuery query and its MapToFields expressions analyse, and produce what the MERGE copies', async () => {
      const enriched = (await enrichment).output;
      const target = schemaOf('consolidated', []).filter((f) => f.name !== 'batch_id' && f.name !== 'consolidated_at');
      assert.deepEqual(
        enriched.map((f) => `${f.name} ${f.type}`).sort(),
        target.map(enrichedField).map((f) => `${f.name} ${f.type}`).sort(),
        'the enriched rows must have exactly the consolidated table columns the MERGE copies, with the same types, TIMESTAMPs as INT64 microseconds (*_us)',
      );
      assert.ok(!enriched.some((f) => f.type === 'TIMESTAMP'), 'no TIMESTAMP passes through Beam, which would keep only its milliseconds');
    });
  });

  for (const c of CASES) {
    it(`${c.statement} (${c.variant})`, async () => {
      const statement = c.render(bigquery);
      await analyze(statement.sql, statement.params, catalogWith((await enrichment).output));
    });
  }

  describe('the analysis can fail', () => {
    const catalog = () => catalogWith([{ name: 'operation_id', type: 'STRING' }, { name: 'created_at', type: 'TIMESTAMP' }, { name: 'reconciliation_status', type: 'STRING' }]);

    it('rejects the DuckDB rendering, with the position', async () => {
      const statement = CASES.find((c) => c.statement === 'mergeEnriched')!.render(duckdbDialect);
      await assert.rejects(analyze(statement.sql, statement.params, catalog()), /GoogleSQL analysis failed: .*\[at \d+:\d+\][\s\S]*\^/);
    });

    it('rejects a parameter declared with another type than the statement needs (BOOL force as INT64)', async () => {
      const statement = CASES.find((c) => c.statement === 'mergeEnriched')!.render(bigquery);
      const params = { ...statement.params, force: { type: 'INT64' as const, value: 1 } };
      await assert.rejects(analyze(statement.sql, params, catalogWith((await enrichment).output)), /No matching signature for operator AND/);
    });

    it('rejects a table missing from the schemas', async () => {
      await assert.rejects(analyze(`SELECT 1 FROM \`${PROJECT}.source_dataset.nowhere\``, {}, catalog()), /Table not found/);
    });
  });
});
