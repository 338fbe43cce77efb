import assert from 'node:assert/strict';
import { CRASH_POINTS, FaultInjector, InjectedCrash, NO_FAULTS, describeFaults, parseFaults, type CrashPoint, type FaultPlan } from '../../shared/local/faults';
import { FakeLauncher, FakeWarehouse, MemoryLogger, MemoryObjectStore, RecordingPublisher } from '../support/fakes';

const plan = (changes: Partial<FaultPlan>): FaultPlan => ({ ...NO_FAULTS, crash: [], ...changes });
const BATCH = '20260115T102000Z-abc123';

describe('fault injection', () => {
  describe('parseFaults', () => {
    const accepted: { spec: string; plan: Partial<FaultPlan> }[] = [
      { spec: '', plan: {} },
      { spec: ' , ,', plan: {} },
      { spec: 'duplicate', plan: { duplicate: true } },
      { spec: 'duplicate, reorder ,delay', plan: { duplicate: true, reorder: true, delay: true } },
      { spec: 'concurrent', plan: { concurrent: true } },
      { spec: 'crash:merge.before-mark,crash:collect.before-ack', plan: { crash: ['merge.before-mark', 'collect.before-ack'] } },
      { spec: 'job-failed', plan: { job: 'FAILED' } },
      { spec: 'job-cancelled', plan: { job: 'CANCELLED' } },
      { spec: 'job-failed-always', plan: { job: 'FAILED-ALWAYS' } },
      { spec: 'lose-status,merge-conflict', plan: { loseStatus: true, mergeConflict: true } },
      { spec: 'seed:42,reorder', plan: { seed: 42, reorder: true } },
    ];
    for (const c of accepted) {
      it(`reads ${JSON.stringify(c.spec)}`, () => {
        assert.deepEqual(parseFaults(c.spec), plan(c.plan));
      });
    }

    it('every crash point can be named', () => {
      const points = Object.keys(CRASH_POINTS) as CrashPoint[];
      assert.deepEqual(parseFaults(points.map((p) => `crash:${p}`).join(',')).crash, points);
    });

    const refused: { spec: string; unknown: string[] }[] = [
      { spec: 'duplicated', unknown: ['duplicated'] },
      { spec: 'duplicate,crash:nowhere,seed:x,reorder,Job-Failed', unknown: ['crash:nowhere', 'seed:x', 'Job-Failed'] },
      { spec: 'crash:', unknown: ['crash:'] },
      { spec: 'seed:-1', unknown: ['seed:-1'] },
    ];
    for (const c of refused) {
      it(`refuses ${JSON.stringify(c.spec)}, naming every unknown fault and listing the known ones`, () => {
        assert.throws(
          () => parseFaults(c.spec),
          (error: Error) => {
            assert.ok(error.message.startsWith(`Unknown fault(s): ${c.unknown.join(', ')}. Known: `), error.message);
            for (const known of ['duplicate', 'reorder', 'delay', 'crash:publish.before-seal', 'crash:merge.before-mark', 'job-failed-always', 'lose-status', 'merge-conflict', 'seed:N']) {
              assert.ok(error.message.includes(known), `lists ${known}`);
            }
            return true;
          },
        );
      });
    }

    it('describeFaults reads back what parseFaults read', () => {
      assert.equal(describeFaults(parseFaults('')), 'none');
      assert.equal(describeFaults(parseFaults('reorder,duplicate,crash:launch.before-record,job-cancelled,seed:3')), 'duplicate, reorder, crash:launch.before-record, job-cancelled');
    });
  });

  describe('crash points fire on the 1st, 4th, 7th... occurrence, after the step itself', () => {
    it('collect.before-ack: every chunk is stored; the 1st, 4th and 7th store then throw', async () => {
      const inner = new MemoryObjectStore();
      const logger = new MemoryLogger();
      const faults = new FaultInjector(plan({ crash: ['collect.before-ack'] }), logger);
      const store = faults.store(inner);
      const crashed: number[] = [];
      for (let n = 1; n <= 8; n++) {
        const path = `batches/${BATCH}/chunks/${String(n).padStart(6, '0')}.ndjson`;
        try {
          assert.equal(await store.create(path, `{"operation_id":"op-${n}"}\n`), true);
        } catch (error) {
          assert.ok(error instanceof InjectedCrash);
          assert.equal(error.point, 'collect.before-ack');
          crashed.push(n);
        }
        assert.ok(inner.get(path), `chunk ${n} was stored before any crash`);
      }
      assert.deepEqual(crashed, [1, 4, 7]);
      assert.equal(faults.fired['crash:collect.before-ack'], 3);
      // Objects that are not chunks neither count nor crash.
      await store.create(`batches/${BATCH}/seal.json`, '{}');
      await store.create(`batches/${BATCH}/complete`, '{}');
      assert.equal(faults.fired['crash:collect.before-ack'], 3);
      const warnings = logger.at('WARNING');
      assert.equal(warnings.length, 3);
      assert.equal(warnings[0].message, `Fault injection: ${CRASH_POINTS['collect.before-ack']}`);
      assert.equal(warnings[0].fields.fault, 'crash:collect.before-ack');
    });

    it('the crash is an InjectedCrash saying where', () => {
      const error = new InjectedCrash('merge.before-mark');
      assert.equal(error.name, 'InjectedCrash');
      assert.equal(error.message, 'Injected crash mergeOnComplete: after the MERGE, before marking the batch MERGED');
    });

    const seal = { data: { type: 'seal', batchId: BATCH, chunkCount: 1, idCount: 1 }, attributes: { type: 'seal', batchId: BATCH } };
    const chunk = { data: { type: 'chunk', batchId: BATCH, chunk: 0, ids: ['op-1'] }, attributes: { type: 'chunk' } };

    it('publish.before-seal: throws before the seal goes out (chunks are not counted)', async () => {
      const inner = new RecordingPublisher();
      const publisher = new FaultInjector(plan({ crash: ['publish.before-seal'] }), new MemoryLogger()).publisher(inner);
      await publisher.publish('ids', chunk);
      await assert.rejects(publisher.publish('ids', seal), InjectedCrash);
      assert.deepEqual(inner.messages.map((m) => (m.data as { type: string }).type), ['chunk'], 'the seal was not published');
      await publisher.publish('ids', seal);
      await publisher.publish('ids', seal);
      await assert.rejects(publisher.publish('ids', seal), InjectedCrash, 'the 4th seal crashes again');
      assert.equal(inner.messages.length, 3);
    });

    it('publish.before-watermark: the seal is published, then it throws', async () => {
      const inner = new RecordingPublisher();
      const publisher = new FaultInjector(plan({ crash: ['publish.before-watermark'] }), new MemoryLogger()).publisher(inner);
      await assert.rejects(publisher.publish('ids', seal), InjectedCrash);
      assert.deepEqual(inner.messages.map((m) => m.data), [seal.data], 'the seal was published before the crash');
      assert.equal(typeof (await publisher.publish('ids', seal)), 'string', 'the 2nd seal goes through');
    });

    it('launch.before-record: the job is launched, then it throws', async () => {
      const inner = new FakeLauncher();
      const launcher = new FaultInjector(plan({ crash: ['launch.before-record'] }), new MemoryLogger()).launcher(inner);
      const request = { jobName: 'consolidation-20260115t102000z-abc123-a1', batchId: BATCH, attempt: 1, variables: {}, labels: {} };
      await assert.rejects(launcher.launch(request), InjectedCrash);
      assert.equal(inner.requests.length, 1, 'the launch reached the job service');
      assert.deepEqual(await launcher.launch(request), { jobId: 'job-1', jobName: request.jobName, adopted: true }, 'the redelivery adopts the job');
      assert.equal(await launcher.jobState('job-1'), 'JOB_STATE_RUNNING', 'jobState passes through');
    });

    it('merge.before-mark: the MERGE ran, then it throws; other statements never crash', async () => {
      const inner = new FakeWarehouse();
      inner.mergeStats = { inserted: 3, updated: 0, deleted: 0 };
      const warehouse = new FaultInjector(plan({ crash: ['merge.before-mark'] }), new MemoryLogger()).warehouse(inner);
      const merge = { sql: 'MERGE INTO "t" AS T USING (SELECT 1) AS S ON true WHEN NOT MATCHED THEN INSERT VALUES (1)', params: {} };
      await warehouse.query({ sql: 'SELECT 1', params: {} }, { jobId: 'consolidation_params_x_a1' });
      await assert.rejects(warehouse.query(merge, { jobId: 'consolidation_merge_x_a1' }), InjectedCrash);
      assert.equal(inner.executed('merge').length, 1, 'the MERGE ran before the crash');
      // The redelivery's MERGE (same job ID) is answered from the first run and goes through.
      assert.deepEqual((await warehouse.query(merge, { jobId: 'consolidation_merge_x_a1' })).dml, { inserted: 3, updated: 0, deleted: 0 });
      assert.equal(inner.executed('merge').length, 1, 'and did not run twice');
    });
  });

  it('merge-conflict: the first run of each MERGE job fails with a concurrent-update error, before running', async () => {
    const inner = new FakeWarehouse();
    const logger = new MemoryLogger();
    const faults = new FaultInjector(plan({ mergeConflict: true }), logger);
    const warehouse = faults.warehouse(inner);
    const merge = { sql: 'MERGE INTO "t" AS T USING (SELECT 1) AS S ON true WHEN NOT MATCHED THEN INSERT VALUES (1)', params: {} };
    for (const jobId of ['consolidation_merge_a_a1', 'consolidation_merge_b_a1']) {
      await assert.rejects(warehouse.query(merge, { jobId }), /concurrent update/);
      await warehouse.query(merge, { jobId });
    }
    assert.equal(inner.executed('merge').length, 2, 'only the retries ran');
    assert.equal(faults.fired['merge-conflict'], 2);
    await warehouse.query({ sql: 'SELECT 1', params: {} }, { jobId: 'consolidation_ids_a_a1' });
    assert.equal(faults.fired['merge-conflict'], 2, 'other jobs are not touched');
  });

  describe('job faults', () => {
    const cases: { job: FaultPlan['job']; outcomes: (string | undefined)[] }[] = [
      { job: undefined, outcomes: [undefined, undefined, undefined] },
      { job: 'FAILED', outcomes: ['FAILED', undefined, undefined] },
      { job: 'CANCELLED', outcomes: ['CANCELLED', undefined, undefined] },
      { job: 'FAILED-ALWAYS', outcomes: ['FAILED', 'FAILED', 'FAILED'] },
    ];
    for (const c of cases) {
      it(`job ${c.job ?? '(none)'}: attempts 1-3 end ${c.outcomes.map((o) => o ?? 'as they run').join(', ')}`, () => {
        const faults = new FaultInjector(plan({ job: c.job }), new MemoryLogger());
        assert.deepEqual([1, 2, 3].map((attempt) => faults.jobOutcome(attempt)), c.outcomes);
      });
    }

    it('lose-status loses only the terminal event of a first attempt', () => {
      const faults = new FaultInjector(plan({ loseStatus: true }), new MemoryLogger());
      const lost = [
        ['JOB_STATE_RUNNING', 1],
        ['JOB_STATE_DONE', 1],
        ['JOB_STATE_FAILED', 1],
        ['JOB_STATE_DONE', 2],
      ].map(([state, attempt]) => faults.loseEvent(state as string, attempt as number));
      assert.deepEqual(lost, [false, true, true, false]);
      assert.equal(new FaultInjector(NO_FAULTS, new MemoryLogger()).loseEvent('JOB_STATE_DONE', 1), false);
    });
  });

  describe('delivery faults', () => {
    it('duplicate: 2 or 3 copies, the same sequence for the same seed', () => {
      const run = (seed: number) => {
        const faults = new FaultInjector(plan({ duplicate: true, seed }), new MemoryLogger());
        return Array.from({ length: 40 }, () => faults.copies());
      };
      const copies = run(7);
      assert.ok(copies.every((n) => n === 2 || n === 3));
      assert.ok(copies.includes(2) && copies.includes(3), 'both happen');
      assert.deepEqual(run(7), copies, 'reproducible');
      assert.notDeepEqual(run(8), copies, 'another seed, another run');
      assert.equal(new FaultInjector(NO_FAULTS, new MemoryLogger()).copies(), 1);
    });

    it('reorder: any queued delivery may go next; one queued, or no fault, is the first', () => {
      const faults = new FaultInjector(plan({ reorder: true, seed: 3 }), new MemoryLogger());
      const picks = Array.from({ length: 50 }, () => faults.pick(5));
      assert.ok(picks.every((i) => Number.isInteger(i) && i >= 0 && i < 5));
      assert.ok(new Set(picks).size > 1 && picks.some((i) => i > 0));
      assert.equal(faults.pick(1), 0);
      assert.equal(new FaultInjector(NO_FAULTS, new MemoryLogger()).pick(5), 0);
    });

    it('delay: holdFirst follows the plan; each held delivery is counted', () => {
      const faults = new FaultInjector(plan({ delay: true }), new MemoryLogger());
      assert.equal(faults.holdFirst(), true);
      faults.noteHeld();
      faults.noteHeld();
      assert.equal(faults.fired.delay, 2);
      assert.equal(new FaultInjector(NO_FAULTS, new MemoryLogger()).holdFirst(), false);
    });
  });

  it('with no fault the decorated ports behave as the ports themselves', async () => {
    const faults = new FaultInjector(NO_FAULTS, new MemoryLogger());
    assert.equal(faults.active, false);
    const store = faults.store(new MemoryObjectStore());
    for (let n = 0; n < 4; n++) assert.equal(await store.create(`batches/${BATCH}/chunks/${n}.ndjson`, 'x'), true);
    const publisher = faults.publisher(new RecordingPublisher());
    await publisher.publish('ids', { data: { type: 'seal' } });
    assert.deepEqual(faults.fired, {});
    assert.equal(new FaultInjector(plan({ reorder: true }), new MemoryLogger()).active, true);
  });
});
