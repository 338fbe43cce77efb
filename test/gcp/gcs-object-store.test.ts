import assert from 'node:assert/strict';
import { File, Storage, type Bucket } from '@google-cloud/storage';
import sinon from 'sinon';
import { ChainError } from '../../shared/errors';
import { GcsObjectStore, WRITE_TOKEN, contentTypeOf } from '../../shared/gcp/gcs-object-store';

/**
 * The Cloud Storage adapter against a real Bucket whose File methods are stubbed (on the
 * prototype, so every File the adapter makes is covered); any request that slips through fails.
 */

const BUCKET = 'state-bucket';
const PATH = 'batches/20260115T102000Z-1a2b3c/state.json';
const GENERATION = '1768472400123456';

function setup(): { bucket: Bucket; store: GcsObjectStore } {
  const storage = new Storage({ projectId: 'my-project' });
  sinon.stub(storage, 'request').callsFake(((_options: unknown, callback?: (error: Error) => void) => {
    const error = new Error('A test reached the network: stub this call');
    if (callback) callback(error);
    else return Promise.reject(error);
  }) as never);
  const bucket = storage.bucket(BUCKET);
  return { bucket, store: new GcsObjectStore(bucket) };
}

function apiError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const file = (stub: sinon.SinonStub, call = 0) => stub.getCall(call).thisValue as File;

