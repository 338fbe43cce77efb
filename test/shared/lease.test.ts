import assert from 'node:assert/strict';
import { ConflictError } from '../../shared/errors';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { acquireLease, leaseActive, leaseOptionsOf, leaseStanding, readLease, releaseLease, type LeaseOptions, type LeaseRecord } from '../../shared/lease';
import { FixedClock, MemoryLogger, MemoryObjectStore, makeFakes } from '../support/fakes';

const OBJECT = 'lease.json';
const NOW = '2026-01-15T10:22:00.000Z';
const TEN_MINUTES = 10 * 60_000;

function setup(durationMs = TEN_MINUTES) {
  const store = new MemoryObjectStore();
  const clock = new FixedClock(NOW);
  const logger = new MemoryLogger();
  const options: LeaseOptions = { store, clock, object: OBJECT, durationMs };
  return { store, clock, logger, options };
}

/** A lease left in the bucket by another run. */
function otherHolder(expiresAt: string, extra: Partial<LeaseRecord> = {}): LeaseRecord {
  return { holder: 'publishOps-2026-01-15T10:15:00.000Z-0a0b0c', purpose: 'publishOps', acquiredAt: '2026-01-15T10:15:00.000Z', expiresAt, ...extra };
}

async function conflictOf(promise: Promise<unknown>): Promise<ConflictError> {
  const error = await promise.then(
    () => assert.fail('expected a ConflictError'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ConflictError, `expected a ConflictError, got ${String(error)}`);
  return error;
}

describe('the extraction lease', () => {
  it('is taken on an empty bucket: a create-only object naming its holder, valid for the duration', async () => {
    const { store, options } = setup();
    const lease = await acquireLease(options, 'publishOps');
    assert.match(lease.record.holder, /^publishOps-2026-01-15T10:22:00\.000Z-[0-9a-f]{6}$/);
    assert.deepEqual({ ...lease.record, holder: 'x' }, { holder: 'x', purpose: 'publishOps', acquiredAt: NOW, expiresAt: '2026-01-15T10:32:00.000Z', host: hostname(), pid: process.pid });
    assert.deepEqual(store.getJson(OBJECT), lease.record, 'the bucket holds what the holder believes');
    assert.equal(lease.generation, store.generationOf(OBJECT));
    assert.deepEqual(store.calls.filter((c) => c.operation === 'create').map((c) => [c.path, c.result]), [[OBJECT, true]]);
  });

  it('the duration and object come from the configuration', () => {
    const f = makeFakes({ LEASE_OBJECT: 'locks/extract.json', LEASE_DURATION: '3m' });
    const options = leaseOptionsOf(f.deps);
    assert.equal(options.object, 'locks/extract.json');
    assert.equal(options.durationMs, 180_000);
    assert.equal(options.store, f.store);
    assert.equal(options.clock, f.clock);
    assert.equal(options.localHolders, true, 'the local backend probes local holders');
  });

  it('a composition root that gives a wall clock (the local stack under --now) stamps the lease with it; Google Cloud probes no process', () => {
    const f = makeFakes({ CONSOLIDATION_BACKEND: 'gcp', GCP_PROJECT: 'my-project', STATE_BUCKET: 'my-bucket', INITIAL_WATERMARK: 'beginning' });
    const wall = new FixedClock('2026-12-01T22:00:00.000Z');
    const options = leaseOptionsOf({ ...f.deps, leaseClock: wall });
    assert.equal(options.clock, wall);
    assert.equal(options.localHolders, false);
  });

  describe('a holder that is a process of this host (the local stack)', () => {
    const deadPid = () =>
      new Promise<number>((done) => {
        const child = spawn(process.execPath, ['-e', '0']);
        child.on('close', () => done(child.pid!));
      });
    const cases: { name: string; holder: () => Promise<Partial<LeaseRecord>>; localHolders: boolean; takenOver: boolean }[] = [
      { name: 'its process is gone -> taken over at once, before its expiry, and said', holder: async () => ({ host: hostname(), pid: await deadPid() }), localHolders: true, takenOver: true },
      { name: 'its process runs -> refused', holder: async () => ({ host: hostname(), pid: process.pid }), localHolders: true, takenOver: false },
      { name: 'another host\'s process (cannot be probed) -> refused', holder: async () => ({ host: `not-${hostname()}`, pid: await deadPid() }), localHolders: true, takenOver: false },
      { name: 'no process recorded (an older lease) -> refused', holder: async () => ({}), localHolders: true, takenOver: false },
      { name: 'on Google Cloud (no probing) -> refused', holder: async () => ({ host: hostname(), pid: await deadPid() }), localHolders: false, takenOver: false },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const { store, logger, options } = setup();
        const theirs = otherHolder('2026-01-15T10:30:00.000Z', await c.holder());
        store.put(OBJECT, JSON.stringify(theirs));
        const attempt = acquireLease({ ...options, localHolders: c.localHolders, logger }, 'publishOps');
        if (!c.takenOver) {
          const error = await conflictOf(attempt);
          assert.match(error.message, /^Another run holds the lease: publishOps-2026-01-15T10:15:00\.000Z-0a0b0c \(publishOps/);
          assert.equal(leaseStanding(theirs, new Date(NOW), c.localHolders), 'held');
          return;
        }
        assert.equal(leaseStanding(theirs, new Date(NOW), true), 'holder-gone');
        const lease = await attempt;
        assert.deepEqual(lease.tookOverFrom, theirs);
        assert.equal(store.getJson<LeaseRecord>(OBJECT)?.pid, process.pid);
        assert.equal(logger.at('WARNING').length, 1);
        assert.match(logger.at('WARNING')[0].message, new RegExp(`^Took over the lease of publishOps-2026-01-15T10:15:00\\.000Z-0a0b0c \\(publishOps, process ${theirs.pid} on ${hostname()}\\): that process is no longer running$`));
      });
    }
  });

  describe('a lease held by another run -> 409 naming the holder and the expiry, the lease untouched', () => {
    const cases: { name: string; expiresAt: string }[] = [
      { name: 'just taken', expiresAt: '2026-01-15T10:32:00.000Z' },
      { name: 'one millisecond left', expiresAt: '2026-01-15T10:22:00.001Z' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const { store, options } = setup();
        const theirs = otherHolder(c.expiresAt);
        store.put(OBJECT, JSON.stringify(theirs));
        const generation = store.generationOf(OBJECT);
        const error = await conflictOf(acquireLease(options, 'replay'));
        assert.equal(
          error.message,
          `Another run holds the lease: ${theirs.holder} (publishOps), taken at 2026-01-15T10:15:00.000Z, expires at ${c.expiresAt}`,
        );
        assert.deepEqual(error.context, { leaseHolder: theirs.holder, leaseExpiresAt: c.expiresAt });
        assert.equal(store.generationOf(OBJECT), generation, 'not rewritten');
        assert.deepEqual(store.getJson(OBJECT), theirs);
      });
    }
  });

  describe('a lease that no longer binds is taken over', () => {
    const cases: { name: string; record: string }[] = [
      { name: 'expired exactly now', record: JSON.stringify(otherHolder(NOW)) },
      { name: 'expired an hour ago (its holder died)', record: JSON.stringify(otherHolder('2026-01-15T09:22:00.000Z')) },
      { name: 'released before its expiry', record: JSON.stringify(otherHolder('2026-01-15T10:32:00.000Z', { releasedAt: '2026-01-15T10:16:00.000Z' })) },
      { name: 'an object that is not a lease (hand-edited)', record: 'locked by ops' },
      { name: 'JSON of another shape', record: JSON.stringify({ holder: 42 }) },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const { store, options } = setup();
        const before = store.put(OBJECT, c.record);
        const lease = await acquireLease(options, 'publishOps');
        assert.notEqual(store.generationOf(OBJECT), before);
        assert.deepEqual(store.getJson(OBJECT), lease.record);
        assert.equal(lease.record.expiresAt, '2026-01-15T10:32:00.000Z');
        assert.equal(lease.generation, store.generationOf(OBJECT));
        assert.deepEqual(store.calls.filter((c) => c.operation === 'replace').map((c) => c.result), [true], 'a generation-matched replace');
      });
    }
  });

  it('released, it is marked so (not deleted), no longer binds, and the next run takes it at once', async () => {
    const { store, clock, logger, options } = setup();
    const lease = await acquireLease(options, 'publishOps');
    clock.advance(30_000);
    await releaseLease(options, lease, logger);
    const stored = await readLease(options);
    assert.equal(stored?.holder, lease.record.holder);
    assert.equal(stored?.releasedAt, '2026-01-15T10:22:30.000Z');
    assert.equal(leaseActive(stored!, clock.now()), false);
    assert.deepEqual(logger.entries, [], 'a clean release logs nothing');
    const next = await acquireLease(options, 'reconcile');
    assert.match(next.record.holder, /^reconcile-/);
    assert.equal(store.getJson<LeaseRecord>(OBJECT)?.releasedAt, undefined);
  });

  it('released after it expired and another run took it over: WARNING, the new holder keeps it', async () => {
    const { store, clock, logger, options } = setup();
    const mine = await acquireLease(options, 'publishOps');
    clock.advance(TEN_MINUTES + 1);
    const theirs = await acquireLease(options, 'publishOps');
    await releaseLease(options, mine, logger);
    assert.deepEqual(store.getJson(OBJECT), theirs.record, 'the new holder\'s lease is not released by the old one');
    assert.equal(leaseActive(store.getJson<LeaseRecord>(OBJECT)!, clock.now()), true);
    const warnings = logger.at('WARNING');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /expired and was taken over before this run released it/);
    assert.deepEqual(warnings[0].fields, { holder: mine.record.holder, expiresAt: mine.record.expiresAt });
    // And the new holder still binds everyone else.
    const error = await conflictOf(acquireLease(options, 'replay'));
    assert.equal(error.context.leaseHolder, theirs.record.holder);
  });

  it('a release the bucket refuses is logged at WARNING and does not throw (the lease expires on its own)', async () => {
    const { store, logger, options } = setup();
    const lease = await acquireLease(options, 'publishOps');
    store.failOn('replace', OBJECT, new Error('503 Service Unavailable'));
    await releaseLease(options, lease, logger);
    const warnings = logger.at('WARNING');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /Could not release the lease; it expires on its own/);
    assert.equal(warnings[0].fields.expiresAt, lease.record.expiresAt);
    assert.equal(store.getJson<LeaseRecord>(OBJECT)?.releasedAt, undefined);
  });

  describe('two runs acquiring at the same instant -> exactly one wins, the other is told who', () => {
    const cases: { name: string; existing?: string }[] = [
      { name: 'on an empty bucket (both create)' },
      { name: 'over an expired lease (both replace the same generation)', existing: JSON.stringify(otherHolder('2026-01-15T10:00:00.000Z')) },
      { name: 'over a released lease', existing: JSON.stringify(otherHolder('2026-01-15T10:32:00.000Z', { releasedAt: '2026-01-15T10:16:00.000Z' })) },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const { store, options } = setup();
        if (c.existing) store.put(OBJECT, c.existing);
        const outcomes = await Promise.allSettled([acquireLease(options, 'publishOps'), acquireLease(options, 'publishOps'), acquireLease(options, 'replay')]);
        const won = outcomes.filter((o) => o.status === 'fulfilled');
        const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
        assert.equal(won.length, 1, 'exactly one winner');
        const winner = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLease>>>).value;
        assert.deepEqual(store.getJson(OBJECT), winner.record);
        assert.equal(lost.length, 2);
        for (const loss of lost) {
          assert.ok(loss.reason instanceof ConflictError);
          assert.equal(loss.reason.context.leaseHolder, winner.record.holder);
          assert.match(loss.reason.message, new RegExp(`expires at ${winner.record.expiresAt}`));
        }
      });
    }
  });

  describe('leaseActive', () => {
    const cases: { name: string; record: LeaseRecord; active: boolean }[] = [
      { name: 'before its expiry', record: otherHolder('2026-01-15T10:30:00.000Z'), active: true },
      { name: 'at its expiry', record: otherHolder(NOW), active: false },
      { name: 'after its expiry', record: otherHolder('2026-01-15T10:00:00.000Z'), active: false },
      { name: 'released before its expiry', record: otherHolder('2026-01-15T10:30:00.000Z', { releasedAt: '2026-01-15T10:20:00.000Z' }), active: false },
    ];
    for (const c of cases) {
      it(`${c.name} -> ${c.active ? 'binds' : 'free'}`, () => {
        assert.equal(leaseActive(c.record, new Date(NOW)), c.active);
      });
    }
  });

  it('readLease: none, unreadable and a lease with its generation', async () => {
    const { store, options } = setup();
    assert.equal(await readLease(options), undefined);
    store.put(OBJECT, '{not json');
    assert.equal(await readLease(options), undefined);
    const record = otherHolder('2026-01-15T10:30:00.000Z');
    const generation = store.put(OBJECT, JSON.stringify(record));
    assert.deepEqual(await readLease(options), { ...record, generation });
  });
});
