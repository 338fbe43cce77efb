import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { readBounds } from '../../shared/bounds';
import { loadConfig } from '../../shared/config';
import { renderJinja } from '../../shared/local/pipeline-runner';
import { pipelineFilePath } from '../../shared/local/stack';
import { checkPipelineVariables, timestampLiteral } from '../../shared/pipeline/variables';
import { sourceScans, type LayoutRule } from '../support/source-bounds';
import { d, RENDERINGS, source } from './renderings';

/**
 * Issue 10: every BigQuery statement that reads a source table, and the pipeline's query, bounds
 * each scan of it on both sides on the column the table is laid out by (ussd_operations:
 * source_timestamp, whose NULL partition `IS NULL` selects; transactiongu: updated_at), with
 * parameters or timestamp literals; ussd_operations scans of the cycle are also bounded on
 * created_at, so a table partitioned by created_at prunes too.
 */
const LAYOUT: LayoutRule[] = [
  { table: d.table(source.ussd), column: 'source_timestamp', nullPartition: true },
  { table: d.table(source.transactions), column: 'updated_at' },
];
const CREATED: LayoutRule[] = [{ table: d.table(source.ussd), column: 'created_at' }];

/** The pipeline's query as Dataflow gets it: rendered with the variables launchDataflow builds for BigQuery. */
function pipelineQuery(): string {
  const config = loadConfig({});
  const bounds = readBounds({ from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z' }, config);
  const q = (table: string) => `\`my-project.${table}\``;
  const variables = {
    as_of: timestampLiteral(bounds.to),
    read_after: timestampLiteral(bounds.readAfter),
    ids_table: q('consolidation_staging.ids_x'),
    ussd_table: d.table(source.ussd),
    transactions_table: d.table(source.transactions),
    services_table: q('source_dataset.services'),
    agents_table: q('source_dataset.agents'),
    output_table: 'my-project:consolidation_staging.enriched_x',
  };
  const file = pipelineFilePath();
  checkPipelineVariables(variables);
  const document = parseYaml(renderJinja(readFileSync(file, 'utf8'), variables, file)) as { pipeline: { transforms: { type: string; config: { query?: string } }[] } };
  const reads = document.pipeline.transforms.filter((t) => t.type === 'ReadFromBigQuery');
  assert.equal(reads.length, 1);
  return reads[0].config.query ?? '';
}

const readers = Object.entries(RENDERINGS)
  .map(([name, render]) => ({ name, sql: render().sql }))
  .concat([{ name: 'the pipeline (ReadFromBigQuery query)', sql: pipelineQuery() }])
  .filter(({ sql }) => LAYOUT.some((rule) => sql.includes(rule.table)));

describe('every read of a source table is bounded on its layout column (issue 10)', () => {
  it('finds the statements that read the sources: the change set, the two counts and the pipeline', () => {
    assert.deepEqual(readers.map((r) => r.name).sort(), ['beyondMaxAgeCounts', 'changedOperationIds', 'rejectedRowCounts', 'the pipeline (ReadFromBigQuery query)']);
  });

  for (const { name, sql } of readers) {
    it(`${name}: every scan has a lower and an upper bound on the layout column`, () => {
      const scans = sourceScans(sql, LAYOUT);
      assert.ok(scans.length > 0);
      assert.deepEqual(scans.filter((s) => s.problem), [], `unbounded scans in ${name}`);
    });
  }

  for (const name of ['changedOperationIds', 'rejectedRowCounts', 'the pipeline (ReadFromBigQuery query)']) {
    it(`${name}: every scan of ussd_operations is also bounded on created_at`, () => {
      const sql = readers.find((r) => r.name === name)!.sql;
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
    const merge = RENDERINGS.mergeEnriched().sql;
    assert.match(merge, /ON T\.operation_id = S\.operation_id\s+AND T\.created_at >= @created_from AND T\.created_at < @created_to\n/);
    assert.doesNotMatch(merge, /CAST\(T\.created_at AS DATE\)/);
  });

  describe('the checker itself', () => {
    const ussd = d.table(source.ussd);
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
