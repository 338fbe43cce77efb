import { loadSchema } from '../schema';
import type { QueryParams, SchemaField, Statement, TableRef } from '../ports';
import type { SqlDialect } from './dialect';
import { enrichedField } from './statements';

/**
 * The audit's statements: `consolidated_table` against a from-scratch consolidation of the
 * sources, per creation day. The from-scratch side is the pipeline file's own SELECT (composed by
 * the caller, see functions/audit.ts) fed with every operation created in the audited days instead
 * of a batch's changed IDs, so the audit checks the chain against the very rules it runs.
 */

/** Written by the MERGE, not by the consolidation: left out of every comparison. */
const BOOKKEEPING = new Set(['batch_id', 'consolidated_at']);

/** The columns compared (every business column of the schema, so columns added later are compared too). */
export function comparedColumns(): SchemaField[] {
  return loadSchema('consolidated_table').filter((f) => !BOOKKEEPING.has(f.name));
}

/** The audited creation days: [from, to) as timestamps, on the column the table is partitioned by. */
export interface AuditDays {
  /** First day, YYYY-MM-DD. */
  from: string;
  /** Last day (included), YYYY-MM-DD. */
  to: string;
}

export interface AuditSources {
  ussd: TableRef;
  transactions: TableRef;
  services: TableRef;
  agents: TableRef;
}

const dayAfter = (day: string) => new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);

function rangeParams(days: AuditDays, asOf: string): QueryParams {
  return {
    day_from: { type: 'TIMESTAMP', value: `${days.from}T00:00:00Z` },
    day_to: { type: 'TIMESTAMP', value: `${dayAfter(days.to)}T00:00:00Z` },
    as_of: { type: 'TIMESTAMP', value: asOf },
    // The pipeline reads back to read_after: here, everything of the operations created in the audited days.
    read_after: { type: 'TIMESTAMP', value: new Date(Date.parse(`${days.from}T00:00:00Z`) - 1).toISOString() },
  };
}

const inRange = (d: SqlDialect, column: string) => `${column} >= ${d.param('day_from', 'TIMESTAMP')} AND ${column} < ${d.param('day_to', 'TIMESTAMP')}`;

/** The USSD table's layout column bounded too (issue 10): a row of an audited day changed after its start, up to the as-of instant. */
const laidOut = (d: SqlDialect) => `source_timestamp > ${d.param('read_after', 'TIMESTAMP')} AND source_timestamp <= ${d.param('as_of', 'TIMESTAMP')}`;

/**
 * The pipeline's jinja variables for a from-scratch consolidation of the audited days: the
 * "changed IDs" are every operation created in them, the sources are read as of the audit's
 * as-of instant and back to the start of the first audited day (parameters, where the chain's
 * launches give literals), and the USSD rows read are those of the audited days only.
 */
export function fromScratchVariables(d: SqlDialect, t: AuditSources): Record<string, string> {
  return {
    ids_table: `(SELECT DISTINCT operation_id FROM ${d.table(t.ussd)} WHERE ${inRange(d, 'created_at')} AND ${laidOut(d)} AND operation_id IS NOT NULL)`,
    as_of: d.param('as_of', 'TIMESTAMP'),
    read_after: d.param('read_after', 'TIMESTAMP'),
    ussd_table: `(SELECT * FROM ${d.table(t.ussd)} WHERE ${inRange(d, 'created_at')} AND ${laidOut(d)})`,
    transactions_table: d.table(t.transactions),
    services_table: d.table(t.services),
    agents_table: d.table(t.agents),
    // Never written: the audit reads the pipeline's SELECT only.
    output_table: 'audit_scratch.unused',
  };
}

/** Each compared column as both sides compare it: cast to its schema type. */
const normalized = (d: SqlDialect, field: SchemaField): string => d.cast(field.name, field.type);

/** The two sides, each row with its compared columns and their hash. */
function sides(d: SqlDialect, consolidated: TableRef, fromScratch: string): string {
  const columns = comparedColumns();
  const list = columns.map((f) => `${normalized(d, f)} AS ${f.name}`).join(', ');
  const hash = `, ${d.rowHash(columns.map((f) => normalized(d, f)))} AS row_hash`;
  // The pipeline's output carries TIMESTAMPs as INT64 microseconds; turned back as the MERGE does.
  const fromPipeline = columns.map((f) => (f.type === 'TIMESTAMP' ? `${d.timestampFromMicros(enrichedField(f).name)} AS ${f.name}` : f.name)).join(', ');
  return `expected AS (
  SELECT ${list}${hash}
  FROM (
    SELECT ${fromPipeline}
    FROM (
${fromScratch}
    ) AS pipeline
  ) AS scratch
  WHERE ${inRange(d, 'created_at')}
),
actual AS (
  SELECT ${list}${hash}
  FROM ${d.table(consolidated)}
  WHERE ${inRange(d, 'created_at')}
)`;
}

/**
 * Per creation day: rows and an order-independent fingerprint (XOR of row hashes) on each side.
 * Equal counts and fingerprints mean equal rows; a doubled row cancels out of the XOR but not
 * out of the count.
 */
