import { BATCH_ID_PATTERN, BatchStore, DamagedStateError, batchIdOfOpenMarker, paths, sealMessageSchema, type BatchState, type Manifest, type OpenMarker } from '../shared/batch';
import { ChainError, errorMessage } from '../shared/errors';
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
  | 'marker-restored'
  | 'state-rebuilt'
  | 'manifest-rebuilt'
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
  const open = markers.map(batchIdOfOpenMarker).filter((id): id is string => id !== undefined);
  const actions: ReconcileAction[] = [];
  const restored = await restoreLostMarkers(deps, logger, new Set(open)).catch((error: unknown) => {
    logger.error(`The reconciler could not read the batch index; it tries again on the next run: ${errorMessage(error)}`, { error });
    return [] as ReconcileAction[];
  });
  actions.push(...restored);
  for (const batchId of [...open, ...restored.map((a) => a.batchId)]) {
    const batchLogger = logger.child({ batchId });
    try {
      const action = await reconcileBatch(deps, batchLogger, batchId);
      actions.push(action);
      if (action.action !== 'waiting' && action.action !== 'closed') batchLogger.warn(`Reconciler: ${action.action}: ${action.detail}`, { repair: action.action });
    } catch (error) {
      actions.push({ batchId, action: 'error', detail: errorMessage(error) });
      batchLogger.error(`The reconciler could not repair the batch; it tries again on the next run: ${errorMessage(error)}`, { error, ...(error instanceof ChainError ? error.context : {}) });
    }
  }
  return actions;
}

/** Days of the batch index the reconciler reads: today and yesterday (UTC). */
const INDEX_DAYS = 2;

/**
 * Batches of the index's last days that are unfinished but have no open marker (it was deleted):
 * their marker is written again so that they are repaired like any open batch.
 */
async function restoreLostMarkers(deps: ChainDependencies, logger: Logger, open: Set<string>): Promise<ReconcileAction[]> {
  const now = deps.clock.now().getTime();
  const days = Array.from({ length: INDEX_DAYS }, (_, n) => new Date(now - n * 86_400_000).toISOString().slice(0, 10));
  const indexed = (await Promise.all(days.map((day) => deps.store.list(paths.indexDay(day))))).flat();
  const candidates = indexed.map((path) => path.split('/').pop() ?? '').filter((id) => BATCH_ID_PATTERN.test(id) && !open.has(id));
  const batches = new BatchStore(deps.store);
  const restored: ReconcileAction[] = [];
  // The states of two days of batches, read 16 at a time.
  const states = new Map<string, { state: BatchState } | null | undefined>();
  for (let i = 0; i < candidates.length; i += 16) {
    const slice = candidates.slice(i, i + 16);
    const read = await Promise.all(slice.map((id) => batches.readState(id).catch((error: unknown) => (error instanceof DamagedStateError ? undefined : Promise.reject(error)))));
    slice.forEach((id, n) => states.set(id, read[n]));
  }
  for (const batchId of candidates) {
    const state = states.get(batchId);
    if (state && (state.state.status === 'MERGED' || (state.state.status === 'FAILED' && state.state.final))) continue;
    const entry = indexed.find((path) => path.endsWith(`/${batchId}`)) as string;
    const marker = (await deps.store.read(entry))?.data ?? JSON.stringify({ batchId });
    await deps.store.create(paths.open(batchId), marker);
    const detail = `unfinished (${state ? state.state.status : 'no readable state'}) but its open marker ${paths.open(batchId)} was gone; written again from the index entry ${entry}`;
    logger.warn(`Reconciler: marker-restored: ${detail}`, { batchId, repair: 'marker-restored' });
    restored.push({ batchId, action: 'marker-restored', detail });
  }
  return restored;
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

  const [marker, manifestRead, stateRead] = await Promise.all([store.read(paths.open(batchId)), readOrDamaged(() => batches.readManifest(batchId)), readOrDamaged(() => batches.readState(batchId))]);
  const opened = parseMarker(marker?.data);
  let manifest = manifestRead instanceof DamagedStateError ? null : manifestRead;
  if (!manifest) {
    const idleSince = opened?.createdAt;
    if (manifestRead === null && stateRead === null && !(await store.exists(paths.seal(batchId)))) {
      if (idle(idleSince) < config.stuckAfterMs) return act('waiting', 'extraction in progress');
      return removeOrphan(deps, batchId, opened, close);
    }
    // Not an orphan: the batch was sealed (it has a state or a seal), and its manifest is gone or damaged.
    const rebuilt = await rebuildManifest(deps, batchId, opened, manifestRead instanceof DamagedStateError ? manifestRead : null);
    if (!rebuilt.manifest) {
      const given = await giveUpDamaged(deps, logger, batches, batchId, stateRead, rebuilt.detail);
      return given ? close('gave-up', rebuilt.detail) : act('error', rebuilt.detail);
    }
    manifest = rebuilt.manifest;
    logger.warn(`Reconciler: manifest-rebuilt: ${rebuilt.detail}`, { repair: 'manifest-rebuilt' });
  }
  let state = stateRead instanceof DamagedStateError ? undefined : stateRead?.state;
  if (stateRead instanceof DamagedStateError) {
    // What the batch had done is unknown: its window is read again under a new batch (fresh job
    // IDs; the MERGE cannot double a row), and this one is closed as superseded.
    const damaged = await store.read(paths.state(batchId));
    const why = `${paths.state(batchId)} was damaged (${stateRead.problem})`;
    if (damaged) await store.replace(paths.state(batchId), freshState(batchId, clock.now(), why), damaged.generation);
    const rebuilt = (await batches.readState(batchId))?.state;
    if (!rebuilt) return act('error', `${why} and could not be rewritten`);
    const reread = await rereadWindow(deps, logger, batches, manifest, rebuilt, why);
    return reread.action === 'superseded' ? { ...reread, action: 'state-rebuilt' } : reread;
  }
  if (!state) {
    await batches.createState(batchId, clock.now());
    state = (await batches.readState(batchId))?.state;
    if (!state) return act('error', 'the batch has a manifest but its state cannot be created');
  }
  if (state.status === 'MERGED') return close('closed', 'merged');
  if (state.status === 'FAILED' && state.final) return close('closed', state.reason ?? 'failed for good');
  // A batch whose staged IDs cannot be trusted is re-read at once; the others get STUCK_AFTER to move on their own.
  if (state.status === 'FAILED' && state.reread) return rereadWindow(deps, logger, batches, manifest, state, state.reason ?? 'its staged IDs cannot be trusted');
  if (idle(state.updatedAt) < config.stuckAfterMs) return act('waiting', `${state.status} since ${state.updatedAt}`);
  return repairOf(deps, logger, batches, manifest, state);
}

