import { loadSchema } from '../schema';
import type { Statement, TableRef } from '../ports';
import type { SqlDialect } from './dialect';

/**
 * Every SQL statement the functions run, each written once and rendered for a dialect. Values
 * only ever enter as typed parameters; table names come from validated configuration.
 */

export interface SourceTables {
  ussd: TableRef;
  transactions: TableRef;
}

/** IDs of the operations that changed in (from, to]: their USSD row, or their transaction. */
export function changedOperationIds(d: SqlDialect, t: SourceTables, window: { from: string; to: string }): Statement {
  const from = d.param('window_from', 'TIMESTAMP');
  const to = d.param('window_to', 'TIMESTAMP');
  return {
    sql: `SELECT DISTINCT operation_id
FROM (
  SELECT operation_id
  FROM ${d.table(t.ussd)}
  WHERE source_timestamp > ${from} AND source_timestamp <= ${to} AND operation_id IS NOT NULL
  UNION ALL
  SELECT u.operation_id
  FROM ${d.table(t.ussd)} AS u
  JOIN ${d.table(t.transactions)} AS t ON u.transaction_ref = t.transaction_id
  WHERE t.updated_at > ${from} AND t.updated_at <= ${to}
    AND u.operation_id IS NOT NULL AND u.source_timestamp IS NOT NULL AND u.source_timestamp <= ${to}
) AS changed
ORDER BY operation_id`,
    params: { window_from: { type: 'TIMESTAMP', value: window.from }, window_to: { type: 'TIMESTAMP', value: window.to } },
  };
}

/**
 * Source rows of (from, to] that cannot be consolidated: no operation_id, or no
 * source_timestamp (those are placed in time by created_at, the only time they have).
 */
export function rejectedRowCounts(d: SqlDialect, t: SourceTables, window: { from: string; to: string }): Statement {
  const from = d.param('window_from', 'TIMESTAMP');
  const to = d.param('window_to', 'TIMESTAMP');
  return {
    sql: `SELECT
  COALESCE(SUM(CASE WHEN source_timestamp IS NOT NULL THEN 1 ELSE 0 END), 0) AS missing_operation_id,
  COALESCE(SUM(CASE WHEN source_timestamp IS NULL THEN 1 ELSE 0 END), 0) AS missing_source_timestamp
FROM ${d.table(t.ussd)}
WHERE (operation_id IS NULL AND source_timestamp > ${from} AND source_timestamp <= ${to})
   OR (source_timestamp IS NULL AND created_at > ${from} AND created_at <= ${to})`,
    params: { window_from: { type: 'TIMESTAMP', value: window.from }, window_to: { type: 'TIMESTAMP', value: window.to } },
  };
}

/** The one-row table of the batch's parameters that the pipeline reads (so no value is spliced into its SQL). */
export function createBatchParams(d: SqlDialect, params: TableRef, batch: { batchId: string; windowTo: string }): Statement {
  return {
    sql: `CREATE OR REPLACE TABLE ${d.table(params)} AS
SELECT ${d.param('batch_id', 'STRING')} AS batch_id, ${d.param('window_to', 'TIMESTAMP')} AS window_to`,
    params: { batch_id: { type: 'STRING', value: batch.batchId }, window_to: { type: 'TIMESTAMP', value: batch.windowTo } },
  };
}

/**
 * How the pipeline's output names a column of the consolidated table: a TIMESTAMP travels through
 * Beam as INT64 microseconds (`<name>_us`), since Beam keeps only milliseconds of a TIMESTAMP.
 */
export function enrichedField<F extends { name: string; type: string }>(field: F): F {
  return field.type === 'TIMESTAMP' ? { ...field, name: `${field.name}_us`, type: 'INT64' } : field;
}

/** What the batch's enriched rows hold: operations per creation day and per reconciliation status. */
export function enrichedProfile(d: SqlDialect, enriched: TableRef): Statement {
  return {
    sql: `SELECT CAST(${d.timestampFromMicros('created_at_us')} AS DATE) AS day, reconciliation_status, COUNT(DISTINCT operation_id) AS operations
FROM ${d.table(enriched)}
WHERE operation_id IS NOT NULL
GROUP BY day, reconciliation_status
ORDER BY day, reconciliation_status`,
    params: {},
  };
}

const MERGE_KEY = 'operation_id';
const WRITTEN_BY_MERGE = new Set(['batch_id', 'consolidated_at']);

/**
 * Upserts the batch's enriched rows into the consolidated table: one source row per operation
 * (the latest; its timestamps turned back from microseconds), only the partitions the batch touches, and a target row is replaced only by a
 * newer version (or, for the same version, by a later batch that sees different values, or by a
 * replay, which forces it). Never by an older version, not even when forced.
 */
export function mergeEnriched(
  d: SqlDialect,
  tables: { target: TableRef; enriched: TableRef },
  batch: { batchId: string; consolidatedAt: string; days: string[]; force: boolean },
): Statement {
  const copiedFields = loadSchema('consolidated_table').filter((f) => !WRITTEN_BY_MERGE.has(f.name));
  const copied = copiedFields.map((f) => f.name);
  const fromEnriched = copiedFields.map((f) => (f.type === 'TIMESTAMP' ? `${d.timestampFromMicros(enrichedField(f).name)} AS ${f.name}` : f.name));
  const batchId = d.param('batch_id', 'STRING');
  const consolidatedAt = d.param('consolidated_at', 'TIMESTAMP');
  const differs = copied.filter((c) => c !== MERGE_KEY).map((c) => `T.${c} IS DISTINCT FROM S.${c}`);
  return {
    sql: `MERGE INTO ${d.table(tables.target)} AS T
USING (
  SELECT ${fromEnriched.join(', ')}
  FROM ${d.table(tables.enriched)}
  WHERE ${MERGE_KEY} IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY ${MERGE_KEY} ORDER BY version_ts_us DESC) = 1
) AS S
ON T.${MERGE_KEY} = S.${MERGE_KEY} AND ${d.inArray('CAST(T.created_at AS DATE)', 'days', 'DATE_ARRAY')}
WHEN MATCHED AND (
  S.version_ts > T.version_ts
  OR (${d.param('force', 'BOOL')} AND S.version_ts = T.version_ts)
  OR (S.version_ts = T.version_ts AND ${batchId} > T.batch_id AND (
    ${differs.join('\n    OR ')}))
) THEN UPDATE SET
  ${copied.filter((c) => c !== MERGE_KEY).map((c) => `${c} = S.${c}`).join(',\n  ')},
  batch_id = ${batchId},
  consolidated_at = ${consolidatedAt}
WHEN NOT MATCHED THEN INSERT (${[...copied, 'batch_id', 'consolidated_at'].join(', ')})
VALUES (${copied.map((c) => `S.${c}`).join(', ')}, ${batchId}, ${consolidatedAt})`,
    params: {
      batch_id: { type: 'STRING', value: batch.batchId },
      consolidated_at: { type: 'TIMESTAMP', value: batch.consolidatedAt },
      days: { type: 'DATE_ARRAY', value: batch.days },
      force: { type: 'BOOL', value: batch.force },
    },
  };
}

/** Rows of the consolidated table per reconciliation status. */
export function consolidatedStatusCounts(d: SqlDialect, target: TableRef): Statement {
  return {
    sql: `SELECT reconciliation_status, COUNT(*) AS row_count
FROM ${d.table(target)}
GROUP BY reconciliation_status
ORDER BY reconciliation_status`,
    params: {},
  };
}
