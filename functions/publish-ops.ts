import type { Request, Response } from '@google-cloud/functions-framework';
import type { BeyondMaxAge, RejectedRows } from '../shared/batch';
import { readBounds } from '../shared/bounds';
import { describeDuration, formatDuration } from '../shared/duration';
import { BadRequestError, ChainError, ConflictError, errorMessage } from '../shared/errors';
import { checkSourceLayout } from '../shared/layout';
import { acquireLease, leaseOptionsOf, releaseLease } from '../shared/lease';
import { beyondMaxAgeCounts, changedOperationIds, rejectedRowCounts } from '../shared/sql/statements';
import { dialectOf } from '../shared/sql/render';
import type { ChainDependencies } from './dependencies';
import { extractBatch } from './extract';
import { reconcileBatches, type ReconcileAction } from './reconciler';
import { checkReplay, parsePublishRequest, replay, type ReplayResult } from './replay';

/** How far a run that MAX_WINDOW cut short still is from "now minus SAFETY_LAG". */
export interface CatchUp {
  /** Milliseconds between the new watermark and where an uncapped window would have ended. */
  behindMs: number;
  /** Runs of at most MAX_WINDOW each still needed to catch up. */
  runsLeft: number;
}

export type PublishResult =
  | { status: 'up-to-date'; watermark: string }
  | { status: 'empty'; window: { from: string; to: string }; idCount: 0; rejected: RejectedRows; beyondMaxAge: BeyondMaxAge; watermark: string; catchUp?: CatchUp }
  | { status: 'sealed'; batchId: string; window: { from: string; to: string }; idCount: number; chunkCount: number; rejected: RejectedRows; beyondMaxAge: BeyondMaxAge; watermark: string; catchUp?: CatchUp };

export type PublishResponse = (PublishResult | ReplayResult) & { reconciled: ReconcileAction[] };

/**
 * publishOps: the HTTP function Cloud Scheduler calls. Under the extraction lease it first lets
 * the reconciler repair batches that stopped moving, then streams the IDs of what changed since
 * the watermark (or of a replay), publishes them in chunks, seals the batch and, for a
 * scheduled run, advances the watermark.
 */
export function makePublishOps(deps: ChainDependencies): (req: Request, res: Response) => Promise<void> {
  // Once per instance, at its first run: a source table that cannot be pruned is named in one WARNING.
  let layoutChecked: Promise<unknown> | undefined;
  return async (req, res) => {
    if (req.method !== 'POST') {
      res.set('Allow', 'POST').status(405).json({ error: `Method ${req.method} not allowed: publishOps takes POST` });
      return;
    }
    layoutChecked ??= checkSourceLayout(deps);
    await layoutChecked;
    try {
      const request = parsePublishRequest(req.body, deps.config.replayMaxIds);
      if (request.kind !== 'scheduled') checkReplay(request, await readWatermark(deps));
      const lease = await acquireLease(leaseOptionsOf(deps), request.kind === 'scheduled' ? 'publishOps' : 'replay');
      const logger = deps.logger.child({ leaseHolder: lease.record.holder });
      let response: PublishResponse;
      try {
        const reconciled = await reconcileBatches(deps, logger);
        const result = request.kind === 'scheduled' ? await publishChangedOperations(deps) : await replay(deps, request, await readWatermark(deps), logger);
        response = { ...result, reconciled };
      } finally {
        // Before answering: once the answer is sent, the instance may be frozen or stopped.
        await releaseLease(leaseOptionsOf(deps), lease, logger);
      }
      res.status(200).json(response);
    } catch (error) {
      const status = error instanceof BadRequestError ? 400 : error instanceof ConflictError ? 409 : 500;
      const context = error instanceof ChainError ? error.context : {};
      deps.logger.log(status === 500 ? 'ERROR' : 'WARNING', `publishOps ${status === 400 ? 'refused the request' : 'failed'}: ${errorMessage(error)}`, { error, ...context });
      res.status(status).json({ error: errorMessage(error), ...context });
    }
  };
}

function parseWatermark(text: string, object: string): Date {
  const trimmed = text.trim();
  const parsed = new Date(trimmed);
  if (!/^\d{4}-\d\d-\d\dT/.test(trimmed) || Number.isNaN(parsed.getTime())) {
    throw new ChainError(`The watermark object ${object} does not hold an RFC 3339 timestamp`, { content: trimmed.slice(0, 100) });
  }
  return parsed;
}

/** The stored watermark, or undefined before the first run. */
export async function readWatermark(deps: Pick<ChainDependencies, 'store' | 'config'>): Promise<Date | undefined> {
  const stored = await deps.store.read(deps.config.watermarkObject);
  return stored ? parseWatermark(stored.data, deps.config.watermarkObject) : undefined;
}

