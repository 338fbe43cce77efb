import { randomBytes } from 'node:crypto';
import { BatchStore, batchIdOfOpenMarker, paths } from '../shared/batch';
import type { Config } from '../shared/config';
import { BadRequestError, ChainError, errorMessage } from '../shared/errors';
import { pipelinePlanOf, planSelectUnresolved } from '../shared/local/pipeline-runner';
import type { Clock, Logger, ObjectStore, ReplayOutcome, Replayer, Row, Warehouse } from '../shared/ports';
import { loadSchema } from '../shared/schema';
import { auditDaySummary, auditDrillDown, fromScratchVariables, insertAuditRecords, type AuditDays, type AuditRecord } from '../shared/sql/audit';
import { dialectOf } from '../shared/sql/render';
import { readWatermark } from './publish-ops';

/** What the audit is built from: the chain's adapters, the pipeline file, and (for --repair) a replayer. */
export interface AuditDependencies {
  config: Config;
  warehouse: Warehouse;
  store: ObjectStore;
  clock: Clock;
  logger: Logger;
  /** The pipeline file the chain runs: the audit consolidates from scratch with its SELECT. */
  pipeline: { text: string; file: string };
  replayer?: Replayer;
}

export interface AuditRequest {
  /** First creation day, YYYY-MM-DD (default: AUDIT_DAYS - 1 days before `to`). */
  from?: string;
  /** Last creation day, YYYY-MM-DD, included (default: the watermark's day). */
  to?: string;
  repair: boolean;
}

export type DifferenceKind = 'missing' | 'extra' | 'different';

export interface Difference {
  operationId: string;
  day: string;
  kind: DifferenceKind;
  expectedVersionTs: string | null;
  actualVersionTs: string | null;
  /** For `different`: the columns that differ. */
  columns: string[];
  /**
   * Why it is not repaired by a replay, if it is not: `pending` (the chain will still bring it:
   * changed within the lookback or while a batch is in flight), `orphan` (no longer in the
   * sources; never deleted by the audit), `newer` (the table holds a newer version than the
   * sources: a replay never moves a row backwards).
   */
  hold?: 'pending' | 'orphan' | 'newer';
}

/** `replayed`: replays sealed but not followed to their MERGE (Google Cloud); the next audit checks them. */
export type DayOutcome = 'clean' | 'pending' | 'differs' | 'replayed' | 'repaired' | 'repair-failed';

/** One audited day: what the audit table keeps of it, but the audit's own fields. */
export interface AuditDay extends Omit<AuditRecord, 'auditId' | 'auditedAt' | 'asOf' | 'outcome' | 'sampleIds'> {
  outcome: DayOutcome;
}

export interface AuditReport {
  auditId: string;
  auditedAt: string;
  outcome: 'nothing-consolidated' | DayOutcome;
  asOf?: string;
  days?: AuditDays;
  /** Differences younger than this are left to the chain (the lookback, batches in flight). */
  settledBefore?: string;
  openBatches: number;
  results: AuditDay[];
  differences: Difference[];
  repair?: { replays: ReplayOutcome[]; replayed: number; orphans: string[]; newer: string[]; verified: boolean; remaining?: Difference[] };
}

const DAY = /^\d{4}-\d\d-\d\d$/;
const MAX_DAYS = 366;
const DAY_MS = 86_400_000;
const SAMPLE_IDS = 20;

const dayOf = (instant: Date) => instant.toISOString().slice(0, 10);
const addDays = (day: string, n: number) => dayOf(new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS));

/** A YYYY-MM-DD that is a real calendar day, or a BadRequestError naming the option. */
export function checkedDay(value: string, name: string): string {
  if (!DAY.test(value) || dayOf(new Date(`${value}T00:00:00Z`)) !== value) throw new BadRequestError(`${name} ${value}: expected a day such as 2026-01-15`);
  return value;
}

