/**
 * The from-scratch consolidation that end-to-end tests compare `consolidated_table` with: the
 * proof that incremental equals full refresh (design invariant 1).
 *
 * It is computed independently of the pipeline: the source tables are read whole with
 * `SELECT *` and everything else (latest row per key, joins, reconciliation, version_ts) is
 * plain TypeScript following the design's data contract, so a bug in the pipeline's SQL cannot
 * hide in the oracle too. Values are read exactly (decimals as scaled integers, timestamps in
 * microseconds) and compared after normalizing them the same way on both sides.
 */
import {
  DuckDBConnection,
  DuckDBDecimalValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBValue,
} from '@duckdb/node-api';
import type { RejectedRows } from '../../shared/batch';
import { loadSchema } from '../../shared/schema';

export type ReconciliationStatus = 'MISSING_TRANSACTION' | 'PENDING' | 'AMOUNT_MISMATCH' | 'MATCHED' | 'STATUS_MISMATCH';

/** One consolidated row as the data contract defines it (all columns but batch_id and consolidated_at). */
export interface ExpectedRow {
  operation_id: string;
  msisdn: string | null;
  service_code: string | null;
  operation_type: string | null;
  /** Decimals as canonical text with at least 9 decimals (NUMERIC's scale): '1500.000000000'. */
  amount: string | null;
  currency: string | null;
  ussd_status: string | null;
  /** Timestamps as RFC 3339 text with exactly six decimals (microseconds): '2026-01-15T10:20:00.123456Z'. */
  created_at: string | null;
  source_timestamp: string;
  transaction_id: string | null;
  transaction_status: string | null;
  transaction_amount: string | null;
  fees: string | null;
  commission: string | null;
  service_name: string | null;
  service_category: string | null;
  agent_name: string | null;
  agent_region: string | null;
  reconciliation_status: ReconciliationStatus;
  version_ts: string;
}

/** The (quoted) source tables; by default the demo's, in DuckDB's `main` schema. */
export interface SourceTables {
  ussd: string;
  transactions: string;
  services: string;
  agents: string;
}

export const DEFAULT_SOURCES: SourceTables = {
  ussd: '"main"."ussd_operations"',
  transactions: '"main"."transactiongu"',
  services: '"main"."services"',
  agents: '"main"."agents"',
};

// ---------------------------------------------------------------------------------------------
// Normalization: one representation per type, whatever DuckDB type a value arrives as

const SCALE = 9;

/** A decimal as canonical text: exact, with at least 9 decimals ('12.5' -> '12.500000000'). */
export function decimalText(value: DuckDBValue | Date | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof DuckDBDecimalValue) return scaledText(value.value, value.scale);
  if (typeof value === 'bigint') return scaledText(value, 0);
  const text = typeof value === 'number' ? numberText(value) : String(value).trim();
  const match = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(text);
  if (!match) throw new Error(`Not a decimal: ${text}`);
  const [, sign, whole, fraction = ''] = match;
  return scaledText(BigInt(`${sign}${whole || '0'}${fraction}`), fraction.length);
}

function numberText(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`Not a decimal: ${value}`);
  return Number.isInteger(value) ? BigInt(value).toString() : value.toFixed(SCALE);
}

