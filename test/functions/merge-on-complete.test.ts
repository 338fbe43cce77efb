import assert from 'node:assert/strict';
import type { CloudEvent } from '@google-cloud/functions-framework';
import { creationRange, makeMergeOnComplete, mergeBatch, mergeJobIdFor, type MergeRunner } from '../../functions/merge-on-complete';
import type { Warehouse } from '../../shared/ports';
import { jobNameFor, paths, type BatchStatus } from '../../shared/batch';
import { ChainError } from '../../shared/errors';
import { TEST_BATCH_ID, jobStatusEvent, makeFakes, seedBatch, stateOf, type Fakes, type JobPayload } from '../support/fakes';

const SLUG = '20260115t102000z_abc123';
const MERGE_JOB_ID = `consolidation_merge_${SLUG}_a1`;
const staging = (table: string) => ({ dataset: 'consolidation_staging', table });
/** The batch's tables after attempt n: IDs and the enriched table of every attempt so far. */
const batchTablesAfter = (attempt: number) => [staging(`ids_${SLUG}`), ...Array.from({ length: attempt }, (_, n) => staging(`enriched_${SLUG}_a${n + 1}`))];
const BATCH_TABLES = batchTablesAfter(1);

function ourJob(state: string, attempt = 1, overrides: Partial<JobPayload> = {}): JobPayload {
  return {
    id: `2026-01-15_02_22_00-job${attempt}`,
    name: jobNameFor(TEST_BATCH_ID, attempt),
    currentState: state,
    labels: { pipeline: 'consolidation', batch_id: '20260115t102000z-abc123', attempt: String(attempt) },
    ...overrides,
  };
}

async function launched(f: Fakes, attempt = 1, status: BatchStatus = 'LAUNCHED'): Promise<void> {
  await seedBatch(f.store, { status, state: { attempt, jobName: jobNameFor(TEST_BATCH_ID, attempt), jobId: `2026-01-15_02_22_00-job${attempt}` } });
}

async function deliver(f: Fakes, event: CloudEvent<unknown>): Promise<void> {
  await makeMergeOnComplete(f.deps)(event);
}

/** Two creation days, two statuses: 6 operations. The MERGE inserts 4 and updates 1. */
function scriptMerge(f: Fakes): void {
  f.warehouse.profile = [
    { day: '2026-01-14', reconciliation_status: 'MATCHED', operations: 3 },
    { day: '2026-01-15', reconciliation_status: 'MATCHED', operations: 2 },
    { day: '2026-01-15', reconciliation_status: 'PENDING', operations: 1 },
  ];
  f.warehouse.mergeStats = { inserted: 4, updated: 1, deleted: 0 };
}

const EXPECTED_COUNTS = { sourceRows: 6, inserted: 4, updated: 1, unchanged: 1, statusCounts: { MATCHED: 5, PENDING: 1 } };

function nothingDone(f: Fakes, status: BatchStatus): void {
  assert.equal(f.warehouse.statements.length, 0, 'no query ran');
  assert.equal(f.warehouse.drops.length, 0, 'no table dropped');
  assert.equal(stateOf(f.store)?.status, status, 'state unchanged');
}

