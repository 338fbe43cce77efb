import assert from 'node:assert/strict';
import type { CloudEvent } from '@google-cloud/functions-framework';
import { makeCollectIds } from '../../functions/collect-ids';
import { paths, type BatchState, type Manifest } from '../../shared/batch';
import { TEST_BATCH_ID, chunkFile, makeFakes, pubsubEvent, rawBase64, seedBatch, stateOf, type Fakes } from '../support/fakes';

const BATCHES_TOPIC = 'consolidation-batches';
const CHUNKS = [['op-a1', 'op-a2'], ['op-b1', 'op-b2'], ['op-c1']];
const WINDOW = { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z' };

type Step = 'c0' | 'c1' | 'c2' | 's' | 'manifest';

/**
 * The messages of the batch as publishOps publishes them. A redelivery by Pub/Sub keeps its
 * message ID; a copy published again (publishOps retrying a publish) gets a new one: `copy` > 0.
 */
function message(step: Exclude<Step, 'manifest'>, copy = 0): CloudEvent<unknown> {
  const suffix = copy > 0 ? `-copy${copy}` : '';
  if (step === 's') {
    return pubsubEvent({ type: 'seal', batchId: TEST_BATCH_ID, chunkCount: 3, idCount: 5, window: WINDOW }, { messageId: `m-seal${suffix}`, attributes: { type: 'seal', batchId: TEST_BATCH_ID } });
  }
  const n = Number(step.slice(1));
  return pubsubEvent({ type: 'chunk', batchId: TEST_BATCH_ID, chunk: n, ids: CHUNKS[n] }, { messageId: `m-chunk-${n}${suffix}`, attributes: { type: 'chunk', batchId: TEST_BATCH_ID, chunk: String(n) } });
}

/** The events of `steps`; with `republished`, the second and later deliveries of a message are copies with new message IDs. */
function deliveries(steps: Exclude<Step, 'manifest'>[], duplicates: 'redelivered' | 'republished'): CloudEvent<unknown>[] {
  const seen = new Map<string, number>();
  return steps.map((step) => {
    const copy = seen.get(step) ?? 0;
    seen.set(step, copy + 1);
    return message(step, duplicates === 'republished' ? copy : 0);
  });
}

/** The batch as publishOps leaves it before the seal goes out: manifest and state SEALED, no chunk stored. */
async function seedManifest(f: Fakes): Promise<void> {
  await seedBatch(f.store, { chunks: CHUNKS, window: WINDOW, storeChunks: false });
}

function announcements(f: Fakes) {
  return f.publisher.on(BATCHES_TOPIC);
}

function assertCollectedOnce(f: Fakes): void {
  const announced = announcements(f);
  assert.equal(announced.length, 1, `exactly one batch announcement (got ${announced.length})`);
  assert.deepEqual(announced[0].data, { type: 'batch', batchId: TEST_BATCH_ID, attempt: 1 });
  assert.deepEqual(announced[0].attributes, { type: 'batch', batchId: TEST_BATCH_ID });
  assert.equal(f.publisher.messages.length, 1, 'nothing else published');
  const state = stateOf(f.store);
  assert.equal(state?.status, 'COLLECTED');
  assert.deepEqual(state?.history.map((h) => h.status), ['SEALED', 'COLLECTED']);
  CHUNKS.forEach((ids, n) => {
    const path = paths.chunk(TEST_BATCH_ID, n);
    assert.equal(f.store.get(path), chunkFile(ids), `chunk ${n} holds one {"operation_id":...} line per ID`);
    assert.deepEqual(f.store.get(path)!.trimEnd().split('\n').map((l) => JSON.parse(l)), ids.map((operation_id) => ({ operation_id })));
    assert.equal(f.store.writes.get(path), 1, `chunk ${n} stored once`);
  });
  assert.deepEqual(f.store.paths(paths.chunks(TEST_BATCH_ID)), CHUNKS.map((_, n) => paths.chunk(TEST_BATCH_ID, n)));
  assert.ok(f.store.get(paths.complete(TEST_BATCH_ID)) !== undefined, 'complete marker written');
  assert.equal(f.store.writes.get(paths.complete(TEST_BATCH_ID)), 1, 'complete marker written once');
  assert.deepEqual(f.logger.at('ERROR'), []);
}

/** A deterministic shuffle (so that a failing order can be replayed). */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('collectIds', () => {
  describe('delivery orders: the batch is announced exactly once and ends COLLECTED', () => {
    const sequential: { name: string; steps: Step[] }[] = [
      { name: 'in order', steps: ['manifest', 'c0', 'c1', 'c2', 's'] },
      { name: 'seal first', steps: ['manifest', 's', 'c0', 'c1', 'c2'] },
      { name: 'reversed', steps: ['manifest', 's', 'c2', 'c1', 'c0'] },
      { name: 'seal in the middle', steps: ['manifest', 'c1', 's', 'c2', 'c0'] },
      { name: 'chunks before the manifest exists (publishOps still streaming)', steps: ['c2', 'c0', 'manifest', 'c1', 's'] },
      { name: 'duplicated deliveries (each 2-3 times)', steps: ['manifest', 'c0', 'c0', 's', 'c1', 'c2', 'c1', 's', 'c2', 'c0', 's'] },
      { name: 'duplicated, seal first and last', steps: ['manifest', 's', 'c2', 's', 'c2', 'c1', 'c0', 'c1', 'c0', 'c2', 's'] },
      { name: 'everything delivered three times in order', steps: ['manifest', 'c0', 'c1', 'c2', 's', 'c0', 'c1', 'c2', 's', 'c0', 'c1', 'c2', 's'] },
    ];
    for (const c of sequential) {
      for (const duplicates of ['redelivered', 'republished'] as const) {
        if (duplicates === 'republished' && new Set(c.steps).size === c.steps.length) continue;
        it(`${c.name}${new Set(c.steps).size === c.steps.length ? '' : ` (duplicates ${duplicates})`}`, async () => {
          const f = makeFakes();
          const handler = makeCollectIds(f.deps);
          const events = deliveries(c.steps.filter((s): s is Exclude<Step, 'manifest'> => s !== 'manifest'), duplicates);
          let next = 0;
          for (const step of c.steps) {
            if (step === 'manifest') await seedManifest(f);
            else await handler(events[next++]);
          }
          assertCollectedOnce(f);
        });
      }
    }

    const concurrent: { name: string; steps: Exclude<Step, 'manifest'>[] }[] = [
      { name: 'a concurrent burst (Promise.all)', steps: ['c0', 'c1', 'c2', 's'] },
      { name: 'a concurrent burst, seal first', steps: ['s', 'c0', 'c1', 'c2'] },
      { name: 'a concurrent burst with every message twice', steps: ['c0', 's', 'c1', 'c2', 'c0', 's', 'c1', 'c2'] },
      ...[1, 2, 3, 4, 5, 6, 7, 8].map((seed) => ({
        name: `a concurrent burst with duplicates, shuffled (seed ${seed})`,
        steps: shuffled<Exclude<Step, 'manifest'>>(['c0', 'c0', 'c1', 'c1', 'c1', 'c2', 'c2', 's', 's', 's'], seed),
      })),
    ];
    for (const c of concurrent) {
      it(`${c.name}: ${c.steps.join(' ')}`, async () => {
        const f = makeFakes();
        await seedManifest(f);
        const handler = makeCollectIds(f.deps);
        await Promise.all(deliveries(c.steps, 'republished').map((event) => handler(event)));
        assertCollectedOnce(f);
      });
    }

    // Pub/Sub delivers a message again while its first delivery still runs only once that
    // delivery outlived its ack deadline: the interrupted case, where announcing is at least once.
    it('concurrent deliveries of the same message ID (ack deadline expired): announced at least once, chunks stored once', async () => {
      const f = makeFakes();
      await seedManifest(f);
      const handler = makeCollectIds(f.deps);
      await Promise.all(['c0', 'c1', 'c2', 's', 's', 'c2', 'c0', 's'].map((step) => handler(message(step as Exclude<Step, 'manifest'>))));
      assert.ok(announcements(f).length >= 1);
      for (const a of announcements(f)) assert.deepEqual(a.data, { type: 'batch', batchId: TEST_BATCH_ID, attempt: 1 });
      assert.equal(stateOf(f.store)?.status, 'COLLECTED');
      CHUNKS.forEach((_, n) => assert.equal(f.store.writes.get(paths.chunk(TEST_BATCH_ID, n)), 1));
    });

    it('a chunk delivered after the announcement changes nothing', async () => {
      const f = makeFakes();
      await seedManifest(f);
      const handler = makeCollectIds(f.deps);
      for (const step of ['c0', 'c1', 'c2', 's'] as const) await handler(message(step));
      await handler(message('c1'));
      await handler(message('s'));
      assertCollectedOnce(f);
    });

    it('does not list the chunks while the seal has not arrived', async () => {
      const f = makeFakes();
      await seedManifest(f);
      const handler = makeCollectIds(f.deps);
      for (const step of ['c0', 'c1', 'c2'] as const) await handler(message(step));
      assert.equal(f.store.count('list'), 0);
      assert.equal(announcements(f).length, 0);
      assert.equal(stateOf(f.store)?.status, 'SEALED');
    });
  });

  describe('bad input is logged at ERROR with its message ID and acknowledged', () => {
    const chunk = { type: 'chunk', batchId: TEST_BATCH_ID, chunk: 0, ids: ['op-a1'] };
    const cases: { name: string; event: () => CloudEvent<unknown>; says: RegExp; seed?: boolean }[] = [
      { name: 'not base64', event: () => pubsubEvent(rawBase64('%%% not base64 %%%'), { messageId: 'bad-1' }), says: /not base64/ },
      { name: 'base64 of non-JSON', event: () => pubsubEvent(rawBase64(Buffer.from('op-a1,op-a2').toString('base64')), { messageId: 'bad-2' }), says: /not JSON/ },
      { name: 'no data', event: () => pubsubEvent(rawBase64(''), { messageId: 'bad-3' }), says: /no data/ },
      { name: 'missing ids', event: () => pubsubEvent({ type: 'chunk', batchId: TEST_BATCH_ID, chunk: 0 }, { messageId: 'bad-4' }), says: /ids/ },
      { name: 'ids not strings', event: () => pubsubEvent({ ...chunk, ids: [1, 2] }, { messageId: 'bad-5' }), says: /ids\.0/ },
      { name: 'an empty ID', event: () => pubsubEvent({ ...chunk, ids: ['op-a1', ''] }, { messageId: 'bad-6' }), says: /ids\.1/ },
      { name: 'no IDs at all', event: () => pubsubEvent({ ...chunk, ids: [] }, { messageId: 'bad-7' }), says: /ids/ },
      { name: 'negative chunk', event: () => pubsubEvent({ ...chunk, chunk: -1 }, { messageId: 'bad-8' }), says: /chunk/ },
      { name: 'fractional chunk', event: () => pubsubEvent({ ...chunk, chunk: 1.5 }, { messageId: 'bad-9' }), says: /chunk/ },
      { name: 'unknown type', event: () => pubsubEvent({ ...chunk, type: 'flush' }, { messageId: 'bad-10' }), says: /type/ },
      { name: 'extra field', event: () => pubsubEvent({ ...chunk, extra: true }, { messageId: 'bad-11' }), says: /extra/ },
      { name: 'bad batch ID', event: () => pubsubEvent({ ...chunk, batchId: '../../etc' }, { messageId: 'bad-12' }), says: /batchId/ },
      { name: 'a JSON array', event: () => pubsubEvent([chunk], { messageId: 'bad-13' }), says: /wrong shape/ },
      { name: 'a seal without a window', event: () => pubsubEvent({ type: 'seal', batchId: TEST_BATCH_ID, chunkCount: 3, idCount: 5 }, { messageId: 'bad-14' }), says: /window/ },
      {
        name: 'seal of an unknown batch (no manifest)',
        event: () => pubsubEvent({ type: 'seal', batchId: '20260115T102000Z-ffffff', chunkCount: 3, idCount: 5, window: WINDOW }, { messageId: 'bad-15' }),
        says: /unknown batch/,
      },
      {
        name: 'seal disagreeing with the manifest (chunk count)',
        event: () => pubsubEvent({ type: 'seal', batchId: TEST_BATCH_ID, chunkCount: 2, idCount: 5, window: WINDOW }, { messageId: 'bad-16' }),
        says: /disagrees with the batch manifest/,
        seed: true,
      },
      {
        name: 'seal disagreeing with the manifest (ID count)',
        event: () => pubsubEvent({ type: 'seal', batchId: TEST_BATCH_ID, chunkCount: 3, idCount: 6, window: WINDOW }, { messageId: 'bad-17' }),
        says: /disagrees with the batch manifest/,
        seed: true,
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = makeFakes();
        if (c.seed) {
          await seedBatch(f.store, { chunks: CHUNKS, window: WINDOW });
        }
        const before = f.store.paths();
        const event = c.event();
        await makeCollectIds(f.deps)(event); // resolves: the message is acknowledged, not retried
        const errors = f.logger.at('ERROR');
        assert.equal(errors.length, 1, 'one ERROR entry');
        assert.equal(errors[0].fields.messageId, (event.data as { message: { messageId: string } }).message.messageId);
        assert.match(errors[0].message, c.says);
        assert.match(errors[0].message, /acknowledged and set aside/);
        assert.deepEqual(f.store.paths(), before, 'nothing stored');
        assert.equal(f.publisher.messages.length, 0, 'nothing announced');
        if (c.seed) assert.equal(stateOf(f.store)?.status, 'SEALED');
      });
    }

    it('an event without a Pub/Sub message', async () => {
      const f = makeFakes();
      const event: CloudEvent<unknown> = { specversion: '1.0', id: 'evt-9', type: 'google.cloud.pubsub.topic.v1.messagePublished', source: 'x', data: { subscription: 's' } };
      await makeCollectIds(f.deps)(event);
      assert.equal(f.logger.at('ERROR').length, 1);
      assert.equal(f.logger.at('ERROR')[0].fields.messageId, 'evt-9');
      assert.deepEqual(f.store.paths(), []);
    });
  });

  describe('a crash between the complete marker and the announcement', () => {
    const cases: { name: string; steps: Exclude<Step, 'manifest'>[]; last: Exclude<Step, 'manifest'> }[] = [
      { name: 'the seal completes the batch', steps: ['c0', 'c1', 'c2'], last: 's' },
      { name: 'the last chunk completes the batch', steps: ['s', 'c0', 'c2'], last: 'c1' },
    ];
    for (const c of cases) {
      it(`${c.name}: the handler throws, the redelivered message announces`, async () => {
        const f = makeFakes();
        await seedManifest(f);
        const handler = makeCollectIds(f.deps);
        for (const step of c.steps) await handler(message(step));
        f.publisher.failOnTopic(BATCHES_TOPIC, 1, new Error('Pub/Sub unavailable'));

        await assert.rejects(handler(message(c.last)), /Pub\/Sub unavailable/);
        assert.equal(announcements(f).length, 0);
        assert.ok(f.store.get(paths.complete(TEST_BATCH_ID)) !== undefined, 'the marker was taken before the crash');
        assert.equal(stateOf(f.store)?.status, 'SEALED');

        await handler(message(c.last)); // Pub/Sub redelivers the unacknowledged message
        assertCollectedOnce(f);
      });
    }

    it('a failure to record COLLECTED after announcing -> throws; the redelivery announces again (at least once)', async () => {
      const f = makeFakes();
      await seedManifest(f);
      const handler = makeCollectIds(f.deps);
      for (const step of ['c0', 'c1', 'c2'] as const) await handler(message(step));
      f.store.failOn('replace', paths.state(TEST_BATCH_ID), new Error('503 backend error'));
      await assert.rejects(handler(message('s')), /503/);
      assert.equal(announcements(f).length, 1);
      await handler(message('s'));
      assert.equal(stateOf(f.store)?.status, 'COLLECTED');
      // launchDataflow is idempotent, so the second announcement costs nothing.
      assert.equal(announcements(f).length, 2);
      assert.deepEqual(announcements(f)[1].data, { type: 'batch', batchId: TEST_BATCH_ID, attempt: 1 });
    });

    it('a failure to store a chunk -> throws (redelivery), and the redelivery stores it', async () => {
      const f = makeFakes();
      await seedManifest(f);
      const handler = makeCollectIds(f.deps);
      f.store.failOn('create', paths.chunk(TEST_BATCH_ID, 1), new Error('429 rate limited'));
      await handler(message('c0'));
      await assert.rejects(handler(message('c1')), /429/);
      await handler(message('c2'));
      await handler(message('s'));
      assert.equal(announcements(f).length, 0, 'not complete while chunk 1 is missing');
      await handler(message('c1'));
      assertCollectedOnce(f);
    });
  });

  it('a chunk numbered beyond the batch\'s count does not stand in for a missing one', async () => {
    const f = makeFakes();
    await seedManifest(f);
    const handler = makeCollectIds(f.deps);
    const stray = pubsubEvent({ type: 'chunk', batchId: TEST_BATCH_ID, chunk: 7, ids: ['op-stray'] }, { messageId: 'm-stray' });
    for (const event of [message('c0'), message('c1'), stray, message('s')]) await handler(event);
    assert.equal(announcements(f).length, 0, 'chunk 2 is still missing');
    assert.equal(stateOf(f.store)?.status, 'SEALED');
    await handler(message('c2'));
    assert.equal(announcements(f).length, 1);
    assert.equal(stateOf(f.store)?.status, 'COLLECTED');
  });

  it('the stored state is a valid manifest-backed batch after collection', async () => {
    const f = makeFakes();
    await seedManifest(f);
    const handler = makeCollectIds(f.deps);
    for (const step of ['s', 'c0', 'c1', 'c2'] as const) await handler(message(step));
    const manifest = f.store.getJson<Manifest>(paths.manifest(TEST_BATCH_ID));
    const state = f.store.getJson<BatchState>(paths.state(TEST_BATCH_ID));
    assert.equal(manifest?.chunkCount, 3);
    assert.equal(state?.updatedAt, '2026-01-15T10:22:00.000Z');
    const info = f.logger.at('INFO').find((e) => /announced/.test(e.message));
    assert.equal(info?.fields.batchId, TEST_BATCH_ID);
    assert.equal(info?.fields.messageId, 'm-chunk-2');
  });
});
