import type { Dialect, ParamType, TableRef } from '../ports';

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
  /** A typed NULL. */
  nullOf(type: ParamType): string;
  /** A hexadecimal MD5 of a whole row (a table alias), stable from one run to the next in that engine. */
  rowFingerprint(alias: string): string;
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

const BIGQUERY_TYPES: Record<ParamType, string> = {
  STRING: 'STRING',
  INT64: 'INT64',
  BOOL: 'BOOL',
  TIMESTAMP: 'TIMESTAMP',
  DATE: 'DATE',
  STRING_ARRAY: 'ARRAY<STRING>',
  DATE_ARRAY: 'ARRAY<DATE>',
};

const PARAM_NAME = /^[a-z_][a-z0-9_]*$/;

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
    nullOf: (type) => `CAST(NULL AS ${BIGQUERY_TYPES[type]})`,
    rowFingerprint: (alias) => `TO_HEX(MD5(TO_JSON_STRING(${checkedName(alias)})))`,
    timestampFromMicros: (expr) => `TIMESTAMP_MICROS(${expr})`,
  };
}

export const duckdbDialect: SqlDialect = {
  name: 'duckdb',
  table: (ref) => `"${ref.dataset}"."${ref.table}"`,
  param: (name, type) => `CAST($${checkedName(name)} AS ${DUCKDB_PARAM_TYPES[type]})`,
  inArray: (expr, name, type) => `list_contains(CAST($${checkedName(name)} AS ${DUCKDB_PARAM_TYPES[type]}), ${expr})`,
  nullOf: (type) => `CAST(NULL AS ${DUCKDB_PARAM_TYPES[type]})`,
  rowFingerprint: (alias) => `md5(CAST(to_json(${checkedName(alias)}) AS VARCHAR))`,
  timestampFromMicros: (expr) => `make_timestamptz(${expr})`,
};
