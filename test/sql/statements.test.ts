import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Statement } from '../../shared/ports';
import * as statements from '../../shared/sql/statements';
import { RENDERINGS } from './renderings';

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
        const tables = [...statement.sql.matchAll(/(?<!DISTINCT )\b(?:FROM|JOIN|INTO|TABLE)\s+(\S+)/g)].map((m) => m[1]).filter((t) => t !== '(');
        assert.ok(tables.length > 0);
        for (const table of tables) assert.match(table, /^`my-project\.[a-z_]+\.[a-z0-9_]+`$/);
      });
    });
  }
});
