import assert from 'node:assert/strict';
import { makePublishOps } from '../../functions/publish-ops';
import { paths, type BatchState, type Manifest } from '../../shared/batch';
import type { LeaseRecord } from '../../shared/lease';
import { TEST_BATCH_ID, httpCall, makeFakes, seedBatch, settle, stateOf, type Fakes } from '../support/fakes';

const WATERMARK = 'last_timestamp.txt';
const IDS_TOPIC = 'ussd-operations-topic';
/** The fakes' clock says 10:22; the default safety lag is 2m; the default lookback 15m. */
const NOW_MINUS_LAG = '2026-01-15T10:20:00.000Z';

function ids(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `op-${String(i).padStart(4, '0')}`);
}

async function call(f: Fakes, method = 'POST', body?: unknown) {
  const { req, res, response } = httpCall(method, body);
  await makePublishOps(f.deps)(req, res);
  return response;
}

function nothingHappened(f: Fakes, watermarkBefore: string | undefined): void {
  assert.equal(f.publisher.messages.length, 0, 'nothing published');
  assert.deepEqual(f.store.paths('batches/'), [], 'no batch written');
  assert.deepEqual(f.store.paths('open/'), [], 'no batch opened');
  assert.equal(f.store.get(WATERMARK), watermarkBefore, 'watermark not moved');
}