export async function publishChangedOperations(deps: ChainDependencies): Promise<PublishResult> {
  const { config, store, warehouse, clock } = deps;
  const watermarkObject = await store.read(config.watermarkObject);
  const watermark = watermarkObject ? parseWatermark(watermarkObject.data, config.watermarkObject) : config.initialWatermark;
  const target = new Date(clock.now().getTime() - config.safetyLagMs);
  let to = target;
  if (config.maxWindowMs > 0 && to.getTime() - watermark.getTime() > config.maxWindowMs) to = new Date(watermark.getTime() + config.maxWindowMs);
  const catchUp: CatchUp | undefined = to < target ? { behindMs: target.getTime() - to.getTime(), runsLeft: Math.ceil((target.getTime() - to.getTime()) / config.maxWindowMs) } : undefined;
  if (catchUp) {
    deps.logger.info(`Catching up: this run reads up to ${to.toISOString()}, ${describeDuration(catchUp.behindMs)} behind; about ${catchUp.runsLeft} more run(s) of at most MAX_WINDOW (${formatDuration(config.maxWindowMs)})`, {
      watermark: watermark.toISOString(),
      windowTo: to.toISOString(),
      ...catchUp,
    });
  }
  if (to <= watermark) {
    deps.logger.info('Nothing to do: the watermark is up to date', { watermark: watermark.toISOString() });
    return { status: 'up-to-date', watermark: watermark.toISOString() };
  }
  const window = { from: new Date(watermark.getTime() - config.lookbackMs).toISOString(), to: to.toISOString() };
  const dialect = dialectOf(warehouse, config);
  const tables = { ussd: config.tables.ussd, transactions: config.tables.transactions };

  const bounds = readBounds(window, config);
  // Counted over (watermark, to] only, so that a row is counted once, not again in the next lookback.
  const counted = { ...bounds, from: watermark.toISOString() };
  const rejectedRow = (await warehouse.query(rejectedRowCounts(dialect, tables, counted))).rows[0] ?? {};
  const rejected: RejectedRows = { missingOperationId: Number(rejectedRow.missing_operation_id ?? 0), missingSourceTimestamp: Number(rejectedRow.missing_source_timestamp ?? 0) };
  const beyondRow = (await warehouse.query(beyondMaxAgeCounts(dialect, tables, counted))).rows[0] ?? {};
  const beyondMaxAge: BeyondMaxAge = { oldOperationRows: Number(beyondRow.old_operation_rows ?? 0), unmatchedTransactions: Number(beyondRow.unmatched_transactions ?? 0) };

  deps.logger.info('Extracting changed operations', { window, readAfter: bounds.readAfter });
  const anyBeyond = beyondMaxAge.oldOperationRows + beyondMaxAge.unmatchedTransactions > 0;
  const batch = await extractBatch(
    deps,
    { source: { query: changedOperationIds(dialect, tables, bounds) }, window, asOf: to, rejected, readAfter: bounds.readAfter, ...(anyBeyond ? { beyondMaxAge } : {}) },
    deps.logger,
  );
  // Logged once the batch has its ID, so the warning names the batch whose manifest records them.
  const batchField = batch.batchId ? { batchId: batch.batchId } : {};
  if (rejected.missingOperationId + rejected.missingSourceTimestamp > 0) {
    deps.logger.warn('Source rows that cannot be consolidated (no operation_id or no source_timestamp)', { ...rejected, window, ...batchField });
  }
  if (anyBeyond) {
    deps.logger.warn(
      `Changes older than OPERATION_MAX_AGE (${formatDuration(config.operationMaxAgeMs)}) are not consolidated by the cycle: USSD rows of operations created at or before ${bounds.readAfter}, and transactions no younger operation refers to. The audit finds those operations; a replay of their IDs with createdAfter consolidates them.`,
      { ...beyondMaxAge, window, readAfter: bounds.readAfter, ...batchField },
    );
  }
  if (batch.batchId === undefined) {
    await advanceWatermark(deps, watermarkObject?.generation, to, undefined);
    deps.logger.info('No operation changed in the window; watermark advanced', { window, watermark: to.toISOString() });
    return { status: 'empty', window, idCount: 0, rejected, beyondMaxAge, watermark: to.toISOString(), ...(catchUp ? { catchUp } : {}) };
  }
  await advanceWatermark(deps, watermarkObject?.generation, to, batch.batchId);
  deps.logger.info('Batch sealed and watermark advanced', { batchId: batch.batchId, window, idCount: batch.idCount, chunkCount: batch.chunkCount, watermark: to.toISOString() });
  return { status: 'sealed', batchId: batch.batchId, window, idCount: batch.idCount, chunkCount: batch.chunkCount, rejected, beyondMaxAge, watermark: to.toISOString(), ...(catchUp ? { catchUp } : {}) };
}

/** Moves the watermark only if nobody moved it since it was read (generation match). */
async function advanceWatermark(deps: ChainDependencies, generation: string | undefined, to: Date, batchId: string | undefined): Promise<void> {
  const written =
    generation === undefined
      ? await deps.store.create(deps.config.watermarkObject, to.toISOString())
      : await deps.store.replace(deps.config.watermarkObject, to.toISOString(), generation);
  if (!written) {
    throw new ConflictError('Another run moved the watermark first; this run\'s batch is sealed and will be processed, the watermark is left as that run set it', { batchId });
  }
}
