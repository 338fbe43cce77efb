import { describeDuration } from '../duration';
import type { CycleReport } from '../local/cycle';
import { formatRejectCounts } from '../rejects';

const ms = (value: number) => (value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`);
const hhmm = (iso: string) => iso.slice(11, 19);

/** The summary lines of one cycle, as `consolidate run` prints them. */
export function formatCycle(n: number, report: CycleReport): string[] {
  const head = `cycle ${n}`;
  if (report.outcome === 'up-to-date') return [`${head}: nothing to do, the watermark (${report.watermark}) is up to date`];
  const window = report.window ? `window ${report.window.from.slice(0, 10)} ${hhmm(report.window.from)} → ${report.window.to.slice(0, 10) === report.window.from.slice(0, 10) ? '' : `${report.window.to.slice(0, 10)} `}${hhmm(report.window.to)} UTC` : '';
  const lines: string[] = [];
  if (report.outcome === 'empty') {
    lines.push(`${head}: ${window}: no operation changed; watermark → ${report.watermark}`);
  } else {
    lines.push(`${head}: batch ${report.batchId ?? '-'} · ${window} · ${report.idCount} IDs in ${report.chunkCount} chunk${report.chunkCount === 1 ? '' : 's'}`);
    if (report.jobName) lines.push(`  job ${report.jobName}: ${report.jobState ?? 'no terminal state seen'}`);
    const merge = report.state?.merge;
    if (merge) {
      lines.push(`  consolidated_table: ${merge.inserted} inserted, ${merge.updated} updated, ${merge.unchanged} unchanged (of ${merge.sourceRows} enriched)`);
      const statuses = Object.entries(merge.statusCounts ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`);
      lines.push(`  reconciliation_status: ${statuses.length ? statuses.join(' · ') : '-'}`);
    }
  }
  if (report.catchUp) lines.push(`  catching up: ${describeDuration(report.catchUp.behindMs)} behind, about ${report.catchUp.runsLeft} more run(s) of at most MAX_WINDOW`);
  for (const action of (report.reconciled ?? []).filter((a) => a.action !== 'waiting' && a.action !== 'closed')) {
    lines.push(`  reconciler: ${action.batchId} ${action.action}: ${action.detail}`);
  }
  if (report.refused) lines.push(`  ${report.refused} concurrent call(s) refused with 409 (the lease was held)`);
  if (report.rejected) lines.push(`  quarantined rows: ${formatRejectCounts(report.rejected)}`);
  const beyond = report.beyondMaxAge;
  if (beyond && beyond.oldOperationRows + beyond.unmatchedTransactions > 0) {
    lines.push(`  older than OPERATION_MAX_AGE, not consolidated: ${beyond.oldOperationRows} USSD rows of older operations, ${beyond.unmatchedTransactions} transactions of no younger operation`);
  }
  const s = report.stagesMs;
  if (s) lines.push(`  time: publish ${ms(s.publish)} · collect ${ms(s.collect)} · stage IDs + launch ${ms(s.launch)} · pipeline ${ms(s.pipeline)} · merge ${ms(s.merge)} · total ${ms(s.total)}`);
  if (!report.ok) lines.push(`  FAILED: ${report.error ?? report.outcome}`);
  return lines;
}

/** A one-line progress display, redrawn in place on a terminal and silent elsewhere. */
export class ProgressLine {
  private shown = false;
  private last = 0;
  constructor(private readonly enabled: boolean, private readonly write: (text: string) => void) {}

  show(text: string): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 50) return;
    this.last = now;
    this.write(`\r\x1b[2K${text}`);
    this.shown = true;
  }

  clear(): void {
    if (this.shown) this.write('\r\x1b[2K');
    this.shown = false;
  }
}
