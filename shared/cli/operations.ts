import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { reconcileUnderLease, type ReconcileAction } from '../../functions/reconciler';
import { BatchStore, paths, type BatchState, type Manifest } from '../batch';
import { ConflictError, errorMessage } from '../errors';
import { readLease, leaseActive } from '../lease';
import { runCycle } from '../local/cycle';
import { FolderObjectStore } from '../local/folder-store';
import { StackClock, type LocalStack } from '../local/stack';
import type { ObjectStore } from '../ports';
import { lastAuditLine } from './audit';
import { formatCycle } from './report';
import { openSession, startStack, type SessionOptions } from './session';

export interface OperationOptions extends SessionOptions {
  /** The clock of the command (`--now`); the real time otherwise. */
  now?: Date;
}

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

/** Why a batch needs a look, or undefined when it is fine. */
export function stuckReason(row: BatchRow, now: Date, stuckAfterMs: number): string | undefined {
  const { state } = row;
  if (state.status === 'MERGED') return undefined;
  if (state.status === 'FAILED' && state.final) return state.supersededBy ? undefined : `FAILED for good: ${state.reason ?? 'unknown reason'}`;
  const idle = now.getTime() - Date.parse(state.updatedAt);
  return idle >= stuckAfterMs ? `STUCK: ${state.status} for ${age(idle)} (STUCK_AFTER ${age(stuckAfterMs)})` : undefined;
}

