import { existsSync } from 'node:fs';
import { BATCH_ID_PATTERN } from '../batch';
import { errorMessage } from '../errors';
import { composeGoogleCloud } from '../gcp/compose';
import { JsonLogger } from '../logger';
import { DuckDbWarehouse } from '../local/duckdb-warehouse';
import type { Row, Warehouse } from '../ports';
import { REJECT_REASONS, formatRejectCounts } from '../rejects';
import { dialectOf } from '../sql/render';
import { listQuarantine, quarantineCounts } from '../sql/statements';
import type { OperationOptions } from './operations';
import { openSession, warehouseOf } from './session';

export interface RejectsOptions extends OperationOptions {
  /** Only rows quarantined for this reason. */
  reason?: string;
  /** Only rows first quarantined by this batch (run). */
  batchId?: string;
  /** Most rows listed (the counts always cover every matching row). */
  limit: number;
  json: boolean;
}

/**
 * `consolidate rejects [--reason R] [--batch ID] [--limit N] [--json]`: the quarantine's rows,
 * newest first, and their count per reason. Exit codes: 0 listed (also when there is none),
 * 1 the warehouse cannot be read, 2 bad usage.
 */
export async function rejectsCommand(options: RejectsOptions): Promise<number> {
  const { config, out } = options;
  if (options.reason !== undefined && !(REJECT_REASONS as readonly string[]).includes(options.reason)) {
    out(`consolidate rejects: --reason ${JSON.stringify(options.reason)} is not a reason; the reasons are ${REJECT_REASONS.join(', ')}`);
    return 2;
  }
  if (options.batchId !== undefined && !BATCH_ID_PATTERN.test(options.batchId)) {
    out(`consolidate rejects: --batch ${JSON.stringify(options.batchId)} is not a batch ID such as 20260115T102000Z-1a2b3c`);
    return 2;
  }
  if (!Number.isInteger(options.limit) || options.limit < 1) {
    out(`consolidate rejects: --limit must be a whole number of at least 1`);
    return 2;
  }
  const table = config.tables.quarantine;
  const name = `${table.dataset}.${table.table}`;
  let opened: OpenedWarehouse | string | undefined;
  try {
    opened = await openWarehouse(options);
    if (typeof opened === 'string') {
      out(`consolidate rejects: ${opened}`);
      return 1;
    }
    const { warehouse } = opened;
    const d = dialectOf(warehouse, config);
    const filter = { reason: options.reason, batchId: options.batchId };
    const counts: Record<string, number> = {};
    let rows: Row[] = [];
    if (await warehouse.tableExists(table)) {
      for (const row of (await warehouse.query(quarantineCounts(d, table, filter))).rows) counts[String(row.reason)] = Number(row.row_count);
      rows = (await warehouse.query(listQuarantine(d, table, { ...filter, limit: options.limit }))).rows;
    }
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    if (options.json) {
      out(JSON.stringify({ table: name, filter: { reason: options.reason ?? null, batch: options.batchId ?? null }, total, counts, listed: rows.length, rows }, null, 2));
      return 0;
    }
    const scope = [options.reason ? `reason ${options.reason}` : '', options.batchId ? `batch ${options.batchId}` : ''].filter(Boolean).join(', ');
    out(`Quarantine ${name}${scope ? ` (${scope})` : ''}: ${total} row(s)${total ? `: ${formatRejectCounts(counts)}` : ''}`);
    if (rows.length === 0) return 0;
    const shown = (value: unknown) => (value === null || value === undefined ? '-' : JSON.stringify(value).slice(0, 42));
    const table_ = [['first seen', 'batch', 'table', 'reason', 'ID as stored', 'created_at', 'source_timestamp / updated_at']];
    for (const row of rows) {
      table_.push([
        String(row.first_seen_at),
        String(row.batch_id),
        String(row.source_table),
        String(row.reason),
        shown(row.source_table === 'transactiongu' ? row.transaction_id : row.operation_id),
        row.created_at ? String(row.created_at) : '-',
        String(row.source_timestamp ?? row.updated_at ?? '-'),
      ]);
    }
    const widths = table_[0].map((_, i) => Math.max(...table_.map((r) => r[i].length)));
    for (const row of table_) out(`  ${row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()}`);
    if (rows.length < total) out(`  … ${total - rows.length} more (--limit ${options.limit}); --json gives them as JSON`);
    return 0;
  } catch (error) {
    out(`consolidate rejects: cannot read ${name} in ${typeof opened === 'object' ? opened.where : 'the warehouse'}: ${errorMessage(error)}`);
    return 1;
  } finally {
    if (typeof opened === 'object') await opened.close();
  }
}

interface OpenedWarehouse {
  warehouse: Warehouse;
  where: string;
  close: () => Promise<void>;
}

/** The backend's warehouse: BigQuery through the functions' composition, or the local DuckDB file (a message when there is none). */
async function openWarehouse(options: RejectsOptions): Promise<OpenedWarehouse | string> {
  const { config } = options;
  if (config.backend === 'gcp') {
    const logger = new JsonLogger((line) => options.verbose && process.stderr.write(`${line}\n`), 'DEBUG');
    const chain = options.composeGcp ? options.composeGcp(config) : composeGoogleCloud(config, logger);
    return { warehouse: chain.warehouse, where: `BigQuery project ${config.project}`, close: async () => undefined };
  }
  const { warehouseFile, demoWarehouse } = warehouseOf(config);
  if (!existsSync(warehouseFile)) return `no warehouse at ${warehouseFile}${demoWarehouse ? ' yet; `consolidate run` creates it' : ''}`;
  const session = openSession(options);
  const warehouse = await DuckDbWarehouse.open(session.warehouseFile, { logger: session.logger });
  return { warehouse, where: session.warehouseFile, close: () => warehouse.close() };
}
