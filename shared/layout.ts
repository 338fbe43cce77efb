import type { Config } from './config';
import { errorMessage } from './errors';
import type { Logger, TableLayout, TableRef, Warehouse } from './ports';

/**
 * The layout contract of the source tables: what lets BigQuery prune every read of a cycle to
 * its window plus OPERATION_MAX_AGE. The reads bound these columns (shared/sql/statements.ts,
 * shared/pipeline/consolidation.yaml); a table laid out otherwise still gives the right result,
 * but every cycle scans (and bills) it whole.
 */
export const SOURCE_LAYOUT = {
  ussd: { partitionedBy: ['source_timestamp', 'created_at'], clusteredBy: 'operation_id' },
  transactions: { partitionedBy: ['updated_at'], clusteredBy: 'transaction_id' },
} as const;

export type SourceKey = keyof typeof SOURCE_LAYOUT;

export interface LayoutFinding {
  table: string;
  /** What keeps the table from being pruned; empty when it follows the contract. */
  problems: string[];
}

/** What is wrong with a source table's layout, for the contract of `key`. */
export function layoutProblems(key: SourceKey, layout: TableLayout): string[] {
  const contract = SOURCE_LAYOUT[key];
  const problems: string[] = [];
  const field = layout.partitioning?.field;
  const wanted = contract.partitionedBy.join(' or ');
  if (!layout.partitioning) problems.push(`it is not partitioned (the contract: by DAY on ${wanted}), so no read can skip a partition`);
  else if (!field) problems.push(`it is partitioned by ingestion time, which the reads cannot bound (the contract: by DAY on ${wanted})`);
  else if (!(contract.partitionedBy as readonly string[]).includes(field)) problems.push(`it is partitioned on ${field}, which the reads do not bound (the contract: by DAY on ${wanted})`);
  if (layout.clustering[0] !== contract.clusteredBy) {
    problems.push(`it is ${layout.clustering.length ? `clustered by ${layout.clustering.join(', ')}` : 'not clustered'}, not by ${contract.clusteredBy} first, so the lookup of a batch's IDs reads whole partitions`);
  }
  return problems;
}

/**
 * Reads the source tables' layout (BigQuery table metadata) and logs one WARNING per table that
 * cannot be pruned, naming it. Engines without partitioning (DuckDB) are not checked. A table
 * whose metadata cannot be read is reported at WARNING too; the check never stops the chain.
 */
export async function checkSourceLayout(deps: { warehouse: Warehouse; config: Pick<Config, 'tables'>; logger: Logger }): Promise<LayoutFinding[]> {
  const findings: LayoutFinding[] = [];
  for (const key of Object.keys(SOURCE_LAYOUT) as SourceKey[]) {
    const ref: TableRef = deps.config.tables[key];
    const table = deps.warehouse.plainName(ref);
    let layout: TableLayout | null;
    try {
      layout = await deps.warehouse.tableLayout(ref);
    } catch (error) {
      deps.logger.warn(`Could not check the layout of the source table ${table}: ${errorMessage(error)}. The chain goes on; if the table is not partitioned as the README's layout contract says, every cycle scans it whole.`, { table, error });
      continue;
    }
    if (layout === null) continue;
    const problems = layoutProblems(key, layout);
    findings.push({ table, problems });
    if (problems.length > 0) {
      deps.logger.warn(`The source table ${table} cannot be pruned as the layout contract expects: ${problems.join('; ')}. Every cycle reads more of it than its window and OPERATION_MAX_AGE (README: "The source layout contract").`, { table, layout, problems });
    }
  }
  return findings;
}
