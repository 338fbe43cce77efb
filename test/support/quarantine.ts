import type { Warehouse } from '../../shared/ports';

/** The quarantine table's entries per reason (the local stack's default table). */
export async function quarantineCounts(warehouse: Warehouse, table = '"consolidated_dataset"."quarantine"'): Promise<Record<string, number>> {
  const { rows } = await warehouse.query({ sql: `SELECT reason, COUNT(*) AS n FROM ${table} GROUP BY reason ORDER BY reason`, params: {} });
  return Object.fromEntries(rows.map((r) => [String(r.reason), Number(r.n)]));
}
