/**
 * The bare engine: the same consolidation as the chain, done by DuckDB alone with no chain around
 * it. Three statements on one connection, each the chain's own SQL:
 *
 * 1. stage IDs: `CREATE TABLE ... AS` the chain's `changedOperationIds` query (shared/sql);
 * 2. enrich: `CREATE TABLE ... AS` the pipeline file's query and its MapToFields expressions
 *    (shared/pipeline/consolidation.yaml, read the way the local runner reads it), with the
 *    batch's read bounds as the chain's launchDataflow renders them;
 * 3. MERGE: the chain's `mergeEnriched` (the local warehouse adds only the count of its rows).
 *
 * No messages, no files, no job registry, no state machine: what is left when the chain is
 * taken away, so the ratio chain / bare is the cost of the chain.
 */
import { readFileSync } from 'node:fs';
import type { DuckDBConnection } from '@duckdb/node-api';
import { parse as parseYaml } from 'yaml';
import type { Statement, TableRef } from '../shared/ports';
import { bindParams } from '../shared/local/duckdb-warehouse';
import { columnsOf, parsePipeline, planSelect, renderJinja } from '../shared/local/pipeline-runner';
import { pipelineFilePath } from '../shared/local/stack';
import { duckdbDialect } from '../shared/sql/dialect';
import { creationRange } from '../functions/merge-on-complete';
import { readBounds } from '../shared/bounds';
import { loadConfig } from '../shared/config';
import { checkPipelineVariables, timestampLiteral } from '../shared/pipeline/variables';
import type { ReadBounds } from '../shared/sql/statements';
import { changedOperationIds, mergeEnriched } from '../shared/sql/statements';
import { duckdbCreateTable, loadSchema } from '../shared/schema';

export const SOURCES = {
  ussd: { dataset: 'main', table: 'ussd_operations' },
  transactions: { dataset: 'main', table: 'transactiongu' },
  services: { dataset: 'main', table: 'services' },
  agents: { dataset: 'main', table: 'agents' },
};
export const CONSOLIDATED: TableRef = { dataset: 'consolidated_dataset', table: 'consolidated_table' };
const BARE_SCHEMA = 'bench_bare';
const TABLES = {
  ids: { dataset: BARE_SCHEMA, table: 'ids' },
  enriched: { dataset: BARE_SCHEMA, table: 'enriched' },
};

export interface BareConsolidation {
  window: { from: string; to: string };
  batchId: string;
  consolidatedAt: string;
}

export interface BareTimes {
  stageIds: number;
  enrich: number;
  merge: number;
  total: number;
}

export interface BareConsolidationResult {
  ms: BareTimes;
  ids: number;
  enriched: number;
}

const q = (ref: TableRef) => duckdbDialect.table(ref);

async function run(connection: DuckDBConnection, statement: Statement): Promise<number> {
  const { values, types } = bindParams(statement.params);
  return (await connection.run(statement.sql, values, types)).rowsChanged;
}

/** The pipeline's enrichment as one SELECT, assembled as the local runner assembles it. */
export async function enrichmentSelect(connection: DuckDBConnection, bounds: ReadBounds): Promise<string> {
  const file = pipelineFilePath();
  const variables = {
    as_of: timestampLiteral(bounds.to),
    read_after: timestampLiteral(bounds.readAfter),
    ids_table: q(TABLES.ids),
    ussd_table: q(SOURCES.ussd),
    transactions_table: q(SOURCES.transactions),
    services_table: q(SOURCES.services),
    agents_table: q(SOURCES.agents),
    output_table: `${TABLES.enriched.dataset}.${TABLES.enriched.table}`,
  };
  checkPipelineVariables(variables);
  const plan = parsePipeline(parseYaml(renderJinja(readFileSync(file, 'utf8'), variables, file)), file);
  return planSelect(plan, (ctes, step) => columnsOf(connection, ctes, step));
}

/** Runs the consolidation of one window into `consolidated_table`; creates the table if needed. */
export async function bareConsolidate(connection: DuckDBConnection, request: BareConsolidation): Promise<BareConsolidationResult> {
  await connection.run(`CREATE SCHEMA IF NOT EXISTS "${CONSOLIDATED.dataset}"`);
  await connection.run(duckdbCreateTable(q(CONSOLIDATED), loadSchema('consolidated_table')));
  await connection.run(`CREATE SCHEMA IF NOT EXISTS ${BARE_SCHEMA}`);
  const started = performance.now();

  // The chain's default OPERATION_MAX_AGE, as the chain's cycle runs with it.
  const bounds = readBounds(request.window, loadConfig({}));
  const changed = changedOperationIds(duckdbDialect, SOURCES, bounds);
  await run(connection, { ...changed, sql: `CREATE OR REPLACE TABLE ${q(TABLES.ids)} AS\n${changed.sql}` });
  const staged = performance.now();

  await run(connection, { sql: `CREATE OR REPLACE TABLE ${q(TABLES.enriched)} AS\n${await enrichmentSelect(connection, bounds)}`, params: {} });
  const enrichedAt = performance.now();

  const days = (await connection.runAndReadAll(`SELECT DISTINCT CAST(CAST(${duckdbDialect.timestampFromMicros('created_at_us')} AS DATE) AS VARCHAR) AS day FROM ${q(TABLES.enriched)} WHERE created_at_us IS NOT NULL ORDER BY day`))
    .getRows()
    .map(([day]) => String(day));
  const created = creationRange(days);
  await run(connection, mergeEnriched(duckdbDialect, { target: CONSOLIDATED, enriched: TABLES.enriched }, { batchId: request.batchId, consolidatedAt: request.consolidatedAt, created, force: false }));
  const merged = performance.now();

  const count = async (ref: TableRef) => Number((await connection.runAndReadAll(`SELECT count(*) FROM ${q(ref)}`)).getRows()[0][0]);
  const ids = await count(TABLES.ids);
  const enriched = await count(TABLES.enriched);
  for (const table of Object.values(TABLES)) await connection.run(`DROP TABLE IF EXISTS ${q(table)}`);
  return {
    ms: { stageIds: staged - started, enrich: enrichedAt - staged, merge: merged - enrichedAt, total: merged - started },
    ids,
    enriched,
  };
}

export const CONSOLIDATED_COLUMNS = loadSchema('consolidated_table').map((f) => f.name);
