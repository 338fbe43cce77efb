import assert from 'node:assert/strict';
import { checkPipelineVariables } from '../../shared/pipeline/variables';
import { sourceScans, type LayoutRule } from '../support/source-bounds';
import { bigquery as d, bigqueryNames, BOUNDS, CASES, pipelinePlan, pipelineVariables, TABLES } from './cases';

/**
 * Issue 10: every BigQuery statement that reads a source table, and the pipeline's query, bounds
 * each scan of it on both sides on the column the table is laid out by (ussd_operations:
 * source_timestamp, whose NULL partition `IS NULL` selects; transactiongu: updated_at), with
 * parameters or timestamp literals; ussd_operations scans of the cycle are also bounded on
 * created_at, so a table partitioned by created_at prunes too.
 */
const LAYOUT: LayoutRule[] = [
  { table: d.table(TABLES.ussd.ref), column: 'source_timestamp', nullPartition: true },
  { table: d.table(TABLES.transactions.ref), column: 'updated_at' },
];
const CREATED: LayoutRule[] = [{ table: d.table(TABLES.ussd.ref), column: 'created_at' }];

/** The pipeline's query as Dataflow gets it: rendered with the variables launchDataflow builds, BigQuery's names. */
function pipelineQuery(bounds: { to: string; readAfter: string } = BOUNDS.window): string {
  const variables = pipelineVariables(bigqueryNames, bounds);
  checkPipelineVariables(variables);
  return pipelinePlan(variables).read.query;
}

const readers = CASES.map((c) => ({ name: `${c.statement} (${c.variant})`, sql: c.render(d).sql }))
  .concat([
    { name: 'the pipeline (ReadFromBigQuery query)', sql: pipelineQuery() },
    { name: 'the pipeline, cut-off bounds', sql: pipelineQuery(BOUNDS.cutOff) },
  ])
  .filter(({ sql }) => LAYOUT.some((rule) => sql.includes(rule.table)));

describe('every read of a source table is bounded on its layout column (issue 10)', () => {
  it('finds the statements that read the sources: the change set, the two counts and the pipeline', () => {
    assert.deepEqual([...new Set(readers.map((r) => r.name.replace(/ \(.*$/, '').replace(/,.*$/, '')))].sort(), ['auditDaySummary', 'auditDrillDown', 'beyondMaxAgeCounts', 'changedOperationIds', 'rejectedRowCounts', 'the pipeline']);
  });

  for (const { name, sql } of readers) {
    it(`${name}: every scan has a lower and an upper bound on the layout column`, () => {
      const scans = sourceScans(sql, LAYOUT);
      assert.ok(scans.length > 0);
      assert.deepEqual(scans.filter((s) => s.problem), [], `unbounded scans in ${name}`);
    });
  }

  for (const { name, sql } of readers.filter((r) => !r.name.startsWith('beyondMaxAgeCounts'))) {
    it(`${name}: every scan of ussd_operations is also bounded on created_at`, () => {
      assert.deepEqual(sourceScans(sql, CREATED).filter((s) => s.problem), []);
    });
  }

  it('the pipeline reads only the columns the enrichment uses (no u.*, no t.*)', () => {
    const query = pipelineQuery();
    assert.doesNotMatch(query, /\b[ut]\.\*/);
    assert.doesNotMatch(query, /session_id|partner_ref/);
  });

  it('no statement sorts the IDs it reads', () => {
    for (const { name, sql } of readers) assert.doesNotMatch(sql, /ORDER BY operation_id/, name);
  });

  it('the MERGE restricts the target to a plain range on created_at (prunable in both engines)', () => {
    const merge = CASES.find((c) => c.statement === 'mergeEnriched')!.render(d).sql;
    assert.match(merge, /ON T\.operation_id = S\.operation_id\s+AND T\.created_at >= @created_from AND T\.created_at < @created_to\n/);
    assert.doesNotMatch(merge, /CAST\(T\.created_at AS DATE\)/);
  });

  describe('the checker itself', () => {
    const ussd = d.table(TABLES.ussd.ref);
    const cases: { sql: string; problem: RegExp | undefined }[] = [
      { sql: `SELECT 1 FROM ${ussd} WHERE source_timestamp > @a AND source_timestamp <= @b`, problem: undefined },
      { sql: `SELECT 1 FROM ${ussd} WHERE source_timestamp IS NULL AND created_at > @a`, problem: undefined },
      { sql: `SELECT 1 FROM ${ussd} WHERE source_timestamp <= @b`, problem: /no lower bound/ },
      { sql: `SELECT 1 FROM ${ussd} AS u CROSS JOIN batch AS b WHERE u.source_timestamp > @a AND u.source_timestamp <= b.window_to`, problem: /no upper bound/ },
      { sql: `SELECT 1 FROM ${ussd} WHERE source_timestamp > @a OR source_timestamp <= @b`, problem: /OR/ },
      { sql: `SELECT 1 FROM ${ussd}`, problem: /no WHERE/ },
      { sql: `SELECT 1 FROM ${ussd} AS u JOIN (SELECT x FROM y WHERE u.source_timestamp > @a AND u.source_timestamp <= @b) AS t ON true`, problem: /no WHERE/ },
      { sql: `SELECT 1 FROM ${ussd} AS u WHERE u.created_at > @a AND u.created_at <= @b AND source_timestamp > 0`, problem: /no lower bound/ },
    ];
    for (const c of cases) {
      it(`${c.problem ? 'flags' : 'accepts'}: ${c.sql.slice(60)}`, () => {
        const [scan] = sourceScans(c.sql, LAYOUT);
        if (c.problem) assert.match(scan.problem ?? '', c.problem);
        else assert.equal(scan.problem, undefined);
      });
    }
  });
});
