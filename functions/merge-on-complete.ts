import type { CloudEvent } from '@google-cloud/functions-framework';
import { z } from 'zod';
import { BATCH_ID_PATTERN, BatchStore, JOB_LABELS, batchSlug, batchTables, paths, type BatchState, type MergeCounts } from '../shared/batch';
import { ChainError, errorMessage } from '../shared/errors';
import { describeIssues, jobStateName } from '../shared/events';
import type { Logger, QueryResult } from '../shared/ports';
import { enrichedProfile, mergeEnriched } from '../shared/sql/statements';
import { dialectOf } from '../shared/sql/render';
import type { ChainDependencies } from './dependencies';

export const STATUS_CHANGED = 'google.cloud.dataflow.job.v1beta3.statusChanged';
export const TERMINAL_STATES = new Set(['JOB_STATE_DONE', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED', 'JOB_STATE_UPDATED', 'JOB_STATE_DRAINED']);
const MERGE_TRIES = 3;

const jobSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  currentState: z.unknown().transform((value, ctx) => {
    const name = jobStateName(value);
    if (name === undefined) ctx.addIssue({ code: 'custom', message: `not a Dataflow job state: ${JSON.stringify(value)}` });
    return name ?? z.NEVER;
  }),
  labels: z.record(z.string(), z.string()).optional(),
});

/** Batch IDs travel in job labels lowercased; this restores the batch ID. */
export function batchIdFromLabel(label: string): string | undefined {
  const match = /^(\d{8})t(\d{6})z-([0-9a-f]{6})$/.exec(label);
  const batchId = match ? `${match[1]}T${match[2]}Z-${match[3]}` : undefined;
  return batchId && BATCH_ID_PATTERN.test(batchId) ? batchId : undefined;
}

/** The batch and attempt of a job named by jobNameFor (`consolidation-<batch>-a<n>`), or undefined. */
export function batchOfJobName(name: string): { batchId: string; attempt: number } | undefined {
  const match = /^consolidation-(.+)-a([1-9]\d{0,3})$/.exec(name);
  const batchId = match ? batchIdFromLabel(match[1]) : undefined;
  return match && batchId ? { batchId, attempt: Number(match[2]) } : undefined;
}

/** Who runs a batch's MERGE. A BigQuery job is readable by its creator only, so each identity has its own job IDs. */
export type MergeRunner = 'mergeOnComplete' | 'reconciler';
const MERGE_JOB_PREFIX: Record<MergeRunner, string> = { mergeOnComplete: 'consolidation_merge', reconciler: 'consolidation_reconciler_merge' };

export function mergeJobIdFor(runner: MergeRunner, batchId: string, attempt: number): string {
  return `${MERGE_JOB_PREFIX[runner]}_${batchSlug(batchId)}_a${attempt}`;
}

/**
 * Whether a job is one of ours, and which batch and attempt it ran: from its labels, or, when the
 * event carries no labels, from its deterministic name.
 */
function identifyJob(job: { name: string; labels?: Record<string, string> }): { batchId: string; attempt: number; byName: boolean } | 'other' | 'invalid' {
  if (job.labels === undefined || Object.keys(job.labels).length === 0) {
    const named = batchOfJobName(job.name);
    return named ? { ...named, byName: true } : 'other';
  }
  if (job.labels.pipeline !== JOB_LABELS.pipeline) return 'other';
  const batchId = batchIdFromLabel(job.labels.batch_id ?? '');
  const attempt = Number(job.labels.attempt ?? '1');
  return batchId && Number.isInteger(attempt) && attempt >= 1 ? { batchId, attempt, byName: false } : 'invalid';
}

function isConcurrentUpdate(error: unknown): boolean {
  return /could not serialize access|concurrent update/i.test(errorMessage(error));
}

/**
 * mergeOnComplete: on the terminal state of one of our enrichment jobs, MERGEs the batch's
 * enriched rows into the consolidated table (DONE) or records the failure. Ignores other jobs
 * and non-terminal states.
 */