/** The repair of a batch that has not moved for STUCK_AFTER, by its state. */
async function repairOf(deps: ChainDependencies, logger: Logger, batches: BatchStore, manifest: Manifest, state: BatchState): Promise<ReconcileAction> {
  const { store } = deps;
  const batchId = state.batchId;
  const act = (action: RepairKind, detail: string): ReconcileAction => ({ batchId, action, detail });
  switch (state.status) {
    case 'SEALED':
      if (await store.exists(paths.complete(batchId))) return announce(deps, batches, state, 1, 'complete but never announced');
      if (!(await store.exists(paths.seal(batchId)))) {
        const republished = state.announcements ?? 0;
        if (republished >= deps.config.maxAttempts) return rereadWindow(deps, logger, batches, manifest, state, `its seal was published ${republished} time(s) and never stored`);
        await publishSeal(deps, manifest);
        await batches.transition(batchId, (s) => s.status === 'SEALED', 'SEALED', { announcements: republished + 1 }, deps.clock.now());
        return act('seal-republished', `the seal never reached collectIds; published it again from the manifest (${republished + 1} of ${deps.config.maxAttempts})`);
      }
      return supersede(deps, logger, batches, manifest, state);
    case 'COLLECTED':
      return announceAgain(deps, logger, batches, manifest, state);
    case 'LAUNCHED':
      return checkJob(deps, logger, batches, manifest, state);
    case 'FAILED':
      return relaunchOrGiveUp(deps, logger, batches, manifest, state);
    default:
      return act('error', `unknown state ${String(state.status)}`);
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
  const stored = new Set(await deps.store.list(paths.chunks(manifest.batchId)));
  const missing = Array.from({ length: manifest.chunkCount }, (_, n) => n).filter((n) => !stored.has(paths.chunk(manifest.batchId, n)));
  // Every chunk and the seal are stored, only the completion was never declared (the delivery that
  // would have done it was dead-lettered): nothing is lost, so the batch goes on as it is.
  if (missing.length === 0) return announce(deps, batches, state, 1, 'every chunk and the seal stored, but the batch was never declared complete');
  return rereadWindow(deps, logger, batches, manifest, state, `chunk(s) ${missing.join(', ')} never arrived`);
}

/**
 * Reads a batch's window again under a new batch and marks the batch FAILED for good with
 * `supersededBy`: for chunks that never arrived or staged IDs that cannot be trusted. Bounded:
 * after MAX_ATTEMPTS re-reads of one window, the batch is given up with the replay to run.
 */
async function rereadWindow(deps: ChainDependencies, logger: Logger, batches: BatchStore, manifest: Manifest, state: BatchState, why: string): Promise<ReconcileAction> {
  const { config, warehouse } = deps;
  const batchId = manifest.batchId;
  const replaceable = (s: BatchState) => s.status !== 'MERGED' && !(s.status === 'FAILED' && s.final);
  const giveUp = async (reason: string, message: string, fields: Record<string, unknown>): Promise<ReconcileAction> => {
    const given = await batches.transition(batchId, replaceable, 'FAILED', { final: true, reason }, deps.clock.now());
    if (given) await deps.store.delete(paths.open(batchId));
    logger.error(message, { ...fields, reason, manifest: paths.manifest(batchId) });
    return { batchId, action: 'gave-up', detail: reason };
  };
  if (manifest.replay?.kind === 'ids') {
    return giveUp(`${why}; an IDs replay cannot be re-read: run it again`, `An IDs replay cannot finish (${why}); run the replay again`, {});
  }
  const rereads = (manifest.rereads ?? 0) + 1;
  if (rereads > config.maxAttempts) {
    const replayCommand = `consolidate replay --from ${manifest.window.from} --to ${manifest.window.to}`;
    return giveUp(
      `${why}; its window was already re-read ${rereads - 1} time(s) (MAX_ATTEMPTS ${config.maxAttempts}): given up`,
      `Batch FAILED for good: ${why}, and its window was already re-read ${rereads - 1} time(s). Its operations may not be consolidated: fix the cause, then replay its window.`,
      { window: manifest.window, replayCommand, replayBody: manifest.window },
    );
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
      rejected: {},
      readAfter: bounds.readAfter,
      ...(manifest.beyondMaxAge ? { beyondMaxAge: manifest.beyondMaxAge } : {}),
      replay: manifest.replay,
      reread: { of: batchId, count: rereads },
    },
    logger,
  );
  await batches.transition(batchId, replaceable, 'FAILED', { final: true, reason: why, supersededBy: successor.batchId }, deps.clock.now());
  await deps.store.delete(paths.open(batchId));
  return {
    batchId: state.batchId,
    action: 'superseded',
    detail: `${why}; window (${manifest.window.from}, ${manifest.window.to}] re-read as batch ${successor.batchId ?? '(none: no operation of the window can be consolidated now)'} (re-read ${rereads} of at most ${config.maxAttempts})`,
  };
}

