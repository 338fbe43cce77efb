import assert from 'node:assert/strict';
import { timestampLiteral } from '../../shared/pipeline/variables';
import { makeLaunchDataflow } from '../../functions/launch-dataflow';
import { makePublishOps } from '../../functions/publish-ops';
import { parsePublishRequest, replay, type PublishRequest } from '../../functions/replay';
import { paths, type Manifest } from '../../shared/batch';
import { BadRequestError } from '../../shared/errors';
import type { LeaseRecord } from '../../shared/lease';
import { chunkFile, httpCall, makeFakes, pubsubEvent, stateOf, type Fakes } from '../support/fakes';

const WATERMARK = 'last_timestamp.txt';
const IDS_TOPIC = 'ussd-operations-topic';
/** The watermark of these tests: the scheduled runs have consolidated up to 10:00. */
const W = '2026-01-15T10:00:00.000Z';
/** A replay batch's ID sorts by the watermark it is read as of. */
const REPLAY_BATCH = '20260115T100000Z-abc123';

const SHAPES = /^The request body must be empty, \{"from": \.\.\., "to": \.\.\.\} or \{"ids": \[\.\.\.\]\} as JSON \(send Content-Type: application\/json\)$/;
const NOT_RFC3339 = 'must be an RFC 3339 timestamp such as 2026-01-15T10:00:00Z';

describe('parsePublishRequest', () => {
  const accepted: { name: string; body: unknown; request: PublishRequest }[] = [
    { name: 'no body (Cloud Scheduler)', body: undefined, request: { kind: 'scheduled' } },
    { name: 'null', body: null, request: { kind: 'scheduled' } },
    { name: 'an empty string', body: '', request: { kind: 'scheduled' } },
    { name: 'an empty raw body', body: Buffer.alloc(0), request: { kind: 'scheduled' } },
    { name: '{}', body: {}, request: { kind: 'scheduled' } },
    { name: 'a window in UTC', body: { from: '2026-01-15T08:00:00Z', to: '2026-01-15T09:00:00Z' }, request: { kind: 'replay-window', from: new Date('2026-01-15T08:00:00Z'), to: new Date('2026-01-15T09:00:00Z') } },
    {
      name: 'a window with offsets, minutes only and fractions',
      body: { from: '2026-01-15T09:00+01:00', to: '2026-01-15T09:30:00.250-00:30' },
      request: { kind: 'replay-window', from: new Date('2026-01-15T08:00:00Z'), to: new Date('2026-01-15T10:00:00.250Z') },
    },
    { name: 'a list of IDs, duplicates dropped, order kept', body: { ids: ['op-2', 'op-1', 'op-2'] }, request: { kind: 'replay-ids', ids: ['op-2', 'op-1'] } },
    { name: 'exactly REPLAY_MAX_IDS IDs', body: { ids: ['a', 'b', 'c'] }, request: { kind: 'replay-ids', ids: ['a', 'b', 'c'] } },
    { name: 'an ID of 128 characters', body: { ids: ['x'.repeat(128)] }, request: { kind: 'replay-ids', ids: ['x'.repeat(128)] } },
  ];
  for (const c of accepted) {
    it(`accepts ${c.name}`, () => {
      assert.deepEqual(parsePublishRequest(c.body, 3), c.request);
    });
  }

  const refused: { name: string; body: unknown; says: RegExp }[] = [
    { name: 'a JSON array', body: ['op-1'], says: SHAPES },
    { name: 'a string', body: 'replay please', says: SHAPES },
    { name: 'a number', body: 7, says: SHAPES },
    { name: 'a boolean', body: true, says: SHAPES },
    { name: 'a raw body that is not JSON', body: Buffer.from('from=2026-01-15'), says: /^The request body must be JSON \(send Content-Type: application\/json\)$/ },
    { name: 'an unknown field', body: { window: '1h' }, says: /^Unexpected field\(s\) in the request body: window; publishOps takes an empty body, \{"from", "to"\} or \{"ids"\}$/ },
    { name: 'from without to', body: { from: '2026-01-15T08:00:00Z' }, says: /^Bad replay body: to: Invalid input: expected string, received undefined$/ },
    { name: 'to without from', body: { to: '2026-01-15T08:00:00Z' }, says: /^Bad replay body: from: Invalid input: expected string, received undefined$/ },
    { name: 'dates without a time', body: { from: '2026-01-15', to: '2026-01-16' }, says: new RegExp(`^Bad replay body: from: ${NOT_RFC3339}; to: ${NOT_RFC3339}$`) },
    { name: 'a timestamp without a zone', body: { from: '2026-01-15T08:00:00', to: '2026-01-15T09:00:00Z' }, says: new RegExp(`^Bad replay body: from: ${NOT_RFC3339}$`) },
    { name: 'a day that does not exist (February 30th)', body: { from: '2026-02-30T00:00:00Z', to: '2026-03-05T00:00:00Z' }, says: new RegExp(`^Bad replay body: from: ${NOT_RFC3339}$`) },
    { name: 'an hour that does not exist', body: { from: '2026-01-15T25:00:00Z', to: '2026-01-16T09:00:00Z' }, says: new RegExp(`^Bad replay body: from: ${NOT_RFC3339}$`) },
    { name: 'epoch numbers', body: { from: 1768460400, to: 1768464000 }, says: /^Bad replay body: from: Invalid input: expected string, received number; to: Invalid input: expected string, received number$/ },
    { name: 'from after to', body: { from: '2026-01-15T09:00:00Z', to: '2026-01-15T08:00:00Z' }, says: /^Bad replay body: from \(2026-01-15T09:00:00Z\) must be before to \(2026-01-15T08:00:00Z\)$/ },
    { name: 'an empty window (from = to)', body: { from: '2026-01-15T09:00:00Z', to: '2026-01-15T09:00:00Z' }, says: /must be before to/ },
    { name: 'a window with an extra field', body: { from: '2026-01-15T08:00:00Z', to: '2026-01-15T09:00:00Z', force: true }, says: /^Bad replay body: .*Unrecognized key: "force"$/ },
    { name: 'ids and a window at once', body: { ids: ['op-1'], from: '2026-01-15T08:00:00Z' }, says: /^Bad replay body: .*Unrecognized key: "from"$/ },
    { name: 'an empty list of IDs', body: { ids: [] }, says: /^Bad replay body: ids: must list at least one ID$/ },
    { name: 'IDs as one string', body: { ids: 'op-1,op-2' }, says: /^Bad replay body: ids: Invalid input: expected array, received string$/ },
    { name: 'numeric IDs', body: { ids: ['op-1', 2] }, says: /^Bad replay body: ids\.1: Invalid input: expected string, received number$/ },
    { name: 'an empty ID', body: { ids: ['op-1', ''] }, says: /^Bad replay body: ids\.1: an ID must not be empty$/ },
    { name: 'createdAfter that is not RFC 3339', body: { ids: ['op-1'], createdAfter: '2026-01-15' }, says: /^Bad replay body: createdAfter: must be an RFC 3339 timestamp/ },
    { name: 'an ID of 129 characters', body: { ids: ['x'.repeat(129)] }, says: /^Bad replay body: ids\.0: an ID is at most 128 characters$/ },
    { name: 'more IDs than REPLAY_MAX_IDS', body: { ids: ['a', 'b', 'c', 'd'] }, says: /^ids lists 4 IDs; one replay takes at most 3 \(REPLAY_MAX_IDS\): split the list$/ },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, () => {
      assert.throws(
        () => parsePublishRequest(c.body, 3),
        (error: unknown) => {
          assert.ok(error instanceof BadRequestError, `a BadRequestError (400), got ${String(error)}`);
          assert.match(error.message, c.says);
          return true;
        },
      );
    });
  }
});

