import { BatchStore, batchIdOfOpenMarker, paths, type BatchState, type Manifest } from '../shared/batch';
import { errorMessage } from '../shared/errors';
import { acquireLease, leaseOptionsOf, releaseLease } from '../shared/lease';
import type { Logger } from '../shared/ports';
import { manifestBounds } from '../shared/bounds';
import { changedOperationIds } from '../shared/sql/statements';
import { dialectOf } from '../shared/sql/render';
import type { ChainDependencies } from './dependencies';
import { extractBatch, publishSeal } from './extract';
import { mergeBatch, recordFailure, TERMINAL_STATES } from './merge-on-complete';

export type RepairKind =
  | 'closed'
  | 'waiting'
  | 'orphan-removed'
  | 'seal-republished'
  | 'announced'
  | 'merged'
  | 'relaunched'
  | 'gave-up'
  | 'superseded'
  | 'error';

/** What the reconciler did (or decided not to do) about one open batch. */
export interface ReconcileAction {
  batchId: string;
  action: RepairKind;
  detail: string;
}

/** `consolidate reconcile`: the reconciler on its own, under the extraction lease. */
export async function reconcileUnderLease(deps: ChainDependencies): Promise<ReconcileAction[]> {
  const lease = await acquireLease(leaseOptionsOf(deps), 'reconcile');
  const logger = deps.logger.child({ leaseHolder: lease.record.holder });
  try {
    return await reconcileBatches(deps, logger);
  } finally {
    await releaseLease(leaseOptionsOf(deps), lease, logger);
  }
}

/**
 * The reconciler: walks the open batches (one marker each under `open/`, so the work is
 * proportional to the batches in flight, not to the bucket) and repairs every one that has not
 * moved for STUCK_AFTER. It must run under the extraction lease, since it may extract.
 */
export async function reconcileBatches(deps: ChainDependencies, logger: Logger): Promise<ReconcileAction[]> {
  let markers: string[];
  try {
    markers = await deps.store.list(paths.openBatches);
  } catch (error) {
    logger.error(`The reconciler could not list the open batches; it tries again on the next run: ${errorMessage(error)}`, { error });
    return [];
  }
  const actions: ReconcileAction[] = [];
  for (const marker of markers) {
    const batchId = batchIdOfOpenMarker(marker);
    if (!batchId) continue;
    const batchLogger = logger.child({ batchId });
    try {
      const action = await reconcileBatch(deps, batchLogger, batchId);
      actions.push(action);
      if (action.action !== 'waiting' && action.action !== 'closed') batchLogger.warn(`Reconciler: ${action.action}: ${action.detail}`, { repair: action.action });
    } catch (error) {
      actions.push({ batchId, action: 'error', detail: errorMessage(error) });
      batchLogger.error(`The reconciler could not repair the batch; it tries again on the next run: ${errorMessage(error)}`, { error });
    }
  }
  return actions;
}

async function reconcileBatch(deps: ChainDependencies, logger: Logger, batchId: string): Promise<ReconcileAction> {
  const { store, clock, config } = deps;
  const batches = new BatchStore(store);
  const now = clock.now().getTime();
  const idle = (since: string | undefined) => (since ? now - Date.parse(since) : Infinity);
  const act = (action: RepairKind, detail: string): ReconcileAction => ({ batchId, action, detail });
  const close = async (action: RepairKind, detail: string) => {
    await store.delete(paths.open(batchId));
    return act(action, detail);
  };

  const [marker, manifest, stored] = await Promise.all([store.read(paths.open(batchId)), batches.readManifest(batchId), batches.readState(batchId)]);
  if (!manifest) {
    const createdAt = parseMarker(marker?.data)?.createdAt;
    if (idle(createdAt) < config.stuckAfterMs) return act('waiting', 'extraction in progress');
    // The run that started this batch died before writing the manifest (the lease it held has
    // expired, or we hold it now): its window was left to the next run, so its chunks go.
    for (const path of await store.list(paths.batch(batchId))) await store.delete(path);
    return close('orphan-removed', `extraction started at ${createdAt ?? 'an unknown time'} never finished; its chunks are deleted and its window was re-read by a later run`);
  }
  let state = stored?.state;
  if (!state) {
    await batches.createState(batchId, clock.now());
    state = (await batches.readState(batchId))?.state;
    if (!state) return act('error', 'the batch has a manifest but its state cannot be created');
  }
  if (state.status === 'MERGED') return close('closed', 'merged');
  if (state.status === 'FAILED' && state.final) return close('closed', state.reason ?? 'failed for good');
  if (idle(state.updatedAt) < config.stuckAfterMs) return act('waiting', `${state.status} since ${state.updatedAt}`);

  switch (state.status) {
    case 'SEALED':
      if (await store.exists(paths.complete(batchId))) return announce(deps, batches, state, 1, 'complete but never announced');
      if (!(await store.exists(paths.seal(batchId)))) {
        await publishSeal(deps, manifest);
        return act('seal-republished', 'the seal never reached collectIds; published it again from the manifest');
      }
      return supersede(deps, logger, batches, manifest, state);
    case 'COLLECTED':
      return announce(deps, batches, state, Math.max(1, state.attempt), 'announced but never launched');
    case 'LAUNCHED':
      return checkJob(deps, logger, batches, manifest, state);
    case 'FAILED':
      return relaunchOrGiveUp(deps, logger, batches, manifest, state);
  }
}