/** `consolidate status`: the watermark, the lease and the recent batches, with the stuck ones flagged. */
export async function statusCommand(options: OperationOptions & { limit: number }): Promise<number> {
  const { config, out } = options;
  const session = openSession(options);
  const store: ObjectStore = new FolderObjectStore(join(session.stateDir, 'bucket'));
  const now = options.now ?? new Date();
  const watermark = await store.read(config.watermarkObject);
  out(`State      ${join(session.stateDir, 'bucket')}`);
  out(`Watermark  ${watermark ? watermark.data.trim() : `none yet (the first run starts at ${config.initialWatermark.toISOString()})`}`);
  const lease = await readLease({ store, object: config.leaseObject });
  if (!lease) out('Lease      free (never taken)');
  else if (leaseActive(lease, now)) out(`Lease      HELD by ${lease.holder} since ${lease.acquiredAt}, expires ${lease.expiresAt}`);
  else out(`Lease      free (last: ${lease.holder}, ${lease.releasedAt ? `released ${lease.releasedAt}` : `expired ${lease.expiresAt}`})`);
  out(`Audit      ${(await lastAuditLine(store)) ?? 'never run (`consolidate audit`)'}`);

  const batches = new BatchStore(store);
  const ids = [...new Set((await store.list('batches/')).filter((p) => p.endsWith('/state.json')).map((p) => p.split('/')[1]))].sort().reverse();
  const open = new Set(await store.list(paths.openBatches));
  const rows: BatchRow[] = [];
  for (const batchId of ids.slice(0, options.limit)) {
    const state = (await batches.readState(batchId))?.state;
    if (state) rows.push({ state, manifest: await batches.readManifest(batchId).catch(() => null), open: open.has(paths.open(batchId)) });
  }
  const flagged = rows.filter((r) => stuckReason(r, now, config.stuckAfterMs));
  out(`Batches    ${ids.length} in all, ${open.size} open; the newest ${rows.length}${flagged.length ? `; ${flagged.length} need a look` : ''}:`);
  if (rows.length === 0) return 0;
  const table = [['batch', 'state', 'att', 'job', 'IDs', 'ins', 'upd', 'same', 'age', ''] as string[]];
  for (const row of rows) {
    const { state, manifest } = row;
    const merge = state.merge;
    const kind = manifest?.replay ? ` replay` : '';
    table.push([
      state.batchId,
      `${state.status}${state.status === 'FAILED' && state.final ? (state.supersededBy ? ' (superseded)' : ' (final)') : ''}${kind}`,
      String(state.attempt),
      state.jobName ? `${state.jobName.replace(/^consolidation-/, '')}${state.jobState ? ` ${state.jobState.replace('JOB_STATE_', '')}` : ''}` : '-',
      String(manifest?.idCount ?? '-'),
      merge ? String(merge.inserted) : '-',
      merge ? String(merge.updated) : '-',
      merge ? String(merge.unchanged) : '-',
      age(now.getTime() - Date.parse(state.updatedAt)),
      stuckReason(row, now, config.stuckAfterMs) ?? '',
    ]);
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  for (const row of table) out(`  ${row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()}`);
  for (const row of flagged) {
    if (row.state.status === 'FAILED' && row.manifest && !row.manifest.replay) {
      out(`  → ${row.state.batchId}: fix the cause, then \`consolidate replay --from ${row.manifest.window.from} --to ${row.manifest.window.to}\``);
    } else if (row.state.status !== 'FAILED') {
      out(`  → ${row.state.batchId}: \`consolidate reconcile\` repairs it (also done at the start of every run)`);
    }
  }
  return flagged.some((r) => r.state.status !== 'FAILED') ? 1 : 0;
}

function describeAction(action: ReconcileAction): string {
  return `  ${action.batchId}  ${action.action.padEnd(16)} ${action.detail}`;
}

/** `consolidate reconcile`: the reconciler on its own, under the lease, then waits for what it set moving. */
export async function reconcileCommand(options: OperationOptions): Promise<number> {
  return withStack(options, async (stack) => {
    let actions: ReconcileAction[];
    try {
      actions = await reconcileUnderLease(stack.deps);
    } catch (error) {
      options.out(`consolidate: ${errorMessage(error)}`);
      return error instanceof ConflictError ? 3 : 1;
    }
    await stack.settle();
    if (actions.length === 0) options.out('Reconciler: no open batch; nothing to repair.');
    else options.out(`Reconciler: ${actions.length} open batch(es):`);
    for (const action of actions) options.out(describeAction(action));
    const batches = new BatchStore(stack.store);
    for (const action of actions.filter((a) => a.action !== 'waiting' && a.action !== 'closed')) {
      const state = (await batches.readState(action.batchId))?.state;
      if (state) options.out(`  ${action.batchId}  now ${state.status}${state.merge ? ` (${state.merge.inserted} inserted, ${state.merge.updated} updated)` : ''}`);
    }
    return actions.some((a) => a.action === 'error' || a.action === 'gave-up') ? 1 : 0;
  });
}

/** Reads an IDs file: one operation ID per line; blank lines and lines starting with # are skipped. */
export function readIdsFile(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** `consolidate replay`: one replay through the whole chain, followed to its MERGE. */
export async function replayCommand(options: OperationOptions & { body: { from: string; to: string } | { ids: string[] } }): Promise<number> {
  return withStack(options, async (stack) => {
    const report = await runCycle(stack, { body: options.body, quietMs: options.pubsubEmulator ? 20_000 : 2_000 });
    if (report.replay) options.out(`Replay of the ${report.replay} (as of the watermark; the watermark is not moved)`);
    for (const action of (report.reconciled ?? []).filter((a) => a.action !== 'waiting' && a.action !== 'closed')) options.out(`reconciler:${describeAction(action)}`);
    if (report.outcome === 'empty') options.out('replay: no operation to replay');
    else for (const line of formatCycle(1, report)) options.out(line.replace(/^cycle 1/, 'replay'));
    return report.ok ? 0 : 1;
  });
}

/** Starts the local stack with the command's clock, runs `work` on it, stops it; 1 when it cannot start. */
async function withStack(options: OperationOptions, work: (stack: LocalStack) => Promise<number>): Promise<number> {
  const clock = new StackClock();
  clock.set(options.now);
  const stack = await startStack(openSession(options), options, clock);
  if (!stack) return 1;
  try {
    return await work(stack);
  } finally {
    await stack.stop();
  }
}
