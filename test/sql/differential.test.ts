import assert from 'node:assert/strict';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { columnsOf, planSelect, runPlan } from '../../shared/local/pipeline-runner';
import type { QueryParams, Row, SchemaField, Statement, TableRef } from '../../shared/ports';
import { duckdbType, loadSchema } from '../../shared/schema';
import { duckdbDialect } from '../../shared/sql/dialect';
import { evaluate, type TableRows } from '../support/googlesql';
import { analyzedEnrichment, bigquery, bigqueryName, BOUNDS, CASES, pipelinePlan, pipelineVariables, schemaOf, TABLES, type TableKey } from './cases';
import { FIXTURE } from './fixture';

/**
 * Differential evaluation: each statement of test/sql/cases.ts (its SELECT; a MERGE's source query
 * and match conditions as a query) and the pipeline file's enrichment run on the same fixture in
 * DuckDB, through the local warehouse adapter, and in GoogleSQL's reference engine (ZetaSQL), and
 * must return the same rows. Only representation is normalised (timestamps to microseconds).
 */

/** A MERGE's source, its ON condition and its WHEN MATCHED condition, as a query of the source rows. */
function mergeAsQuery(sql: string): string {
  const parts = /^MERGE INTO (\S+) AS T\nUSING \(\n([\s\S]*?)\n\) AS S\nON ([\s\S]*?)\nWHEN MATCHED AND \(\n([\s\S]*?)\n\) THEN UPDATE SET/.exec(sql);
  if (!parts) throw new Error(`Cannot find the MERGE's target, source, ON and WHEN MATCHED condition in:\n${sql}`);
  const [, target, source, on, matched] = parts;
  const key = /^T\.(\w+) = S\.\1\b/.exec(on)?.[1];
  if (!key) throw new Error(`The MERGE's ON condition does not start with T.key = S.key: ${on}`);
  return `SELECT S.*, T.${key} IS NOT NULL AS merge_matched, (T.${key} IS NOT NULL AND (${matched}) IS TRUE) AS merge_updates
FROM (
${source}
) AS S
LEFT JOIN ${target} AS T ON ${on}`;
}

/** Splits a list at its top-level commas (not those inside parentheses or quotes). */
function topLevelItems(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let current = '';
  for (const c of list) {
    if (quote) quote = c === quote ? undefined : quote;
    else if (c === "'" || c === '`' || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    if (c === ',' && depth === 0 && !quote) {
      items.push(current.trim());
      current = '';
    } else current += c;
  }
  return [...items, current.trim()];
}

/** An INSERT ... VALUES as the query of the rows it inserts. */
function insertAsQuery(sql: string): string {
  const parts = /^INSERT INTO \S+ \(([^)]*)\)\nVALUES ([\s\S]+)$/.exec(sql);
  if (!parts) throw new Error(`Cannot find the INSERT's columns and VALUES in:\n${sql}`);
  const columns = parts[1].split(',').map((c) => c.trim());
  const rows = topLevelItems(parts[2]).map((row) => topLevelItems(row.replace(/^\(|\)$/g, '')));
  return rows.map((values) => `SELECT ${values.map((v, i) => `${v} AS ${columns[i]}`).join(', ')}`).join('\nUNION ALL\n');
}

/** The part of a statement the reference engine can evaluate (it runs queries, not MERGE or DDL). */
export function evaluablePart(sql: string): string {
  if (/^\s*(SELECT|WITH)\b/i.test(sql)) return sql;
  const created = /^CREATE OR REPLACE TABLE \S+ AS\n([\s\S]+)$/.exec(sql);
  if (created) return created[1];
  if (/^MERGE\b/.test(sql)) return mergeAsQuery(sql);
  if (/^INSERT INTO \S+ \([^)]*\)\nVALUES /.test(sql)) return insertAsQuery(sql);
  throw new Error(`No evaluable part known for this statement; teach evaluablePart() in test/sql/differential.test.ts:\n${sql}`);
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$/;

/** Values as both engines mean them: timestamps with six fractional digits. */
function canonical(rows: Row[], ordered: boolean): string[] {
  const text = rows.map((row) =>
    JSON.stringify(
      Object.fromEntries(
        Object.entries(row).map(([k, v]) => {
          const ts = typeof v === 'string' ? TIMESTAMP.exec(v) : null;
          return [k, ts ? `${ts[1]}.${(ts[2] ?? '').padEnd(6, '0')}Z` : v];
        }),
      ),
    ),
  );
  return ordered ? text : text.sort();
}

async function load(warehouse: DuckDbWarehouse, ref: TableRef, schema: SchemaField[], rows: Row[]): Promise<void> {
  await warehouse.ensureSchema(ref.dataset);
  await warehouse.ensureTable(ref, schema);
  const table = warehouse.qualify(ref);
  const values = schema.map((f, i) => `CAST($${i + 1} AS ${duckdbType(f.type)})`).join(', ');
  await warehouse.withConnection(async (c) => {
    for (const row of rows) await c.run(`INSERT INTO ${table} VALUES (${values})`, schema.map((f) => (row[f.name] === null || row[f.name] === undefined ? null : String(row[f.name]))));
  });
}

