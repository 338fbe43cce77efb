/**
 * Every BigQuery statement the chain can send, in every variant that changes its SQL or its
 * parameters. The golden test (statements.test.ts), the GoogleSQL analysis (googlesql.test.ts)
 * and the differential evaluation (differential.test.ts) all read this list.
 *
 * To add a statement: export it from a module of shared/sql/ (statement(dialect, tables, values)),
 * then add one entry per variant here: `statement` is the exported function's name, `variant`
 * says what differs, `render` builds it for a dialect with the tables of TABLES (add a table there
 * if it is new, with its schema). The coverage test fails until every exported statement function
 * of shared/sql/ has a case. `golden: true` on one variant pins its BigQuery text in
 * test/sql/golden/<statement>.bigquery.sql (`UPDATE_GOLDEN=1` rewrites it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { BigQueryWarehouse } from '../../shared/gcp/bigquery-warehouse';
import { parsePipeline, planSelect, planSelectUnresolved, renderJinja, type PipelinePlan } from '../../shared/local/pipeline-runner';
import type { SchemaField, Statement, TableRef } from '../../shared/ports';
import { loadSchema, type SchemaName } from '../../shared/schema';
import { bigqueryDialect, type SqlDialect } from '../../shared/sql/dialect';
import * as audit from '../../shared/sql/audit';
import * as statements from '../../shared/sql/statements';
import { creationRange } from '../../functions/merge-on-complete';
import { timestampLiteral } from '../../shared/pipeline/variables';
import { analyze, type Catalog } from '../support/googlesql';

export const PROJECT = 'my-project';
export const BATCH_ID = '20260115T102000Z-1a2b3c';
const SLUG = '20260115t102000z_1a2b3c';

/** The tables the statements run on, with the schema each has (the enriched table's is the pipeline's output). */
export const TABLES = {
  ussd: { ref: { dataset: 'source_dataset', table: 'ussd_operations' }, schema: 'ussd_operations' },
  transactions: { ref: { dataset: 'source_dataset', table: 'transactiongu' }, schema: 'transactiongu' },
  services: { ref: { dataset: 'reference_dataset', table: 'services' }, schema: 'services' },
  agents: { ref: { dataset: 'reference_dataset', table: 'agents' }, schema: 'agents' },
  consolidated: { ref: { dataset: 'consolidated_dataset', table: 'consolidated_table' }, schema: 'consolidated_table' },
  ids: { ref: { dataset: 'consolidation_staging', table: `ids_${SLUG}` }, schema: 'batch_ids' },
  enriched: { ref: { dataset: 'consolidation_staging', table: `enriched_${SLUG}` }, schema: 'pipeline output' },
  audit: { ref: { dataset: 'consolidated_dataset', table: 'consolidation_audit' }, schema: 'consolidation_audit' },
} as const satisfies Record<string, { ref: TableRef; schema: SchemaName | 'pipeline output' }>;

export type TableKey = keyof typeof TABLES;

