import { batchSlug } from '../shared/batch';
import { REJECT_REASONS, formatRejectCounts, type RejectCounts, type RejectReason } from '../shared/rejects';
import type { Logger } from '../shared/ports';
import { duplicateReferenceKeys, quarantineCounts, quarantineRejectedRows } from '../shared/sql/statements';
import { dialectOf } from '../shared/sql/render';
import type { ChainDependencies } from './dependencies';

/**
 * Records the window's source rows that cannot be consolidated in the quarantine table (each row
 * once, whichever run reads it again) and returns how many this run newly quarantined per reason.
 * Its job ID is the run's, so a repeated run records nothing twice.
 */
export async function quarantineWindow(deps: ChainDependencies, window: { from: string; to: string }, batchId: string, logger: Logger): Promise<RejectCounts> {
  const { config, warehouse, clock } = deps;
  const dialect = dialectOf(warehouse, config);
  const tables = { ussd: config.tables.ussd, transactions: config.tables.transactions, quarantine: config.tables.quarantine };
  await warehouse.query(quarantineRejectedRows(dialect, tables, window, { batchId, seenAt: clock.now().toISOString() }), {
    jobId: `consolidation_quarantine_${batchSlug(batchId)}`,
    labels: { pipeline: 'consolidation' },
  });
  const counts: RejectCounts = {};
  for (const row of (await warehouse.query(quarantineCounts(dialect, config.tables.quarantine, { batchId }))).rows) {
    if ((REJECT_REASONS as readonly string[]).includes(String(row.reason))) counts[row.reason as RejectReason] = Number(row.row_count);
  }
  if (Object.keys(counts).length > 0) {
    logger.warn(`Source rows quarantined (they cannot be consolidated): ${formatRejectCounts(counts)}; \`consolidate rejects --batch ${batchId}\` lists them`, {
      batchId,
      window,
      quarantined: counts,
      quarantineTable: `${config.tables.quarantine.dataset}.${config.tables.quarantine.table}`,
    });
  }
  return counts;
}

/** Logs at WARNING the keys a reference table repeats (the pipeline then takes one row per key by a fixed rule). */
export async function warnDuplicateReferenceKeys(deps: ChainDependencies, logger: Logger): Promise<void> {
  const { config, warehouse } = deps;
  const rows = (await warehouse.query(duplicateReferenceKeys(dialectOf(warehouse, config), { services: config.tables.services, agents: config.tables.agents }))).rows;
  if (rows.length === 0) return;
  const keys = rows.map((r) => ({ table: String(r.reference), key: String(r.reference_key), rows: Number(r.row_count) }));
  logger.warn(
    `Data quality: reference keys that appear more than once (one row per key is used, by the rule in README "Tie rules"): ${keys.map((k) => `${k.table}.${k.table === 'services' ? 'service_id' : 'agent_code'} ${JSON.stringify(k.key)} × ${k.rows}`).join(', ')}`,
    { duplicateReferenceKeys: keys },
  );
}
