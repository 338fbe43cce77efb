import type { Dialect, ParamType, TableRef } from '../ports';
import { duckdbType } from '../schema';

/**
 * What differs between BigQuery and DuckDB in the statements the chain runs. Each statement is
 * written once (statements.ts) against this interface and rendered per dialect.
 */
export interface SqlDialect {
  readonly name: Dialect;
  /** A table, quoted: `project.dataset.table` or "schema"."table". */
  table(ref: TableRef): string;
  /** A typed parameter reference: @name, or CAST($name AS type) so DuckDB knows its type. */
  param(name: string, type: ParamType): string;
  /** `expr IN <array parameter>`. */
  inArray(expr: string, name: string, type: ParamType): string;
  /** A quoted column or CTE name. */
  identifier(name: string): string;
  /** `*` without the named columns. */
  starExcept(names: string[]): string;
  /** `expr` as the BigQuery type of a schema field (STRING, NUMERIC, TIMESTAMP, ...). */
  cast(expr: string, bigqueryType: string): string;
  /** A 64-bit hash of the values, the same for equal values whatever their order among rows. */
  rowHash(exprs: string[]): string;
  /** Order-independent aggregate of row hashes (XOR), as a decimal string. */
  hashAggregate(hash: string): string;
  /** The TIMESTAMP of an INT64 count of microseconds since the epoch. */
  timestampFromMicros(expr: string): string;
}

const DUCKDB_PARAM_TYPES: Record<ParamType, string> = {
  STRING: 'VARCHAR',
  INT64: 'BIGINT',
  BOOL: 'BOOLEAN',
  TIMESTAMP: 'TIMESTAMPTZ',
  DATE: 'DATE',
  STRING_ARRAY: 'VARCHAR[]',
  DATE_ARRAY: 'DATE[]',
};

const PARAM_NAME = /^[a-z_][a-z0-9_]*$/;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkedIdentifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`Bad identifier ${name}`);
  return name;
}

/** BigQuery's CAST target for a schema type (the legacy names of JSON schemas included). */
function bigqueryCastType(type: string): string {
  const upper = type.toUpperCase();
  return ({ INTEGER: 'INT64', FLOAT: 'FLOAT64', BOOLEAN: 'BOOL' } as Record<string, string>)[upper] ?? upper;
}

function checkedName(name: string): string {
  if (!PARAM_NAME.test(name)) throw new Error(`Bad parameter name ${name}`);
  return name;
}

export function bigqueryDialect(project: string): SqlDialect {
  return {
    name: 'bigquery',
    table: (ref) => `\`${project}.${ref.dataset}.${ref.table}\``,
    param: (name) => `@${checkedName(name)}`,
    inArray: (expr, name) => `${expr} IN UNNEST(@${checkedName(name)})`,
    identifier: (name) => `\`${checkedIdentifier(name)}\``,
    starExcept: (names) => (names.length === 0 ? '*' : `* EXCEPT (${names.map((n) => `\`${checkedIdentifier(n)}\``).join(', ')})`),
    cast: (expr, type) => `CAST(${expr} AS ${bigqueryCastType(type)})`,
    rowHash: (exprs) => `FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(${exprs.join(', ')})))`,
    hashAggregate: (hash) => `CAST(BIT_XOR(${hash}) AS STRING)`,
    timestampFromMicros: (expr) => `TIMESTAMP_MICROS(${expr})`,
  };
}

export const duckdbDialect: SqlDialect = {
  name: 'duckdb',
  table: (ref) => `"${ref.dataset}"."${ref.table}"`,
  param: (name, type) => `CAST($${checkedName(name)} AS ${DUCKDB_PARAM_TYPES[type]})`,
  inArray: (expr, name, type) => `list_contains(CAST($${checkedName(name)} AS ${DUCKDB_PARAM_TYPES[type]}), ${expr})`,
  identifier: (name) => `"${checkedIdentifier(name)}"`,
  starExcept: (names) => (names.length === 0 ? '*' : `* EXCLUDE (${names.map((n) => `"${checkedIdentifier(n)}"`).join(', ')})`),
  cast: (expr, type) => `CAST(${expr} AS ${duckdbType(type)})`,
  rowHash: (exprs) => `hash(${exprs.join(', ')})`,
  hashAggregate: (hash) => `CAST(bit_xor(${hash}) AS VARCHAR)`,
  timestampFromMicros: (expr) => `make_timestamptz(${expr})`,
};