const source = { ussd: TABLES.ussd.ref, transactions: TABLES.transactions.ref };
/** The windows, each read back to its start minus the default OPERATION_MAX_AGE (30 days). */
const window = { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z', readAfter: '2025-12-16T09:45:00.000Z' };
const replayWindow = { from: '2026-01-14T22:00:00.000Z', to: '2026-01-15T02:30:00.000Z', readAfter: '2025-12-15T22:00:00.000Z' };
/** A cut-off inside the fixture's day: operations created at or before 09:30 are beyond OPERATION_MAX_AGE. */
const cutOff = { ...window, readAfter: '2026-01-15T09:30:00.000Z' };

/** The read bounds of the cases: the default, and the cut-off inside the fixture's day. */
export const BOUNDS = { window, cutOff } as const;

export interface StatementCase {
  /** The exported statement function's name. */
  statement: string;
  /** What this variant exercises. */
  variant: string;
  render: (d: SqlDialect) => Statement;
  /** This variant's BigQuery text is pinned in test/sql/golden/<statement>.bigquery.sql. */
  golden?: boolean;
  /**
   * For the differential evaluation, when some columns are engine-specific by design (the audit's
   * fingerprints: FARM_FINGERPRINT in BigQuery, hash() in DuckDB): the query of the comparable
   * columns, over the statement's evaluable part.
   */
  comparable?: (evaluable: string) => string;
}

const merge = (force: boolean, days: string[]) => (d: SqlDialect) =>
  statements.mergeEnriched(d, { target: TABLES.consolidated.ref, enriched: TABLES.enriched.ref }, { batchId: BATCH_ID, consolidatedAt: '2026-01-15T10:31:07.000Z', created: creationRange(days), force });

/** The audit's from-scratch side: the pipeline file's SELECT over the audited days, as functions/audit.ts composes it. */
const auditSources = { ussd: TABLES.ussd.ref, transactions: TABLES.transactions.ref, services: TABLES.services.ref, agents: TABLES.agents.ref };
const fromScratch = (d: SqlDialect) => planSelectUnresolved(pipelinePlan(audit.fromScratchVariables(d, auditSources)), d);
const auditDays = { from: '2026-01-14', to: '2026-01-15' };
const AUDIT_AS_OF = window.to;
const auditRecord = (day: string, outcome: string, sampleIds: string | null): audit.AuditRecord => ({
  auditId: 'audit-20260115T103000Z-abc123',
  auditedAt: '2026-01-15T10:30:00.000Z',
  asOf: AUDIT_AS_OF,
  day,
  expectedRows: 12,
  actualRows: 11,
  expectedFingerprint: '-7',
  actualFingerprint: null,
  missing: 1,
  extra: 0,
  different: 0,
  pending: 0,
  replayed: 1,
  outcome,
  sampleIds,
});

export const CASES: StatementCase[] = [
  { statement: 'changedOperationIds', variant: 'scheduled window', golden: true, render: (d) => statements.changedOperationIds(d, source, window) },
  { statement: 'changedOperationIds', variant: 'replay window across midnight', render: (d) => statements.changedOperationIds(d, source, replayWindow) },
  { statement: 'changedOperationIds', variant: 'operations created before readAfter left out', render: (d) => statements.changedOperationIds(d, source, cutOff) },
  { statement: 'rejectedRowCounts', variant: 'scheduled window', golden: true, render: (d) => statements.rejectedRowCounts(d, source, window) },
  { statement: 'rejectedRowCounts', variant: 'readAfter inside the window\'s day', render: (d) => statements.rejectedRowCounts(d, source, cutOff) },
  { statement: 'beyondMaxAgeCounts', variant: 'scheduled window', golden: true, render: (d) => statements.beyondMaxAgeCounts(d, source, window) },
  { statement: 'beyondMaxAgeCounts', variant: 'operations created before readAfter counted', render: (d) => statements.beyondMaxAgeCounts(d, source, cutOff) },
  { statement: 'enrichedProfile', variant: 'batch', golden: true, render: (d) => statements.enrichedProfile(d, TABLES.enriched.ref) },
  { statement: 'mergeEnriched', variant: 'scheduled, two days', golden: true, render: merge(false, ['2026-01-14', '2026-01-15']) },
  { statement: 'mergeEnriched', variant: 'replay (forced), one day', render: merge(true, ['2026-01-15']) },
  { statement: 'mergeEnriched', variant: 'scheduled, no day (empty array)', render: merge(false, []) },
  { statement: 'mergeEnriched', variant: 'replay (forced), no day (empty array)', render: merge(true, []) },
  { statement: 'consolidatedStatusCounts', variant: 'target', golden: true, render: (d) => statements.consolidatedStatusCounts(d, TABLES.consolidated.ref) },
  {
    statement: 'auditDaySummary',
    variant: 'two days',
    golden: true,
    render: (d) => audit.auditDaySummary(d, TABLES.consolidated.ref, fromScratch(d), auditDays, AUDIT_AS_OF),
    comparable: (sql) => `SELECT day, expected_rows, actual_rows, expected_fingerprint = actual_fingerprint AS same_fingerprint\nFROM (\n${sql}\n) AS audited`,
  },
  {
    statement: 'auditDaySummary',
    variant: 'one day, as of an earlier instant',
    render: (d) => audit.auditDaySummary(d, TABLES.consolidated.ref, fromScratch(d), { from: '2026-01-15', to: '2026-01-15' }, '2026-01-15T10:00:00.000Z'),
    comparable: (sql) => `SELECT day, expected_rows, actual_rows, expected_fingerprint = actual_fingerprint AS same_fingerprint\nFROM (\n${sql}\n) AS audited`,
  },
  { statement: 'auditDrillDown', variant: 'one differing day', golden: true, render: (d) => audit.auditDrillDown(d, TABLES.consolidated.ref, fromScratch(d), auditDays, AUDIT_AS_OF, ['2026-01-15']) },
  { statement: 'auditDrillDown', variant: 'two differing days', render: (d) => audit.auditDrillDown(d, TABLES.consolidated.ref, fromScratch(d), auditDays, AUDIT_AS_OF, ['2026-01-14', '2026-01-15']) },
  {
    statement: 'insertAuditRecords',
    variant: 'two days, NULLs among the values',
    golden: true,
    render: (d) => audit.insertAuditRecords(d, TABLES.audit.ref, [auditRecord('2026-01-14', 'clean', null), auditRecord('2026-01-15', 'repaired', 'op-01 op-02')]),
  },
];

/** Exported functions of shared/sql/ that build no statement (dialects and their choice, the enriched table's column of a field, the audit's columns and pipeline variables). */
export const NOT_STATEMENTS = ['bigqueryDialect', 'dialectOf', 'enrichedField', 'comparedColumns', 'fromScratchVariables'];

export const bigquery = bigqueryDialect(PROJECT);

/** `project.dataset.table` (no backticks), as the GoogleSQL catalog names a table. */
export function bigqueryName(ref: TableRef): string {
  return `${PROJECT}.${ref.dataset}.${ref.table}`;
}

/** The schema of a table of TABLES; the enriched table's is given by the caller (the pipeline's output). */
export function schemaOf(key: TableKey, enriched: SchemaField[]): SchemaField[] {
  const { schema } = TABLES[key];
  return schema === 'pipeline output' ? enriched : loadSchema(schema);
}

export const PIPELINE_FILE = join(__dirname, '..', '..', 'shared', 'pipeline', 'consolidation.yaml');

/**
 * The pipeline file's jinja variables as launchDataflow sets them, with `qualify` of a warehouse.
 * The output table is not SQL: it is given as schema.table, the form the local runner's parser takes.
 */
export function pipelineVariables(names: { qualify(ref: TableRef): string }, bounds: { to: string; readAfter: string } = window): Record<string, string> {
  return {
    as_of: timestampLiteral(bounds.to),
    read_after: timestampLiteral(bounds.readAfter),
    ids_table: names.qualify(TABLES.ids.ref),
    ussd_table: names.qualify(TABLES.ussd.ref),
    transactions_table: names.qualify(TABLES.transactions.ref),
    services_table: names.qualify(TABLES.services.ref),
    agents_table: names.qualify(TABLES.agents.ref),
    output_table: `${TABLES.enriched.ref.dataset}.${TABLES.enriched.ref.table}`,
  };
}

/** The pipeline file, rendered with the variables and parsed as the local runner parses it. */
export function pipelinePlan(variables: Record<string, string>): PipelinePlan {
  return parsePipeline(parseYaml(renderJinja(readFileSync(PIPELINE_FILE, 'utf8'), variables, PIPELINE_FILE)), PIPELINE_FILE);
}

/** Names as the BigQuery adapter gives them to the pipeline (no client call is made). */
export const bigqueryNames = new BigQueryWarehouse({ bigquery: undefined as never, storage: undefined as never, project: PROJECT, location: 'EU' });

export function catalogWith(enriched: SchemaField[]): Catalog {
  return Object.fromEntries((Object.keys(TABLES) as TableKey[]).map((key) => [bigqueryName(TABLES[key].ref), schemaOf(key, enriched)]));
}

/** The enrichment as one GoogleSQL query (read, then each MapToFields as a CTE) and its output columns. */
export async function analyzedEnrichment(bounds: { to: string; readAfter: string } = window): Promise<{ readQuery: string; query: string; output: SchemaField[] }> {
  const plan = pipelinePlan(pipelineVariables(bigqueryNames, bounds));
  const catalog = catalogWith([]);
  await analyze(plan.read.query, {}, catalog);
  const query = await planSelect(
    plan,
    async (ctes) => (await analyze(`WITH ${ctes.join(',\n')}\nSELECT * FROM \`step_${ctes.length - 1}\``, {}, catalog)).map((c) => c.name),
    bigquery,
  );
  const output = (await analyze(query, {}, catalog)).map((c): SchemaField => ({ name: c.name, type: c.type, mode: 'NULLABLE' }));
  return { readQuery: plan.read.query, query, output };
}