/** A COLLECTED batch never launched: announced again, at most MAX_ATTEMPTS times, then re-read. */
async function announceAgain(deps: ChainDependencies, logger: Logger, batches: BatchStore, manifest: Manifest, state: BatchState): Promise<ReconcileAction> {
  const announced = state.announcements ?? 0;
  if (announced >= deps.config.maxAttempts) return rereadWindow(deps, logger, batches, manifest, state, `announced ${announced} time(s) and never launched`);
  const attempt = Math.max(1, state.attempt);
  const recorded = await batches.transition(state.batchId, (s) => s.status === 'COLLECTED', 'COLLECTED', { announcements: announced + 1 }, deps.clock.now());
  if (!recorded) return { batchId: state.batchId, action: 'waiting', detail: 'another writer moved the batch' };
  await deps.publisher.publish(deps.config.batchesTopic, { data: { type: 'batch', batchId: state.batchId, attempt }, attributes: { type: 'batch', batchId: state.batchId } });
  return { batchId: state.batchId, action: 'announced', detail: `announced but never launched; announced attempt ${attempt} again (${announced + 1} of ${deps.config.maxAttempts})` };
}

/** The run that opened the batch died before sealing it: its chunks go, and the message says who reads its window. */
async function removeOrphan(deps: ChainDependencies, batchId: string, opened: OpenMarker | undefined, close: (action: RepairKind, detail: string) => Promise<ReconcileAction>): Promise<ReconcileAction> {
  for (const path of await deps.store.list(paths.batch(batchId))) await deps.store.delete(path);
  const window = opened?.window ? `(${opened.window.from}, ${opened.window.to}]` : 'of unknown bounds';
  const next = opened?.replay
    ? `it was a replay, which nothing else reads again: run the replay again${opened.window && opened.replay === 'window' ? ` (consolidate replay --from ${opened.window.from} --to ${opened.window.to})` : ''}`
    : 'a scheduled run moves the watermark only after sealing, so the next scheduled run reads that window again';
  return close('orphan-removed', `extraction started at ${opened?.createdAt ?? 'an unknown time'} never sealed its window ${window}; its chunks are deleted; ${next}`);
}

