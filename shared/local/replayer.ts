import type { ReplayOutcome, Replayer } from '../ports';
import { runCycle } from './cycle';
import type { LocalStack } from './stack';

/** The audit's repair on the local stack: a replay POSTed to publishOps like `consolidate replay`, followed to its MERGE. */
export function localReplayer(stack: LocalStack, quietMs = 2_000): Replayer {
  return {
    async replayIds(ids: string[]): Promise<ReplayOutcome> {
      const report = await runCycle(stack, { body: { ids }, quietMs });
      const merge = report.state?.merge;
      return {
        ok: report.ok,
        batchId: report.batchId,
        merged: report.outcome === 'merged',
        detail: report.ok ? `batch ${report.batchId} ${report.outcome}${merge ? ` (${merge.inserted} inserted, ${merge.updated} updated)` : ''}` : (report.error ?? report.outcome),
      };
    },
  };
}
