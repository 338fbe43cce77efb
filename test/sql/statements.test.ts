import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Statement } from '../../shared/ports';
import { bigquery, CASES } from './cases';

/**
 * Golden tests of the BigQuery rendering of the statements: the variant of each statement marked
 * `golden` in test/sql/cases.ts is compared with test/sql/golden/<statement>.bigquery.sql; every
 * variant is checked for spliced values, its parameters and its table names.
 *
 * After a deliberate change to a statement, review the new SQL and rewrite the golden files with
 *   UPDATE_GOLDEN=1 npx mocha test/sql/statements.test.ts
 * then read the diff of test/sql/golden before committing it.
 */

const GOLDEN_DIR = join(__dirname, 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

function paramValues(statement: Statement): string[] {
  return Object.values(statement.params).flatMap((p) => (Array.isArray(p.value) ? p.value : [p.value])).filter((v): v is string => typeof v === 'string');
}

describe('BigQuery rendering of the statements (golden files)', () => {
  it('pins exactly one variant of every statement', () => {
    const statements = [...new Set(CASES.map((c) => c.statement))].sort();
    assert.deepStrictEqual(CASES.filter((c) => c.golden).map((c) => c.statement).sort(), statements);
  });

  for (const c of CASES) {
    describe(`${c.statement} (${c.variant})`, () => {
      const statement = c.render(bigquery);
      const golden = join(GOLDEN_DIR, `${c.statement}.bigquery.sql`);

      if (c.golden) {
        it(`matches golden/${c.statement}.bigquery.sql`, () => {
          const sql = `${statement.sql}\n`;
          if (UPDATE) {
            mkdirSync(GOLDEN_DIR, { recursive: true });
            writeFileSync(golden, sql);
          }
          assert.equal(sql, readFileSync(golden, 'utf8'));
        });
      }

      it('splices no parameter value into the SQL text', () => {
        for (const value of paramValues(statement)) assert.ok(!statement.sql.includes(value), `${JSON.stringify(value)} appears in the SQL`);
      });

      it('references exactly its parameters, as @name', () => {
        const referenced = [...new Set([...statement.sql.matchAll(/@([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]))].sort();
        assert.deepStrictEqual(referenced, Object.keys(statement.params).sort());
      });

      it('names tables only as backticked `project.dataset.table`', () => {
        // CTEs (`WITH name AS (`, `, name AS (`) and subqueries are not tables.
        const ctes = new Set([...statement.sql.matchAll(/(?:\bWITH|,)\s*(`?\w+`?) AS \(/g)].map((m) => m[1]));
        const tables = [...statement.sql.matchAll(/(?<!DISTINCT )\b(?:FROM|JOIN|INTO|TABLE)\s+(\S+)/g)].map((m) => m[1]).filter((t) => !t.startsWith('(') && !ctes.has(t));
        assert.ok(tables.length > 0);
        for (const table of tables) assert.match(table, /^`my-project\.[a-z_]+\.[a-z0-9_]+`$/);
      });
    });
  }
});