describe('publishOps', () => {
  describe('refuses what is not a scheduled call', () => {
    const methods = ['GET', 'PUT', 'DELETE', 'PATCH'];
    for (const method of methods) {
      it(`405 on ${method}, with Allow: POST`, async () => {
        const f = makeFakes();
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        const response = await call(f, method);
        assert.equal(response.statusCode, 405);
        assert.equal(response.headers.allow, 'POST');
        assert.match(String((response.body as { error: string }).error), new RegExp(method));
        nothingHappened(f, '2026-01-15T10:00:00Z');
        assert.equal(f.warehouse.statements.length, 0);
      });
    }

    const SHAPES = /must be empty, \{"from": \.\.\., "to": \.\.\.\} or \{"ids": \[\.\.\.\]\} as JSON/;
    const badBodies: { name: string; body: unknown; says: RegExp }[] = [
      { name: 'an object with unknown fields only', body: { force: true, dryRun: 1 }, says: /^Unexpected field\(s\) in the request body: force, dryRun; publishOps takes an empty body, \{"from", "to"\} or \{"ids"\}$/ },
      { name: 'a replay window with an extra field and a date without a time', body: { force: true, from: '2026-01-01' }, says: /^Bad replay body: from: must be an RFC 3339 timestamp.*to: .*Unrecognized key: "force"$/ },
      { name: 'a JSON array', body: ['a'], says: SHAPES },
      { name: 'a text body', body: 'run now', says: SHAPES },
      { name: 'a number', body: 42, says: SHAPES },
      { name: 'a non-empty raw buffer (no JSON content type)', body: Buffer.from('x=1'), says: /^The request body must be JSON \(send Content-Type: application\/json\)$/ },
    ];
    for (const c of badBodies) {
      it(`400 with a JSON error on ${c.name}`, async () => {
        const f = makeFakes();
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        f.warehouse.changedIds = ids(3);
        const response = await call(f, 'POST', c.body);
        assert.equal(response.statusCode, 400);
        assert.equal(typeof (response.body as { error?: unknown }).error, 'string');
        assert.match((response.body as { error: string }).error, c.says);
        nothingHappened(f, '2026-01-15T10:00:00Z');
        assert.equal(f.warehouse.statements.length + f.warehouse.streams.length, 0, 'no query ran');
        assert.equal(f.store.get('lease.json'), undefined, 'refused before taking the lease');
        const warnings = f.logger.at('WARNING');
        assert.equal(warnings.length, 1, 'the refusal is logged once, at WARNING');
        assert.match(warnings[0].message, /^publishOps refused the request: /);
        assert.deepEqual(f.logger.at('ERROR'), []);
      });
    }

    const acceptedBodies: { name: string; body: unknown }[] = [
      { name: 'no body', body: undefined },
      { name: 'an empty JSON object', body: {} },
      { name: 'an empty string', body: '' },
      { name: 'an empty raw buffer', body: Buffer.alloc(0) },
    ];
    for (const c of acceptedBodies) {
      it(`accepts ${c.name}`, async () => {
        const f = makeFakes();
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        f.warehouse.changedIds = ids(2);
        const response = await call(f, 'POST', c.body);
        assert.equal(response.statusCode, 200);
        assert.equal((response.body as { status: string }).status, 'sealed');
        assert.deepEqual((response.body as { reconciled: unknown }).reconciled, []);
        assert.equal(f.store.get(WATERMARK), NOW_MINUS_LAG, 'a scheduled run moves the watermark');
      });
    }
  });

  describe('nothing to publish', () => {
    const cases: { name: string; watermark: string }[] = [
      { name: 'watermark at now - safety lag', watermark: NOW_MINUS_LAG },
      { name: 'watermark ahead of now - safety lag', watermark: '2026-01-15T10:21:00Z' },
      { name: 'watermark in the future (clock skew)', watermark: '2026-01-16T00:00:00Z' },
    ];
    for (const c of cases) {
      it(`up-to-date: ${c.name} -> 200, nothing published, nothing queried`, async () => {
        const f = makeFakes();
        f.store.put(WATERMARK, c.watermark);
        f.warehouse.changedIds = ids(5);
        const response = await call(f);
        assert.equal(response.statusCode, 200);
        assert.deepEqual(response.body, { status: 'up-to-date', watermark: new Date(c.watermark).toISOString(), reconciled: [] });
        nothingHappened(f, c.watermark);
        assert.equal(f.warehouse.streams.length, 0);
      });
    }

    it('empty window -> watermark advanced to now - safety lag, no batch, nothing published', async () => {
      const f = makeFakes();
      f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
      f.warehouse.changedIds = [];
      const response = await call(f);
      assert.equal(response.statusCode, 200);
      assert.deepEqual(response.body, {
        status: 'empty',
        window: { from: '2026-01-15T09:45:00.000Z', to: NOW_MINUS_LAG },
        idCount: 0,
        rejected: { missingOperationId: 0, missingSourceTimestamp: 0 },
        beyondMaxAge: { oldOperationRows: 0, unmatchedTransactions: 0 },
        watermark: NOW_MINUS_LAG,
        reconciled: [],
      });
      assert.equal(f.publisher.messages.length, 0);
      assert.deepEqual(f.store.paths('batches/'), []);
      assert.deepEqual(f.store.paths('open/'), [], 'no open batch left behind for an empty window');
      assert.equal(f.store.get(WATERMARK), NOW_MINUS_LAG);
    });
  });

  describe('publishes a batch in chunks, then the seal', () => {
    const cases: { name: string; n: number; chunkSize: number }[] = [
      { name: '1 ID, default chunk size', n: 1, chunkSize: 1000 },
      { name: '5 IDs in chunks of 2', n: 5, chunkSize: 2 },
      { name: '6 IDs in chunks of 3 (exact multiple)', n: 6, chunkSize: 3 },
      { name: '7 IDs in chunks of 1', n: 7, chunkSize: 1 },
      { name: '2,500 IDs in chunks of 1,000', n: 2500, chunkSize: 1000 },
    ];
    for (const c of cases) {
      it(`${c.name} -> ${Math.ceil(c.n / c.chunkSize)} chunk message(s) then one seal`, async () => {
        const f = makeFakes({ CHUNK_SIZE: String(c.chunkSize) });
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        const all = ids(c.n);
        f.warehouse.changedIds = all;
        const response = await call(f);

        const chunkCount = Math.ceil(c.n / c.chunkSize);
        const window = { from: '2026-01-15T09:45:00.000Z', to: NOW_MINUS_LAG };
        assert.equal(response.statusCode, 200);
        assert.deepEqual(response.body, {
          status: 'sealed',
          batchId: TEST_BATCH_ID,
          window,
          idCount: c.n,
          chunkCount,
          rejected: { missingOperationId: 0, missingSourceTimestamp: 0 },
          beyondMaxAge: { oldOperationRows: 0, unmatchedTransactions: 0 },
          watermark: NOW_MINUS_LAG,
          reconciled: [],
        });

        const messages = f.publisher.on(IDS_TOPIC);
        assert.equal(messages.length, chunkCount + 1);
        assert.equal(f.publisher.messages.length, chunkCount + 1, 'nothing on other topics');
        const chunks = messages.slice(0, -1);
        // Publishing is concurrent, so chunks may be accepted out of order; each is there once.
        const byNumber = [...chunks].sort((a, b) => Number(a.attributes.chunk) - Number(b.attributes.chunk));
        byNumber.forEach((m, n) => {
          assert.deepEqual(m.data, { type: 'chunk', batchId: TEST_BATCH_ID, chunk: n, ids: all.slice(n * c.chunkSize, (n + 1) * c.chunkSize) });
          assert.deepEqual(m.attributes, { type: 'chunk', batchId: TEST_BATCH_ID, chunk: String(n) });
        });
        const seal = messages[messages.length - 1];
        assert.deepEqual(seal.data, { type: 'seal', batchId: TEST_BATCH_ID, chunkCount, idCount: c.n, window });
        assert.deepEqual(seal.attributes, { type: 'seal', batchId: TEST_BATCH_ID });

        const manifest = f.store.getJson<Manifest>(paths.manifest(TEST_BATCH_ID));
        assert.deepEqual(manifest, {
          batchId: TEST_BATCH_ID,
          window,
          chunkCount,
          idCount: c.n,
          chunkSize: c.chunkSize,
          rejected: { missingOperationId: 0, missingSourceTimestamp: 0 },
          createdAt: '2026-01-15T10:22:00.000Z',
          readAfter: '2025-12-16T09:45:00.000Z',
        });
        const state = f.store.getJson<BatchState>(paths.state(TEST_BATCH_ID));
        assert.equal(state?.status, 'SEALED');
        assert.equal(state?.attempt, 0);
        assert.equal(f.store.get(WATERMARK), NOW_MINUS_LAG);
        // The chunks are collectIds' to store: publishOps writes only manifest and state, and the
        // open-batch marker the reconciler works from (it stays until the batch is MERGED).
        assert.deepEqual(f.store.paths('batches/'), [paths.manifest(TEST_BATCH_ID), paths.state(TEST_BATCH_ID)]);
        assert.deepEqual(f.store.paths('open/'), [paths.open(TEST_BATCH_ID)]);
      });
    }

    it('the seal is published after the manifest and state are durable, the watermark moves after the seal', async () => {
      const f = makeFakes({ CHUNK_SIZE: '2' });
      f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
      f.warehouse.changedIds = ids(3);
      const order: string[] = [];
      f.store.before('create', paths.open(TEST_BATCH_ID), () => void order.push(`open marker (published: ${f.publisher.messages.length})`));
      f.store.before('create', paths.manifest(TEST_BATCH_ID), () => void order.push(`manifest (published: ${f.publisher.messages.length})`));
      f.store.before('replace', WATERMARK, () => void order.push(`watermark (published: ${f.publisher.messages.length})`));
      await call(f);
      assert.deepEqual(order, ['open marker (published: 0)', 'manifest (published: 2)', 'watermark (published: 3)']);
    });
  });

  describe('the window', () => {
    const cases: { name: string; env: Record<string, string>; watermark?: string; from: string; to: string }[] = [
      { name: 'from = watermark - lookback (default 15m)', env: {}, watermark: '2026-01-15T10:00:00Z', from: '2026-01-15T09:45:00.000Z', to: NOW_MINUS_LAG },
      { name: 'no lookback', env: { LOOKBACK: '0s' }, watermark: '2026-01-15T10:00:00Z', from: '2026-01-15T10:00:00.000Z', to: NOW_MINUS_LAG },
      { name: 'lookback 1h, safety lag 5m', env: { LOOKBACK: '1h', SAFETY_LAG: '5m' }, watermark: '2026-01-15T10:00:00Z', from: '2026-01-15T09:00:00.000Z', to: '2026-01-15T10:17:00.000Z' },
      { name: 'MAX_WINDOW caps the window when catching up', env: { MAX_WINDOW: '1h' }, watermark: '2026-01-10T00:00:00Z', from: '2026-01-09T23:45:00.000Z', to: '2026-01-10T01:00:00.000Z' },
      { name: 'MAX_WINDOW longer than the gap does not cap', env: { MAX_WINDOW: '1d' }, watermark: '2026-01-15T10:00:00Z', from: '2026-01-15T09:45:00.000Z', to: NOW_MINUS_LAG },
      { name: 'no watermark object -> INITIAL_WATERMARK', env: { INITIAL_WATERMARK: '2026-01-15T08:00:00Z' }, from: '2026-01-15T07:45:00.000Z', to: NOW_MINUS_LAG },
      { name: 'watermark with surrounding whitespace (hand-edited file)', env: {}, watermark: '  2026-01-15T10:00:00Z\n', from: '2026-01-15T09:45:00.000Z', to: NOW_MINUS_LAG },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = makeFakes(c.env);
        if (c.watermark !== undefined) f.store.put(WATERMARK, c.watermark);
        f.warehouse.changedIds = ids(1);
        const response = await call(f);
        assert.equal(response.statusCode, 200);
        assert.deepEqual((response.body as { window: unknown }).window, { from: c.from, to: c.to });
        const changed = f.warehouse.streams[0].statement;
        const readAfter = new Date(Date.parse(c.from) - 30 * 86_400_000).toISOString();
        assert.deepEqual(changed.params, { window_from: { type: 'TIMESTAMP', value: c.from }, window_to: { type: 'TIMESTAMP', value: c.to }, read_after: { type: 'TIMESTAMP', value: readAfter } });
        const { batchId } = response.body as { batchId: string };
        assert.equal(f.store.getJson<Manifest>(paths.manifest(batchId))?.readAfter, readAfter, 'the manifest records the bound the pipeline reads back to');
        assert.equal(f.store.get(WATERMARK), c.to, 'watermark advanced to the end of the window');
        assert.ok((f.publisher.messages.at(-1)?.data as { batchId: string }).batchId.startsWith(c.to.replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')), 'batch ID sorts by the window end');
      });
    }
  });

  describe('chunks are bounded in bytes as well as in IDs (Pub/Sub takes messages of up to 10 MB)', () => {
    const cases: { name: string; n: number; idLength: number; chunks: number }[] = [
      { name: '40,000 IDs of 300 characters with CHUNK_SIZE 100000 (12 MB of IDs)', n: 40_000, idLength: 300, chunks: 2 },
      { name: '10,000 IDs of 1,000 mostly non-ASCII characters (2 bytes each in UTF-8: 20 MB)', n: 10_000, idLength: 1_000, chunks: 3 },
    ];
    for (const c of cases) {
      it(`${c.name} -> ${c.chunks} chunk messages, each under 10 MB, every ID once and in order`, async () => {
        const f = makeFakes({ CHUNK_SIZE: '100000' });
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        const letter = c.idLength === 1_000 ? 'é' : 'x';
        f.warehouse.changedIds = Array.from({ length: c.n }, (_, i) => `${String(i).padStart(8, '0')}${letter.repeat(c.idLength - 8)}`);
        const response = await call(f);
        assert.equal(response.statusCode, 200, JSON.stringify(response.body));
        const chunks = f.publisher.messages.filter((m) => (m.data as { type: string }).type === 'chunk').sort((a, b) => (a.data as { chunk: number }).chunk - (b.data as { chunk: number }).chunk);
        assert.equal(chunks.length, c.chunks);
        for (const m of chunks) assert.ok(Buffer.byteLength(JSON.stringify(m.data)) < 10_000_000, `chunk ${(m.data as { chunk: number }).chunk} is ${Buffer.byteLength(JSON.stringify(m.data))} bytes`);
        assert.deepEqual(chunks.flatMap((m) => (m.data as { ids: string[] }).ids), f.warehouse.changedIds);
        assert.equal(f.store.getJson<Manifest>(paths.manifest(TEST_BATCH_ID))?.chunkCount, c.chunks);
      });
    }
  });

  describe('catching up in windows of at most MAX_WINDOW', () => {
    const cases: { name: string; env: Record<string, string>; watermark?: string; to: string; changed: number }[] = [
      { name: 'a batch of a capped window', env: { MAX_WINDOW: '1h' }, watermark: '2026-01-10T00:00:00Z', to: '2026-01-10T01:00:00.000Z', changed: 2 },
      { name: 'an empty capped window', env: { MAX_WINDOW: '1h' }, watermark: '2026-01-10T00:00:00Z', to: '2026-01-10T01:00:00.000Z', changed: 0 },
      { name: 'the first run from the beginning', env: { MAX_WINDOW: '6h', INITIAL_WATERMARK: 'beginning' }, to: '1970-01-01T06:00:00.000Z', changed: 1 },
    ];
    for (const c of cases) {
      it(`${c.name}: the answer and an INFO line say how far behind the run still is`, async () => {
        const f = makeFakes(c.env);
        if (c.watermark) f.store.put(WATERMARK, c.watermark);
        f.warehouse.changedIds = ids(c.changed);
        const response = await call(f);
        assert.equal(response.statusCode, 200);
        const body = response.body as { watermark: string; catchUp?: { behindMs: number; runsLeft: number } };
        assert.equal(body.watermark, c.to);
        const behindMs = Date.parse(NOW_MINUS_LAG) - Date.parse(c.to);
        const maxWindowMs = c.env.MAX_WINDOW === '1h' ? 3_600_000 : 6 * 3_600_000;
        assert.deepEqual(body.catchUp, { behindMs, runsLeft: Math.ceil(behindMs / maxWindowMs) });
        const info = f.logger.at('INFO').find((e) => e.message.startsWith('Catching up'));
        assert.ok(info, 'the catch-up is logged');
        assert.match(info.message, new RegExp(`reads up to ${c.to.replace(/\./g, '\\.')}, .* behind; about ${body.catchUp?.runsLeft} more run\\(s\\)`));
      });
    }

    it('a window that reaches now minus the lag -> no catch-up reported', async () => {
      const f = makeFakes({ MAX_WINDOW: '1d' });
      f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
      f.warehouse.changedIds = ids(1);
      const body = (await call(f)).body as { catchUp?: unknown };
      assert.equal(body.catchUp, undefined);
      assert.equal(f.logger.at('INFO').filter((e) => e.message.startsWith('Catching up')).length, 0);
    });
  });

  it('rejected rows land in the manifest and are logged at WARNING', async () => {
    const f = makeFakes();
    f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
    f.warehouse.changedIds = ids(4);
    f.warehouse.rejected = { missing_operation_id: 2, missing_source_timestamp: 3 };
    const response = await call(f);
    assert.equal(response.statusCode, 200);
    assert.deepEqual((response.body as { rejected: unknown }).rejected, { missingOperationId: 2, missingSourceTimestamp: 3 });
    assert.deepEqual(f.store.getJson<Manifest>(paths.manifest(TEST_BATCH_ID))?.rejected, { missingOperationId: 2, missingSourceTimestamp: 3 });
    const warnings = f.logger.at('WARNING');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /cannot be consolidated/);
    assert.equal(warnings[0].fields.batchId, TEST_BATCH_ID);
    assert.equal(warnings[0].fields.missingOperationId, 2);
    assert.equal(warnings[0].fields.missingSourceTimestamp, 3);
    // The rejected rows are counted over (watermark, to], not over the lookback margin.
    const rejectedQuery = f.warehouse.of('rejected')[0];
    assert.deepEqual(rejectedQuery.params.window_from, { type: 'TIMESTAMP', value: '2026-01-15T10:00:00.000Z' });
  });

  it('changes older than OPERATION_MAX_AGE are counted over (watermark, to], recorded in the manifest and logged at WARNING', async () => {
    const f = makeFakes({ OPERATION_MAX_AGE: '7d' });
    f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
    f.warehouse.changedIds = ids(4);
    f.warehouse.beyond = { old_operation_rows: 5, unmatched_transactions: 2 };
    const response = await call(f);
    assert.equal(response.statusCode, 200);
    assert.deepEqual((response.body as { beyondMaxAge: unknown }).beyondMaxAge, { oldOperationRows: 5, unmatchedTransactions: 2 });
    assert.deepEqual(f.store.getJson<Manifest>(paths.manifest(TEST_BATCH_ID))?.beyondMaxAge, { oldOperationRows: 5, unmatchedTransactions: 2 });
    const [query] = f.warehouse.of('beyond');
    assert.deepEqual(query.params, {
      window_from: { type: 'TIMESTAMP', value: '2026-01-15T10:00:00.000Z' },
      window_to: { type: 'TIMESTAMP', value: NOW_MINUS_LAG },
      read_after: { type: 'TIMESTAMP', value: '2026-01-08T09:45:00.000Z' },
    }, 'the cut-off of the change set (its window\'s start minus 7 days)');
    const [warning] = f.logger.at('WARNING');
    assert.match(warning.message, /older than OPERATION_MAX_AGE \(7d\)/);
    assert.equal(warning.fields.batchId, TEST_BATCH_ID);
    assert.equal(warning.fields.oldOperationRows, 5);
    assert.equal(warning.fields.unmatchedTransactions, 2);
  });

  it('no rejected rows -> no WARNING', async () => {
    const f = makeFakes();
    f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
    f.warehouse.changedIds = ids(4);
    await call(f);
    assert.deepEqual(f.logger.at('WARNING'), []);
  });

  describe('a bad watermark object -> 500 with a clear message, nothing done', () => {
    const garbage = ['not a timestamp', '', '1736935200', '2026-13-45T99:00:00Z', '{"watermark":"2026-01-15T10:00:00Z"}', 'yesterday'];
    for (const content of garbage) {
      it(JSON.stringify(content), async () => {
        const f = makeFakes();
        f.store.put(WATERMARK, content);
        f.warehouse.changedIds = ids(3);
        const response = await call(f);
        assert.equal(response.statusCode, 500);
        const body = response.body as { error: string };
        assert.match(body.error, /watermark object last_timestamp\.txt does not hold an RFC 3339 timestamp/);
        nothingHappened(f, content);
        assert.equal(f.logger.at('ERROR').length, 1);
      });
    }
  });

  describe('a publish failure -> 500, no seal, watermark not moved', () => {
    // 5 IDs in chunks of 2: publishes 1-3 are chunks, 4 is the seal.
    const cases: { name: string; failing: number }[] = [
      { name: 'the first chunk', failing: 1 },
      { name: 'a middle chunk', failing: 2 },
      { name: 'the last chunk', failing: 3 },
      { name: 'the seal', failing: 4 },
    ];
    for (const c of cases) {
      it(`failure of ${c.name}`, async () => {
        const f = makeFakes({ CHUNK_SIZE: '2', PUBLISH_CONCURRENCY: '1' });
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        f.warehouse.changedIds = ids(5);
        f.publisher.failNth(c.failing, new Error('Pub/Sub unavailable'));
        const response = await call(f);
        assert.equal(response.statusCode, 500);
        assert.match((response.body as { error: string }).error, /Pub\/Sub unavailable/);
        assert.equal((response.body as { batchId?: string }).batchId, TEST_BATCH_ID);
        assert.equal(f.publisher.messages.filter((m) => (m.data as { type: string }).type === 'seal').length, 0, 'no seal');
        assert.equal(f.store.get(WATERMARK), '2026-01-15T10:00:00Z', 'watermark not moved');
        const errors = f.logger.at('ERROR');
        assert.equal(errors.length, 1);
        assert.equal(errors[0].fields.batchId, TEST_BATCH_ID);
      });
    }

    it('a failure while streaming the IDs -> 500, no seal, watermark not moved', async () => {
      const f = makeFakes();
      f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
      f.warehouse.changedIds = ids(5);
      f.warehouse.failNext('stream', new Error('query timed out'));
      const response = await call(f);
      assert.equal(response.statusCode, 500);
      assert.match((response.body as { error: string }).error, /query timed out/);
      nothingHappened(f, '2026-01-15T10:00:00Z');
    });
  });

  describe('the watermark moved by another run -> 409', () => {
    const cases: { name: string; before?: string; other: string; op: 'replace' | 'create' }[] = [
      { name: 'another run replaced it (generation changed)', before: '2026-01-15T10:00:00Z', other: '2026-01-15T10:19:00.000Z', op: 'replace' },
      { name: 'another run created it first (there was none)', other: '2026-01-15T10:19:00.000Z', op: 'create' },
      { name: 'rewritten with the same content (generation still changes)', before: '2026-01-15T10:00:00Z', other: '2026-01-15T10:00:00Z', op: 'replace' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const f = makeFakes();
        if (c.before !== undefined) f.store.put(WATERMARK, c.before);
        f.warehouse.changedIds = ids(3);
        f.store.before(c.op, WATERMARK, () => void f.store.put(WATERMARK, c.other));
        const response = await call(f);
        assert.equal(response.statusCode, 409);
        const body = response.body as { error: string; batchId: string };
        assert.match(body.error, /^Another run moved the watermark first; this run's batch is sealed and will be processed/);
        assert.equal(body.batchId, TEST_BATCH_ID);
        assert.equal(f.store.get(WATERMARK), c.other, 'the other run\'s watermark stands');
        // This run's batch is sealed and will be processed (re-reading is harmless: the MERGE is idempotent).
        assert.equal(f.publisher.messages.filter((m) => (m.data as { type: string }).type === 'seal').length, 1);
        assert.equal(f.logger.at('WARNING').length, 1);
        assert.equal(f.logger.at('ERROR').length, 0);
      });
    }
  });

  it('a batch ID that exists already -> 500, no seal, watermark not moved', async () => {
    const f = makeFakes();
    f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
    f.store.put(paths.manifest(TEST_BATCH_ID), '{}');
    f.warehouse.changedIds = ids(3);
    const response = await call(f);
    assert.equal(response.statusCode, 500);
    assert.match((response.body as { error: string }).error, /already exists/);
    assert.equal(f.publisher.messages.filter((m) => (m.data as { type: string }).type === 'seal').length, 0);
    assert.equal(f.store.get(WATERMARK), '2026-01-15T10:00:00Z');
  });

  describe('publishing is bounded and streams', () => {
    const cases: { concurrency: number; n: number }[] = [
      { concurrency: 1, n: 4 },
      { concurrency: 2, n: 6 },
      { concurrency: 3, n: 10 },
    ];
    for (const c of cases) {
      it(`PUBLISH_CONCURRENCY=${c.concurrency}: at most ${c.concurrency} publishes in flight, the stream is not read ahead`, async () => {
        const f = makeFakes({ CHUNK_SIZE: '1', PUBLISH_CONCURRENCY: String(c.concurrency) });
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        f.warehouse.changedIds = ids(c.n);
        f.publisher.hold();
        const { req, res, response } = httpCall('POST');
        let finished = false;
        const running = makePublishOps(f.deps)(req, res).then(() => {
          finished = true;
        });

        let released = 0;
        while (released < c.n) {
          await settle();
          const expected = Math.min(c.concurrency, c.n - released);
          assert.equal(f.publisher.held.length, expected, `${expected} publishes in flight after ${released} accepted`);
          assert.equal(f.publisher.inFlight, expected);
          // One page per chunk: at most the chunks in flight plus the one being flushed have been read.
          assert.ok(f.warehouse.pagesRead <= released + c.concurrency + 1, `read ${f.warehouse.pagesRead} pages with ${released} accepted`);
          assert.equal(finished, false);
          assert.equal(f.publisher.messages.filter((m) => (m.data as { type: string }).type === 'seal').length, 0, 'no seal while chunks are in flight');
          f.publisher.release(1);
          released++;
        }
        // The seal is published only once every chunk has been accepted.
        await settle();
        assert.equal(f.publisher.held.length, 1);
        assert.equal((f.publisher.held[0].message.data as { type: string }).type, 'seal');
        f.publisher.releaseAll();
        await running;
        assert.equal(response.statusCode, 200);
        assert.equal(f.publisher.maxInFlight, c.concurrency);
        assert.equal(f.publisher.messages.length, c.n + 1);
      });
    }

    it('a failure among held publishes -> 500 after the in-flight ones settle, no seal', async () => {
      const f = makeFakes({ CHUNK_SIZE: '1', PUBLISH_CONCURRENCY: '2' });
      f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
      f.warehouse.changedIds = ids(6);
      f.publisher.hold();
      const { req, res, response } = httpCall('POST');
      const running = makePublishOps(f.deps)(req, res);
      await settle();
      f.publisher.rejectHeld(new Error('deadline exceeded'));
      await settle();
      f.publisher.releaseAll();
      await running;
      assert.equal(response.statusCode, 500);
      assert.match((response.body as { error: string }).error, /deadline exceeded/);
      assert.ok(f.publisher.calls < 6, `stopped publishing after the failure (${f.publisher.calls} calls)`);
      assert.equal(f.publisher.messages.filter((m) => (m.data as { type: string }).type === 'seal').length, 0);
      assert.equal(f.store.get(WATERMARK), '2026-01-15T10:00:00Z');
    });
  });

  describe('the extraction lease', () => {
    const THEIRS: LeaseRecord = { holder: 'publishOps-2026-01-15T10:21:00.000Z-aaaaaa', purpose: 'publishOps', acquiredAt: '2026-01-15T10:21:00.000Z', expiresAt: '2026-01-15T10:31:00.000Z' };

    const held: { name: string; lease: LeaseRecord; body?: unknown }[] = [
      { name: 'a scheduled run while another holds the lease', lease: THEIRS },
      { name: 'a replay while a scheduled run holds the lease', lease: THEIRS, body: { ids: ['op-1'] } },
      { name: 'a scheduled run while an operator\'s reconcile holds it', lease: { ...THEIRS, holder: 'reconcile-x', purpose: 'reconcile' } },
    ];
    for (const c of held) {
      it(`${c.name} -> 409 naming the holder and its expiry; nothing repaired, extracted or published`, async () => {
        const f = makeFakes();
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        f.warehouse.changedIds = ids(3);
        // A batch stuck long enough for the reconciler: it must not be touched without the lease.
        await seedBatch(f.store, { status: 'COLLECTED', state: { updatedAt: '2026-01-15T09:00:00.000Z' } });
        f.store.put(paths.open(TEST_BATCH_ID), JSON.stringify({ batchId: TEST_BATCH_ID, createdAt: '2026-01-15T09:00:00.000Z' }));
        f.store.put('lease.json', JSON.stringify(c.lease));
        const leaseGeneration = f.store.generationOf('lease.json');
        const response = await call(f, 'POST', c.body);
        assert.equal(response.statusCode, 409);
        assert.deepEqual(response.body, {
          error: `Another run holds the lease: ${c.lease.holder} (${c.lease.purpose}), taken at ${c.lease.acquiredAt}, expires at ${c.lease.expiresAt}`,
          leaseHolder: c.lease.holder,
          leaseExpiresAt: c.lease.expiresAt,
        });
        assert.equal(f.publisher.messages.length, 0, 'nothing published');
        assert.equal(f.warehouse.statements.length + f.warehouse.streams.length, 0, 'nothing queried');
        assert.equal(f.store.get(WATERMARK), '2026-01-15T10:00:00Z');
        assert.equal(f.store.generationOf('lease.json'), leaseGeneration, 'their lease untouched');
        assert.equal(stateOf(f.store)?.status, 'COLLECTED', 'the stuck batch is left for the lease holder');
        assert.equal(f.logger.at('WARNING').length, 1);
        assert.match(f.logger.at('WARNING')[0].message, /^publishOps failed: Another run holds the lease/);
        assert.deepEqual(f.logger.at('ERROR'), []);
      });
    }

    it('a lease its holder never gave back is taken over once expired', async () => {
      const f = makeFakes();
      f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
      f.warehouse.changedIds = ids(1);
      f.store.put('lease.json', JSON.stringify({ ...THEIRS, expiresAt: '2026-01-15T10:21:59.999Z' }));
      const response = await call(f);
      assert.equal(response.statusCode, 200);
      assert.equal(f.store.get(WATERMARK), NOW_MINUS_LAG);
    });

    const outcomes: { name: string; setup: (f: Fakes) => void; status: number }[] = [
      { name: 'a sealed batch', setup: (f) => void (f.warehouse.changedIds = ids(2)), status: 200 },
      { name: 'an up-to-date watermark', setup: (f) => void f.store.put(WATERMARK, NOW_MINUS_LAG), status: 200 },
      { name: 'a failing extraction (500)', setup: (f) => void f.warehouse.failNext('stream', new Error('query timed out')), status: 500 },
      { name: 'a watermark moved by another run (409)', setup: (f) => void f.store.before('replace', WATERMARK, () => void f.store.put(WATERMARK, '2026-01-15T10:19:00Z')), status: 409 },
    ];
    for (const c of outcomes) {
      it(`given back after ${c.name}, so the next run is not blocked`, async () => {
        const f = makeFakes();
        f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
        f.warehouse.changedIds = ids(1);
        c.setup(f);
        const response = await call(f);
        assert.equal(response.statusCode, c.status);
        const lease = f.store.getJson<LeaseRecord>('lease.json');
        assert.equal(lease?.purpose, 'publishOps');
        assert.equal(lease?.releasedAt, '2026-01-15T10:22:00.000Z');
        f.deps.batchSuffix = () => 'def456';
        assert.notEqual((await call(f)).statusCode, 409, 'the next run gets the lease');
      });
    }

    it('two calls at the same instant -> one 200, one 409; one extraction, one batch', async () => {
      const f = makeFakes();
      f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
      f.warehouse.changedIds = ids(2);
      const calls = [httpCall('POST'), httpCall('POST')];
      await Promise.all(calls.map((c) => makePublishOps(f.deps)(c.req, c.res)));
      assert.deepEqual(calls.map((c) => c.response.statusCode).sort(), [200, 409]);
      assert.equal(f.publisher.messages.filter((m) => (m.data as { type: string }).type === 'seal').length, 1);
      assert.equal(f.warehouse.streams.length, 1, 'one extraction');
    });
  });

  it('two runs one after the other: the second starts where the first ended', async () => {
    const f = makeFakes();
    f.store.put(WATERMARK, '2026-01-15T10:00:00Z');
    f.warehouse.changedIds = ids(2);
    assert.equal((await call(f)).statusCode, 200);
    f.clock.advance(20 * 60_000);
    f.deps.batchSuffix = () => 'def456';
    const second = await call(f);
    assert.equal(second.statusCode, 200);
    assert.deepEqual((second.body as { window: unknown }).window, { from: '2026-01-15T10:05:00.000Z', to: '2026-01-15T10:40:00.000Z' });
    assert.equal((second.body as { batchId: string }).batchId, '20260115T104000Z-def456');
    assert.equal(f.store.get(WATERMARK), '2026-01-15T10:40:00.000Z');
  });
});
