import { BatchStore, DamagedStateError, type BatchState, type BeyondMaxAge, type RejectedRows } from '../batch';
import type { CatchUp, PublishResponse } from '../../functions/publish-ops';
import type { ReconcileAction } from '../../functions/reconciler';
import { DATAFLOW_EVENTS, isTerminal, type LocalStack } from './stack';

export type Stage = 'extract and publish' | 'collect' | 'stage IDs and launch' | 'pipeline' | 'merge' | 'done';

export interface CycleProgress {
  stage: Stage;
  idsPublished: number;
  rowsMerged: number;
}

export interface StageTimes {
  publish: number;
  collect: number;
  launch: number;
  pipeline: number;
  merge: number;
  total: number;
}

export interface CycleReport {
  ok: boolean;
  outcome: 'up-to-date' | 'empty' | 'merged' | 'failed' | 'stuck';
  error?: string;
  batchId?: string;
  window?: { from: string; to: string };
  watermark?: string;
  idCount: number;
  chunkCount: number;
  rejected?: RejectedRows;
  beyondMaxAge?: BeyondMaxAge;
  jobName?: string;
  jobState?: string;
  state?: BatchState;
  stagesMs?: StageTimes;
  deadLetters: number;
  /** What the reconciler did at the start of the run. */
  reconciled?: ReconcileAction[];
  /** Calls answered 409 because another run held the lease. */
  refused?: number;
  /** For a replay: what was replayed. */
  replay?: string;
  /** publishOps' HTTP status. */
  httpStatus?: number;
  /** Set when MAX_WINDOW cut the window short: how far behind the run still is. */
  catchUp?: CatchUp;
}

export interface CycleOptions {
  onProgress?: (progress: CycleProgress) => void;
  /** Gives up on a batch that has not finished in this time. */
  timeoutMs?: number;
  /** A batch whose chain is quiet for this long without finishing is reported stuck. */
  quietMs?: number;
  /** The request body: none for a scheduled run, `{from, to}` or `{ids}` for a replay. */
  body?: unknown;
  /** publishOps calls made at the same instant (fault injection: concurrent triggers); all but one get 409. */
  concurrentCalls?: number;
}

/**
 * One scheduler tick on the local stack: calls publishOps over HTTP like Cloud Scheduler, then
 * follows the batch through the chain until it is MERGED or FAILED, timing each stage.
 */
