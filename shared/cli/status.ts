import { BatchStore, DamagedStateError, paths, type BatchState, type Manifest } from '../batch';
import type { Config } from '../config';
import { describeHolder, leaseStanding, readLease, type LeaseRecord, type LeaseStanding } from '../lease';
import type { ObjectStore } from '../ports';
import { formatRejectCounts } from '../rejects';
import { lastAuditLine } from './audit';

/** A duration as an operator reads it: 45s, 12m, 3h 5m, 2d 4h. */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

interface BatchRow {
  state: BatchState;
  manifest: Manifest | null;
  open: boolean;
}

/** Why a batch needs a person, or undefined when it is fine. */
export function attentionReason(row: BatchRow, now: Date, config: Pick<Config, 'stuckAfterMs' | 'maxAttempts'>): string | undefined {
  const { state } = row;
  if (state.status === 'MERGED') return undefined;
  if (state.status === 'FAILED' && state.final) return state.supersededBy ? undefined : `FAILED for good: ${state.reason ?? 'unknown reason'}`;
  const idle = now.getTime() - Date.parse(state.updatedAt);
  if (idle >= config.stuckAfterMs) return `STUCK: ${state.status} for ${age(idle)} (STUCK_AFTER ${age(config.stuckAfterMs)})`;
  const attempt = Math.max(state.attempt, state.announcedAttempt ?? 0);
  if (attempt >= config.maxAttempts && attempt > 1) return `LOOPING: attempt ${attempt} of ${config.maxAttempts} (MAX_ATTEMPTS)`;
  return undefined;
}

export interface StatusBatch {
  batchId: string;
  status: string;
  final: boolean;
  supersededBy?: string;
  replay: boolean;
  attempt: number;
  jobName?: string;
  jobState?: string;
  ids: number | null;
  window: { from: string; to: string } | null;
  inserted: number | null;
  updated: number | null;
  unchanged: number | null;
  /** Source rows its run newly quarantined (all reasons). */
  quarantined: number | null;
  updatedAt: string;
  ageMs: number;
  open: boolean;
  attention?: string;
  /** What to run about it. */
  action?: string;
}

export interface StatusReport {
  state: string;
  /** The clock ages are measured in: the folder's simulated clock after a run under --now, else real time. */
  clock: { now: string; simulated: boolean };
  watermark: string | null;
  lease: { standing: LeaseStanding; record?: LeaseRecord };
  /** The last audit's summary line, or null when none has run. */
  audit: string | null;
  batches: { total: number; open: number; shown: StatusBatch[] };
  /** Rows the batches shown quarantined, per reason. */
  quarantined: Record<string, number>;
  /** State objects that cannot be read: what is wrong and the command that repairs it. */
  damaged: string[];
  attention: number;
}

export interface StatusInput {
  store: ObjectStore;
  where: string;
  config: Config;
  now: Date;
  simulated: boolean;
  limit: number;
  /** True on the local stack: a lease holder on this host whose process is gone counts as gone. */
  localHolders: boolean;
}

/** Reads the watermark, the lease and the newest batches; writes nothing. */
export async function readStatus(input: StatusInput): Promise<StatusReport> {
  const { store, config, now } = input;
  const watermark = await store.read(config.watermarkObject);
  const lease = await readLease({ store, object: config.leaseObject });
  const batches = new BatchStore(store);
  const ids = [...new Set((await store.list('batches/')).filter((p) => p.endsWith('/state.json')).map((p) => p.split('/')[1]))].sort().reverse();
  const open = new Set(await store.list(paths.openBatches));
  const shown: StatusBatch[] = [];
  const damaged: string[] = [];
  const quarantined: Record<string, number> = {};
  for (const batchId of ids.slice(0, input.limit)) {
    const state = await batches.readState(batchId).then(
      (read) => read?.state,
      (error: unknown) => {
        if (!(error instanceof DamagedStateError)) throw error;
        damaged.push(error.message);
        return undefined;
      },
    );
    if (!state) continue;
    const manifest = await batches.readManifest(batchId).catch(() => null);
    const row = { state, manifest, open: open.has(paths.open(batchId)) };
    for (const [reason, n] of Object.entries(manifest?.rejected ?? {})) quarantined[reason] = (quarantined[reason] ?? 0) + n;
    const attention = attentionReason(row, now, config);
    shown.push({
      batchId,
      status: state.status,
      final: state.final === true,
      supersededBy: state.supersededBy,
      replay: Boolean(manifest?.replay),
      attempt: state.attempt,
      jobName: state.jobName,
      jobState: state.jobState,
      ids: manifest?.idCount ?? null,
      window: manifest ? { from: manifest.window.from, to: manifest.window.to } : null,
      inserted: state.merge?.inserted ?? null,
      updated: state.merge?.updated ?? null,
      unchanged: state.merge?.unchanged ?? null,
      quarantined: manifest ? Object.values(manifest.rejected).reduce((a, b) => a + b, 0) : null,
      updatedAt: state.updatedAt,
      ageMs: now.getTime() - Date.parse(state.updatedAt),
      open: row.open,
      attention,
      action: attention ? actionFor(state, manifest) : undefined,
    });
  }
  // The lease binds in real time whatever the folder's clock says, as the error of a refused run does.
  const standing = leaseStanding(lease, new Date(), input.localHolders);
  const record = lease ? (({ generation: _generation, ...rest }) => rest)(lease) : undefined;
  return {
    state: input.where,
    clock: { now: now.toISOString(), simulated: input.simulated },
    watermark: watermark ? watermark.data.trim() : null,
    lease: { standing, record },
    audit: (await lastAuditLine(store)) ?? null,
    batches: { total: ids.length, open: open.size, shown },
    quarantined,
    damaged,
    attention: shown.filter((b) => b.attention).length + damaged.length,
  };
}