async function announce(deps: ChainDependencies, batches: BatchStore, state: BatchState, attempt: number, why: string): Promise<ReconcileAction> {
  await deps.publisher.publish(deps.config.batchesTopic, { data: { type: 'batch', batchId: state.batchId, attempt }, attributes: { type: 'batch', batchId: state.batchId } });
  await batches.transition(state.batchId, (s) => s.status === 'SEALED', 'COLLECTED', {}, deps.clock.now());
  return { batchId: state.batchId, action: 'announced', detail: `${why}; announced attempt ${attempt}` };
}

/** A LAUNCHED batch that has not moved: asks the job service what became of its job. */
async function checkJob(deps: ChainDependencies, logger: Logger, batches: BatchStore, manifest: Manifest, state: BatchState): Promise<ReconcileAction> {
  const { batchId, attempt } = state;
  const job = { id: state.jobId ?? 'unknown', name: state.jobName ?? 'unknown' };
  const jobState = state.jobId ? await deps.launcher.jobState(state.jobId) : undefined;
  if (jobState === 'JOB_STATE_DONE') {
    await mergeBatch(deps, logger, batchId, attempt, { ...job, currentState: jobState }, 'reconciler');
    return { batchId, action: 'merged', detail: `job ${job.name} finished DONE but its status event never led to a MERGE; merged now` };
  }
  if (jobState !== undefined && !TERMINAL_STATES.has(jobState)) return { batchId, action: 'waiting', detail: `job ${job.name} is ${jobState}` };
  const failed = await recordFailure(deps, logger, batches, batchId, attempt, { ...job, currentState: jobState ?? 'UNKNOWN (the job service does not know it)' });
  if (!failed) return { batchId, action: 'waiting', detail: 'another writer moved the batch' };
  return relaunchOrGiveUp(deps, logger, batches, manifest, failed);
}

