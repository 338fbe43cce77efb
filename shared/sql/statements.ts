import { TIMESTAMP_MAX, TIMESTAMP_MIN, rejectRuleParams } from '../rejects';
import { loadSchema } from '../schema';
import type { QueryParams, Statement, TableRef } from '../ports';
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
 * A USSD row that passes every reject rule (shared/rejects.ts), for an operation created after
 * readAfter: a non-blank ID of at most MAX_ID_LENGTH, timestamps from VALID_FROM on, created_at
 * at most valid_to (the window's end plus the clock skew allowed).
 */
function consolidableUssd(d: SqlDialect, u: string, after: string): string {
  const from = d.param('valid_from', 'TIMESTAMP');
  return `${u}.operation_id IS NOT NULL AND NOT REGEXP_CONTAINS(${u}.operation_id, ${d.param('blank_pattern', 'STRING')})
    AND LENGTH(${u}.operation_id) <= ${d.param('max_id_length', 'INT64')}
    AND ${u}.source_timestamp >= ${from}
    AND ${u}.created_at > ${after} AND ${u}.created_at <= ${d.param('valid_to', 'TIMESTAMP')} AND ${u}.created_at >= ${from}`;
}

/**
 * IDs of the operations that changed in (from, to]: their USSD row, or their transaction, for
 * operations created after readAfter. Only rows that can be consolidated count (the others are
 * quarantined), so no rejected row's ID reaches a chunk message. Every scan is bounded on both
 * sides on the column its table is laid out by; no sort (the IDs go out in chunks, in any order).
 */
export function changedOperationIds(d: SqlDialect, t: SourceTables, bounds: ReadBounds): Statement {
  const { from, to, after, params } = boundParams(d, bounds);
  return {
    sql: `SELECT DISTINCT operation_id
FROM (
  SELECT u.operation_id
  FROM ${d.table(t.ussd)} AS u
  WHERE u.source_timestamp > ${from} AND u.source_timestamp <= ${to}
    AND ${consolidableUssd(d, 'u', after)}
  UNION ALL
  SELECT u.operation_id
  FROM ${d.table(t.ussd)} AS u
  JOIN (
    SELECT DISTINCT transaction_id
    FROM ${d.table(t.transactions)}
    WHERE updated_at > ${from} AND updated_at <= ${to}
  ) AS t ON u.transaction_ref = t.transaction_id
  WHERE u.source_timestamp > ${after} AND u.source_timestamp <= ${to}
    AND ${consolidableUssd(d, 'u', after)}
) AS changed`,
    params: { ...params, ...rejectRuleParams(bounds.to) },
  };
}

/**
 * The scans of a source table the quarantine reads, each bounded on the table's layout column
 * (BigQuery prunes every one): the window, the NULL partition, and the out-of-range timestamps
 * below valid_from or past valid_to. A row can be rejected for a garbage created_at, so these
 * scans of ussd_operations are not bounded on created_at.
 */
function rejectScans(d: SqlDialect, table: TableRef, alias: string, column: string): string {
  const c = `${alias}.${column}`;
  const scan = (where: string) => `  SELECT ${alias}.* FROM ${d.table(table)} AS ${alias} WHERE ${where}`;
  return [
    scan(`${c} > ${d.param('window_from', 'TIMESTAMP')} AND ${c} <= ${d.param('window_to', 'TIMESTAMP')}`),
    scan(`${c} IS NULL`),
    scan(`${c} >= ${d.param('timestamp_min', 'TIMESTAMP')} AND ${c} < ${d.param('valid_from', 'TIMESTAMP')}`),
    scan(`${c} > ${d.param('valid_to', 'TIMESTAMP')} AND ${c} <= ${d.param('timestamp_max', 'TIMESTAMP')}`),
  ].join('\n  UNION ALL\n');
}

/**
 * The source rows that cannot be consolidated, each with the first reason that applies
 * (shared/rejects.ts). A row is placed in time by its first sane timestamp (source_timestamp,
 * else created_at; updated_at for a transaction) and taken when that falls in (from, to]; a row
 * with no sane timestamp at all is taken by every window (the quarantine keeps it once).
 */
function rejectedRows(d: SqlDialect, t: SourceTables): string {
  const from = d.param('valid_from', 'TIMESTAMP');
  const until = d.param('valid_to', 'TIMESTAMP');
  const blank = d.param('blank_pattern', 'STRING');
  const sane = (column: string) => `${column} >= ${from} AND ${column} <= ${until}`;
  const inWindow = `(placed_at IS NULL OR (placed_at > ${d.param('window_from', 'TIMESTAMP')} AND placed_at <= ${d.param('window_to', 'TIMESTAMP')}))`;
  return `WITH ussd_rows AS (
${rejectScans(d, t.ussd, 'u', 'source_timestamp')}
),
transaction_rows AS (
${rejectScans(d, t.transactions, 't', 'updated_at')}
),
ussd AS (
  SELECT
    CASE
      WHEN u.operation_id IS NULL OR REGEXP_CONTAINS(u.operation_id, ${blank}) THEN 'MISSING_OPERATION_ID'
      WHEN LENGTH(u.operation_id) > ${d.param('max_id_length', 'INT64')} THEN 'OPERATION_ID_TOO_LONG'
      WHEN u.source_timestamp IS NULL THEN 'MISSING_SOURCE_TIMESTAMP'
      WHEN u.created_at IS NULL THEN 'MISSING_CREATED_AT'
      WHEN NOT (${sane('u.source_timestamp')}) OR NOT (${sane('u.created_at')}) THEN 'TIMESTAMP_OUT_OF_RANGE'
    END AS reason,
    CASE
      WHEN ${sane('u.source_timestamp')} THEN u.source_timestamp
      WHEN ${sane('u.created_at')} THEN u.created_at
    END AS placed_at,
    u.operation_id, u.transaction_ref, u.created_at, u.source_timestamp,
    ${d.rowFingerprint('u')} AS row_fingerprint
  FROM ussd_rows AS u
),
transactions AS (
  SELECT
    CASE
      WHEN t.transaction_id IS NULL OR REGEXP_CONTAINS(t.transaction_id, ${blank}) THEN 'MISSING_TRANSACTION_ID'
      WHEN t.updated_at IS NULL THEN 'TRANSACTION_WITHOUT_UPDATED_AT'
      WHEN NOT (${sane('t.updated_at')}) THEN 'TIMESTAMP_OUT_OF_RANGE'
    END AS reason,
    CASE WHEN ${sane('t.updated_at')} THEN t.updated_at END AS placed_at,
    t.transaction_id, t.updated_at,
    ${d.rowFingerprint('t')} AS row_fingerprint
  FROM transaction_rows AS t
)
SELECT DISTINCT 'ussd_operations' AS source_table, reason, operation_id, transaction_ref, ${d.nullOf('STRING')} AS transaction_id,
  created_at, source_timestamp, ${d.nullOf('TIMESTAMP')} AS updated_at, row_fingerprint
FROM ussd
WHERE reason IS NOT NULL AND ${inWindow}
UNION ALL
SELECT DISTINCT 'transactiongu' AS source_table, reason, ${d.nullOf('STRING')} AS operation_id, ${d.nullOf('STRING')} AS transaction_ref, transaction_id,
  ${d.nullOf('TIMESTAMP')} AS created_at, ${d.nullOf('TIMESTAMP')} AS source_timestamp, updated_at, row_fingerprint
FROM transactions
WHERE reason IS NOT NULL AND ${inWindow}`;
}

const QUARANTINE_COLUMNS = ['source_table', 'reason', 'operation_id', 'transaction_ref', 'transaction_id', 'created_at', 'source_timestamp', 'updated_at', 'row_fingerprint'];

/**
 * Records the window's rejected rows in the quarantine table, each once: an entry is keyed by
 * table, reason and the row's fingerprint, so a row read again (the lookback, a row with no sane
 * timestamp) keeps its first batch and first-seen time. The MERGE's inserted count is the
 * number of rows newly quarantined.
 */
export function quarantineRejectedRows(
  d: SqlDialect,
  t: SourceTables & { quarantine: TableRef },
  window: { from: string; to: string },
  batch: { batchId: string; seenAt: string },
): Statement {
  return {
    sql: `MERGE INTO ${d.table(t.quarantine)} AS Q
USING (
${rejectedRows(d, t)}
) AS S
ON Q.source_table = S.source_table AND Q.reason = S.reason AND Q.row_fingerprint = S.row_fingerprint
WHEN NOT MATCHED THEN INSERT (${QUARANTINE_COLUMNS.join(', ')}, batch_id, first_seen_at)
VALUES (${QUARANTINE_COLUMNS.map((c) => `S.${c}`).join(', ')}, ${d.param('batch_id', 'STRING')}, ${d.param('seen_at', 'TIMESTAMP')})`,
    params: {
      window_from: { type: 'TIMESTAMP', value: window.from },
      window_to: { type: 'TIMESTAMP', value: window.to },
      ...rejectRuleParams(window.to),
      timestamp_min: { type: 'TIMESTAMP', value: TIMESTAMP_MIN },
      timestamp_max: { type: 'TIMESTAMP', value: TIMESTAMP_MAX },
      batch_id: { type: 'STRING', value: batch.batchId },
      seen_at: { type: 'TIMESTAMP', value: batch.seenAt },
    },
  };
}

const QUARANTINE_FILTER = (d: SqlDialect) =>
  `(${d.param('reason', 'STRING')} IS NULL OR reason = ${d.param('reason', 'STRING')}) AND (${d.param('batch_id', 'STRING')} IS NULL OR batch_id = ${d.param('batch_id', 'STRING')})`;

/** `consolidate rejects`: the quarantine's entries, newest first, optionally of one reason or one batch. */
export function listQuarantine(d: SqlDialect, quarantine: TableRef, filter: { reason?: string; batchId?: string; limit: number }): Statement {
  return {
    sql: `SELECT ${[...QUARANTINE_COLUMNS, 'batch_id', 'first_seen_at'].join(', ')}
FROM ${d.table(quarantine)}
WHERE ${QUARANTINE_FILTER(d)}
ORDER BY first_seen_at DESC, source_table, reason, row_fingerprint
LIMIT ${d.param('row_limit', 'INT64')}`,
    params: {
      reason: { type: 'STRING', value: filter.reason ?? null },
      batch_id: { type: 'STRING', value: filter.batchId ?? null },
      row_limit: { type: 'INT64', value: filter.limit },
    },
  };
}

/** The quarantine's entries per reason, optionally of one reason or one batch. */
export function quarantineCounts(d: SqlDialect, quarantine: TableRef, filter: { reason?: string; batchId?: string }): Statement {
  return {
    sql: `SELECT reason, COUNT(*) AS row_count
FROM ${d.table(quarantine)}
WHERE ${QUARANTINE_FILTER(d)}
GROUP BY reason
ORDER BY reason`,
    params: { reason: { type: 'STRING', value: filter.reason ?? null }, batch_id: { type: 'STRING', value: filter.batchId ?? null } },
  };
}

/** Keys that appear more than once in a reference table (the pipeline picks one row per key by a fixed rule). */
export function duplicateReferenceKeys(d: SqlDialect, tables: { services: TableRef; agents: TableRef }): Statement {
  return {
    sql: `SELECT reference, reference_key, row_count
FROM (
  SELECT 'services' AS reference, service_id AS reference_key, COUNT(*) AS row_count
  FROM ${d.table(tables.services)}
  WHERE service_id IS NOT NULL
  GROUP BY service_id
  HAVING COUNT(*) > 1
  UNION ALL
  SELECT 'agents' AS reference, agent_code AS reference_key, COUNT(*) AS row_count
  FROM ${d.table(tables.agents)}
  WHERE agent_code IS NOT NULL
  GROUP BY agent_code
  HAVING COUNT(*) > 1
) AS duplicated
ORDER BY reference, reference_key
LIMIT 100`,
    params: {},
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
 * The creation days an enriched operation's row may sit on in the consolidated table: from its
 * earliest to its latest version's created_at (the consolidated row keeps the earliest, which a
 * late older version can move), for the MERGE's partition filter.
 */
export function enrichedCreationDays(d: SqlDialect, enriched: TableRef): Statement {
  return {
    sql: `SELECT DISTINCT CAST(${d.timestampFromMicros('created_at_us')} AS DATE) AS first_day, CAST(${d.timestampFromMicros('created_at_last_us')} AS DATE) AS last_day
FROM ${d.table(enriched)}
WHERE operation_id IS NOT NULL
ORDER BY first_day, last_day`,
    params: {},
  };
}

/** How many IDs the batch's IDs table holds once its chunk files are loaded (checked against the manifest). */
export function stagedIdCount(d: SqlDialect, ids: TableRef): Statement {
  return { sql: `SELECT COUNT(*) AS staged_ids, COUNT(DISTINCT operation_id) AS distinct_ids\nFROM ${d.table(ids)}`, params: {} };
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