describe('DuckDB and GoogleSQL (ZetaSQL reference engine) return the same rows on the fixture', function () {
  let warehouse: DuckDbWarehouse;
  let content: TableRows;
  let enrichment: { duckdb: string; googlesql: string };

  before(async () => {
    warehouse = await DuckDbWarehouse.open(':memory:');
    content = {};
    for (const key of Object.keys(FIXTURE) as Exclude<TableKey, 'enriched'>[]) {
      const schema = schemaOf(key, []);
      await load(warehouse, TABLES[key].ref, schema, FIXTURE[key]);
      content[bigqueryName(TABLES[key].ref)] = { schema, rows: FIXTURE[key] };
    }
    // The enriched table is what the pipeline writes: run it on DuckDB, as the local runner does,
    // and give GoogleSQL the same rows (both enrichments are compared below), plus older versions
    // of two operations for the MERGE's one-row-per-operation rule.
    const plan = pipelinePlan(pipelineVariables(warehouse));
    const google = await analyzedEnrichment();
    enrichment = { duckdb: await planSelect(plan, (ctes, step) => warehouse.withConnection((c) => columnsOf(c, ctes, step))), googlesql: google.query };
    await runPlan(warehouse, plan);
    const enrichedRef = TABLES.enriched.ref;
    const rows = (await warehouse.query({ sql: `SELECT * FROM ${warehouse.qualify(enrichedRef)}`, params: {} })).rows;
    const older = { ...rows.find((r) => r.operation_id === 'op-01')!, ussd_status: 'INITIATED', reconciliation_status: 'PENDING', version_ts_us: Date.parse('2026-01-15T09:00:00Z') * 1000 };
    // And a version of op-03 one microsecond older than its latest: the MERGE must tell them apart.
    const latest = rows.find((r) => r.operation_id === 'op-03')!;
    const microOlder = { ...latest, amount: '1', version_ts_us: Number(latest.version_ts_us) - 1 };
    await load(warehouse, enrichedRef, google.output, [older, microOlder]);
    content[bigqueryName(enrichedRef)] = { schema: google.output, rows: [...rows, older, microOlder] };
  });

  after(async () => warehouse?.close());

  async function compare(duckdbSql: string, googleSql: string, params: QueryParams): Promise<number> {
    const ordered = /\nORDER BY [^\n]+$/.test(googleSql);
    // An evaluable part may leave a parameter out (the MERGE's values); DuckDB binds only those it references.
    const duckParams = Object.fromEntries(Object.entries(params).filter(([name]) => new RegExp(`\\$${name}\\b`).test(duckdbSql)));
    const [duck, google] = await Promise.all([warehouse.query({ sql: duckdbSql, params: duckParams }), evaluate(googleSql, params, content)]);
    assert.deepEqual(canonical(duck.rows, ordered), canonical(google, ordered), `DuckDB (actual) and GoogleSQL (expected) differ for:\n${googleSql}`);
    return google.length;
  }

  it('the enrichment: the pipeline file query with its MapToFields expressions', async () => {
    const rows = await compare(enrichment.duckdb, enrichment.googlesql, {});
    assert.ok(rows >= 15, `the fixture's batch enriches its operations (${rows} rows)`);
  });

  it('the enrichment read back only to a read_after inside the fixture\'s day: older operations and transaction rows left out', async () => {
    const plan = pipelinePlan(pipelineVariables(warehouse, BOUNDS.cutOff));
    const duckdb = await planSelect(plan, (ctes, step) => warehouse.withConnection((c) => columnsOf(c, ctes, step)));
    const google = await analyzedEnrichment(BOUNDS.cutOff);
    const rows = await compare(duckdb, google.query, {});
    const all = await compare(enrichment.duckdb, enrichment.googlesql, {});
    assert.ok(rows > 0 && rows < all, `the cut-off leaves some operations out (${rows} of ${all})`);
  });

  for (const c of CASES) {
    it(`${c.statement} (${c.variant})`, async () => {
      const [duck, google]: Statement[] = [c.render(duckdbDialect), c.render(bigquery)];
      const comparable = c.comparable ?? ((sql: string) => sql);
      const rows = await compare(comparable(evaluablePart(duck.sql)), comparable(evaluablePart(google.sql)), google.params);
      assert.ok(rows > 0, 'the fixture gives this statement rows to return');
    });
  }

  it('catches a difference: the same query on other data does not pass', async () => {
    const statement = CASES.find((c) => c.statement === 'consolidatedStatusCounts')!;
    const other = { ...content, [bigqueryName(TABLES.consolidated.ref)]: { schema: loadSchema('consolidated_table'), rows: FIXTURE.consolidated.slice(1) } };
    const duck = await warehouse.query(statement.render(duckdbDialect));
    const google = await evaluate(statement.render(bigquery).sql, {}, other);
    assert.notDeepEqual(canonical(duck.rows, true), canonical(google, true));
  });
});