export function auditDaySummary(d: SqlDialect, consolidated: TableRef, fromScratch: string, days: AuditDays, asOf: string): Statement {
  const perDay = (side: string) => `SELECT CAST(created_at AS DATE) AS day, COUNT(*) AS row_count, ${d.hashAggregate('row_hash')} AS fingerprint
  FROM ${side}
  GROUP BY CAST(created_at AS DATE)`;
  return {
    sql: `WITH ${sides(d, consolidated, fromScratch)},
expected_days AS (
  ${perDay('expected')}
),
actual_days AS (
  ${perDay('actual')}
)
SELECT CAST(COALESCE(e.day, a.day) AS STRING) AS day,
  COALESCE(e.row_count, 0) AS expected_rows, COALESCE(a.row_count, 0) AS actual_rows,
  e.fingerprint AS expected_fingerprint, a.fingerprint AS actual_fingerprint
FROM expected_days AS e
FULL OUTER JOIN actual_days AS a ON e.day = a.day
ORDER BY day`,
    params: rangeParams(days, asOf),
  };
}

/**
 * The operations that differ on the given days: missing (expected, not consolidated), extra
 * (consolidated, no longer in the sources) or different (and which columns differ).
 */
export function auditDrillDown(d: SqlDialect, consolidated: TableRef, fromScratch: string, days: AuditDays, asOf: string, differingDays: string[]): Statement {
  const columns = comparedColumns().filter((f) => f.name !== 'operation_id');
  const onDays = d.inArray('CAST(COALESCE(e.created_at, a.created_at) AS DATE)', 'days', 'DATE_ARRAY');
  const differing = columns.map((f) => `CASE WHEN e.${f.name} IS DISTINCT FROM a.${f.name} THEN '${f.name} ' ELSE '' END`);
  return {
    sql: `WITH ${sides(d, consolidated, fromScratch)}
SELECT COALESCE(e.operation_id, a.operation_id) AS operation_id,
  CAST(CAST(COALESCE(e.created_at, a.created_at) AS DATE) AS STRING) AS day,
  CASE WHEN a.operation_id IS NULL THEN 'missing' WHEN e.operation_id IS NULL THEN 'extra' ELSE 'different' END AS kind,
  e.version_ts AS expected_version_ts, a.version_ts AS actual_version_ts,
  CONCAT(${differing.join(',\n    ')}) AS differing_columns
FROM expected AS e
FULL OUTER JOIN actual AS a ON e.operation_id = a.operation_id
WHERE (a.operation_id IS NULL OR e.operation_id IS NULL OR e.row_hash <> a.row_hash)
  AND ${onDays}
ORDER BY day, operation_id`,
    params: { ...rangeParams(days, asOf), days: { type: 'DATE_ARRAY', value: differingDays } },
  };
}

/** One audited day as the audit table keeps it (shared/schema/consolidation_audit.json). */
export interface AuditRecord {
  auditId: string;
  auditedAt: string;
  asOf: string;
  day: string;
  expectedRows: number;
  actualRows: number;
  expectedFingerprint: string | null;
  actualFingerprint: string | null;
  missing: number;
  extra: number;
  different: number;
  pending: number;
  replayed: number;
  outcome: string;
  sampleIds: string | null;
}

const RECORD_COLUMNS: [keyof AuditRecord, string, 'STRING' | 'TIMESTAMP' | 'DATE' | 'INT64'][] = [
  ['auditId', 'audit_id', 'STRING'],
  ['auditedAt', 'audited_at', 'TIMESTAMP'],
  ['asOf', 'as_of', 'TIMESTAMP'],
  ['day', 'day', 'DATE'],
  ['expectedRows', 'expected_rows', 'INT64'],
  ['actualRows', 'actual_rows', 'INT64'],
  ['expectedFingerprint', 'expected_fingerprint', 'STRING'],
  ['actualFingerprint', 'actual_fingerprint', 'STRING'],
  ['missing', 'missing_rows', 'INT64'],
  ['extra', 'extra_rows', 'INT64'],
  ['different', 'different_rows', 'INT64'],
  ['pending', 'pending_rows', 'INT64'],
  ['replayed', 'replayed_operations', 'INT64'],
  ['outcome', 'outcome', 'STRING'],
  ['sampleIds', 'sample_ids', 'STRING'],
];

/** Records the audited days, one row each, in one statement. */
export function insertAuditRecords(d: SqlDialect, table: TableRef, records: AuditRecord[]): Statement {
  if (records.length === 0) throw new Error('insertAuditRecords needs at least one record');
  const params: QueryParams = {};
  const rows = records.map((record, i) => {
    const values = RECORD_COLUMNS.map(([key, column, type]) => {
      params[`${column}_${i}`] = { type, value: record[key] };
      return d.param(`${column}_${i}`, type);
    });
    return `(${values.join(', ')})`;
  });
  return {
    sql: `INSERT INTO ${d.table(table)} (${RECORD_COLUMNS.map(([, column]) => column).join(', ')})
VALUES ${rows.join(',\n  ')}`,
    params,
  };
}
