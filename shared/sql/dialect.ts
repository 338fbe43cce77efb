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
    timestampFromMicros: (expr) => `TIMESTAMP_MICROS(${expr})`,
  };
}

export const duckdbDialect: SqlDialect = {
  name: 'duckdb',
  table: (ref) => `"${ref.dataset}"."${ref.table}"`,
  param: (name, type) => `CAST($${checkedName(name)} AS ${DUCKDB_PARAM_TYPES[type]})`,
  inArray: (expr, name, type) => `list_contains(CAST($${checkedName(name)} AS ${DUCKDB_PARAM_TYPES[type]}), ${expr})`,
  timestampFromMicros: (expr) => `make_timestamptz(${expr})`,
};
