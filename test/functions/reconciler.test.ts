import assert from 'node:assert/strict';
import { makePublishOps } from '../../functions/publish-ops';
import { reconcileBatches, reconcileUnderLease, type ReconcileAction, type RepairKind } from '../../functions/reconciler';
import { jobNameFor, paths, type BatchState, type BatchStatus, type Manifest } from '../../shared/batch';
import { ConflictError } from '../../shared/errors';
import type { LeaseRecord } from '../../shared/lease';
import type { JobState } from '../../shared/ports';
import { TEST_BATCH_ID, httpCall, makeFakes, seedBatch, stateOf, type Fakes } from '../support/fakes';

const IDS_TOPIC = 'ussd-operations-topic';
const BATCHES_TOPIC = 'consolidation-batches';
/** seedBatch writes the state at 10:22; STUCK_AFTER is 15m by default. */
const SEEDED_AT = '2026-01-15T10:22:00.000Z';
const STUCK = '2026-01-15T11:00:00.000Z';
const NOT_YET = '2026-01-15T10:30:00.000Z';
const WINDOW = { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z' };
const CHUNKS = [['op-a1', 'op-a2'], ['op-b1', 'op-b2'], ['op-c1']];
/** The batch a superseded one is re-read as (same window end, another suffix). */
const SUCCESSOR = '20260115T102000Z-def456';
const JOB_ID = '2026-01-15_02_22_00-job';

function openMarker(f: Fakes, batchId = TEST_BATCH_ID, createdAt = '2026-01-15T10:20:30.000Z'): void {
  f.store.put(paths.open(batchId), JSON.stringify({ batchId, createdAt }));
}

async function seed(f: Fakes, status: BatchStatus, state: Partial<BatchState> = {}, options: { storeChunks?: boolean | number[]; replay?: Manifest['replay'] } = {}) {
  const seeded = await seedBatch(f.store, { chunks: CHUNKS, window: WINDOW, status, state, storeChunks: options.storeChunks });
  if (options.replay) f.store.put(paths.manifest(TEST_BATCH_ID), JSON.stringify({ ...seeded.manifest, replay: options.replay }));
  openMarker(f);
  return seeded;
}

async function launchedAt(f: Fakes, attempt: number, jobState: JobState | undefined): Promise<void> {
  await seed(f, 'LAUNCHED', { attempt, jobName: jobNameFor(TEST_BATCH_ID, attempt), jobId: `${JOB_ID}${attempt}` });
  f.launcher.setJobState(`${JOB_ID}${attempt}`, jobState);
}

function sealed(f: Fakes): void {
  f.store.put(paths.seal(TEST_BATCH_ID), JSON.stringify({ type: 'seal', batchId: TEST_BATCH_ID, chunkCount: 3, idCount: 5, window: WINDOW }));
}

const batchMessage = (attempt: number) => ({ topic: BATCHES_TOPIC, data: { type: 'batch', batchId: TEST_BATCH_ID, attempt }, attributes: { type: 'batch', batchId: TEST_BATCH_ID } });

interface Case {
  name: string;
  setup: (f: Fakes) => Promise<void>;
  /** The clock when the reconciler runs (default: 38 minutes after the batch last moved). */
  at?: string;
  action: RepairKind;
  detail: RegExp;
  /** Every message published (topic, data, attributes), in order. */
  published: { topic: string; data: unknown; attributes?: Record<string, string> }[];
  /** The batch's state afterwards (the fields listed), or null when it must have none. */
  state?: Partial<BatchState> | null;
  /** Whether the batch's open marker is still there. */
  open: boolean;
  /** The severities logged, in order (DEBUG and INFO left out). */
  logged: ('WARNING' | 'ERROR')[];
  check?: (f: Fakes) => void;
}

const cases: Case[] = [
  // --- No manifest: the extraction that opened the batch died.
  {
    name: 'no manifest, opened long ago -> orphan removed: its chunks deleted, the marker closed',
    setup: async (f) => {
      openMarker(f, TEST_BATCH_ID, '2026-01-15T10:20:30.000Z');
      f.store.put(paths.chunk(TEST_BATCH_ID, 0), '{"operation_id":"op-a1"}\n');
      f.store.put(paths.chunk(TEST_BATCH_ID, 1), '{"operation_id":"op-b1"}\n');
    },
    action: 'orphan-removed',
    detail: /^extraction started at 2026-01-15T10:20:30\.000Z never finished; its chunks are deleted/,
    published: [],
    state: null,
    open: false,
    logged: ['WARNING'],
    check: (f) => assert.deepEqual(f.store.paths(paths.batch(TEST_BATCH_ID)), [], 'nothing of the orphan is left'),
  },
  {
    name: 'no manifest, and a marker that cannot be read -> orphan removed',
    setup: async (f) => {
      f.store.put(paths.open(TEST_BATCH_ID), 'garbage');
    },
    action: 'orphan-removed',
    detail: /^extraction started at an unknown time never finished/,
    published: [],
    state: null,
    open: false,
    logged: ['WARNING'],
  },
  {
    name: 'no manifest, opened less than STUCK_AFTER ago -> waiting (an extraction may be running)',
    at: '2026-01-15T10:30:00.000Z',
    setup: async (f) => {
      openMarker(f, TEST_BATCH_ID, '2026-01-15T10:20:30.000Z');
      f.store.put(paths.chunk(TEST_BATCH_ID, 0), '{"operation_id":"op-a1"}\n');
    },
    action: 'waiting',
    detail: /^extraction in progress$/,
    published: [],
    state: null,
    open: true,
    logged: [],
    check: (f) => assert.deepEqual(f.store.paths(paths.batch(TEST_BATCH_ID)), [paths.chunk(TEST_BATCH_ID, 0)], 'its chunk is kept'),
  },

  // --- Finished batches whose marker was left behind: closed, whatever their age.
  {
    name: 'MERGED -> marker closed',
    at: NOT_YET,
    setup: async (f) => void (await seed(f, 'MERGED')),
    action: 'closed',
    detail: /^merged$/,
    published: [],
    state: { status: 'MERGED' },
    open: false,
    logged: [],
  },
  {
    name: 'FAILED for good -> marker closed',
    at: NOT_YET,
    setup: async (f) => void (await seed(f, 'FAILED', { final: true, reason: 'gave up after 3 attempts' })),
    action: 'closed',
    detail: /^gave up after 3 attempts$/,
    published: [],
    state: { status: 'FAILED', final: true },
    open: false,
    logged: [],
  },

  // --- SEALED.
  {
    name: 'SEALED with the complete marker -> announced (attempt 1), COLLECTED',
    setup: async (f) => {
      await seed(f, 'SEALED');
      sealed(f);
      f.store.put(paths.complete(TEST_BATCH_ID), JSON.stringify({ completedAt: SEEDED_AT, messageId: 'm-seal' }));
    },
    action: 'announced',
    detail: /^complete but never announced; announced attempt 1$/,
    published: [batchMessage(1)],
    state: { status: 'COLLECTED', attempt: 0 },
    open: true,
    logged: ['WARNING'],
  },
  {
    name: 'SEALED, the seal never stored -> the seal published again from the manifest, state unchanged',
    setup: async (f) => void (await seed(f, 'SEALED', {}, { storeChunks: [0, 2] })),
    action: 'seal-republished',
    detail: /^the seal never reached collectIds; published it again from the manifest$/,
    published: [{ topic: IDS_TOPIC, data: { type: 'seal', batchId: TEST_BATCH_ID, chunkCount: 3, idCount: 5, window: WINDOW }, attributes: { type: 'seal', batchId: TEST_BATCH_ID } }],
    state: { status: 'SEALED' },
    open: true,
    logged: ['WARNING'],
  },
  {
    name: 'SEALED, seal stored, every chunk stored, never declared complete -> announced as it is (nothing re-read)',
    setup: async (f) => {
      await seed(f, 'SEALED');
      sealed(f);
    },
    action: 'announced',
    detail: /^every chunk and the seal stored, but the batch was never declared complete; announced attempt 1$/,
    published: [batchMessage(1)],
    state: { status: 'COLLECTED' },
    open: true,
    logged: ['WARNING'],
    check: (f) => assert.equal(f.warehouse.streams.length, 0, 'the window is not read again'),
  },
  {
    name: 'SEALED, seal stored, chunk 1 lost -> superseded: the window re-read as a new batch, the old one FAILED for good',
    setup: async (f) => {
      await seed(f, 'SEALED', {}, { storeChunks: [0, 2] });
      sealed(f);
      f.warehouse.changedIds = ['op-a1', 'op-a2', 'op-b1', 'op-b2', 'op-c1', 'op-d1'];
      f.deps.batchSuffix = () => 'def456';
    },
    action: 'superseded',
    detail: new RegExp(`^chunk\\(s\\) 1 never arrived; window re-read as batch ${SUCCESSOR}$`),
    published: [
      { topic: IDS_TOPIC, data: { type: 'chunk', batchId: SUCCESSOR, chunk: 0, ids: ['op-a1', 'op-a2', 'op-b1', 'op-b2', 'op-c1', 'op-d1'] } },
      { topic: IDS_TOPIC, data: { type: 'seal', batchId: SUCCESSOR, chunkCount: 1, idCount: 6, window: WINDOW } },
    ],
    state: { status: 'FAILED', final: true, reason: 'chunk(s) 1 never arrived', supersededBy: SUCCESSOR },
    open: false,
    logged: ['WARNING'],
    check: (f) => {
      const readAfter = new Date(Date.parse(WINDOW.from) - 30 * 86_400_000).toISOString();
      assert.deepEqual(f.warehouse.streams[0].statement.params, { window_from: { type: 'TIMESTAMP', value: WINDOW.from }, window_to: { type: 'TIMESTAMP', value: WINDOW.to }, read_after: { type: 'TIMESTAMP', value: readAfter } }, 'the same window');
      const successor = f.store.getJson<Manifest>(paths.manifest(SUCCESSOR));
      assert.equal(successor?.readAfter, readAfter, 'the same bounds');
      assert.deepEqual(successor?.window, WINDOW);
      assert.equal(successor?.asOf, undefined, 'read as of the same instant (the window end)');
      assert.equal(stateOf(f.store, SUCCESSOR)?.status, 'SEALED');
      assert.deepEqual(f.store.paths('open/'), [paths.open(SUCCESSOR)], 'the successor is open in its place');
    },
  },
  {
    name: 'SEALED IDs replay with a chunk lost -> gave up (the IDs exist nowhere else), ERROR asking to run it again',
    setup: async (f) => {
      await seed(f, 'SEALED', {}, { storeChunks: [1, 2], replay: { kind: 'ids', requested: '5 listed operation IDs' } });
      sealed(f);
    },
    action: 'gave-up',
    detail: /^IDs replay with chunk\(s\) 0 missing; run it again$/,
    published: [],
    state: { status: 'FAILED', final: true, reason: 'chunk(s) 0 never arrived' },
    open: false,
    logged: ['ERROR', 'WARNING'],
    check: (f) => {
      const [error] = f.logger.at('ERROR');
      assert.match(error.message, /^An IDs replay lost chunk\(s\) on the way; run the replay again$/);
      assert.deepEqual(error.fields.missingChunks, [0]);
      assert.equal(error.fields.batchId, TEST_BATCH_ID);
      assert.equal(f.warehouse.streams.length, 0);
    },
  },

  // --- COLLECTED: announced, never launched.
  {
    name: 'COLLECTED -> announced again (attempt 1), state unchanged',
    setup: async (f) => void (await seed(f, 'COLLECTED')),
    action: 'announced',
    detail: /^announced but never launched; announced attempt 1$/,
    published: [batchMessage(1)],
    state: { status: 'COLLECTED' },
    open: true,
    logged: ['WARNING'],
  },

  // --- LAUNCHED: the job service is asked what became of the job.
  {
    name: 'LAUNCHED, the job is DONE (its status event was lost) -> merged now, MERGED, marker closed',
    setup: async (f) => {
      await launchedAt(f, 1, 'JOB_STATE_DONE');
      f.warehouse.profile = [{ day: '2026-01-15', reconciliation_status: 'MATCHED', operations: 5 }];
      f.warehouse.mergeStats = { inserted: 5, updated: 0, deleted: 0 };
    },
    action: 'merged',
    detail: new RegExp(`^job ${jobNameFor(TEST_BATCH_ID, 1)} finished DONE but its status event never led to a MERGE; merged now$`),
    published: [],
    state: { status: 'MERGED', attempt: 1, jobState: 'JOB_STATE_DONE', mergeJobId: 'consolidation_reconciler_merge_20260115t102000z_abc123_a1' },
    open: false,
    logged: ['WARNING'],
    check: (f) => {
      assert.deepEqual(f.launcher.stateQueries, [`${JOB_ID}1`]);
      assert.equal(f.warehouse.executed('merge').length, 1);
      assert.equal(stateOf(f.store)?.merge?.inserted, 5);
    },
  },
  ...(['JOB_STATE_RUNNING', 'JOB_STATE_QUEUED', 'JOB_STATE_CANCELLING'] as const).map(
    (jobState): Case => ({
      name: `LAUNCHED, the job is still ${jobState} -> waiting`,
      setup: (f) => launchedAt(f, 1, jobState),
      action: 'waiting',
      detail: new RegExp(`^job ${jobNameFor(TEST_BATCH_ID, 1)} is ${jobState}$`),
      published: [],
      state: { status: 'LAUNCHED', attempt: 1 },
      open: true,
      logged: [],
    }),
  ),
  ...([
    ['JOB_STATE_FAILED', 'JOB_STATE_FAILED'],
    ['JOB_STATE_CANCELLED', 'JOB_STATE_CANCELLED'],
    [undefined, 'UNKNOWN (the job service does not know it)'],
  ] as const).map(
    ([jobState, recorded]): Case => ({
      name: `LAUNCHED attempt 1, the job ${jobState ?? 'is unknown to the job service'} -> FAILED recorded, relaunched as attempt 2`,
      setup: (f) => launchedAt(f, 1, jobState),
      action: 'relaunched',
      detail: new RegExp(`^Dataflow job ${jobNameFor(TEST_BATCH_ID, 1)} \\(${JOB_ID}1\\) ended in ${recorded.replace(/[()]/g, '\\$&')}; announced attempt 2 of 3$`),
      published: [batchMessage(2)],
      state: { status: 'FAILED', attempt: 1, jobState: recorded },
      open: true,
      logged: ['WARNING', 'WARNING'],
      check: (f) => assert.notEqual(stateOf(f.store)?.final, true),
    }),
  ),
  {
    name: 'LAUNCHED without a job ID (never recorded) -> treated as unknown: FAILED, relaunched',
    setup: async (f) => void (await seed(f, 'LAUNCHED', { attempt: 1 })),
    action: 'relaunched',
    detail: /^Dataflow job unknown \(unknown\) ended in UNKNOWN \(the job service does not know it\); announced attempt 2 of 3$/,
    published: [batchMessage(2)],
    state: { status: 'FAILED', attempt: 1 },
    open: true,
    logged: ['WARNING', 'WARNING'],
    check: (f) => assert.deepEqual(f.launcher.stateQueries, [], 'no job to ask about'),
  },
  {
    name: 'LAUNCHED attempt 3 (MAX_ATTEMPTS), the job FAILED -> FAILED for good, ERROR with the replay to run, marker closed',
    setup: (f) => launchedAt(f, 3, 'JOB_STATE_FAILED'),
    action: 'gave-up',
    detail: new RegExp(`^Dataflow job ${jobNameFor(TEST_BATCH_ID, 3)} \\(${JOB_ID}3\\) ended in JOB_STATE_FAILED after 3 attempt\\(s\\); logged at ERROR with the replay to run$`),
    published: [],
    state: { status: 'FAILED', attempt: 3, final: true, jobState: 'JOB_STATE_FAILED' },
    open: false,
    logged: ['WARNING', 'ERROR', 'WARNING'],
    check: (f) => {
      const errors = f.logger.at('ERROR');
      assert.equal(errors.length, 1);
      assert.equal(
        errors[0].message,
        `Batch FAILED for good after 3 attempt(s): Dataflow job ${jobNameFor(TEST_BATCH_ID, 3)} (${JOB_ID}3) ended in JOB_STATE_FAILED. Its 5 operations are not consolidated: fix the cause, then replay its window.`,
      );
      const { fields } = errors[0];
      assert.equal(fields.batchId, TEST_BATCH_ID);
      assert.equal(fields.replayCommand, 'consolidate replay --from 2026-01-15T09:45:00.000Z --to 2026-01-15T10:20:00.000Z');
      assert.deepEqual(fields.replayBody, WINDOW);
      assert.equal(fields.attempts, 3);
      assert.equal(fields.idCount, 5);
      assert.deepEqual(fields.window, WINDOW);
      assert.equal(fields.jobName, jobNameFor(TEST_BATCH_ID, 3));
      assert.equal(fields.manifest, paths.manifest(TEST_BATCH_ID));
    },
  },

  // --- FAILED (not for good): mergeOnComplete recorded it, the reconciler relaunches.
  {
    name: 'FAILED attempt 1 -> relaunched as attempt 2 (state left for launchDataflow to move)',
    setup: async (f) => void (await seed(f, 'FAILED', { attempt: 1, reason: 'Dataflow job x (j) ended in JOB_STATE_FAILED', jobState: 'JOB_STATE_FAILED' })),
    action: 'relaunched',
    detail: /^Dataflow job x \(j\) ended in JOB_STATE_FAILED; announced attempt 2 of 3$/,
    published: [batchMessage(2)],
    state: { status: 'FAILED', attempt: 1 },
    open: true,
    logged: ['WARNING'],
    check: (f) => assert.deepEqual(f.launcher.stateQueries, [], 'a FAILED batch needs no job lookup'),
  },
  {
    name: 'FAILED attempt 3 of 3 -> FAILED for good, ERROR with the replay command',
    setup: async (f) => void (await seed(f, 'FAILED', { attempt: 3, reason: 'Dataflow job x (j) ended in JOB_STATE_CANCELLED' })),
    action: 'gave-up',
    detail: /^Dataflow job x \(j\) ended in JOB_STATE_CANCELLED after 3 attempt\(s\); logged at ERROR with the replay to run$/,
    published: [],
    state: { status: 'FAILED', attempt: 3, final: true },
    open: false,
    logged: ['ERROR', 'WARNING'],
    check: (f) => {
      const [error] = f.logger.at('ERROR');
      assert.match(error.message, /^Batch FAILED for good after 3 attempt\(s\): Dataflow job x \(j\) ended in JOB_STATE_CANCELLED\. Its 5 operations are not consolidated/);
      assert.equal(error.fields.replayCommand, `consolidate replay --from ${WINDOW.from} --to ${WINDOW.to}`);
    },
  },
  {
    name: 'FAILED for good IDs replay -> the ERROR points at the IDs instead of a window',
    setup: async (f) => void (await seed(f, 'FAILED', { attempt: 3, reason: 'r' }, { replay: { kind: 'ids', requested: '5 listed operation IDs' } })),
    action: 'gave-up',
    detail: /^r after 3 attempt\(s\)/,
    published: [],
    state: { status: 'FAILED', final: true },
    open: false,
    logged: ['ERROR', 'WARNING'],
    check: (f) => {
      const [error] = f.logger.at('ERROR');
      assert.equal(error.fields.replayBody, undefined);
      assert.equal(error.fields.replayCommand, `the IDs are in ${paths.chunks(TEST_BATCH_ID)}`);
    },
  },

  // --- Anything that moved less than STUCK_AFTER ago is left alone.
  ...(['SEALED', 'COLLECTED', 'LAUNCHED', 'FAILED'] as const).map(
    (status): Case => ({
      name: `${status} for 8 minutes (< STUCK_AFTER) -> waiting, nothing done`,
      at: NOT_YET,
      setup: async (f) => {
        await seed(f, status, status === 'LAUNCHED' || status === 'FAILED' ? { attempt: 1, jobId: `${JOB_ID}1` } : {});
        f.launcher.setJobState(`${JOB_ID}1`, 'JOB_STATE_FAILED');
      },
      action: 'waiting',
      detail: new RegExp(`^${status} since ${SEEDED_AT}$`),
      published: [],
      state: { status },
      open: true,
      logged: [],
      check: (f) => assert.deepEqual(f.launcher.stateQueries, []),
    }),
  ),
];

describe('reconciler', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const f = makeFakes();
      await c.setup(f);
      const stateBefore = f.store.get(paths.state(TEST_BATCH_ID));
      f.clock.set(c.at ?? STUCK);
      const actions = await reconcileBatches(f.deps, f.logger);

      assert.equal(actions.length, 1);
      assert.equal(actions[0].batchId, TEST_BATCH_ID);
      assert.equal(actions[0].action, c.action, actions[0].detail);
      assert.match(actions[0].detail, c.detail);

      assert.deepEqual(
        f.publisher.messages.map((m) => ({ topic: m.topic, data: m.data, attributes: m.attributes })),
        c.published.map((p) => ({ attributes: (p.data as { type: string; batchId: string }).type === 'chunk' ? { type: 'chunk', batchId: SUCCESSOR, chunk: String((p.data as { chunk: number }).chunk) } : (p.attributes ?? { type: (p.data as { type: string }).type, batchId: (p.data as { batchId: string }).batchId }), ...p })),
      );

      const state = stateOf(f.store);
      if (c.state === null) assert.equal(state, undefined, 'no state written');
      else if (c.state) for (const [key, value] of Object.entries(c.state)) assert.deepEqual(state?.[key as keyof BatchState], value, `state.${key}`);
      if (c.action === 'waiting' || c.action === 'seal-republished') assert.equal(f.store.get(paths.state(TEST_BATCH_ID)), stateBefore, 'the state is not rewritten');

      assert.equal(f.store.paths('open/').includes(paths.open(TEST_BATCH_ID)), c.open, c.open ? 'the batch stays open' : 'the batch is closed');
      assert.deepEqual(
        f.logger.entries.filter((e) => e.severity === 'WARNING' || e.severity === 'ERROR').map((e) => e.severity),
        c.logged,
      );
      const repair = f.logger.entries.find((e) => e.message.startsWith('Reconciler: '));
      if (c.action === 'waiting' || c.action === 'closed') assert.equal(repair, undefined, 'nothing to report');
      else {
        assert.equal(repair?.severity, 'WARNING');
        assert.equal(repair?.message, `Reconciler: ${c.action}: ${actions[0].detail}`);
        assert.equal(repair?.fields.batchId, TEST_BATCH_ID);
      }
      c.check?.(f);
    });
  }

  it('walks every open batch and only those: markers of other shapes are skipped', async () => {
    const f = makeFakes();
    await seed(f, 'MERGED');
    const other = '20260115T100000Z-0f0f0f';
    openMarker(f, other, '2026-01-15T09:00:00.000Z');
    f.store.put('open/notes.txt', 'hello');
    f.store.put('open/not-a-batch.json', '{}');
    f.clock.set(STUCK);
    const actions = await reconcileBatches(f.deps, f.logger);
    assert.deepEqual(
      actions.map((a) => [a.batchId, a.action]),
      [
        [other, 'orphan-removed'],
        [TEST_BATCH_ID, 'closed'],
      ],
    );
    assert.deepEqual(f.store.paths('open/'), ['open/not-a-batch.json', 'open/notes.txt'], 'what is not a batch marker is left alone');
  });

  it('a batch it cannot repair -> action "error", ERROR logged, the other batches still repaired', async () => {
    const f = makeFakes();
    const broken = '20260115T100000Z-0f0f0f';
    openMarker(f, broken);
    f.store.put(paths.manifest(broken), '{"batchId": "truncated');
    await seed(f, 'COLLECTED');
    f.clock.set(STUCK);
    const actions = await reconcileBatches(f.deps, f.logger);
    assert.deepEqual(actions.map((a) => [a.batchId, a.action]), [
      [broken, 'error'],
      [TEST_BATCH_ID, 'announced'],
    ]);
    const [error] = f.logger.at('ERROR');
    assert.match(error.message, /^The reconciler could not repair the batch; it tries again on the next run: /);
    assert.equal(error.fields.batchId, broken);
    assert.deepEqual(f.store.paths('open/'), [paths.open(broken), paths.open(TEST_BATCH_ID)], 'the broken batch stays open');
  });

  it('a job service that cannot be reached -> "error" for that batch, nothing recorded, tried again next run', async () => {
    const f = makeFakes();
    await launchedAt(f, 1, 'JOB_STATE_DONE');
    f.launcher.failNextJobState(new Error('UNAVAILABLE: dataflow.googleapis.com'));
    f.clock.set(STUCK);
    const actions = await reconcileBatches(f.deps, f.logger);
    assert.deepEqual(actions, [{ batchId: TEST_BATCH_ID, action: 'error', detail: 'UNAVAILABLE: dataflow.googleapis.com' }]);
    assert.equal(stateOf(f.store)?.status, 'LAUNCHED', 'not marked FAILED on a lookup error');
    assert.equal(f.publisher.messages.length, 0);
  });

  it('the open batches cannot be listed -> ERROR, no action, and no throw (the run goes on)', async () => {
    const f = makeFakes();
    await seed(f, 'COLLECTED');
    f.store.failOn('list', 'open/', new Error('403 Forbidden'));
    f.clock.set(STUCK);
    assert.deepEqual(await reconcileBatches(f.deps, f.logger), []);
    assert.match(f.logger.at('ERROR')[0].message, /could not list the open batches; it tries again on the next run: 403 Forbidden/);
    assert.equal(f.publisher.messages.length, 0);
  });

  it('run twice, a repaired batch is not repaired twice (the second run waits for the relaunch)', async () => {
    const f = makeFakes();
    await launchedAt(f, 1, 'JOB_STATE_FAILED');
    f.clock.set(STUCK);
    const first = await reconcileBatches(f.deps, f.logger);
    const second = await reconcileBatches(f.deps, f.logger);
    assert.deepEqual([...first, ...second].map((a) => a.action), ['relaunched', 'waiting']);
    assert.equal(f.publisher.on(BATCHES_TOPIC).length, 1);
  });

  it('a relaunch whose launch never happens still uses up the attempts, then the batch is FAILED for good', async () => {
    const f = makeFakes();
    await launchedAt(f, 1, 'JOB_STATE_FAILED');
    const actions: ReconcileAction[] = [];
    // Each run is STUCK_AFTER later; nobody ever launches the announced attempts.
    for (const at of ['2026-01-15T11:00:00.000Z', '2026-01-15T11:20:00.000Z', '2026-01-15T11:40:00.000Z']) {
      f.clock.set(at);
      actions.push(...(await reconcileBatches(f.deps, f.logger)));
    }
    assert.deepEqual(actions.map((a) => a.action), ['relaunched', 'relaunched', 'gave-up']);
    assert.deepEqual(f.publisher.on(BATCHES_TOPIC).map((m) => (m.data as { attempt: number }).attempt), [2, 3]);
    assert.equal(stateOf(f.store)?.final, true);
    assert.equal(f.store.get(paths.open(TEST_BATCH_ID)), undefined);
  });

  describe('reconcileUnderLease (consolidate reconcile)', () => {
    it('takes the lease as "reconcile", repairs, gives the lease back', async () => {
      const f = makeFakes();
      await seed(f, 'COLLECTED');
      f.clock.set(STUCK);
      const actions = await reconcileUnderLease(f.deps);
      assert.deepEqual(actions.map((a: ReconcileAction) => a.action), ['announced']);
      const lease = f.store.getJson<LeaseRecord>('lease.json');
      assert.equal(lease?.purpose, 'reconcile');
      assert.equal(lease?.releasedAt, STUCK);
    });

    it('a lease held by a running publishOps -> ConflictError, nothing repaired', async () => {
      const f = makeFakes();
      await seed(f, 'COLLECTED');
      f.clock.set(STUCK);
      f.store.put('lease.json', JSON.stringify({ holder: 'publishOps-x', purpose: 'publishOps', acquiredAt: STUCK, expiresAt: '2026-01-15T11:10:00.000Z' }));
      await assert.rejects(reconcileUnderLease(f.deps), (e: unknown) => e instanceof ConflictError && /publishOps-x/.test(e.message));
      assert.equal(f.publisher.messages.length, 0);
    });
  });

  describe('through publishOps', () => {
    it('repairs first, reports it under "reconciled", then runs the scheduled extraction', async () => {
      const f = makeFakes({}, 'fed123');
      f.store.put('last_timestamp.txt', '2026-01-15T10:40:00.000Z');
      await seed(f, 'COLLECTED');
      f.warehouse.changedIds = ['op-z1'];
      f.clock.set(STUCK);
      const { req, res, response } = httpCall('POST');
      await makePublishOps(f.deps)(req, res);
      assert.equal(response.statusCode, 200);
      const body = response.body as { status: string; batchId: string; reconciled: ReconcileAction[] };
      assert.equal(body.status, 'sealed');
      assert.deepEqual(body.reconciled, [{ batchId: TEST_BATCH_ID, action: 'announced', detail: 'announced but never launched; announced attempt 1' }]);
      // The repair is published before the new batch's first chunk.
      assert.deepEqual(f.publisher.messages.map((m) => `${m.topic}:${(m.data as { type: string }).type}`), [`${BATCHES_TOPIC}:batch`, `${IDS_TOPIC}:chunk`, `${IDS_TOPIC}:seal`]);
      assert.equal(f.logger.at('WARNING')[0].fields.leaseHolder, f.store.getJson<LeaseRecord>('lease.json')?.holder, 'the repair is logged under the run\'s lease');
    });
  });
});