/** The days to audit: as asked, or the AUDIT_DAYS days that end on the watermark's day. */
export function auditDays(request: Pick<AuditRequest, 'from' | 'to'>, watermark: Date, defaultDays: number): AuditDays {
  const last = dayOf(watermark);
  const to = request.to === undefined ? last : checkedDay(request.to, '--to');
  const from = request.from === undefined ? addDays(to, 1 - defaultDays) : checkedDay(request.from, '--from');
  if (from > to) throw new BadRequestError(`--from ${from} is after --to ${to}`);
  if (to > last) throw new BadRequestError(`--to ${to} is after the watermark's day (${last}): what is after the watermark is not consolidated yet`);
  const span = (Date.parse(to) - Date.parse(from)) / DAY_MS + 1;
  if (span > MAX_DAYS) throw new BadRequestError(`--from ${from} --to ${to} spans ${span} days; one audit checks at most ${MAX_DAYS}`);
  return { from, to };
}

/** Where the last audit's summary is kept in the state bucket (what `consolidate status` shows). */
export const LAST_AUDIT_OBJECT = 'audit/last.json';

const text = (value: unknown) => (value === null || value === undefined ? null : String(value));

/**
 * The audit: for each creation day, `consolidated_table` against a from-scratch consolidation of
 * the sources as of the watermark (counts and fingerprints), the differing operations of the
 * days that differ, and with `repair` a replay of exactly those a replay can fix.
 */
export async function runAudit(deps: AuditDependencies, request: AuditRequest): Promise<AuditReport> {
  const { config, warehouse, store, logger } = deps;
  const auditedAt = deps.clock.now();
  const auditId = `audit-${auditedAt.toISOString().replace(/[-:.]/g, '').slice(0, 15)}Z-${randomBytes(3).toString('hex')}`;
  const log = logger.child({ auditId });
  if (request.repair && !deps.replayer) throw new BadRequestError('--repair needs a way to replay (on Google Cloud: AUDIT_REPAIR=true and PUBLISH_OPS_URL)');
  const watermark = await readWatermark({ store, config });
  if (!watermark) {
    log.info('Audit: nothing has been consolidated yet (no watermark)');
    return { auditId, auditedAt: auditedAt.toISOString(), outcome: 'nothing-consolidated', openBatches: 0, results: [], differences: [] };
  }
  const days = auditDays(request, watermark, config.auditDays);
  const asOf = watermark.toISOString();
  const { settledBefore, openBatches } = await settledInstant(store, watermark, config.lookbackMs);
  log.info('Audit started', { days, asOf, settledBefore: settledBefore.toISOString(), openBatches });

  const d = dialectOf(warehouse, config);
  const fromScratch = planSelectUnresolved(pipelinePlanOf(deps.pipeline.text, fromScratchVariables(d, config.tables), deps.pipeline.file), d);
  const consolidated = config.tables.consolidated;
  const compare = async (): Promise<{ results: AuditDay[]; differences: Difference[] }> => {
    const summaries = (await warehouse.query(auditDaySummary(d, consolidated, fromScratch, days, asOf))).rows.map(daySummary);
    const differing = summaries.filter((s) => !s.same).map((s) => s.day);
    const found = differing.length === 0 ? [] : (await warehouse.query(auditDrillDown(d, consolidated, fromScratch, days, asOf, differing))).rows.map((row) => classify(row, settledBefore));
    return { results: summaries.map((s) => dayResult(s, found)), differences: found };
  };

  const { results, differences } = await compare();
  let repair: AuditReport['repair'];
  if (request.repair) {
    repair = await replayDifferences(deps, differences, results, log);
    if (repair.verified) {
      // The replays were followed to their MERGE: audit the days again, and say what is left.
      const again = await compare();
      repair.remaining = again.differences.filter((x) => x.hold !== 'pending');
      for (const result of results.filter((r) => r.replayed > 0)) {
        const left = repair.remaining.filter((x) => x.day === result.day);
        // Still replayable after the replay: it did not take. Held back (orphans, newer rows): still differs.
        result.outcome = left.some((x) => x.hold === undefined) ? 'repair-failed' : left.length > 0 ? 'differs' : 'repaired';
      }
    } else {
      for (const result of results.filter((r) => r.replayed > 0 && r.outcome !== 'repair-failed')) {
        result.outcome = differences.some((x) => x.day === result.day && (x.hold === 'orphan' || x.hold === 'newer')) ? 'differs' : 'replayed';
      }
    }
  }
  const outcome = overall(results);
  const report: AuditReport = { auditId, auditedAt: auditedAt.toISOString(), outcome, asOf, days, settledBefore: settledBefore.toISOString(), openBatches, results, differences, repair };
  await record(deps, report);
  logReport(log, report);
  return report;
}