/** A sealed batch's manifest, rebuilt from its stored seal (the seal repeats the manifest's window and counts). */
async function rebuildManifest(deps: ChainDependencies, batchId: string, opened: OpenMarker | undefined, read: DamagedStateError | null): Promise<{ manifest?: Manifest; detail: string }> {
  const what = read ? `${paths.manifest(batchId)} is damaged (${read.problem})` : `${paths.manifest(batchId)} is missing`;
  const sealObject = await deps.store.read(paths.seal(batchId));
  const seal = sealMessageSchema.safeParse(sealObject ? safeJson(sealObject.data) : undefined);
  if (!seal.success) {
    const window = opened?.window;
    return {
      detail: `${what} and no seal was stored to rebuild it from; ${window ? `replay its window: consolidate replay --from ${window.from} --to ${window.to}` : 'its window is in the logs (jsonPayload.batchId) or its open marker: replay it with consolidate replay --from FROM --to TO'}`,
    };
  }
  const manifest: Manifest = {
    batchId,
    window: seal.data.window,
    chunkCount: seal.data.chunkCount,
    idCount: seal.data.idCount,
    chunkSize: deps.config.chunkSize,
    rejected: {},
    createdAt: opened?.createdAt ?? deps.clock.now().toISOString(),
  };
  const text = JSON.stringify(manifest, null, 2);
  const current = await deps.store.read(paths.manifest(batchId));
  const written = current ? await deps.store.replace(paths.manifest(batchId), text, current.generation) : await deps.store.create(paths.manifest(batchId), text);
  if (!written) return { detail: `${what}; another writer changed it while it was being rebuilt` };
  return { manifest, detail: `${what}; rebuilt from the stored seal (window (${manifest.window.from}, ${manifest.window.to}], ${manifest.idCount} IDs in ${manifest.chunkCount} chunks)` };
}

/** A batch that cannot be repaired: FAILED for good when its state allows it, and said at ERROR with what to run. */
async function giveUpDamaged(deps: ChainDependencies, logger: Logger, batches: BatchStore, batchId: string, stateRead: { state: BatchState } | DamagedStateError | null, why: string): Promise<boolean> {
  logger.error(`Batch cannot be repaired: ${why}`, { batchId });
  if (!stateRead || stateRead instanceof DamagedStateError) {
    const existing = await deps.store.read(paths.state(batchId));
    const failed = { ...JSON.parse(freshState(batchId, deps.clock.now(), why)), status: 'FAILED', final: true };
    return existing ? deps.store.replace(paths.state(batchId), JSON.stringify(failed, null, 2), existing.generation) : deps.store.create(paths.state(batchId), JSON.stringify(failed, null, 2));
  }
  if (stateRead.state.status === 'MERGED') return true;
  return (await batches.transition(batchId, (s) => s.status !== 'MERGED' && !(s.status === 'FAILED' && s.final), 'FAILED', { final: true, reason: why }, deps.clock.now())) !== null;
}

/** A new state object, SEALED at attempt 0, recording why it was written. */
function freshState(batchId: string, at: Date, reason: string): string {
  const state: BatchState = { batchId, status: 'SEALED', attempt: 0, reason, updatedAt: at.toISOString(), history: [{ status: 'SEALED', at: at.toISOString() }] };
  return JSON.stringify(state, null, 2);
}

/** The object, null when absent, or the DamagedStateError that reading it raised. */
async function readOrDamaged<T>(read: () => Promise<T | null>): Promise<T | null | DamagedStateError> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof DamagedStateError) return error;
    throw error;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseMarker(data: string | undefined): OpenMarker | undefined {
  try {
    return data ? (JSON.parse(data) as OpenMarker) : undefined;
  } catch {
    return undefined;
  }
}