export function makeMergeOnComplete(deps: ChainDependencies): (event: CloudEvent<unknown>) => Promise<void> {
  return async (event) => {
    if (event.type !== STATUS_CHANGED) {
      deps.logger.warn(`Event of type ${event.type} ignored: mergeOnComplete takes ${STATUS_CHANGED}`, { eventId: event.id });
      return;
    }
    const parsed = jobSchema.safeParse((event.data as { payload?: unknown } | undefined)?.payload);
    if (!parsed.success) {
      deps.logger.error(`Job status event of the wrong shape, acknowledged and set aside: ${describeIssues(parsed.error.issues)}`, { eventId: event.id });
      return;
    }
    const job = parsed.data;
    const ours = identifyJob(job);
    if (ours === 'other') {
      deps.logger.debug('Job status event of another pipeline ignored (not our labels, or no labels and not our job name)', { jobName: job.name });
      return;
    }
    if (!TERMINAL_STATES.has(job.currentState)) {
      deps.logger.debug('Non-terminal job state ignored', { jobName: job.name, jobState: job.currentState });
      return;
    }
    if (ours === 'invalid') {
      deps.logger.error('Job of this pipeline without a valid batch_id or attempt label, acknowledged and set aside', { eventId: event.id, jobName: job.name, labels: job.labels });
      return;
    }
    if (ours.byName) {
      deps.logger.warn('Job status event without labels: the batch and attempt are read from the job name', { eventId: event.id, jobName: job.name, batchId: ours.batchId, attempt: ours.attempt });
    }
    const { batchId, attempt } = ours;
    const logger = deps.logger.child({ batchId, jobName: job.name, jobId: job.id, eventId: event.id });
    const batches = new BatchStore(deps.store);
    const current = await batches.readState(batchId);
    if (!current) {
      logger.error('Job status event of an unknown batch, acknowledged and set aside');
      return;
    }
    if (current.state.status === 'MERGED' || current.state.attempt > attempt) {
      logger.info('Batch already merged, or the event is of an earlier attempt; nothing to do', { status: current.state.status, attempt });
      return;
    }
    if (job.currentState === 'JOB_STATE_DONE') await mergeBatch(deps, logger, batchId, attempt, job, 'mergeOnComplete');
    else await recordFailure(deps, logger, batches, batchId, attempt, job);
  };
}

/**
 * MERGEs a batch whose job is DONE (from its statusChanged event, or from the reconciler when the
 * event never came), marks it MERGED, closes it and drops its tables. Safe to run again: the
 * MERGE's job ID is deterministic per batch and attempt.
 */