function scaledText(unscaled: bigint, scale: number): string {
  let digits = (unscaled < 0n ? -unscaled : unscaled).toString();
  let fractionDigits = scale;
  if (fractionDigits < SCALE) {
    digits += '0'.repeat(SCALE - fractionDigits);
    fractionDigits = SCALE;
  }
  digits = digits.padStart(fractionDigits + 1, '0');
  let fraction = digits.slice(digits.length - fractionDigits);
  while (fraction.length > SCALE && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  const text = `${digits.slice(0, digits.length - fractionDigits)}.${fraction}`;
  return unscaled < 0n ? `-${text}` : text;
}

/** A timestamp as epoch microseconds (exact, for ordering "the latest row"); text may carry up to six decimals. */
export function epochMicros(value: DuckDBValue | Date | undefined): bigint | null {
  if (value === null || value === undefined) return null;
  if (value instanceof DuckDBTimestampTZValue || value instanceof DuckDBTimestampValue) return value.micros;
  if (value instanceof DuckDBTimestampMillisecondsValue) return value.millis * 1000n;
  if (value instanceof DuckDBTimestampSecondsValue) return value.seconds * 1_000_000n;
  if (value instanceof DuckDBTimestampNanosecondsValue) return value.nanos / 1000n;
  if (value instanceof Date) return BigInt(value.getTime()) * 1000n;
  if (typeof value === 'string') {
    const match = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d(?::?\d\d)?)?$/.exec(value.trim());
    const zone = !match?.[4] || match[4] === 'Z' ? 'Z' : match[4].length === 3 ? `${match[4]}:00` : match[4];
    const seconds = match ? Date.parse(`${match[1]}T${match[2]}${zone}`) : NaN;
    if (!match || Number.isNaN(seconds)) throw new Error(`Not a timestamp: ${value}`);
    return BigInt(seconds) * 1000n + BigInt((match[3] ?? '').slice(0, 6).padEnd(6, '0'));
  }
  throw new Error(`Not a timestamp: ${String(value)}`);
}

/** A timestamp as epoch milliseconds (rounding down). */
export function epochMillis(value: DuckDBValue | Date | undefined): number | null {
  const micros = epochMicros(value);
  return micros === null ? null : Number((micros - (((micros % 1000n) + 1000n) % 1000n)) / 1000n);
}

