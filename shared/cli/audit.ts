import { readFileSync } from 'node:fs';
import { LAST_AUDIT_OBJECT, checkedDay, runAudit, type AuditReport } from '../../functions/audit';
import { BadRequestError, errorMessage } from '../errors';
import { pipelineFilePath } from '../pipeline/file';
import { localReplayer } from '../local/replayer';
import { StackClock } from '../local/stack';
import type { ObjectStore } from '../ports';
import { composeGoogleCloud } from '../gcp/compose';
import { defaultIdentityTokens, operatorReplayer } from '../gcp/operator';
import { JsonLogger } from '../logger';
import type { OperationOptions } from './operations';
import { openSession, startStack } from './session';

export interface AuditOptions extends OperationOptions {
  /** First creation day, YYYY-MM-DD. */
  from?: string;
  /** Last creation day, YYYY-MM-DD (included). */
  to?: string;
  repair: boolean;
  json: boolean;
}

const DIFFERENCES_SHOWN = 20;

/**
 * `consolidate audit`: consolidated_table against a from-scratch consolidation, per creation day;
 * with --repair, replays the differing operations. Exit 0 clean (or only differences the chain
 * will still bring in), 1 differences left or a failed repair, 2 bad usage.
 */
export async function auditCommand(options: AuditOptions): Promise<number> {
  try {
    if (options.from !== undefined) checkedDay(options.from, '--from');
    if (options.to !== undefined) checkedDay(options.to, '--to');
  } catch (error) {
    options.out(`consolidate: ${errorMessage(error)}`);
    return 2;
  }
  const request = { from: options.from, to: options.to, repair: options.repair };
  const file = pipelineFilePath();
  const pipeline = { text: readFileSync(file, 'utf8'), file };
  if (options.config.backend === 'gcp') {
    const url = options.tool.PUBLISH_OPS_URL;
    if (options.repair && !url) {
      options.out('consolidate: audit --repair on Google Cloud replays through publishOps: set PUBLISH_OPS_URL (`terraform output -raw publish_ops_uri`) in the environment or the profile.');
      return 2;
    }
    const logger = new JsonLogger((line) => options.verbose && process.stderr.write(`${line}\n`), 'DEBUG');
    const chain = options.composeGcp ? options.composeGcp(options.config) : composeGoogleCloud(options.config, logger);
    const replayer = url ? operatorReplayer(url, (options.identityTokens ?? defaultIdentityTokens)()) : undefined;
    return report(options, () => runAudit({ ...chain, pipeline, replayer }, request));
  }
  const clock = new StackClock();
  clock.set(options.now);
  const session = openSession(options);
  const stack = await startStack(session, options, clock);
  if (!stack) return 1;
  try {
    return await report(options, () => runAudit({ ...stack.deps, pipeline, replayer: localReplayer(stack, options.pubsubEmulator ? 20_000 : 2_000) }, request));
  } finally {
    await stack.stop();
  }
}

/** Runs the audit and prints its report; the exit code says whether differences are left. */
async function report(options: AuditOptions, audit: () => Promise<AuditReport>): Promise<number> {
  try {
    const result = await audit();
    if (options.json) options.out(JSON.stringify(result, null, 2));
    else for (const line of formatAudit(result)) options.out(line);
    return result.outcome === 'differs' || result.outcome === 'repair-failed' ? 1 : 0;
  } catch (error) {
    options.out(`consolidate: ${errorMessage(error)}`);
    return error instanceof BadRequestError ? 2 : 1;
  }
}

/** The report as an operator reads it. */
export function formatAudit(report: AuditReport): string[] {
  if (report.outcome === 'nothing-consolidated') return ['Audit: nothing has been consolidated yet (no watermark); nothing to compare.'];
  const lines = [
    `Audit ${report.auditId}: creation days ${report.days!.from} → ${report.days!.to}, sources as of ${report.asOf} (the watermark)`,
    `  differences of operations changed after ${report.settledBefore} are left to the chain (LOOKBACK${report.openBatches ? `, ${report.openBatches} batch(es) in flight` : ''})`,
    '  day         expected  actual  missing  extra  different  pending  replayed  outcome',
  ];
  for (const r of report.results) {
    lines.push(`  ${r.day}  ${String(r.expectedRows).padStart(8)}  ${String(r.actualRows).padStart(6)}  ${String(r.missing).padStart(7)}  ${String(r.extra).padStart(5)}  ${String(r.different).padStart(9)}  ${String(r.pending).padStart(7)}  ${String(r.replayed).padStart(8)}  ${r.outcome}`);
  }
  if (report.results.length === 0) lines.push('  (no operation created in these days, on either side)');
  const counted = report.differences.filter((x) => x.hold !== 'pending');
  for (const x of counted.slice(0, DIFFERENCES_SHOWN)) {
    const what = x.kind === 'different' ? `different: ${x.columns.join(', ')}` : x.kind === 'missing' ? 'missing from consolidated_table' : 'in consolidated_table, no longer in the sources';
    lines.push(`  ${x.operationId}  ${x.day}  ${what}${x.hold === 'newer' ? ' (the table holds a newer version than the sources)' : ''}`);
  }
  if (counted.length > DIFFERENCES_SHOWN) lines.push(`  ... and ${counted.length - DIFFERENCES_SHOWN} more (--json lists them all)`);
  const repair = report.repair;
  if (repair) {
    for (const replay of repair.replays) lines.push(`  repair: replay ${replay.ok ? 'ok' : 'FAILED'}: ${replay.detail}`);
    if (repair.replays.length === 0) lines.push('  repair: nothing a replay can fix');
    if (repair.orphans.length) lines.push(`  repair: ${repair.orphans.length} orphan(s) (no longer in the sources) are reported, never deleted: ${repair.orphans.slice(0, 10).join(' ')}${repair.orphans.length > 10 ? ' ...' : ''}; delete them from consolidated_table yourself if they should go`);
    if (repair.newer.length) lines.push(`  repair: ${repair.newer.length} row(s) newer in consolidated_table than in the sources are left alone (a replay never moves a row backwards): ${repair.newer.slice(0, 10).join(' ')}`);
    if (repair.verified) lines.push('  repair: replays merged; the days replayed were audited again');
  } else if (counted.some((x) => x.hold === undefined)) {
    lines.push('  → `consolidate audit --repair` with the same days replays the operations that differ');
  }
  lines.push(`Outcome: ${report.outcome}`);
  return lines;
}

/** The last audit as `consolidate status` shows it, in one line; undefined before the first audit. */
export async function lastAuditLine(store: ObjectStore): Promise<string | undefined> {
  const stored = await store.read(LAST_AUDIT_OBJECT);
  if (!stored) return undefined;
  try {
    const last = JSON.parse(stored.data) as { auditedAt: string; outcome: string; days?: { from: string; to: string }; differingDays?: { day: string; outcome: string }[] };
    const differing = (last.differingDays ?? []).filter((d) => d.outcome !== 'clean' && d.outcome !== 'pending').map((d) => `${d.day} ${d.outcome}`);
    return `${last.outcome} at ${last.auditedAt}${last.days ? ` (days ${last.days.from} → ${last.days.to})` : ''}${differing.length ? `: ${differing.join(', ')}` : ''}`;
  } catch {
    return `unreadable ${LAST_AUDIT_OBJECT}; run \`consolidate audit\` again`;
  }
}
