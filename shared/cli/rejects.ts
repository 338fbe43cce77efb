import { existsSync } from 'node:fs';
import { BATCH_ID_PATTERN } from '../batch';
import { errorMessage } from '../errors';
import { DuckDbWarehouse } from '../local/duckdb-warehouse';
import type { Row } from '../ports';
import { REJECT_REASONS, formatRejectCounts } from '../rejects';
import { duckdbDialect } from '../sql/dialect';
import { listQuarantine, quarantineCounts } from '../sql/statements';
import { openSession, warehouseOf, type SessionOptions } from './session';

export interface RejectsOptions extends SessionOptions {
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
  const { warehouseFile, demoWarehouse } = warehouseOf(config);
  if (!existsSync(warehouseFile)) {
    out(`consolidate rejects: no warehouse at ${warehouseFile}${demoWarehouse ? ' yet; `consolidate run` creates it' : ''}`);
    return 1;
  }
  const session = openSession(options);
  const table = config.tables.quarantine;
  const name = `${table.dataset}.${table.table}`;
  let warehouse: DuckDbWarehouse | undefined;
  try {
    warehouse = await DuckDbWarehouse.open(session.warehouseFile, { logger: session.logger });
    const exists = await warehouse.query({
      sql: 'SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = $schema AND table_name = $table',
      params: { schema: { type: 'STRING', value: table.dataset }, table: { type: 'STRING', value: table.table } },
    });
    const filter = { reason: options.reason, batchId: options.batchId };
    const counts: Record<string, number> = {};
    let rows: Row[] = [];
    if (Number(exists.rows[0]?.n ?? 0) > 0) {
      for (const row of (await warehouse.query(quarantineCounts(duckdbDialect, table, filter))).rows) counts[String(row.reason)] = Number(row.row_count);
      rows = (await warehouse.query(listQuarantine(duckdbDialect, table, { ...filter, limit: options.limit }))).rows;
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
    out(`consolidate rejects: cannot read ${name} in ${session.warehouseFile}: ${errorMessage(error)}`);
    return 1;
  } finally {
    await warehouse?.close();
  }
}