describe('GcsObjectStore', () => {
  afterEach(() => sinon.restore());

  describe('read', () => {
    it('reads the generation from the metadata, then the data of exactly that generation', async () => {
      const { store } = setup();
      const metadata = sinon.stub(File.prototype, 'getMetadata').resolves([{ generation: GENERATION }] as never);
      const download = sinon.stub(File.prototype, 'download').resolves([Buffer.from('{"status":"SEALED"}')] as never);

      assert.deepStrictEqual(await store.read(PATH), { data: '{"status":"SEALED"}', generation: GENERATION });
      assert.equal(file(metadata).name, PATH);
      assert.equal(file(metadata).bucket.name, BUCKET);
      assert.equal(file(download).name, PATH);
      assert.equal(file(download).generation, Number(GENERATION));
    });

    it('returns null for a missing object (404)', async () => {
      const { store } = setup();
      sinon.stub(File.prototype, 'getMetadata').rejects(apiError(404, 'No such object'));
      const download = sinon.stub(File.prototype, 'download');
      assert.equal(await store.read(PATH), null);
      sinon.assert.notCalled(download);
    });

    it('reads again when the generation it saw was replaced before the download', async () => {
      const { store } = setup();
      const metadata = sinon.stub(File.prototype, 'getMetadata');
      metadata.onCall(0).resolves([{ generation: '100' }] as never);
      metadata.onCall(1).resolves([{ generation: '200' }] as never);
      const download = sinon.stub(File.prototype, 'download');
      download.onCall(0).rejects(apiError(404, 'No such object: generation 100'));
      download.onCall(1).resolves([Buffer.from('new')] as never);

      assert.deepStrictEqual(await store.read(PATH), { data: 'new', generation: '200' });
      assert.deepStrictEqual([file(download, 0).generation, file(download, 1).generation], [100, 200]);
    });

    it('returns null when the object was deleted between the metadata and the download', async () => {
      const { store } = setup();
      const metadata = sinon.stub(File.prototype, 'getMetadata');
      metadata.onCall(0).resolves([{ generation: '100' }] as never);
      metadata.onCall(1).rejects(apiError(404, 'No such object'));
      sinon.stub(File.prototype, 'download').rejects(apiError(404, 'No such object'));
      assert.equal(await store.read(PATH), null);
    });

    it('wraps other errors with the bucket and the path', async () => {
      const { store } = setup();
      const failure = apiError(403, 'Forbidden');
      sinon.stub(File.prototype, 'getMetadata').rejects(failure);
      await assert.rejects(store.read(PATH), (e: ChainError) => e instanceof ChainError && e.cause === failure && e.context.path === PATH && e.context.bucket === BUCKET);
    });
  });

  describe('conditional writes', () => {
    const writes = [
      { name: 'create', write: (s: GcsObjectStore) => s.create(PATH, 'data'), ifGenerationMatch: 0 },
      { name: 'replace', write: (s: GcsObjectStore) => s.replace(PATH, 'data', GENERATION), ifGenerationMatch: Number(GENERATION) },
    ];
    for (const w of writes) {
      it(`${w.name}: one request with ifGenerationMatch ${w.ifGenerationMatch}, not resumable, with its content type`, async () => {
        const { store } = setup();
        const save = sinon.stub(File.prototype, 'save').resolves();
        assert.equal(await w.write(store), true);
        sinon.assert.calledOnce(save);
        const [data, options] = save.firstCall.args as [string, { metadata: { metadata: Record<string, string> } }];
        assert.equal(data, 'data');
        const token = options.metadata.metadata[WRITE_TOKEN];
        assert.match(token, /^[0-9a-f-]{36}$/);
        assert.deepStrictEqual(options, { preconditionOpts: { ifGenerationMatch: w.ifGenerationMatch }, resumable: false, contentType: 'application/json', metadata: { metadata: { [WRITE_TOKEN]: token } } });
        assert.equal(file(save).name, PATH);
      });

      it(`${w.name}: a failed precondition (412) on an object another writer wrote is false`, async () => {
        const { store } = setup();
        sinon.stub(File.prototype, 'save').rejects(apiError(412, 'At least one of the pre-conditions you specified did not hold.'));
        const metadata = sinon.stub(File.prototype, 'getMetadata').resolves([{ generation: '999', metadata: { [WRITE_TOKEN]: 'another-writer' } }] as never);
        assert.equal(await w.write(store), false);
        assert.equal(file(metadata).name, PATH, 'the object was read back');
      });

      it(`${w.name}: a 412 after the client retried a try that had succeeded is true (the object carries this write's token)`, async () => {
        const { store } = setup();
        let written: string | undefined;
        sinon.stub(File.prototype, 'save').callsFake(async (_data: unknown, options: unknown) => {
          written = (options as { metadata: { metadata: Record<string, string> } }).metadata.metadata[WRITE_TOKEN];
          throw apiError(412, 'At least one of the pre-conditions you specified did not hold.');
        });
        sinon.stub(File.prototype, 'getMetadata').callsFake(async () => [{ generation: '1000', metadata: { [WRITE_TOKEN]: written } }] as never);
        assert.equal(await w.write(store), true);
      });

      it(`${w.name}: a 412 on an object since deleted is false; a failing read-back is thrown`, async () => {
        const { store } = setup();
        sinon.stub(File.prototype, 'save').rejects(apiError(412, 'precondition'));
        const metadata = sinon.stub(File.prototype, 'getMetadata');
        metadata.onCall(0).rejects(apiError(404, 'No such object'));
        metadata.onCall(1).rejects(apiError(503, 'Service Unavailable'));
        assert.equal(await w.write(store), false);
        await assert.rejects(w.write(store), (e: ChainError) => e instanceof ChainError && /read back after a failed precondition/.test(e.message) && e.context.path === PATH);
      });

      it(`${w.name}: other errors are thrown with the path`, async () => {
        const { store } = setup();
        sinon.stub(File.prototype, 'save').rejects(apiError(503, 'Service Unavailable'));
        await assert.rejects(w.write(store), (e: ChainError) => e instanceof ChainError && e.context.path === PATH && e.context.ifGenerationMatch === w.ifGenerationMatch);
      });
    }

    it('replace refuses a generation that is not a Cloud Storage generation', async () => {
      const { store } = setup();
      const save = sinon.stub(File.prototype, 'save');
      await assert.rejects(store.replace(PATH, 'data', 'abc'), ChainError);
      sinon.assert.notCalled(save);
    });

    const types = [
      ['batches/B/manifest.json', 'application/json'],
      ['batches/B/chunks/000000.ndjson', 'application/x-ndjson'],
      ['last_timestamp.txt', 'text/plain; charset=utf-8'],
      ['batches/B/complete', 'text/plain; charset=utf-8'],
    ];
    for (const [path, type] of types) {
      it(`content type of ${path}: ${type}`, () => assert.equal(contentTypeOf(path), type));
    }
  });

  describe('exists, list, delete, uri', () => {
    for (const exists of [true, false]) {
      it(`exists: ${exists}`, async () => {
        const { store } = setup();
        const stub = sinon.stub(File.prototype, 'exists').resolves([exists] as never);
        assert.equal(await store.exists(PATH), exists);
        assert.equal(file(stub).name, PATH);
      });
    }

    it('list: every page under the prefix, names sorted', async () => {
      const { bucket, store } = setup();
      const prefix = 'batches/B/chunks/';
      const names = ['000002.ndjson', '000000.ndjson', '000001.ndjson'].map((n) => prefix + n);
      const getFiles = sinon.stub(bucket, 'getFiles').resolves([names.map((n) => bucket.file(n))] as never);
      assert.deepStrictEqual(await store.list(prefix), [...names].sort());
      sinon.assert.calledOnceWithExactly(getFiles, { prefix, autoPaginate: true });
    });

    it('delete: ignores a missing object', async () => {
      const { store } = setup();
      const del = sinon.stub(File.prototype, 'delete').resolves([{}] as never);
      await store.delete(PATH);
      sinon.assert.calledOnceWithExactly(del, { ignoreNotFound: true });
      assert.equal(file(del).name, PATH);
    });

    it('uri: gs://bucket/path', () => {
      assert.equal(setup().store.uri('batches/B/chunks/000000.ndjson'), 'gs://state-bucket/batches/B/chunks/000000.ndjson');
    });
  });
});
