import { existsSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { CliError, EXIT } from './exit';

/**
 * `consolidate sql`: one query on the local warehouse, opened read-only (so it never changes the
 * data, and fails clearly while a run holds the file for writing).
 */
export async function querySql(file: string, sql: string): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  if (!existsSync(file)) throw new CliError(`No warehouse at ${file}: run \`consolidate run\` first, or point --warehouse at a DuckDB file.`);
  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(file, { access_mode: 'READ_ONLY' });
  } catch (error) {
    throw new CliError(`Cannot open ${file} to read: ${(error as Error).message.split('\n')[0]} (a run may hold it; try again when it ends)`, EXIT.failed);
  }
  const connection = await instance.connect();
  try {
    const reader = await connection.runAndReadAll(sql);
    return { columns: reader.columnNames(), rows: reader.getRowObjectsJson() as Record<string, unknown>[] };
  } catch (error) {
    throw new CliError(`The query failed: ${(error as Error).message.split('\n')[0]}`);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** Rows as an aligned text table. */
export function formatRows(columns: string[], rows: Record<string, unknown>[]): string[] {
  const cells = rows.map((row) => columns.map((c) => (row[c] === null || row[c] === undefined ? 'NULL' : String(row[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line), `(${rows.length} row${rows.length === 1 ? '' : 's'})`];
}
