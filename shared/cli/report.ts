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
  if (report.outcome === 'failed' && !report.batchId) {
    return [`${head}: FAILED before a batch was sealed: ${report.error ?? 'no message'}`];
  }
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
  if (report.refused) lines.push(`  ${report.refused} concurrent call(s) of this cycle refused with 409 (the lease was held)`);
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

/** What a run did in all, for the totals table. */
export interface RunTotals {
  cycles: number;
  merged: number;
  empty: number;
  failed: number;
  ids: number;
  inserted: number;
  updated: number;
  unchanged: number;
  rejectedRows: number;
  elapsedMs: number;
}

export const emptyTotals = (): RunTotals => ({ cycles: 0, merged: 0, empty: 0, failed: 0, ids: 0, inserted: 0, updated: 0, unchanged: 0, rejectedRows: 0, elapsedMs: 0 });

export function addToTotals(totals: RunTotals, cycle: { outcome: string; ok: boolean; ids: number; inserted: number; updated: number; unchanged: number; rejectedRows: number }): void {
  totals.cycles++;
  if (!cycle.ok) totals.failed++;
  else if (cycle.outcome === 'merged') totals.merged++;
  else totals.empty++;
  totals.ids += cycle.ids;
  totals.inserted += cycle.inserted;
  totals.updated += cycle.updated;
  totals.unchanged += cycle.unchanged;
  totals.rejectedRows += cycle.rejectedRows;
}

/** The totals of a run as a small table. */
export function formatTotals(t: RunTotals): string[] {
  const header = ['cycles', 'merged', 'empty', 'failed', 'IDs', 'inserted', 'updated', 'unchanged', 'rejected rows', 'time'];
  const values = [t.cycles, t.merged, t.empty, t.failed, t.ids, t.inserted, t.updated, t.unchanged, t.rejectedRows].map(String).concat(ms(t.elapsedMs));
  const widths = header.map((h, i) => Math.max(h.length, values[i].length));
  const row = (cells: string[]) => `  ${cells.map((c, i) => c.padEnd(widths[i])).join('  ')}`.trimEnd();
  return ['Totals', row(header), row(values)];
}

/**
 * One progress line on stderr: redrawn in place on a terminal; elsewhere (when asked for with
 * --progress) written as a line at most once a second.
 */
export class ProgressLine {
  private shown = false;
  private last = 0;
  constructor(
    private readonly enabled: boolean,
    private readonly tty: boolean,
    private readonly write: (text: string) => void,
  ) {}

  show(text: string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && this.last !== 0 && now - this.last < (this.tty ? 100 : 1000)) return;
    this.last = now;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${text}`);
      this.shown = true;
    } else {
      this.write(text);
    }
  }

  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }
}