describe('replay', () => {
  /** Fakes with the watermark at W, or none (null: before the first run). */
  function fakes(env: Record<string, string> = {}, watermark: string | null = W): Fakes {
    const f = makeFakes(env);
    if (watermark !== null) f.store.put(WATERMARK, watermark);
    return f;
  }

  const watermark = (f: Fakes) => (f.store.get(WATERMARK) ? new Date(f.store.get(WATERMARK)!) : undefined);

  describe('a window -> one batch read as of the watermark, the watermark not moved', () => {
    const cases: { name: string; from: string; to: string; asOfInManifest: boolean }[] = [
      { name: 'a window well before the watermark', from: '2026-01-15T08:00:00.000Z', to: '2026-01-15T09:00:00.000Z', asOfInManifest: true },
      { name: 'a window ending at the watermark', from: '2026-01-15T09:00:00.000Z', to: W, asOfInManifest: false },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = fakes({ CHUNK_SIZE: '2' });
        f.warehouse.changedIds = ['op-1', 'op-2', 'op-3'];
        const result = await replay(f.deps, { kind: 'replay-window', from: new Date(c.from), to: new Date(c.to) }, watermark(f), f.logger);
        const requested = `window (${c.from}, ${c.to}]`;
        assert.deepEqual(result, { status: 'sealed', replay: requested, window: { from: c.from, to: c.to }, batchId: REPLAY_BATCH, asOf: W, idCount: 3, chunkCount: 2 });

        // The change set of the requested window, not of the watermark's.
        assert.equal(f.warehouse.streams.length, 1);
        const readAfter = new Date(Date.parse(c.from) - 30 * 86_400_000).toISOString();
        assert.deepEqual(f.warehouse.streams[0].statement.params, { window_from: { type: 'TIMESTAMP', value: c.from }, window_to: { type: 'TIMESTAMP', value: c.to }, read_after: { type: 'TIMESTAMP', value: readAfter } });

        const manifest = f.store.getJson<Manifest>(paths.manifest(REPLAY_BATCH));
        assert.deepEqual(manifest, {
          batchId: REPLAY_BATCH,
          window: { from: c.from, to: c.to },
          chunkCount: 2,
          idCount: 3,
          chunkSize: 2,
          rejected: { missingOperationId: 0, missingSourceTimestamp: 0 },
          createdAt: '2026-01-15T10:22:00.000Z',
          replay: { kind: 'window', requested },
          ...(c.asOfInManifest ? { asOf: W } : {}),
          readAfter,
        });
        assert.equal(stateOf(f.store, REPLAY_BATCH)?.status, 'SEALED');
        assert.deepEqual(f.store.paths('open/'), [paths.open(REPLAY_BATCH)]);
        const published = f.publisher.on(IDS_TOPIC).map((m) => m.data);
        assert.deepEqual(published.at(-1), { type: 'seal', batchId: REPLAY_BATCH, chunkCount: 2, idCount: 3, window: { from: c.from, to: c.to } });
        assert.equal(f.store.get(WATERMARK), W, 'the watermark is not moved');
        assert.equal(f.store.writes.get(WATERMARK), 1, 'not even rewritten');
        assert.equal(f.warehouse.of('rejected').length, 0, 'rejected rows are the scheduled runs\' to count');
      });
    }

    it('the batch is enriched as of the watermark: launchDataflow launches with as_of = the watermark', async () => {
      const f = fakes();
      f.warehouse.changedIds = ['op-1'];
      await replay(f.deps, { kind: 'replay-window', from: new Date('2026-01-15T08:00:00Z'), to: new Date('2026-01-15T09:00:00Z') }, watermark(f), f.logger);
      f.store.put(paths.chunk(REPLAY_BATCH, 0), chunkFile(['op-1']));
      await makeLaunchDataflow(f.deps)(pubsubEvent({ type: 'batch', batchId: REPLAY_BATCH, attempt: 1 }, { topic: 'consolidation-batches' }));
      assert.equal(f.launcher.requests[0].variables.as_of, timestampLiteral(W));
      assert.equal(f.launcher.requests[0].variables.read_after, "TIMESTAMP '2025-12-16 08:00:00.000000+00:00'", 'back to the window\'s start minus OPERATION_MAX_AGE');
    });

    it('nothing changed in the window -> empty, nothing published, no batch', async () => {
      const f = fakes();
      f.warehouse.changedIds = [];
      const result = await replay(f.deps, { kind: 'replay-window', from: new Date('2026-01-15T08:00:00Z'), to: new Date('2026-01-15T09:00:00Z') }, watermark(f), f.logger);
      assert.deepEqual(result, { status: 'empty', replay: 'window (2026-01-15T08:00:00.000Z, 2026-01-15T09:00:00.000Z]', window: { from: '2026-01-15T08:00:00.000Z', to: '2026-01-15T09:00:00.000Z' }, asOf: W, idCount: 0 });
      assert.equal(f.publisher.messages.length, 0);
      assert.deepEqual(f.store.paths('batches/'), []);
      assert.deepEqual(f.store.paths('open/'), []);
    });
  });

  describe('a list of IDs -> exactly those IDs, once each, in chunks', () => {
    const cases: { name: string; ids: string[]; chunkSize: number; chunks: string[][]; createdAfter?: string; readAfter: string }[] = [
      { name: 'one chunk, duplicates dropped', ids: ['op-9', 'op-1', 'op-9'], chunkSize: 1000, chunks: [['op-9', 'op-1']], readAfter: '2025-12-16T10:00:00.000Z' },
      { name: 'five IDs in chunks of two', ids: ['a', 'b', 'c', 'd', 'e'], chunkSize: 2, chunks: [['a', 'b'], ['c', 'd'], ['e']], readAfter: '2025-12-16T10:00:00.000Z' },
      { name: 'operations older than OPERATION_MAX_AGE (createdAfter): read back to it', ids: ['op-old'], chunkSize: 1000, chunks: [['op-old']], createdAfter: '2024-03-01T00:00:00Z', readAfter: '2024-03-01T00:00:00.000Z' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = fakes({ CHUNK_SIZE: String(c.chunkSize) });
        const request = parsePublishRequest({ ids: c.ids, ...(c.createdAfter ? { createdAfter: c.createdAfter } : {}) }, f.config.replayMaxIds);
        assert.equal(request.kind, 'replay-ids');
        const result = await replay(f.deps, request as Exclude<PublishRequest, { kind: 'scheduled' }>, watermark(f), f.logger);
        const idCount = c.chunks.flat().length;
        const requested = `${idCount} listed operation IDs`;
        assert.deepEqual(result, { status: 'sealed', replay: requested, window: { from: W, to: W }, batchId: REPLAY_BATCH, asOf: W, idCount, chunkCount: c.chunks.length });
        assert.equal(f.warehouse.streams.length, 0, 'the IDs are not looked up');
        const chunks = f.publisher
          .on(IDS_TOPIC)
          .filter((m) => m.attributes.type === 'chunk')
          .sort((a, b) => Number(a.attributes.chunk) - Number(b.attributes.chunk))
          .map((m) => (m.data as { ids: string[] }).ids);
        assert.deepEqual(chunks, c.chunks);
        const manifest = f.store.getJson<Manifest>(paths.manifest(REPLAY_BATCH));
        assert.deepEqual(manifest?.replay, { kind: 'ids', requested });
        assert.deepEqual(manifest?.window, { from: W, to: W }, 'an IDs replay has no window of its own: it is read as of the watermark');
        assert.equal(manifest?.asOf, undefined);
        assert.equal(manifest?.readAfter, c.readAfter, 'the enrichment reads back to createdAfter, or the watermark minus OPERATION_MAX_AGE');
        assert.equal(f.store.get(WATERMARK), W);
      });
    }
  });

  describe('refused replays -> 400 through publishOps, before the lease: nothing published or written', () => {
    const cases: { name: string; watermark: string | null; body: unknown; says: RegExp }[] = [
      {
        name: 'a window ending after the watermark',
        watermark: W,
        body: { from: '2026-01-15T09:00:00Z', to: '2026-01-15T10:00:01Z' },
        says: /^Bad replay body: to \(2026-01-15T10:00:01\.000Z\) is after the watermark \(2026-01-15T10:00:00\.000Z\); rows after the watermark are not consolidated yet/,
      },
      { name: 'a window before the first run (no watermark)', watermark: null, body: { from: '2026-01-15T08:00:00Z', to: '2026-01-15T09:00:00Z' }, says: /^Nothing has been consolidated yet \(no watermark\): there is nothing to replay$/ },
      { name: 'IDs before the first run (no watermark)', watermark: null, body: { ids: ['op-1'] }, says: /^Nothing has been consolidated yet \(no watermark\)/ },
      { name: 'IDs created after the watermark', watermark: W, body: { ids: ['op-1'], createdAfter: W }, says: /^Bad replay body: createdAfter \(2026-01-15T10:00:00\.000Z\) must be before the watermark/ },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = fakes({}, c.watermark);
        f.warehouse.changedIds = ['op-1'];
        const { req, res, response } = httpCall('POST', c.body);
        await makePublishOps(f.deps)(req, res);
        assert.equal(response.statusCode, 400);
        assert.match((response.body as { error: string }).error, c.says);
        assert.equal(f.publisher.messages.length, 0);
        assert.deepEqual(f.store.paths('batches/'), []);
        assert.deepEqual(f.store.paths('open/'), []);
        assert.equal(f.store.get(WATERMARK), c.watermark ?? undefined, 'the watermark is neither moved nor created');
        assert.equal(f.store.getJson<LeaseRecord>('lease.json'), undefined, 'refused before taking the lease or repairing anything');
        assert.deepEqual(f.logger.at('ERROR'), [], 'a bad request is not an error of the chain');
      });
    }

    it('the same refusals from replay() itself are BadRequestErrors', async () => {
      const f = fakes();
      await assert.rejects(replay(f.deps, { kind: 'replay-window', from: new Date('2026-01-15T09:00:00Z'), to: new Date('2026-01-15T11:00:00Z') }, new Date(W), f.logger), BadRequestError);
      await assert.rejects(replay(f.deps, { kind: 'replay-ids', ids: ['op-1'] }, undefined, f.logger), BadRequestError);
      assert.equal(f.publisher.messages.length, 0);
    });
  });

  it('through publishOps: 200 with what was replayed, the watermark not moved, under a replay lease', async () => {
    const f = fakes();
    const { req, res, response } = httpCall('POST', { ids: ['op-7', 'op-8'] });
    await makePublishOps(f.deps)(req, res);
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.body, { status: 'sealed', replay: '2 listed operation IDs', window: { from: W, to: W }, batchId: REPLAY_BATCH, asOf: W, idCount: 2, chunkCount: 1, reconciled: [] });
    assert.equal(f.store.get(WATERMARK), W);
    assert.equal(f.warehouse.of('rejected').length, 0);
    const lease = f.store.getJson<LeaseRecord>('lease.json');
    assert.equal(lease?.purpose, 'replay');
    assert.ok(lease?.releasedAt);
  });
});
