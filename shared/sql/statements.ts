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

/**
 * The bounds of every read of a batch: the window `(from, to]` of what changed, and `readAfter`
 * (the window's start minus OPERATION_MAX_AGE): an operation created at or before it is too old
 * for the cycle, and neither it nor the versions it is rebuilt from are read (readBounds).
 */
export interface ReadBounds {
  from: string;
  to: string;
  readAfter: string;
}

function boundParams(d: SqlDialect, bounds: ReadBounds): { from: string; to: string; after: string; params: Statement['params'] } {
  return {
    from: d.param('window_from', 'TIMESTAMP'),
    to: d.param('window_to', 'TIMESTAMP'),
    after: d.param('read_after', 'TIMESTAMP'),
    params: {
      window_from: { type: 'TIMESTAMP', value: bounds.from },
      window_to: { type: 'TIMESTAMP', value: bounds.to },
      read_after: { type: 'TIMESTAMP', value: bounds.readAfter },
    },
  };
}

/** `alias.created_at` within (readAfter, to]: the operation is young enough for the cycle (and prunable if the table is laid out by created_at). */
const young = (alias: string, after: string, to: string) => `${alias}created_at > ${after} AND ${alias}created_at <= ${to}`;

/**
 * IDs of the operations that changed in (from, to]: their USSD row, or their transaction, for
 * operations created after readAfter. Every scan is bounded on both sides on the column its
 * table is laid out by; no sort (the IDs go out in chunks, in any order).
 */
export function changedOperationIds(d: SqlDialect, t: SourceTables, bounds: ReadBounds): Statement {
  const { from, to, after, params } = boundParams(d, bounds);
  return {
    sql: `SELECT DISTINCT operation_id
FROM (
  SELECT operation_id
  FROM ${d.table(t.ussd)}
  WHERE source_timestamp > ${from} AND source_timestamp <= ${to}
    AND ${young('', after, to)}
    AND operation_id IS NOT NULL
  UNION ALL
  SELECT u.operation_id
  FROM ${d.table(t.ussd)} AS u
  JOIN (
    SELECT DISTINCT transaction_id
    FROM ${d.table(t.transactions)}
    WHERE updated_at > ${from} AND updated_at <= ${to}
  ) AS t ON u.transaction_ref = t.transaction_id
  WHERE u.source_timestamp > ${after} AND u.source_timestamp <= ${to}
    AND ${young('u.', after, to)}
    AND u.operation_id IS NOT NULL
) AS changed`,
    params,
  };
}

/**
 * Source rows of (from, to] that cannot be consolidated: no operation_id, or no
 * source_timestamp (those are placed in time by created_at, the only time they have; on
 * BigQuery they sit in the __NULL__ partition of source_timestamp, which IS NULL selects).
 */
export function rejectedRowCounts(d: SqlDialect, t: SourceTables, bounds: ReadBounds): Statement {
  const { from, to, after, params } = boundParams(d, bounds);
  return {
    sql: `SELECT
  (SELECT COUNT(*)
   FROM ${d.table(t.ussd)}
   WHERE source_timestamp > ${from} AND source_timestamp <= ${to}
     AND ${young('', after, to)}
     AND operation_id IS NULL) AS missing_operation_id,
  (SELECT COUNT(*)
   FROM ${d.table(t.ussd)}
   WHERE source_timestamp IS NULL
     AND created_at > ${from} AND created_at <= ${to}
     AND ${young('', after, to)}) AS missing_source_timestamp`,
    params,
  };
}

/**
 * What changed in (from, to] but is older than OPERATION_MAX_AGE, so the cycle does not
 * consolidate it: USSD rows of operations created at or before readAfter, and transactions that
 * no operation created after readAfter refers to (an older operation, or none). publishOps
 * counts and reports them; the audit finds the operations.
 */
export function beyondMaxAgeCounts(d: SqlDialect, t: SourceTables, bounds: ReadBounds): Statement {
  const { from, to, after, params } = boundParams(d, bounds);
  return {
    sql: `SELECT
  (SELECT COUNT(*)
   FROM ${d.table(t.ussd)}
   WHERE source_timestamp > ${from} AND source_timestamp <= ${to}
     AND created_at <= ${after}
     AND operation_id IS NOT NULL) AS old_operation_rows,
  (SELECT COUNT(DISTINCT t.transaction_id)
   FROM ${d.table(t.transactions)} AS t
   WHERE t.updated_at > ${from} AND t.updated_at <= ${to}
     AND NOT EXISTS (
       SELECT 1
       FROM ${d.table(t.ussd)} AS u
       WHERE u.transaction_ref = t.transaction_id
         AND u.source_timestamp > ${after} AND u.source_timestamp <= ${to}
         AND ${young('u.', after, to)}
     )) AS unmatched_transactions`,
    params,
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
 * (the latest; its timestamps turned back from microseconds), only the target rows created in
 * [created.from, created.to) (a plain range on the partitioning column, which BigQuery prunes
 * partitions on and DuckDB row groups), and a target row is replaced only by a
 * newer version (or, for the same version, by a later batch that sees different values, or by a
 * replay, which forces it). Never by an older version, not even when forced.
 */
export function mergeEnriched(
  d: SqlDialect,
  tables: { target: TableRef; enriched: TableRef },
  batch: { batchId: string; consolidatedAt: string; created: { from: string; to: string }; force: boolean },
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
ON T.${MERGE_KEY} = S.${MERGE_KEY}
  AND T.created_at >= ${d.param('created_from', 'TIMESTAMP')} AND T.created_at < ${d.param('created_to', 'TIMESTAMP')}
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
      created_from: { type: 'TIMESTAMP', value: batch.created.from },
      created_to: { type: 'TIMESTAMP', value: batch.created.to },
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