describe('mergeOnComplete', () => {
  it('DONE of our job -> profile, one MERGE, MERGED with its counts, batch tables dropped, batch closed', async () => {
    const f = makeFakes();
    await launched(f);
    f.store.put(paths.open(TEST_BATCH_ID), JSON.stringify({ batchId: TEST_BATCH_ID, createdAt: '2026-01-15T10:20:30.000Z' }));
    scriptMerge(f);
    f.clock.set('2026-01-15T10:41:00.000Z');
    await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE')));

    assert.deepEqual(f.warehouse.statements.map((s) => s.kind), ['profile', 'merge']);
    const [profile, merge] = f.warehouse.statements;
    assert.match(profile.sql, new RegExp(`FROM "consolidation_staging"\\."enriched_${SLUG}_a1"`));
    assert.match(merge.sql, /^MERGE INTO "consolidated_dataset"\."consolidated_table" AS T/);
    assert.match(merge.sql, new RegExp(`FROM "consolidation_staging"\\."enriched_${SLUG}_a1"`));
    assert.equal(merge.options?.jobId, MERGE_JOB_ID);
    assert.deepEqual(merge.params, {
      batch_id: { type: 'STRING', value: TEST_BATCH_ID },
      consolidated_at: { type: 'TIMESTAMP', value: '2026-01-15T10:41:00.000Z' },
      created_from: { type: 'TIMESTAMP', value: '2026-01-14T00:00:00.000Z' },
      created_to: { type: 'TIMESTAMP', value: '2026-01-16T00:00:00.000Z' },
      force: { type: 'BOOL', value: false },
    });
    assert.ok(!merge.sql.includes(TEST_BATCH_ID) && !merge.sql.includes('2026-01-14'), 'no value spliced into the SQL');
    assert.match(merge.sql, /T\.created_at >= CAST\(\$created_from AS TIMESTAMPTZ\) AND T\.created_at < CAST\(\$created_to AS TIMESTAMPTZ\)/, 'a plain range on the partitioning column');

    const state = stateOf(f.store);
    assert.equal(state?.status, 'MERGED');
    assert.deepEqual(state?.merge, EXPECTED_COUNTS);
    assert.equal(state?.mergeJobId, MERGE_JOB_ID);
    assert.equal(state?.jobState, 'JOB_STATE_DONE');
    assert.equal(state?.attempt, 1);
    assert.deepEqual(state?.history.map((h) => h.status), ['SEALED', 'LAUNCHED', 'MERGED']);
    assert.deepEqual(f.warehouse.drops, BATCH_TABLES);
    assert.deepEqual(f.store.paths('open/'), [], 'the open-batch marker is removed: the reconciler has nothing left to do');

    const info = f.logger.at('INFO').find((e) => /merged into the consolidated table/.test(e.message));
    assert.ok(info, 'the merge is logged');
    assert.equal(info.fields.batchId, TEST_BATCH_ID);
    assert.equal(info.fields.jobName, jobNameFor(TEST_BATCH_ID, 1));
    assert.equal(info.fields.inserted, 4);
    assert.deepEqual(f.logger.at('ERROR'), []);
  });

  const mergeable: { name: string; status: BatchStatus; attempt: number }[] = [
    { name: 'COLLECTED (LAUNCHED was never recorded)', status: 'COLLECTED', attempt: 1 },
    { name: 'LAUNCHED, attempt 2 (a relaunch)', status: 'LAUNCHED', attempt: 2 },
  ];
  for (const c of mergeable) {
    it(`DONE merges a batch in ${c.name}`, async () => {
      const f = makeFakes();
      await launched(f, c.attempt, c.status);
      scriptMerge(f);
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE', c.attempt)));
      assert.equal(f.warehouse.of('merge').length, 1);
      assert.equal(f.warehouse.of('merge')[0].options?.jobId, `consolidation_merge_${SLUG}_a${c.attempt}`);
      assert.equal(stateOf(f.store)?.status, 'MERGED');
      assert.equal(stateOf(f.store)?.attempt, c.attempt);
      assert.match(f.warehouse.of('merge')[0].sql, new RegExp(`FROM "consolidation_staging"\\."enriched_${SLUG}_a${c.attempt}"`), 'the attempt reads its own table');
      assert.deepEqual(f.warehouse.drops, batchTablesAfter(c.attempt), 'every attempt\'s enriched table is dropped');
    });
  }

  const forcing: { name: string; replay?: { kind: 'window' | 'ids'; requested: string }; force: boolean }[] = [
    { name: 'a scheduled batch -> not forced', force: false },
    { name: 'a window replay -> forced (same-version rows are replaced)', replay: { kind: 'window', requested: 'window (2026-01-15T08:00:00.000Z, 2026-01-15T09:00:00.000Z]' }, force: true },
    { name: 'an IDs replay -> forced', replay: { kind: 'ids', requested: '2 listed operation IDs' }, force: true },
  ];
  for (const c of forcing) {
    it(`the MERGE of ${c.name}`, async () => {
      const f = makeFakes();
      const { manifest } = await seedBatch(f.store, { status: 'LAUNCHED', state: { attempt: 1, jobName: jobNameFor(TEST_BATCH_ID, 1), jobId: '2026-01-15_02_22_00-job1' } });
      if (c.replay) f.store.put(paths.manifest(TEST_BATCH_ID), JSON.stringify({ ...manifest, replay: c.replay }));
      scriptMerge(f);
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE')));
      const [merge] = f.warehouse.of('merge');
      assert.deepEqual(merge.params.force, { type: 'BOOL', value: c.force });
      assert.equal(stateOf(f.store)?.status, 'MERGED');
    });
  }

  it('DONE with no enriched rows -> no MERGE, MERGED with zero counts, tables dropped', async () => {
    const f = makeFakes();
    await launched(f);
    f.warehouse.profile = [];
    await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE')));
    assert.deepEqual(f.warehouse.statements.map((s) => s.kind), ['profile']);
    assert.equal(stateOf(f.store)?.status, 'MERGED');
    assert.deepEqual(stateOf(f.store)?.merge, { sourceRows: 0, inserted: 0, updated: 0, unchanged: 0, statusCounts: {} });
    assert.deepEqual(f.warehouse.drops, BATCH_TABLES);
  });

  it('DONE of a job that wrote no row (no enriched table: the sink creates it with the first row) -> no query, MERGED with zero counts, WARNING', async () => {
    const f = makeFakes();
    await launched(f);
    scriptMerge(f);
    f.warehouse.absent.add(`consolidation_staging.enriched_${SLUG}_a1`);
    await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE')));
    assert.deepEqual(f.warehouse.statements, [], 'neither the profile nor the MERGE reads a table that does not exist');
    assert.equal(stateOf(f.store)?.status, 'MERGED');
    assert.deepEqual(stateOf(f.store)?.merge, { sourceRows: 0, inserted: 0, updated: 0, unchanged: 0, statusCounts: {} });
    assert.match(f.logger.at('WARNING').map((e) => e.message).join('\n'), /wrote no rows \(no table consolidation_staging\.enriched_20260115t102000z_abc123_a1\)/);
    assert.deepEqual(f.logger.at('ERROR'), []);
  });

  it('each identity has its own MERGE job IDs: the reconciler never needs the job mergeOnComplete created (BigQuery lets only a job\'s creator read it)', async () => {
    const f = makeFakes();
    await launched(f);
    scriptMerge(f);
    const creators = new Map<string, MergeRunner>();
    const as = (runner: MergeRunner): Warehouse =>
      Object.assign(Object.create(f.warehouse) as Warehouse, {
        query: async (statement: Parameters<Warehouse['query']>[0], options?: Parameters<Warehouse['query']>[1]) => {
          const creator = options?.jobId === undefined ? undefined : creators.get(options.jobId);
          if (creator !== undefined && creator !== runner) throw Object.assign(new Error(`Access Denied: Job ${options?.jobId}: the user does not have permission to read it`), { code: 403 });
          if (options?.jobId !== undefined) creators.set(options.jobId, runner);
          return f.warehouse.query(statement, options);
        },
      });
    // mergeOnComplete ran the MERGE, then died before marking the batch; its event never comes back.
    creators.set(mergeJobIdFor('mergeOnComplete', TEST_BATCH_ID, 1), 'mergeOnComplete');
    const job = { id: '2026-01-15_02_22_00-job1', name: jobNameFor(TEST_BATCH_ID, 1), currentState: 'JOB_STATE_DONE' };
    await mergeBatch({ ...f.deps, warehouse: as('reconciler') }, f.logger, TEST_BATCH_ID, 1, job, 'reconciler');
    assert.equal(stateOf(f.store)?.status, 'MERGED');
    assert.equal(stateOf(f.store)?.mergeJobId, `consolidation_reconciler_merge_${SLUG}_a1`);
    assert.notEqual(mergeJobIdFor('reconciler', TEST_BATCH_ID, 1), mergeJobIdFor('mergeOnComplete', TEST_BATCH_ID, 1));
  });

  describe('events without labels, and states as numbers', () => {
    it('DONE without labels -> the batch and attempt come from the job name, with a WARNING, and the batch is merged', async () => {
      const f = makeFakes();
      await launched(f, 2);
      scriptMerge(f);
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE', 2, { labels: undefined })));
      assert.equal(stateOf(f.store)?.status, 'MERGED');
      assert.equal(f.warehouse.of('merge')[0].options?.jobId, `consolidation_merge_${SLUG}_a2`);
      const warning = f.logger.at('WARNING').find((e) => /without labels/.test(e.message));
      assert.ok(warning, 'the fallback is logged');
      assert.deepEqual([warning.fields.batchId, warning.fields.attempt, warning.fields.jobName], [TEST_BATCH_ID, 2, jobNameFor(TEST_BATCH_ID, 2)]);
    });

    it('FAILED with empty labels -> recorded for the attempt of the job name', async () => {
      const f = makeFakes();
      await launched(f);
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_FAILED', 1, { labels: {} })));
      assert.equal(stateOf(f.store)?.status, 'FAILED');
      assert.equal(stateOf(f.store)?.attempt, 1);
    });

    const numbered: { state: unknown; status: BatchStatus }[] = [
      { state: 3, status: 'MERGED' },
      { state: '3', status: 'MERGED' },
      { state: 4, status: 'FAILED' },
      { state: 5, status: 'FAILED' },
      { state: 2, status: 'LAUNCHED' },
      { state: 11, status: 'LAUNCHED' },
    ];
    for (const c of numbered) {
      it(`currentState ${JSON.stringify(c.state)} (the enum as a number) -> ${c.status}`, async () => {
        const f = makeFakes();
        await launched(f);
        scriptMerge(f);
        await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE', 1, { currentState: c.state })));
        assert.equal(stateOf(f.store)?.status, c.status);
        assert.deepEqual(f.logger.at('ERROR'), []);
      });
    }

    it('a number that is no state -> set aside at ERROR', async () => {
      const f = makeFakes();
      await launched(f);
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE', 1, { currentState: 99 })));
      nothingDone(f, 'LAUNCHED');
      assert.match(f.logger.at('ERROR')[0].message, /currentState: not a Dataflow job state: 99/);
    });
  });

  describe('redelivery', () => {
    it('DONE delivered again after MERGED -> no second MERGE', async () => {
      const f = makeFakes();
      await launched(f);
      scriptMerge(f);
      const event = jobStatusEvent(ourJob('JOB_STATE_DONE'));
      await deliver(f, event);
      await deliver(f, event);
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE')));
      assert.equal(f.warehouse.of('merge').length, 1);
      assert.equal(f.warehouse.of('profile').length, 1);
      assert.equal(stateOf(f.store)?.status, 'MERGED');
      assert.deepEqual(stateOf(f.store)?.history.map((h) => h.status), ['SEALED', 'LAUNCHED', 'MERGED']);
    });

    it('a crash after the MERGE, before MERGED is written -> the redelivery gets the same MERGE job, merging once', async () => {
      const f = makeFakes();
      await launched(f);
      scriptMerge(f);
      f.store.failOn('replace', paths.state(TEST_BATCH_ID), new Error('503 backend error'));
      const event = jobStatusEvent(ourJob('JOB_STATE_DONE'));
      await assert.rejects(deliver(f, event), /503/);
      assert.equal(stateOf(f.store)?.status, 'LAUNCHED');
      await deliver(f, event);
      const merges = f.warehouse.of('merge');
      assert.deepEqual(merges.map((m) => m.options?.jobId), [MERGE_JOB_ID, MERGE_JOB_ID], 'the same deterministic job ID');
      assert.equal(f.warehouse.executed('merge').length, 1, 'the MERGE ran once');
      assert.equal(stateOf(f.store)?.status, 'MERGED');
      assert.deepEqual(stateOf(f.store)?.merge, EXPECTED_COUNTS);
    });

    it('two concurrent deliveries of DONE -> one MERGE runs, the batch is MERGED once', async () => {
      const f = makeFakes();
      await launched(f);
      scriptMerge(f);
      const event = jobStatusEvent(ourJob('JOB_STATE_DONE'));
      await Promise.all([deliver(f, event), deliver(f, event)]);
      assert.equal(f.warehouse.executed('merge').length, 1);
      assert.equal(stateOf(f.store)?.status, 'MERGED');
      assert.equal(stateOf(f.store)?.history.filter((h) => h.status === 'MERGED').length, 1);
    });
  });

  describe('events that are not ours, or not terminal, are ignored', () => {
    const cases: { name: string; job: JobPayload }[] = [
      { name: 'a job without labels, not named like ours', job: { id: 'j-1', name: 'nightly-export', currentState: 'JOB_STATE_DONE' } },
      { name: 'a job without labels, named almost like ours', job: { id: 'j-1', name: 'consolidation-20260115t102000z-abc12-a1', currentState: 'JOB_STATE_DONE' } },
      { name: 'a job of another pipeline named like ours', job: { id: 'j-1', name: jobNameFor(TEST_BATCH_ID, 1), currentState: 'JOB_STATE_DONE', labels: { pipeline: 'billing' } } },
      { name: 'a job of another pipeline', job: { id: 'j-2', name: 'other', currentState: 'JOB_STATE_DONE', labels: { pipeline: 'billing', batch_id: '20260115t102000z-abc123' } } },
      { name: 'a job with our batch label but no pipeline label', job: { id: 'j-3', name: 'x', currentState: 'JOB_STATE_FAILED', labels: { batch_id: '20260115t102000z-abc123' } } },
      ...['JOB_STATE_QUEUED', 'JOB_STATE_PENDING', 'JOB_STATE_RUNNING', 'JOB_STATE_CANCELLING', 'JOB_STATE_DRAINING', 'JOB_STATE_RESOURCE_CLEANING_UP', 'JOB_STATE_STOPPED', 'JOB_STATE_UNKNOWN'].map((state) => ({
        name: `our job in ${state}`,
        job: ourJob(state),
      })),
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = makeFakes();
        await launched(f);
        scriptMerge(f);
        await deliver(f, jobStatusEvent(c.job));
        nothingDone(f, 'LAUNCHED');
        assert.deepEqual(f.logger.entries.filter((e) => e.severity === 'ERROR' || e.severity === 'WARNING'), []);
      });
    }
  });

  describe('a job that did not finish -> FAILED (not for good) with a reason, logged at WARNING for the reconciler to relaunch', () => {
    // MAX_ATTEMPTS is 3 by default: the WARNING says how many attempts are left; giving up is the reconciler's (at ERROR).
    const cases: { jobState: string; attempt: number; says: RegExp }[] = [
      { jobState: 'JOB_STATE_FAILED', attempt: 1, says: /The reconciler relaunches it \(2 attempt\(s\) left\)\.$/ },
      { jobState: 'JOB_STATE_CANCELLED', attempt: 1, says: /The reconciler relaunches it \(2 attempt\(s\) left\)\.$/ },
      { jobState: 'JOB_STATE_DRAINED', attempt: 1, says: /The reconciler relaunches it \(2 attempt\(s\) left\)\.$/ },
      { jobState: 'JOB_STATE_UPDATED', attempt: 1, says: /The reconciler relaunches it \(2 attempt\(s\) left\)\.$/ },
      { jobState: 'JOB_STATE_FAILED', attempt: 2, says: /The reconciler relaunches it \(1 attempt\(s\) left\)\.$/ },
      { jobState: 'JOB_STATE_FAILED', attempt: 3, says: /No attempt left: the reconciler marks it FAILED for good\.$/ },
    ];
    for (const c of cases) {
      it(`${c.jobState}, attempt ${c.attempt}`, async () => {
        const f = makeFakes();
        await launched(f, c.attempt);
        f.store.put(paths.open(TEST_BATCH_ID), JSON.stringify({ batchId: TEST_BATCH_ID, createdAt: '2026-01-15T10:20:30.000Z' }));
        await deliver(f, jobStatusEvent(ourJob(c.jobState, c.attempt)));
        const state = stateOf(f.store);
        assert.equal(state?.status, 'FAILED');
        assert.notEqual(state?.final, true, 'not FAILED for good: the reconciler decides that');
        assert.equal(state?.jobState, c.jobState);
        assert.equal(state?.attempt, c.attempt);
        assert.match(state?.reason ?? '', new RegExp(`${jobNameFor(TEST_BATCH_ID, c.attempt)}.*${c.jobState}`));
        assert.equal(f.warehouse.of('merge').length, 0);
        assert.equal(f.warehouse.drops.length, 0, 'the batch tables stay for a relaunch');
        assert.equal(f.publisher.messages.length, 0, 'mergeOnComplete relaunches nothing itself');
        assert.deepEqual(f.store.paths('open/'), [paths.open(TEST_BATCH_ID)], 'the batch stays open for the reconciler');
        assert.deepEqual(f.logger.at('ERROR'), []);
        const warnings = f.logger.at('WARNING');
        assert.equal(warnings.length, 1);
        assert.match(warnings[0].message, new RegExp(`^Batch attempt ${c.attempt} failed: Dataflow job ${jobNameFor(TEST_BATCH_ID, c.attempt)} \\(.*\\) ended in ${c.jobState}\\. `));
        assert.match(warnings[0].message, c.says);
        assert.equal(warnings[0].fields.batchId, TEST_BATCH_ID);
        assert.equal(warnings[0].fields.jobName, jobNameFor(TEST_BATCH_ID, c.attempt));
        assert.equal(warnings[0].fields.recorded, true);
      });
    }

    it('FAILED delivered twice -> recorded once', async () => {
      const f = makeFakes();
      await launched(f);
      const event = jobStatusEvent(ourJob('JOB_STATE_FAILED'));
      await deliver(f, event);
      await deliver(f, event);
      assert.equal(stateOf(f.store)?.history.filter((h) => h.status === 'FAILED').length, 1);
    });

    it('FAILED after MERGED (a stale event) -> the batch stays MERGED', async () => {
      const f = makeFakes();
      await launched(f, 1, 'MERGED');
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_FAILED')));
      assert.equal(stateOf(f.store)?.status, 'MERGED');
    });
  });

  it('an event of an earlier attempt -> nothing done', async () => {
    const f = makeFakes();
    await launched(f, 2);
    scriptMerge(f);
    for (const state of ['JOB_STATE_DONE', 'JOB_STATE_FAILED']) await deliver(f, jobStatusEvent(ourJob(state, 1)));
    nothingDone(f, 'LAUNCHED');
    assert.equal(stateOf(f.store)?.attempt, 2);
  });

  describe('bad input is logged and acknowledged', () => {
    const cases: { name: string; event: CloudEvent<unknown>; severity: 'WARNING' | 'ERROR'; says: RegExp }[] = [
      { name: 'an event of another type', event: jobStatusEvent(ourJob('JOB_STATE_DONE'), { type: 'google.cloud.pubsub.topic.v1.messagePublished', id: 'evt-1' }), severity: 'WARNING', says: /messagePublished ignored/ },
      { name: 'no payload', event: jobStatusEvent(undefined, { id: 'evt-2' }), severity: 'ERROR', says: /wrong shape/ },
      { name: 'a payload without a job ID', event: jobStatusEvent(ourJob('JOB_STATE_DONE', 1, { id: undefined }), { id: 'evt-3' }), severity: 'ERROR', says: /id/ },
      { name: 'a payload without a state', event: jobStatusEvent(ourJob('JOB_STATE_DONE', 1, { currentState: '' }), { id: 'evt-4' }), severity: 'ERROR', says: /currentState/ },
      { name: 'labels that are not strings', event: jobStatusEvent(ourJob('JOB_STATE_DONE', 1, { labels: { pipeline: 'consolidation', attempt: 1 } }), { id: 'evt-5' }), severity: 'ERROR', says: /labels/ },
      { name: 'a payload that is a string', event: jobStatusEvent('JOB_STATE_DONE' as unknown as JobPayload, { id: 'evt-6' }), severity: 'ERROR', says: /wrong shape/ },
      {
        name: 'our pipeline label without a batch_id label',
        event: jobStatusEvent(ourJob('JOB_STATE_DONE', 1, { labels: { pipeline: 'consolidation', attempt: '1' } }), { id: 'evt-7' }),
        severity: 'ERROR',
        says: /without a valid batch_id/,
      },
      {
        name: 'a bad attempt label',
        event: jobStatusEvent(ourJob('JOB_STATE_DONE', 1, { labels: { pipeline: 'consolidation', batch_id: '20260115t102000z-abc123', attempt: 'zero' } }), { id: 'evt-8' }),
        severity: 'ERROR',
        says: /attempt/,
      },
      {
        name: 'a batch that does not exist',
        event: jobStatusEvent(ourJob('JOB_STATE_DONE', 1, { labels: { pipeline: 'consolidation', batch_id: '20260115t102000z-ffffff', attempt: '1' } }), { id: 'evt-9' }),
        severity: 'ERROR',
        says: /unknown batch/,
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = makeFakes();
        await launched(f);
        scriptMerge(f);
        await deliver(f, c.event); // resolves: acknowledged
        const logged = f.logger.at(c.severity);
        assert.equal(logged.length, 1, `one ${c.severity} entry`);
        assert.match(logged[0].message, c.says);
        nothingDone(f, 'LAUNCHED');
      });
    }

    it('the error of a bad event names the event', async () => {
      const f = makeFakes();
      await deliver(f, jobStatusEvent(undefined, { id: 'evt-named' }));
      assert.equal(f.logger.at('ERROR')[0].fields.eventId, 'evt-named');
    });
  });

  describe('MERGE errors', () => {
    it('a concurrent-update error is retried under the same job ID, then succeeds', async () => {
      const f = makeFakes();
      await launched(f);
      scriptMerge(f);
      f.warehouse.failNext('merge', new Error('Could not serialize access to table consolidated_table due to concurrent update'));
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE')));
      // A failed job ID may run again; reusing it means a redelivery after a success never merges twice.
      assert.deepEqual(f.warehouse.of('merge').map((m) => m.options?.jobId), [MERGE_JOB_ID, MERGE_JOB_ID]);
      assert.equal(f.warehouse.executed('merge').length, 2, 'the retry really ran (the failed run recorded no result)');
      assert.equal(stateOf(f.store)?.status, 'MERGED');
      assert.deepEqual(stateOf(f.store)?.merge, EXPECTED_COUNTS);
      const warnings = f.logger.at('WARNING');
      assert.equal(warnings.length, 1);
      assert.match(warnings[0].message, /concurrent update; retrying/);
      assert.equal(warnings[0].fields.batchId, TEST_BATCH_ID);
    });

    const failing: { name: string; errors: Error[]; tries: number }[] = [
      { name: 'another error -> not retried', errors: [new Error('Syntax error: Unexpected keyword QUALIFY')], tries: 1 },
      { name: 'concurrent updates on every try -> gives up after 3', errors: [1, 2, 3].map(() => new Error('Transaction aborted due to concurrent update')), tries: 3 },
    ];
    for (const c of failing) {
      it(`${c.name}: throws with batchId and jobName in the error's context, nothing recorded`, async () => {
        const f = makeFakes();
        await launched(f);
        scriptMerge(f);
        for (const error of c.errors) f.warehouse.failNext('merge', error);
        await assert.rejects(deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE'))), (error: unknown) => {
          assert.ok(error instanceof ChainError);
          assert.match(error.message, /MERGE of the batch failed/);
          assert.match(error.message, new RegExp(c.errors[c.errors.length - 1].message));
          assert.equal(error.context.batchId, TEST_BATCH_ID);
          assert.equal(error.context.jobName, jobNameFor(TEST_BATCH_ID, 1));
          assert.equal(error.context.mergeJobId, MERGE_JOB_ID);
          assert.equal(error.cause, c.errors[c.errors.length - 1]);
          return true;
        });
        assert.deepEqual(f.warehouse.of('merge').map((m) => m.options?.jobId), Array(c.tries).fill(MERGE_JOB_ID), 'every try under the one job ID');
        assert.equal(stateOf(f.store)?.status, 'LAUNCHED');
        assert.equal(f.warehouse.drops.length, 0, 'tables kept for the retry');
      });
    }

    it('a failing profile query -> throws (retry), nothing recorded', async () => {
      const f = makeFakes();
      await launched(f);
      scriptMerge(f);
      f.warehouse.failNext('profile', new Error('Not found: Table enriched'));
      await assert.rejects(deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE'))), /Not found/);
      assert.equal(f.warehouse.of('merge').length, 0);
      assert.equal(stateOf(f.store)?.status, 'LAUNCHED');
    });

    it('a table that cannot be dropped -> WARNING, the batch is still MERGED', async () => {
      const f = makeFakes();
      await launched(f);
      scriptMerge(f);
      f.warehouse.failNext('drop', new Error('permission denied'));
      await deliver(f, jobStatusEvent(ourJob('JOB_STATE_DONE')));
      assert.equal(stateOf(f.store)?.status, 'MERGED');
      assert.equal(f.warehouse.drops.length, 1, "the other of the two tables");
      assert.equal(f.logger.at('WARNING').length, 1);
      assert.match(f.logger.at('WARNING')[0].message, /expires on its own/);
    });
  });
});

describe('creationRange: the MERGE\'s target filter from the batch\'s creation days', () => {
  const cases: [string[], { from: string; to: string }][] = [
    [['2026-01-15'], { from: '2026-01-15T00:00:00.000Z', to: '2026-01-16T00:00:00.000Z' }],
    [['2025-12-31', '2026-01-15'], { from: '2025-12-31T00:00:00.000Z', to: '2026-01-16T00:00:00.000Z' }],
    [['2024-02-28', '2024-02-29'], { from: '2024-02-28T00:00:00.000Z', to: '2024-03-01T00:00:00.000Z' }],
    [[], { from: '1970-01-01T00:00:00.000Z', to: '1970-01-01T00:00:00.000Z' }],
  ];
  for (const [days, range] of cases) it(`${days.join(', ') || 'no day'} -> [${range.from}, ${range.to})`, () => assert.deepEqual(creationRange(days), range));
});
