import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SchemaField } from '../ports';

/**
 * The table schemas, kept once as BigQuery JSON schema files beside this module (Terraform
 * reads the same files); the DuckDB DDL is generated from them.
 */
export type SchemaName = 'ussd_operations' | 'transactiongu' | 'services' | 'agents' | 'consolidated_table' | 'batch_ids' | 'consolidation_audit';

/** Folder of the JSON schema files, in the source tree and in the compiled package alike. */
export function schemaDir(): string {
  // Compiled code runs from dist/shared/schema; the JSON files stay in shared/schema.
  const here = __dirname;
  return here.includes(`${join('dist', 'shared')}`) ? join(here, '..', '..', '..', 'shared', 'schema') : here;
}

const cache = new Map<SchemaName, SchemaField[]>();

export function loadSchema(name: SchemaName): SchemaField[] {
  let fields = cache.get(name);
  if (!fields) {
    fields = JSON.parse(readFileSync(join(schemaDir(), `${name}.json`), 'utf8')) as SchemaField[];
    cache.set(name, fields);
  }
  return fields;
}

const DUCKDB_TYPES: Record<string, string> = {
  STRING: 'VARCHAR',
  NUMERIC: 'DECIMAL(38, 9)',
  BIGNUMERIC: 'DECIMAL(38, 18)',
  TIMESTAMP: 'TIMESTAMPTZ',
  DATETIME: 'TIMESTAMP',
  DATE: 'DATE',
  INT64: 'BIGINT',
  INTEGER: 'BIGINT',
  FLOAT64: 'DOUBLE',
  FLOAT: 'DOUBLE',
  BOOL: 'BOOLEAN',
  BOOLEAN: 'BOOLEAN',
};

export function duckdbType(bigqueryType: string): string {
  const type = DUCKDB_TYPES[bigqueryType.toUpperCase()];
  if (!type) throw new Error(`No DuckDB type for the BigQuery type ${bigqueryType}`);
  return type;
}

/** `CREATE TABLE IF NOT EXISTS` for DuckDB from a BigQuery JSON schema. */
export function duckdbCreateTable(qualifiedName: string, fields: SchemaField[]): string {
  const columns = fields.map((f) => `  "${f.name}" ${duckdbType(f.type)}${f.mode === 'REQUIRED' ? ' NOT NULL' : ''}`);
  return `CREATE TABLE IF NOT EXISTS ${qualifiedName} (\n${columns.join(',\n')}\n)`;
}