export async function runCycle(stack: LocalStack, options: CycleOptions = {}): Promise<CycleReport> {
  const started = performance.now();
  const marks: Partial<Record<'published' | 'merged', number>> = {};
  // Stage marks per batch (lowercased ID): the reconciler may set other batches moving in the same run.
  const batchMarks = new Map<string, Partial<Record<'collected' | 'launched' | 'pipelineDone', number>>>();
  const markOf = (batchId: string | undefined) => {
    const key = (batchId ?? '').toLowerCase();
    if (!batchMarks.has(key)) batchMarks.set(key, {});
    return batchMarks.get(key)!;
  };
  const progress: CycleProgress = { stage: 'extract and publish', idsPublished: 0, rowsMerged: 0 };
  const report = (stage?: Stage) => {
    if (stage) progress.stage = stage;
    options.onProgress?.({ ...progress });
  };
  const deadLettersBefore = stack.deadLetterCount();
  const onPublished = (event: { topic: string; data: unknown }) => {
    const data = event.data as { type?: string; batchId?: string; ids?: unknown[]; payload?: { currentState?: string; labels?: Record<string, string> } };
    if (event.topic === stack.config.idsTopic && data?.type === 'chunk') {
      progress.idsPublished += data.ids?.length ?? 0;
      report();
    } else if (event.topic === stack.config.batchesTopic) {
      markOf(data?.batchId).collected ??= performance.now();
      report('stage IDs and launch');
    } else if (event.topic === DATAFLOW_EVENTS) {
      const state = data?.payload?.currentState ?? '';
      if (state === 'JOB_STATE_QUEUED') {
        markOf(data?.payload?.labels?.batch_id).launched ??= performance.now();
        report('pipeline');
      } else if (isTerminal(state)) {
        markOf(data?.payload?.labels?.batch_id).pipelineDone ??= performance.now();
        report('merge');
      }
    }
  };
  stack.bus.events.on('published', onPublished);
  try {
    report();
    const init: RequestInit = options.body === undefined ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(options.body) };
    const answers = await Promise.all(
      Array.from({ length: Math.max(1, options.concurrentCalls ?? 1) }, async () => {
        const response = await fetch(stack.urls.publishOps, init);
        return { status: response.status, body: (await response.json().catch(() => ({}))) as PublishResponse & { error?: string } };
      }),
    );
    marks.published = performance.now();
    const refused = answers.filter((a) => a.status === 409).length;
    const answer = answers.find((a) => a.status === 200) ?? answers.find((a) => a.status !== 409) ?? answers[0];
    const body = answer.body;
    if (answer.status !== 200) {
      return { ok: false, outcome: 'failed', error: body.error ?? `publishOps answered ${answer.status}`, httpStatus: answer.status, idCount: 0, chunkCount: 0, deadLetters: stack.deadLetterCount() - deadLettersBefore, refused: answers.length > 1 ? refused : 0 };
    }
    const reconciled = body.reconciled;
    const replay = 'replay' in body ? body.replay : undefined;
    const catchUp = 'catchUp' in body ? body.catchUp : undefined;
    if (body.status !== 'sealed') {
      report('done');
      return {
        ok: true,
        outcome: body.status,
        watermark: 'watermark' in body ? body.watermark : undefined,
        window: 'window' in body ? body.window : undefined,
        rejected: 'rejected' in body ? body.rejected : undefined,
        beyondMaxAge: 'beyondMaxAge' in body ? body.beyondMaxAge : undefined,
        idCount: 0,
        chunkCount: 0,
        deadLetters: 0,
        reconciled,
        refused,
        replay,
        catchUp,
      };
    }
    report('collect');
    const base = {
      batchId: body.batchId,
      window: 'window' in body ? body.window : undefined,
      watermark: 'watermark' in body ? body.watermark : undefined,
      idCount: body.idCount,
      chunkCount: body.chunkCount,
      rejected: 'rejected' in body ? body.rejected : undefined,
      beyondMaxAge: 'beyondMaxAge' in body ? body.beyondMaxAge : undefined,
      reconciled,
      refused,
      replay,
      catchUp,
    };
    let state: BatchState | undefined;
    try {
      state = await waitForBatch(stack, body.batchId, options);
    } catch (error) {
      if (!(error instanceof DamagedStateError)) throw error;
      return { ok: false, outcome: 'failed', error: error.message, ...base, deadLetters: stack.deadLetterCount() - deadLettersBefore };
    }
    const deadLetters = stack.deadLetterCount() - deadLettersBefore;
    if (state?.status === 'MERGED') {
      marks.merged = performance.now();
      progress.rowsMerged = (state.merge?.inserted ?? 0) + (state.merge?.updated ?? 0);
      report('done');
    }
    const at = (mark: number | undefined, fallback: number) => mark ?? fallback;
    const own = markOf(body.batchId);
    const t1 = at(marks.published, started);
    const t2 = Math.max(t1, at(own.collected, t1));
    const t3 = Math.max(t2, at(own.launched, t2));
    const t4 = Math.max(t3, at(own.pipelineDone, t3));
    const t5 = Math.max(t4, at(marks.merged, performance.now()));
    const stagesMs: StageTimes = { publish: t1 - started, collect: t2 - t1, launch: t3 - t2, pipeline: t4 - t3, merge: t5 - t4, total: t5 - started };
    const common = { ...base, jobName: state?.jobName, jobState: state?.jobState, state: state ?? undefined, stagesMs, deadLetters };
    if (state?.status === 'MERGED') return { ok: deadLetters === 0, outcome: 'merged', ...common, error: deadLetters ? `${deadLetters} message(s) dead-lettered` : undefined };
    if (state?.status === 'FAILED') return { ok: false, outcome: 'failed', error: state.reason ?? 'the batch failed', ...common };
    return { ok: false, outcome: 'stuck', error: `the batch stopped moving in state ${state?.status ?? 'unknown'}${deadLetters ? ` (${deadLetters} message(s) dead-lettered)` : ''}`, ...common };
  } finally {
    stack.bus.events.off('published', onPublished);
  }
}

async function waitForBatch(stack: LocalStack, batchId: string, options: CycleOptions): Promise<BatchState | undefined> {
  const batches = new BatchStore(stack.store);
  const deadline = performance.now() + (options.timeoutMs ?? 30 * 60_000);
  const quietLimit = options.quietMs ?? 2_000;
  let quietSince: number | undefined;
  for (;;) {
    const current = (await batches.readState(batchId))?.state;
    if (current && (current.status === 'MERGED' || current.status === 'FAILED')) return current;
    const now = performance.now();
    if (stack.quiet()) quietSince ??= now;
    else quietSince = undefined;
    if ((quietSince !== undefined && now - quietSince > quietLimit) || now > deadline) return current;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
