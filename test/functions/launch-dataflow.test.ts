import assert from 'node:assert/strict';
import type { CloudEvent } from '@google-cloud/functions-framework';
import { makeLaunchDataflow } from '../../functions/launch-dataflow';
import { jobNameFor, paths, type BatchStatus } from '../../shared/batch';
import { ChainError } from '../../shared/errors';
import { loadSchema } from '../../shared/schema';
import { TEST_BATCH_ID, makeFakes, pubsubEvent, rawBase64, seedBatch, stateOf, type Fakes } from '../support/fakes';

const SLUG = '20260115t102000z_abc123';
const BATCHES_TOPIC = 'consolidation-batches';

function announcement(attempt = 1, messageId = 'm-batch-1', batchId = TEST_BATCH_ID): CloudEvent<unknown> {
  return pubsubEvent({ type: 'batch', batchId, attempt }, { messageId, topic: BATCHES_TOPIC, attributes: { type: 'batch', batchId } });
}

async function launch(f: Fakes, event: CloudEvent<unknown> = announcement()): Promise<void> {
  await makeLaunchDataflow(f.deps)(event);
}

describe('launchDataflow', () => {
  it('loads the IDs, launches the job with the batch\'s read bounds as literals and records LAUNCHED', async () => {
    const f = makeFakes();
    await seedBatch(f.store, { status: 'COLLECTED' });
    await launch(f);

    // 1. The IDs, loaded from the chunk files with a deterministic load job ID.
    assert.equal(f.warehouse.loads.length, 1);
    const load = f.warehouse.loads[0];
    assert.deepEqual(load.table, { dataset: 'consolidation_staging', table: `ids_${SLUG}` });
    assert.deepEqual(load.uris, [0, 1, 2].map((n) => `gs://state-bucket/${paths.chunk(TEST_BATCH_ID, n)}`));
    assert.deepEqual(load.schema, loadSchema('batch_ids'));
    assert.equal(load.jobId, `consolidation_ids_${SLUG}_a1`);

    // 2. No query: the bounds travel in the launch, as literals.
    assert.deepEqual(f.warehouse.statements, []);

    // 3. The launch: as of the window's end (10:20), back to its start (09:45) minus the default OPERATION_MAX_AGE (30d).
    assert.equal(f.launcher.requests.length, 1);
    assert.deepEqual(f.launcher.requests[0], {
      jobName: jobNameFor(TEST_BATCH_ID, 1),
      batchId: TEST_BATCH_ID,
      attempt: 1,
      labels: { pipeline: 'consolidation', batch_id: '20260115t102000z-abc123', attempt: '1' },
      variables: {
        as_of: "TIMESTAMP '2026-01-15 10:20:00.000000+00:00'",
        read_after: "TIMESTAMP '2025-12-16 09:45:00.000000+00:00'",
        ids_table: `"consolidation_staging"."ids_${SLUG}"`,
        ussd_table: '"main"."ussd_operations"',
        transactions_table: '"main"."transactiongu"',
        services_table: '"main"."services"',
        agents_table: '"main"."agents"',
        output_table: `consolidation_staging.enriched_${SLUG}_a1`,
      },
    });
    assert.equal(f.launcher.requests[0].jobName, 'consolidation-20260115t102000z-abc123-a1');
    assert.deepEqual(f.journal, ['load', 'launch'], 'the IDs are staged before the job starts');

    // 4. The state.
    const state = stateOf(f.store);
    assert.equal(state?.status, 'LAUNCHED');
    assert.equal(state?.jobId, 'job-1');
    assert.equal(state?.jobName, jobNameFor(TEST_BATCH_ID, 1));
    assert.equal(state?.attempt, 1);
    assert.deepEqual(state?.history.map((h) => h.status), ['SEALED', 'COLLECTED', 'LAUNCHED']);
    const info = f.logger.at('INFO').find((e) => /launched/.test(e.message));
    assert.equal(info?.fields.batchId, TEST_BATCH_ID);
    assert.equal(info?.fields.jobId, 'job-1');
    assert.deepEqual(f.logger.at('ERROR'), []);
  });

  const recorded = [
    { name: 'a replay: as of the manifest\'s asOf, back to its readAfter', manifest: { asOf: '2026-01-15T11:00:00.000Z', readAfter: '2025-06-01T00:00:00.000Z' }, env: {}, as_of: "TIMESTAMP '2026-01-15 11:00:00.000000+00:00'", read_after: "TIMESTAMP '2025-06-01 00:00:00.000000+00:00'" },
    { name: 'a manifest without readAfter (older batches): from OPERATION_MAX_AGE', manifest: {}, env: { OPERATION_MAX_AGE: '2d' }, as_of: "TIMESTAMP '2026-01-15 10:20:00.000000+00:00'", read_after: "TIMESTAMP '2026-01-13 09:45:00.000000+00:00'" },
  ];
  for (const c of recorded) {
    it(`bounds of ${c.name}`, async () => {
      const f = makeFakes(c.env);
      await seedBatch(f.store, { status: 'COLLECTED' });
      const manifest = JSON.parse((await f.store.read(paths.manifest(TEST_BATCH_ID)))!.data);
      f.store.put(paths.manifest(TEST_BATCH_ID), JSON.stringify({ ...manifest, ...c.manifest }));
      await launch(f);
      assert.equal(f.launcher.requests[0].variables.as_of, c.as_of);
      assert.equal(f.launcher.requests[0].variables.read_after, c.read_after);
    });
  }

  it('configured names flow into the tables and variables', async () => {
    const f = makeFakes({ STAGING_DATASET: 'stage', SOURCE_DATASET: 'src', USSD_TABLE: 'ops', TRANSACTIONS_TABLE: 'txn' });
    await seedBatch(f.store, { status: 'COLLECTED' });
    await launch(f);
    assert.deepEqual(f.warehouse.loads[0].table, { dataset: 'stage', table: `ids_${SLUG}` });
    const variables = f.launcher.requests[0].variables;
    assert.equal(variables.ussd_table, '"src"."ops"');
    assert.equal(variables.transactions_table, '"src"."txn"');
    assert.equal(variables.output_table, `stage.enriched_${SLUG}_a1`);
  });

  describe('which states launch', () => {
    const cases: { name: string; status: BatchStatus; stateAttempt?: number; attempt: number; launches: boolean; finalStatus: BatchStatus }[] = [
      { name: 'COLLECTED, attempt 1 -> launches', status: 'COLLECTED', attempt: 1, launches: true, finalStatus: 'LAUNCHED' },
      { name: 'SEALED (announcement overtook the COLLECTED write) -> launches', status: 'SEALED', attempt: 1, launches: true, finalStatus: 'LAUNCHED' },
      { name: 'redelivery after LAUNCHED -> launches nothing', status: 'LAUNCHED', stateAttempt: 1, attempt: 1, launches: false, finalStatus: 'LAUNCHED' },
      { name: 'after MERGED -> launches nothing', status: 'MERGED', stateAttempt: 1, attempt: 1, launches: false, finalStatus: 'MERGED' },
      { name: 'MERGED, even for a later attempt -> launches nothing', status: 'MERGED', stateAttempt: 1, attempt: 2, launches: false, finalStatus: 'MERGED' },
      { name: 'FAILED attempt 1, announced again as attempt 1 -> launches nothing', status: 'FAILED', stateAttempt: 1, attempt: 1, launches: false, finalStatus: 'FAILED' },
      { name: 'FAILED attempt 1, announced as attempt 2 -> relaunches', status: 'FAILED', stateAttempt: 1, attempt: 2, launches: true, finalStatus: 'LAUNCHED' },
      { name: 'LAUNCHED attempt 2, stale announcement of attempt 1 -> nothing', status: 'LAUNCHED', stateAttempt: 2, attempt: 1, launches: false, finalStatus: 'LAUNCHED' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = makeFakes();
        await seedBatch(f.store, { status: c.status, state: c.stateAttempt === undefined ? {} : { attempt: c.stateAttempt, jobName: 'consolidation-earlier', jobId: 'job-earlier' } });
        await launch(f, announcement(c.attempt));
        assert.equal(f.launcher.requests.length, c.launches ? 1 : 0);
        assert.equal(f.warehouse.loads.length, c.launches ? 1 : 0);
        assert.equal(f.warehouse.statements.length, 0, "no query: the bounds go in the launch");
        const state = stateOf(f.store);
        assert.equal(state?.status, c.finalStatus);
        if (c.launches) {
          assert.equal(f.launcher.requests[0].jobName, jobNameFor(TEST_BATCH_ID, c.attempt));
          assert.equal(f.launcher.requests[0].labels.attempt, String(c.attempt));
          assert.equal(f.warehouse.loads[0].jobId, `consolidation_ids_${SLUG}_a${c.attempt}`);
          assert.equal(f.launcher.requests[0].variables.output_table, `consolidation_staging.enriched_${SLUG}_a${c.attempt}`, 'each attempt writes its own table: the sink appends');
          assert.equal(state?.attempt, c.attempt);
          assert.equal(state?.jobId, 'job-1');
        } else {
          assert.equal(state?.jobId, 'job-earlier', 'the recorded job is untouched');
        }
        assert.deepEqual(f.logger.at('ERROR'), []);
      });
    }

    it('the same announcement delivered twice launches once', async () => {
      const f = makeFakes();
      await seedBatch(f.store, { status: 'COLLECTED' });
      await launch(f, announcement(1, 'm-1'));
      await launch(f, announcement(1, 'm-1'));
      await launch(f, announcement(1, 'm-2'));
      assert.equal(f.launcher.requests.length, 1);
      assert.equal(stateOf(f.store)?.status, 'LAUNCHED');
    });
  });

  describe('adoption of a running job (409)', () => {
    it('an adopted job is recorded as the batch\'s job', async () => {
      const f = makeFakes();
      await seedBatch(f.store, { status: 'COLLECTED' });
      f.launcher.answerAdopted('2026-01-15_02_20_00-123456789');
      await launch(f);
      const state = stateOf(f.store);
      assert.equal(state?.status, 'LAUNCHED');
      assert.equal(state?.jobId, '2026-01-15_02_20_00-123456789');
      assert.equal(state?.jobName, jobNameFor(TEST_BATCH_ID, 1));
      assert.ok(f.logger.at('INFO').some((e) => /Adopted/.test(e.message) && e.fields.jobId === '2026-01-15_02_20_00-123456789'));
    });

    it('a crash after the launch, before LAUNCHED is written: the redelivery adopts the job, launching nothing new', async () => {
      const f = makeFakes();
      await seedBatch(f.store, { status: 'COLLECTED' });
      f.store.failOn('replace', paths.state(TEST_BATCH_ID), new Error('503 backend error'));
      await assert.rejects(launch(f), /503/);
      assert.equal(stateOf(f.store)?.status, 'COLLECTED');
      await launch(f);
      const state = stateOf(f.store);
      assert.equal(state?.status, 'LAUNCHED');
      assert.equal(state?.jobId, 'job-1', 'the job of the first delivery');
      assert.equal(f.launcher.requests.length, 2);
      assert.equal(f.launcher.requests[1].jobName, f.launcher.requests[0].jobName, 'same deterministic name, so Dataflow answers 409');
      // The load ran under the same deterministic job ID both times, and the job got the same bounds.
      assert.equal(new Set(f.warehouse.loads.map((l) => l.jobId)).size, 1);
      assert.deepEqual(f.launcher.requests[1].variables, f.launcher.requests[0].variables);
    });
  });

  describe('bad input is logged at ERROR with its message ID and acknowledged', () => {
    const cases: { name: string; event: CloudEvent<unknown>; says: RegExp; seed?: boolean }[] = [
      { name: 'not base64', event: pubsubEvent(rawBase64('***'), { messageId: 'bad-1' }), says: /not base64/ },
      { name: 'base64 of non-JSON', event: pubsubEvent(rawBase64(Buffer.from('batch please').toString('base64')), { messageId: 'bad-2' }), says: /not JSON/ },
      { name: 'no data', event: pubsubEvent(rawBase64(''), { messageId: 'bad-3' }), says: /no data/ },
      { name: 'attempt 0', event: pubsubEvent({ type: 'batch', batchId: TEST_BATCH_ID, attempt: 0 }, { messageId: 'bad-4' }), says: /attempt/, seed: true },
      { name: 'no attempt', event: pubsubEvent({ type: 'batch', batchId: TEST_BATCH_ID }, { messageId: 'bad-5' }), says: /attempt/, seed: true },
      { name: 'a chunk message on the batches topic', event: pubsubEvent({ type: 'chunk', batchId: TEST_BATCH_ID, chunk: 0, ids: ['a'] }, { messageId: 'bad-6' }), says: /wrong shape/, seed: true },
      { name: 'an extra field', event: pubsubEvent({ type: 'batch', batchId: TEST_BATCH_ID, attempt: 1, force: true }, { messageId: 'bad-7' }), says: /force/, seed: true },
      { name: 'a bad batch ID', event: pubsubEvent({ type: 'batch', batchId: 'batch-1', attempt: 1 }, { messageId: 'bad-8' }), says: /batchId/ },
      { name: 'an unknown batch', event: announcement(1, 'bad-9', '20260115T102000Z-ffffff'), says: /unknown batch/, seed: true },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = makeFakes();
        if (c.seed) await seedBatch(f.store, { status: 'COLLECTED' });
        await launch(f, c.event); // resolves: acknowledged, not retried
        const errors = f.logger.at('ERROR');
        assert.equal(errors.length, 1);
        assert.equal(errors[0].fields.messageId, c.event.id);
        assert.match(errors[0].message, c.says);
        assert.match(errors[0].message, /acknowledged and set aside/);
        assert.equal(f.launcher.requests.length, 0);
        assert.equal(f.warehouse.loads.length + f.warehouse.statements.length, 0);
        if (c.seed) assert.equal(stateOf(f.store)?.status, 'COLLECTED');
      });
    }

    it('a batch with a manifest but no state', async () => {
      const f = makeFakes();
      await seedBatch(f.store, { status: 'COLLECTED' });
      await f.store.delete(paths.state(TEST_BATCH_ID));
      await launch(f, announcement(1, 'm-nostate'));
      assert.equal(f.logger.at('ERROR').length, 1);
      assert.equal(f.logger.at('ERROR')[0].fields.messageId, 'm-nostate');
      assert.equal(f.launcher.requests.length, 0);
    });
  });

  describe('failures that a retry can fix -> throws (Pub/Sub redelivers)', () => {
    const cases: { name: string; arrange: (f: Fakes) => Promise<void>; says: RegExp }[] = [
      { name: 'missing chunks', arrange: async (f) => void (await seedBatch(f.store, { status: 'COLLECTED', storeChunks: [0, 2] })), says: /2 of 3 chunks/ },
      { name: 'no chunk at all', arrange: async (f) => void (await seedBatch(f.store, { status: 'COLLECTED', storeChunks: false })), says: /0 of 3 chunks/ },
      {
        name: 'a stray chunk beyond the count in place of a missing one',
        arrange: async (f) => {
          await seedBatch(f.store, { status: 'COLLECTED', storeChunks: [0, 1] });
          f.store.put(paths.chunk(TEST_BATCH_ID, 9), '{"operation_id":"op-stray"}\n');
        },
        says: /2 of 3 chunks/,
      },
      {
        name: 'the load job fails',
        arrange: async (f) => {
          await seedBatch(f.store, { status: 'COLLECTED' });
          f.warehouse.failNext('load', new Error('Access Denied: bucket'));
        },
        says: /Access Denied/,
      },
      {
        name: 'the launch fails',
        arrange: async (f) => {
          await seedBatch(f.store, { status: 'COLLECTED' });
          f.launcher.failNext(new Error('RESOURCE_EXHAUSTED: quota'));
        },
        says: /quota/,
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = makeFakes();
        await c.arrange(f);
        await assert.rejects(launch(f), (error: Error) => {
          assert.match(error.message, c.says);
          if (error instanceof ChainError) assert.equal(error.context.batchId, TEST_BATCH_ID);
          return true;
        });
        assert.equal(stateOf(f.store)?.status, 'COLLECTED', 'nothing recorded');
      });
    }

    it('missing chunks: nothing is loaded or launched; once the chunk is there the retry launches', async () => {
      const f = makeFakes();
      const { chunks } = await seedBatch(f.store, { status: 'COLLECTED', storeChunks: [0, 1] });
      await assert.rejects(launch(f), ChainError);
      assert.equal(f.warehouse.loads.length, 0);
      assert.equal(f.launcher.requests.length, 0);
      f.store.put(paths.chunk(TEST_BATCH_ID, 2), chunks[2].map((id) => JSON.stringify({ operation_id: id })).join('\n') + '\n');
      await launch(f);
      assert.equal(stateOf(f.store)?.status, 'LAUNCHED');
    });

    it('a stray chunk file beyond the count is not loaded', async () => {
      const f = makeFakes();
      await seedBatch(f.store, { status: 'COLLECTED' });
      f.store.put(paths.chunk(TEST_BATCH_ID, 9), '{"operation_id":"op-stray"}\n');
      await launch(f);
      assert.deepEqual(f.warehouse.loads[0].uris, [0, 1, 2].map((n) => `gs://state-bucket/${paths.chunk(TEST_BATCH_ID, n)}`));
      assert.equal(stateOf(f.store)?.status, 'LAUNCHED');
    });
  });
});