async function relaunchOrGiveUp(deps: ChainDependencies, logger: Logger, batches: BatchStore, manifest: Manifest, state: BatchState): Promise<ReconcileAction> {
  const { batchId } = state;
  // An attempt announced earlier that never got as far as LAUNCHED counts as used, so a launch
  // that keeps failing still ends in FAILED for good.
  const attempt = Math.max(state.attempt, state.announcedAttempt ?? 0);
  if (attempt < deps.config.maxAttempts) {
    const next = attempt + 1;
    const recorded = await batches.transition(batchId, (s) => s.status === 'FAILED' && !s.final, 'FAILED', { announcedAttempt: next }, deps.clock.now());
    if (!recorded) return { batchId, action: 'waiting', detail: 'another writer moved the batch' };
    await deps.publisher.publish(deps.config.batchesTopic, { data: { type: 'batch', batchId, attempt: next }, attributes: { type: 'batch', batchId } });
    return { batchId, action: 'relaunched', detail: `${state.reason ?? 'attempt failed'}; announced attempt ${next} of ${deps.config.maxAttempts}` };
  }
  const given = await batches.transition(batchId, (s) => s.status === 'FAILED' && !s.final, 'FAILED', { final: true }, deps.clock.now());
  if (!given) return { batchId, action: 'waiting', detail: 'another writer moved the batch' };
  await deps.store.delete(paths.open(batchId));
  const replayBody = manifest.replay?.kind === 'ids' ? undefined : { from: manifest.window.from, to: manifest.window.to };
  logger.error(`Batch FAILED for good after ${attempt} attempt(s): ${state.reason ?? 'unknown reason'}. Its ${manifest.idCount} operations are not consolidated: fix the cause, then replay its window.`, {
    attempts: attempt,
    window: manifest.window,
    idCount: manifest.idCount,
    jobName: state.jobName,
    jobId: state.jobId,
    jobState: state.jobState,
    reason: state.reason,
    manifest: paths.manifest(batchId),
    replayBody,
    replayCommand: replayBody ? `consolidate replay --from ${replayBody.from} --to ${replayBody.to}` : `the IDs are in ${paths.chunks(batchId)}`,
  });
  return { batchId, action: 'gave-up', detail: `${state.reason ?? 'failed'} after ${attempt} attempt(s); logged at ERROR with the replay to run` };
}

/**
 * A sealed batch whose chunks never all arrived (a chunk message was dead-lettered): the IDs of
 * the missing chunks exist nowhere else, so its window is read again under a new batch.
 */
async function supersede(deps: ChainDependencies, logger: Logger, batches: BatchStore, manifest: Manifest, state: BatchState): Promise<ReconcileAction> {
  const { config, warehouse } = deps;
  const stored = new Set(await deps.store.list(paths.chunks(manifest.batchId)));
  const missing = Array.from({ length: manifest.chunkCount }, (_, n) => n).filter((n) => !stored.has(paths.chunk(manifest.batchId, n)));
  // Every chunk and the seal are stored, only the completion was never declared (the delivery that
  // would have done it was dead-lettered): nothing is lost, so the batch goes on as it is.
  if (missing.length === 0) return announce(deps, batches, state, 1, 'every chunk and the seal stored, but the batch was never declared complete');
  if (manifest.replay?.kind === 'ids') {
    const given = await batches.transition(manifest.batchId, (s) => s.status === 'SEALED', 'FAILED', { final: true, reason: `chunk(s) ${missing.join(', ')} never arrived` }, deps.clock.now());
    if (given) await deps.store.delete(paths.open(manifest.batchId));
    logger.error('An IDs replay lost chunk(s) on the way; run the replay again', { missingChunks: missing, manifest: paths.manifest(manifest.batchId) });
    return { batchId: state.batchId, action: 'gave-up', detail: `IDs replay with chunk(s) ${missing.join(', ')} missing; run it again` };
  }
  const asOf = new Date(manifest.asOf ?? manifest.window.to);
  const tables = { ussd: config.tables.ussd, transactions: config.tables.transactions };
  const bounds = manifestBounds(manifest, config);
  const successor = await extractBatch(
    deps,
    {
      source: { query: changedOperationIds(dialectOf(warehouse, config), tables, bounds) },
      window: manifest.window,
      asOf,
      rejected: manifest.rejected,
      readAfter: bounds.readAfter,
      ...(manifest.beyondMaxAge ? { beyondMaxAge: manifest.beyondMaxAge } : {}),
      replay: manifest.replay,
    },
    logger,
  );
  await batches.transition(
    manifest.batchId,
    (s) => s.status === 'SEALED',
    'FAILED',
    { final: true, reason: `chunk(s) ${missing.join(', ')} never arrived`, supersededBy: successor.batchId },
    deps.clock.now(),
  );
  await deps.store.delete(paths.open(manifest.batchId));
  return { batchId: state.batchId, action: 'superseded', detail: `chunk(s) ${missing.join(', ')} never arrived; window re-read as batch ${successor.batchId ?? '(nothing changed)'}` };
}

function parseMarker(data: string | undefined): { createdAt?: string } | undefined {
  try {
    return data ? (JSON.parse(data) as { createdAt?: string }) : undefined;
  } catch {
    return undefined;
  }
}