/** Epoch microseconds as RFC 3339 text with six decimals: the one form timestamps are compared in. */
export function microsText(micros: bigint | null): string | null {
  if (micros === null) return null;
  const fraction = ((micros % 1_000_000n) + 1_000_000n) % 1_000_000n;
  const seconds = (micros - fraction) / 1_000_000n;
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}.${String(fraction).padStart(6, '0')}Z`;
}

function text(value: DuckDBValue | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}


// ---------------------------------------------------------------------------------------------
// Reading the sources

type SourceRow = Record<string, DuckDBValue>;

/** Calls `visit` for every row of `SELECT * FROM table`, streamed chunk by chunk. */
async function forEachRow(connection: DuckDBConnection, table: string, visit: (row: SourceRow) => void): Promise<void> {
  const result = await connection.stream(`SELECT * FROM ${table}`);
  for await (const rows of result.yieldRowObjects()) for (const row of rows) visit(row);
}

/** A row's values normalized, to tell exact duplicates from different rows that tie. */
function fingerprint(row: SourceRow): string {
  return JSON.stringify(Object.keys(row).sort().map((k) => normalizedAny(row[k])));
}

function normalizedAny(value: DuckDBValue): string | null {
  if (value === null) return null;
  if (value instanceof DuckDBDecimalValue) return decimalText(value);
  if (value instanceof DuckDBTimestampTZValue || value instanceof DuckDBTimestampValue) return String(epochMicros(value));
  return String(value);
}

/**
 * The latest row per key among the rows with a key and a timestamp <= asOf. Two different rows
 * sharing the latest timestamp make "the latest row" undefined: that is an error of the data,
 * reported rather than decided arbitrarily. Exact duplicates are one row.
 */
async function latestRows(connection: DuckDBConnection, table: string, keyColumn: string, timeColumn: string, asOf: bigint): Promise<Map<string, SourceRow>> {
  const latest = new Map<string, { row: SourceRow; at: bigint }>();
  await forEachRow(connection, table, (row) => {
    const key = text(row[keyColumn]);
    const at = epochMicros(row[timeColumn]);
    if (key === null || at === null || at > asOf) return;
    const current = latest.get(key);
    if (!current || at > current.at) latest.set(key, { row, at });
    else if (at === current.at && fingerprint(row) !== fingerprint(current.row)) {
      throw new Error(`${table}: two different rows of ${keyColumn} ${key} share the latest ${timeColumn}; the latest row is ambiguous`);
    }
  });
  return new Map([...latest].map(([key, { row }]) => [key, row]));
}

/** A reference table by key; a duplicated key would duplicate consolidated rows, so it is an error. */
async function referenceRows(connection: DuckDBConnection, table: string, keyColumn: string): Promise<Map<string, SourceRow>> {
  const rows = new Map<string, SourceRow>();
  await forEachRow(connection, table, (row) => {
    const key = text(row[keyColumn]);
    if (key === null) return;
    if (rows.has(key)) throw new Error(`${table}: ${keyColumn} ${key} appears twice`);
    rows.set(key, row);
  });
  return rows;
}

// ---------------------------------------------------------------------------------------------
// The data contract

/** The first rule that applies (design, "Data contract"). */
export function reconcile(
  ussd: { status: string | null; amount: string | null },
  transaction: { status: string | null; amount: string | null } | null,
): ReconciliationStatus {
  if (transaction === null) return 'MISSING_TRANSACTION';
  if (ussd.status === 'INITIATED' || transaction.status === 'PENDING') return 'PENDING';
  if (ussd.amount === null || transaction.amount === null || ussd.amount !== transaction.amount) return 'AMOUNT_MISMATCH';
  const succeeded = ussd.status === 'SUCCESS' && transaction.status === 'SUCCESSFUL';
  const failed = (ussd.status === 'FAILED' || ussd.status === 'TIMEOUT') && (transaction.status === 'FAILED' || transaction.status === 'REVERSED');
  return succeeded || failed ? 'MATCHED' : 'STATUS_MISMATCH';
}

/**
 * The consolidated table as it must be after consolidating everything up to `asOf`, by
 * operation_id: per operation its latest USSD row (source_timestamp <= asOf; rows without
 * operation_id or source_timestamp are rejects), the latest row of its transaction
 * (updated_at <= asOf), the service of that transaction and the operation's agent.
 */
export async function expectedConsolidation(
  connection: DuckDBConnection,
  asOf: Date,
  sources: SourceTables = DEFAULT_SOURCES,
): Promise<Map<string, ExpectedRow>> {
  const cutoff = BigInt(asOf.getTime()) * 1000n;
  const operations = await latestRows(connection, sources.ussd, 'operation_id', 'source_timestamp', cutoff);
  const transactions = await latestRows(connection, sources.transactions, 'transaction_id', 'updated_at', cutoff);
  const services = await referenceRows(connection, sources.services, 'service_id');
  const agents = await referenceRows(connection, sources.agents, 'agent_code');

  const expected = new Map<string, ExpectedRow>();
  for (const [operationId, u] of operations) {
    const reference = text(u.transaction_ref);
    const t = reference === null ? null : (transactions.get(reference) ?? null);
    const serviceId = t === null ? null : text(t.service_id);
    const s = serviceId === null ? null : (services.get(serviceId) ?? null);
    const agentCode = text(u.agent_code);
    const a = agentCode === null ? null : (agents.get(agentCode) ?? null);

    const sourceMicros = epochMicros(u.source_timestamp) as bigint;
    const transactionMicros = t === null ? null : epochMicros(t.updated_at);
    const amount = decimalText(u.amount);
    const transactionAmount = t === null ? null : decimalText(t.amount);
    expected.set(operationId, {
      operation_id: operationId,
      msisdn: text(u.msisdn),
      service_code: text(u.service_code),
      operation_type: text(u.operation_type),
      amount,
      currency: text(u.currency),
      ussd_status: text(u.status),
      created_at: microsText(epochMicros(u.created_at)),
      source_timestamp: microsText(sourceMicros) as string,
      transaction_id: t === null ? null : text(t.transaction_id),
      transaction_status: t === null ? null : text(t.status),
      transaction_amount: transactionAmount,
      fees: t === null ? null : decimalText(t.fees),
      commission: t === null ? null : decimalText(t.commission),
      service_name: s === null ? null : text(s.service_name),
      service_category: s === null ? null : text(s.category),
      agent_name: a === null ? null : text(a.agent_name),
      agent_region: a === null ? null : text(a.region),
      reconciliation_status: reconcile(
        { status: text(u.status), amount },
        t === null ? null : { status: text(t.status), amount: transactionAmount },
      ),
      version_ts: microsText(transactionMicros !== null && transactionMicros > sourceMicros ? transactionMicros : sourceMicros) as string,
    });
  }
  return expected;
}

/**
 * Source rows that cannot be consolidated, in the window `(from, to]`: rows without
 * operation_id (by their source_timestamp) and rows without source_timestamp (by their
 * created_at; a row missing both counts here).
 */
export async function expectedRejects(connection: DuckDBConnection, from: Date, to: Date, sources: SourceTables = DEFAULT_SOURCES): Promise<RejectedRows> {
  const lower = BigInt(from.getTime()) * 1000n;
  const upper = BigInt(to.getTime()) * 1000n;
  const inWindow = (micros: bigint | null): boolean => micros !== null && micros > lower && micros <= upper;
  const rejects: RejectedRows = { missingOperationId: 0, missingSourceTimestamp: 0 };
  await forEachRow(connection, sources.ussd, (row) => {
    if (row.source_timestamp === null) {
      if (inWindow(epochMicros(row.created_at))) rejects.missingSourceTimestamp++;
    } else if (row.operation_id === null && inWindow(epochMicros(row.source_timestamp))) {
      rejects.missingOperationId++;
    }
  });
  return rejects;
}

// ---------------------------------------------------------------------------------------------
// Comparison

/** One column of one operation that differs (values as compared; timestamps in RFC 3339 with microseconds). */
export interface ColumnDifference {
  operation_id: string;
  column: string;
  expected: string | number | null;
  actual: string | number | null;
}

export interface Comparison {
  /** Expected operations absent from the table. */
  missing: string[];
  /** Operations in the table that should not be there (including rows without operation_id). */
  unexpected: string[];
  /** Operations with more than one row in the table. */
  duplicated: string[];
  different: ColumnDifference[];
  /** Operations present on both sides and compared column by column. */
  checked: number;
}

/** The columns compared: the contract's, except those that say when and by which batch a row was written. */
const COMPARED = loadSchema('consolidated_table').filter((f) => f.name !== 'batch_id' && f.name !== 'consolidated_at');

function normalized(type: string, value: DuckDBValue | Date | undefined): string | number | null {
  if (type === 'TIMESTAMP') return microsText(epochMicros(value));
  if (type === 'NUMERIC') return decimalText(value);
  return text(value as DuckDBValue);
}


/**
 * Compares a consolidated table (quoted, e.g. '"consolidated_dataset"."consolidated_table"')
 * with the expected rows, every column but batch_id and consolidated_at: timestamps to the
 * microsecond, decimals exactly whatever their scale.
 */
export async function compareConsolidated(connection: DuckDBConnection, table: string, expected: Map<string, ExpectedRow>): Promise<Comparison> {
  const comparison: Comparison = { missing: [], unexpected: [], duplicated: [], different: [], checked: 0 };
  const seen = new Set<string>();
  let columnsChecked = false;
  await forEachRow(connection, table, (row) => {
    if (!columnsChecked) {
      const absent = COMPARED.filter((f) => !(f.name in row)).map((f) => f.name);
      if (absent.length > 0) throw new Error(`${table} has no column ${absent.join(', ')}`);
      columnsChecked = true;
    }
    const id = text(row.operation_id);
    if (id === null) return void comparison.unexpected.push('(NULL operation_id)');
    if (seen.has(id)) return void comparison.duplicated.push(id);
    seen.add(id);
    const want = expected.get(id);
    if (!want) return void comparison.unexpected.push(id);
    comparison.checked++;
    for (const { name, type } of COMPARED) {
      const expectedValue = normalized(type, want[name as keyof ExpectedRow]);
      const actualValue = normalized(type, row[name]);
      if (expectedValue !== actualValue) {
        comparison.different.push({ operation_id: id, column: name, expected: expectedValue, actual: actualValue });
      }
    }
  });
  for (const id of expected.keys()) if (!seen.has(id)) comparison.missing.push(id);
  return comparison;
}