/** Differences of operations that changed after this instant are the chain's to bring in, not the audit's. */
async function settledInstant(store: ObjectStore, watermark: Date, lookbackMs: number): Promise<{ settledBefore: Date; openBatches: number }> {
  let settled = watermark.getTime() - lookbackMs;
  const open = (await store.list(paths.openBatches)).map(batchIdOfOpenMarker).filter((id): id is string => id !== undefined);
  const batches = new BatchStore(store);
  for (const batchId of open) {
    const manifest = await batches.readManifest(batchId).catch(() => null);
    // A batch without a readable manifest may hold any operation: nothing older than its ID's instant is settled.
    const from = manifest ? Date.parse(manifest.window.from) : Date.parse(`${batchId.slice(0, 4)}-${batchId.slice(4, 6)}-${batchId.slice(6, 8)}T00:00:00Z`);
    settled = Math.min(settled, from);
  }
  return { settledBefore: new Date(settled), openBatches: open.length };
}

interface DaySummary {
  day: string;
  expectedRows: number;
  actualRows: number;
  expectedFingerprint: string | null;
  actualFingerprint: string | null;
  same: boolean;
}

function daySummary(row: Row): DaySummary {
  const summary = {
    day: String(row.day),
    expectedRows: Number(row.expected_rows),
    actualRows: Number(row.actual_rows),
    expectedFingerprint: text(row.expected_fingerprint),
    actualFingerprint: text(row.actual_fingerprint),
  };
  return { ...summary, same: summary.expectedRows === summary.actualRows && summary.expectedFingerprint === summary.actualFingerprint };
}

function classify(row: Row, settledBefore: Date): Difference {
  const difference: Difference = {
    operationId: String(row.operation_id),
    day: String(row.day),
    kind: row.kind as DifferenceKind,
    expectedVersionTs: text(row.expected_version_ts),
    actualVersionTs: text(row.actual_version_ts),
    columns: String(row.differing_columns ?? '').trim().split(/\s+/).filter(Boolean),
  };
  const expected = difference.expectedVersionTs === null ? undefined : Date.parse(difference.expectedVersionTs);
  const actual = difference.actualVersionTs === null ? undefined : Date.parse(difference.actualVersionTs);
  if (difference.kind === 'extra') difference.hold = 'orphan';
  else if (expected !== undefined && expected > settledBefore.getTime()) difference.hold = 'pending';
  else if (difference.kind === 'different' && expected !== undefined && actual !== undefined && actual > expected) difference.hold = 'newer';
  return difference;
}

function dayResult(summary: DaySummary, differences: Difference[]): AuditDay {
  const own = differences.filter((x) => x.day === summary.day);
  const counted = own.filter((x) => x.hold !== 'pending');
  const count = (kind: DifferenceKind) => counted.filter((x) => x.kind === kind).length;
  const outcome: DayOutcome = summary.same ? 'clean' : counted.length === 0 ? 'pending' : 'differs';
  const { same: _same, ...rest } = summary;
  return { ...rest, missing: count('missing'), extra: count('extra'), different: count('different'), pending: own.length - counted.length, replayed: 0, outcome };
}

function overall(results: AuditDay[]): DayOutcome {
  for (const outcome of ['repair-failed', 'differs', 'replayed', 'repaired', 'pending'] as const) if (results.some((r) => r.outcome === outcome)) return outcome;
  return 'clean';
}