export async function mergeBatch(
  deps: ChainDependencies,
  logger: Logger,
  batchId: string,
  attempt: number,
  job: { id: string; name: string; currentState: string },
  runner: MergeRunner,
): Promise<void> {
  const { config, warehouse, clock } = deps;
  const manifest = await new BatchStore(deps.store).readManifest(batchId);
  const dialect = dialectOf(warehouse, config);
  const tables = batchTables(config.stagingDataset, batchId, attempt);
  // Beam's BigQuery sink creates its table with the first row: a job that wrote nothing left none.
  const written = await warehouse.tableExists(tables.enriched);
  if (!written) {
    logger.warn(`The job wrote no rows (no table ${warehouse.plainName(tables.enriched)}); the batch merges nothing`, { idCount: manifest?.idCount, table: warehouse.plainName(tables.enriched) });
  }
  const profile = written ? (await warehouse.query(enrichedProfile(dialect, tables.enriched))).rows : [];
  const days = [...new Set(profile.filter((r) => r.day !== null).map((r) => String(r.day)))].sort();
  const statusCounts: Record<string, number> = {};
  let sourceRows = 0;
  for (const row of profile) {
    const n = Number(row.operations);
    statusCounts[String(row.reconciliation_status)] = (statusCounts[String(row.reconciliation_status)] ?? 0) + n;
    sourceRows += n;
  }

  let result: QueryResult = { rows: [], dml: { inserted: 0, updated: 0, deleted: 0 } };
  const mergeJobId = mergeJobIdFor(runner, batchId, attempt);
  if (sourceRows > 0) {
    const force = manifest?.replay !== undefined;
    const statement = mergeEnriched(dialect, { target: config.tables.consolidated, enriched: tables.enriched }, { batchId, consolidatedAt: clock.now().toISOString(), created: creationRange(days), force });
    // The same job ID on every try: a warehouse re-runs a job ID whose run failed, and a job ID
    // that succeeded is never run twice, even across redeliveries.
    for (let tryNumber = 1; ; tryNumber++) {
      try {
        result = await warehouse.query(statement, { jobId: mergeJobId, labels: { pipeline: 'consolidation' } });
        break;
      } catch (error) {
        if (!isConcurrentUpdate(error) || tryNumber >= MERGE_TRIES) throw new ChainError(`MERGE of the batch failed: ${errorMessage(error)}`, { batchId, jobName: job.name, mergeJobId }, { cause: error });
        logger.warn('MERGE hit a concurrent update; retrying', { tryNumber, mergeJobId });
        await new Promise((resolve) => setTimeout(resolve, 500 * tryNumber));
      }
    }
  }
  const dml = result.dml ?? { inserted: 0, updated: 0, deleted: 0 };
  const merge: MergeCounts & { statusCounts: Record<string, number> } = {
    sourceRows,
    inserted: dml.inserted,
    updated: dml.updated,
    unchanged: sourceRows - dml.inserted - dml.updated,
    statusCounts,
  };
  const marked = await new BatchStore(deps.store).transition(
    batchId,
    (s: BatchState) => s.status !== 'MERGED' && s.attempt <= attempt,
    'MERGED',
    { merge, mergeJobId, jobName: job.name, jobId: job.id, jobState: job.currentState, attempt },
    clock.now(),
  );
  logger.info(marked ? 'Batch merged into the consolidated table' : 'Batch was marked merged by another delivery', { ...merge, mergeJobId, days: days.length });
  await deps.store.delete(paths.open(batchId));
  // Earlier attempts' tables too: a failed job may have written part of its rows.
  const enrichedTables = Array.from({ length: attempt }, (_, n) => batchTables(config.stagingDataset, batchId, n + 1).enriched);
  for (const table of [tables.ids, ...enrichedTables]) {
    await warehouse.dropTable(table).catch((error) => logger.warn('Could not drop a batch table; it expires on its own', { table: table.table, error }));
  }
}

/**
 * The creation days of the batch's rows as one range [first day, day after the last): a plain
 * range on the target's partitioning column, which BigQuery prunes partitions on and DuckDB row
 * groups (a list of days compared with CAST(created_at AS DATE) prunes nothing in DuckDB).
 */
export function creationRange(sortedDays: string[]): { from: string; to: string } {
  if (sortedDays.length === 0) return { from: '1970-01-01T00:00:00.000Z', to: '1970-01-01T00:00:00.000Z' };
  const last = new Date(`${sortedDays[sortedDays.length - 1]}T00:00:00.000Z`);
  return { from: `${sortedDays[0]}T00:00:00.000Z`, to: new Date(last.getTime() + 86_400_000).toISOString() };
}

/** Records that the batch's job ended without output; the reconciler relaunches it while attempts remain. */
export async function recordFailure(deps: ChainDependencies, logger: Logger, batches: BatchStore, batchId: string, attempt: number, job: { id: string; name: string; currentState: string }): Promise<BatchState | null> {
  const reason = `Dataflow job ${job.name} (${job.id}) ended in ${job.currentState}`;
  const recorded = await batches.transition(
    batchId,
    (s) => s.status !== 'MERGED' && s.status !== 'FAILED' && s.attempt <= attempt,
    'FAILED',
    { reason, jobName: job.name, jobId: job.id, jobState: job.currentState, attempt },
    deps.clock.now(),
  );
  const left = deps.config.maxAttempts - attempt;
  logger.warn(`Batch attempt ${attempt} failed: ${reason}. ${left > 0 ? `The reconciler relaunches it (${left} attempt(s) left).` : 'No attempt left: the reconciler marks it FAILED for good.'}`, { attempt, jobState: job.currentState, recorded: recorded !== null });
  return recorded;
}