function actionFor(state: BatchState, manifest: Manifest | null): string {
  if (state.status === 'FAILED' && state.final) {
    return manifest && !manifest.replay
      ? `fix the cause, then \`consolidate replay --from ${manifest.window.from} --to ${manifest.window.to}\``
      : 'fix the cause, then replay its operations (`consolidate replay --ids-file FILE`)';
  }
  return '`consolidate reconcile` repairs it (also done at the start of every run)';
}

/** The exit code a cron job reads: 1 when any batch shown needs a person. */
export function statusExitCode(report: StatusReport): 0 | 1 {
  return report.attention > 0 ? 1 : 0;
}

function describeLease(lease: StatusReport['lease']): string {
  const r = lease.record;
  switch (lease.standing) {
    case 'free':
      return 'free (never taken)';
    case 'held':
      return `HELD by ${describeHolder(r!)} since ${r!.acquiredAt}, expires ${r!.expiresAt}`;
    case 'holder-gone':
      return `free: ${describeHolder(r!)} is no longer running; the next run takes the lease over`;
    case 'released':
      return `free (last: ${r!.holder}, released ${r!.releasedAt})`;
    case 'expired':
      return `free (last: ${r!.holder}, expired ${r!.expiresAt} without being released)`;
  }
}

/** The status as an operator reads it. */
export function formatStatus(report: StatusReport): string[] {
  const lines = [
    `State      ${report.state}`,
    `Watermark  ${report.watermark ?? 'none yet'}`,
    `Lease      ${describeLease(report.lease)}`,
    `Audit      ${report.audit ?? 'never run (`consolidate audit`)'}`,
  ];
  if (report.clock.simulated) lines.push(`Clock      simulated: ${report.clock.now} (the last run's --now, plus the time since); ages below are in that clock`);
  for (const message of report.damaged) lines.push(`DAMAGED    ${message}`);
  const { total, open, shown } = report.batches;
  lines.push(`Batches    ${total} in all, ${open} open; the newest ${shown.length}${report.attention ? `; ${report.attention} need a look` : ''}${shown.length ? ':' : ''}`);
  const reasons = Object.keys(report.quarantined).length > 0;
  lines.push(`Quarantine rows the newest ${shown.length} batch(es) set aside: ${formatRejectCounts(report.quarantined)}${reasons ? ' (`consolidate rejects` lists them)' : ''}`);
  if (shown.length === 0) return lines;
  const table = [['batch', 'state', 'att', 'job', 'IDs', 'ins', 'upd', 'same', 'quar', 'age', ''] as string[]];
  const n = (value: number | null) => (value === null ? '-' : String(value));
  for (const b of shown) {
    table.push([
      b.batchId,
      `${b.status}${b.status === 'FAILED' && b.final ? (b.supersededBy ? ' (superseded)' : ' (final)') : ''}${b.replay ? ' replay' : ''}`,
      String(b.attempt),
      b.jobName ? `${b.jobName.replace(/^consolidation-/, '')}${b.jobState ? ` ${b.jobState.replace('JOB_STATE_', '')}` : ''}` : '-',
      n(b.ids),
      n(b.inserted),
      n(b.updated),
      n(b.unchanged),
      n(b.quarantined),
      age(b.ageMs),
      b.attention ?? '',
    ]);
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  for (const row of table) lines.push(`  ${row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()}`);
  for (const b of shown.filter((x) => x.action)) lines.push(`  → ${b.batchId}: ${b.action}`);
  return lines;
}