/** Replays the differences a replay can fix, REPLAY_MAX_IDS at a time; orphans and newer rows are only reported. */
async function replayDifferences(deps: AuditDependencies, differences: Difference[], results: AuditDay[], log: Logger): Promise<NonNullable<AuditReport['repair']>> {
  const replayable = differences.filter((x) => x.hold === undefined);
  const ids = [...new Set(replayable.map((x) => x.operationId))].sort();
  const orphans = differences.filter((x) => x.hold === 'orphan').map((x) => x.operationId);
  const newer = differences.filter((x) => x.hold === 'newer').map((x) => x.operationId);
  if (orphans.length > 0) {
    log.warn('Audit: operations in consolidated_table that the sources no longer hold (orphans) are reported, not deleted', { orphans: orphans.slice(0, 100), count: orphans.length });
  }
  if (newer.length > 0) {
    log.warn('Audit: consolidated_table holds newer versions than the sources for these operations; a replay never moves a row backwards, so they are left for a person', { operations: newer.slice(0, 100), count: newer.length });
  }
  const replays: ReplayOutcome[] = [];
  const size = deps.config.replayMaxIds;
  for (let i = 0; i < ids.length; i += size) {
    const chunk = ids.slice(i, i + size);
    let outcome: ReplayOutcome;
    try {
      outcome = await deps.replayer!.replayIds(chunk);
    } catch (error) {
      outcome = { ok: false, merged: false, detail: errorMessage(error) };
    }
    replays.push(outcome);
    log.log(outcome.ok ? 'INFO' : 'ERROR', `Audit repair: replay of ${chunk.length} operation(s) ${outcome.ok ? 'done' : 'failed'}: ${outcome.detail}`, { batchId: outcome.batchId, operations: chunk.length });
    const replayed = new Set(outcome.ok ? chunk : []);
    for (const result of results) {
      const mine = replayable.filter((x) => x.day === result.day && replayed.has(x.operationId)).length;
      result.replayed += mine;
      if (!outcome.ok && replayable.some((x) => x.day === result.day && chunk.includes(x.operationId))) result.outcome = 'repair-failed';
    }
  }
  const allOk = replays.every((r) => r.ok);
  return { replays, replayed: allOk ? ids.length : replays.filter((r) => r.ok).length, orphans, newer, verified: ids.length > 0 && allOk && replays.every((r) => r.merged) };
}

/** Keeps the result: one row per audited day in the audit table, and the summary in the state bucket. */
async function record(deps: AuditDependencies, report: AuditReport): Promise<void> {
  const { warehouse, config, store } = deps;
  if (report.results.length > 0) {
    await warehouse.ensureTable(config.auditTable, loadSchema('consolidation_audit'));
    const records: AuditRecord[] = report.results.map((r) => ({
      ...r,
      auditId: report.auditId,
      auditedAt: report.auditedAt,
      asOf: report.asOf!,
      sampleIds:
        report.differences
          .filter((x) => x.day === r.day)
          .slice(0, SAMPLE_IDS)
          .map((x) => x.operationId)
          .join(' ') || null,
    }));
    await warehouse.query(insertAuditRecords(dialectOf(warehouse, config), config.auditTable, records));
  }
  const summary = JSON.stringify(
    {
      auditId: report.auditId,
      auditedAt: report.auditedAt,
      outcome: report.outcome,
      asOf: report.asOf,
      days: report.days,
      differingDays: report.results.filter((r) => r.outcome !== 'clean').map(({ day, missing, extra, different, pending, replayed, outcome }) => ({ day, missing, extra, different, pending, replayed, outcome })),
    },
    null,
    2,
  );
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await store.read(LAST_AUDIT_OBJECT);
    if (current ? await store.replace(LAST_AUDIT_OBJECT, summary, current.generation) : await store.create(LAST_AUDIT_OBJECT, summary)) return;
  }
  throw new ChainError(`Could not record the audit's summary in ${LAST_AUDIT_OBJECT}: another writer kept changing it`, { auditId: report.auditId });
}

function logReport(log: Logger, report: AuditReport): void {
  for (const day of report.results.filter((r) => r.outcome !== 'clean')) {
    const sample = report.differences.filter((x) => x.day === day.day).slice(0, SAMPLE_IDS);
    log.warn(`Audit: ${day.day} ${day.outcome}: ${day.missing} missing, ${day.extra} extra, ${day.different} different, ${day.pending} pending`, { ...day, sample });
  }
  const fields = { outcome: report.outcome, days: report.days, asOf: report.asOf, daysChecked: report.results.length, differingDays: report.results.filter((r) => r.outcome === 'differs' || r.outcome === 'repair-failed').length };
  if (report.outcome === 'differs' || report.outcome === 'repair-failed') log.error(`Audit: consolidated_table differs from the sources (${report.outcome})`, fields);
  else log.info(`Audit: ${report.outcome}`, fields);
}
