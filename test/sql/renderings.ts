import type { Statement } from '../../shared/ports';
import { bigqueryDialect } from '../../shared/sql/dialect';
import * as statements from '../../shared/sql/statements';

/** Every statement of shared/sql/statements.ts rendered for BigQuery with fixed tables and values. */
export const d = bigqueryDialect('my-project');
export const source = {
  ussd: { dataset: 'source_dataset', table: 'ussd_operations' },
  transactions: { dataset: 'source_dataset', table: 'transactiongu' },
};
const staging = (table: string) => ({ dataset: 'consolidation_staging', table });
const consolidated = { dataset: 'consolidated_dataset', table: 'consolidated_table' };
const BATCH_ID = '20260115T102000Z-1a2b3c';
const bounds = { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z', readAfter: '2025-12-16T09:45:00.000Z' };

/** One rendering per exported statement; the test fails if a statement has none. */
export const RENDERINGS: Record<string, () => Statement> = {
  changedOperationIds: () => statements.changedOperationIds(d, source, bounds),
  rejectedRowCounts: () => statements.rejectedRowCounts(d, source, bounds),
  beyondMaxAgeCounts: () => statements.beyondMaxAgeCounts(d, source, bounds),
  enrichedProfile: () => statements.enrichedProfile(d, staging('enriched_20260115t102000z_1a2b3c')),
  mergeEnriched: () =>
    statements.mergeEnriched(d, { target: consolidated, enriched: staging('enriched_20260115t102000z_1a2b3c') }, { batchId: BATCH_ID, consolidatedAt: '2026-01-15T10:31:07.000Z', created: { from: '2026-01-14T00:00:00.000Z', to: '2026-01-16T00:00:00.000Z' }, force: false }),
  consolidatedStatusCounts: () => statements.consolidatedStatusCounts(d, consolidated),
};

