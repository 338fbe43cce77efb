import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FolderObjectStore } from '../../shared/local/folder-store';

describe('FolderObjectStore', () => {
  let root: string;
  let store: FolderObjectStore;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'folder-store-'));
    store = new FolderObjectStore(root);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('creates only once and reads back data with a generation', async () => {
    assert.equal(await store.read('batches/b1/state.json'), null);
    assert.equal(await store.exists('batches/b1/state.json'), false);
    assert.equal(await store.create('batches/b1/state.json', 'first'), true);
    assert.equal(await store.create('batches/b1/state.json', 'second'), false);
    const object = await store.read('batches/b1/state.json');
    assert.equal(object?.data, 'first');
    assert.ok(object?.generation);
    assert.equal(await store.exists('batches/b1/state.json'), true);
  });

  it('lets exactly one of concurrent creators win', async () => {
    for (let round = 0; round < 20; round++) {
      const results = await Promise.all(['a', 'b', 'c'].map((data) => store.create(`race/${round}`, data)));
      assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results}`);
      assert.equal((await store.read(`race/${round}`))?.data, ['a', 'b', 'c'][results.indexOf(true)]);
    }
  });

  it('lets exactly one of concurrent creators win across processes', async () => {
    const script = `const { FolderObjectStore } = require(${JSON.stringify(join(__dirname, '../../shared/local/folder-store'))});
new FolderObjectStore(process.argv[1]).create('cross/marker', String(process.pid)).then((won) => process.stdout.write(String(won)));`;
    const run = () => promisify(execFile)(process.execPath, ['--require', 'tsx/cjs', '-e', script, root], { cwd: join(__dirname, '../..') });
    const outputs = await Promise.all([run(), run(), run()]);
    assert.deepEqual(outputs.map((o) => o.stdout).sort(), ['false', 'false', 'true']);
  });

  it('replaces only the generation it names, and every write makes a new generation', async () => {
    await store.create('w.txt', 'v1');
    const v1 = (await store.read('w.txt'))!;
    assert.equal(await store.replace('w.txt', 'v2', v1.generation), true);
    const v2 = (await store.read('w.txt'))!;
    assert.equal(v2.data, 'v2');
    assert.notEqual(v2.generation, v1.generation);
    assert.equal(await store.replace('w.txt', 'stale', v1.generation), false);
    assert.equal(await store.replace('w.txt', 'v3', v2.generation), true, 'same content next time still needs the current generation');
    const v3 = (await store.read('w.txt'))!;
    assert.equal(await store.replace('w.txt', 'v3', v3.generation), true);
    assert.notEqual((await store.read('w.txt'))!.generation, v3.generation, 'rewriting the same data is a new generation');
    assert.equal(await store.replace('missing.txt', 'x', v1.generation), false);
  });

  it('lets exactly one of concurrent replacers with the same generation win', async () => {
    await store.create('state.json', '0');
    for (let round = 0; round < 20; round++) {
      const { generation } = (await store.read('state.json'))!;
      const results = await Promise.all(['a', 'b', 'c'].map((data) => store.replace('state.json', `${round}${data}`, generation)));
      assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results}`);
      assert.equal((await store.read('state.json'))!.data, `${round}${['a', 'b', 'c'][results.indexOf(true)]}`);
    }
  });

  it('never shows a reader partial content or a mismatched generation while others replace', async () => {
    const big = (tag: string) => tag.repeat(200_000);
    await store.create('big', big('a'));
    let stop = false;
    const seen = new Map<string, string>();
    const reader = (async () => {
      while (!stop) {
        const object = (await store.read('big'))!;
        assert.ok(/^(a+|b+|c+)$/.test(object.data) && object.data.length === 200_000, 'whole content');
        const earlier = seen.get(object.generation);
        assert.ok(earlier === undefined || earlier === object.data, 'one generation, one content');
        seen.set(object.generation, object.data);
      }
    })();
    for (const tag of ['b', 'c', 'a', 'b', 'c']) {
      const { generation } = (await store.read('big'))!;
      assert.equal(await store.replace('big', big(tag), generation), true);
    }
    stop = true;
    await reader;
  });

  it('lists sorted paths under a prefix, as given to create, and nothing else', async () => {
    for (const path of ['batches/b1/chunks/000002.ndjson', 'batches/b1/chunks/000000.ndjson', 'batches/b1/chunks/000001.ndjson', 'batches/b1/manifest.json', 'batches/b10/state.json', 'last_timestamp.txt']) {
      await store.create(path, '{}');
    }
    const { generation } = (await store.read('batches/b1/chunks/000001.ndjson'))!;
    await store.replace('batches/b1/chunks/000001.ndjson', '{"x":1}', generation);
    assert.deepEqual(await store.list('batches/b1/chunks/'), ['batches/b1/chunks/000000.ndjson', 'batches/b1/chunks/000001.ndjson', 'batches/b1/chunks/000002.ndjson']);
    assert.deepEqual(await store.list('batches/b1/'), ['batches/b1/chunks/000000.ndjson', 'batches/b1/chunks/000001.ndjson', 'batches/b1/chunks/000002.ndjson', 'batches/b1/manifest.json']);
    assert.deepEqual(await store.list('batches/b1'), [...(await store.list('batches/b1/')), 'batches/b10/state.json']);
    assert.deepEqual(await store.list('nothing/'), []);
    assert.equal((await store.list('')).length, 6);
  });

  it('deletes (a missing object too), and a deleted path can be created again with a new generation', async () => {
    await store.create('d/x', 'one');
    const first = (await store.read('d/x'))!;
    await store.delete('d/x');
    await store.delete('d/x');
    assert.equal(await store.read('d/x'), null);
    assert.deepEqual(await store.list('d/'), []);
    assert.equal(await store.create('d/x', 'two'), true);
    assert.equal(await store.replace('d/x', 'three', first.generation), false, 'an old generation never comes back');
  });

  it('gives a file path whose content is the object (for load jobs)', async () => {
    await store.create('batches/b1/chunks/000000.ndjson', '{"operation_id":"a"}\n');
    const uri = store.uri('batches/b1/chunks/000000.ndjson');
    assert.equal(uri, join(root, 'batches/b1/chunks/000000.ndjson'));
    assert.equal(readFileSync(uri, 'utf8'), '{"operation_id":"a"}\n');
  });

  it('treats a plain file put there by hand as an object that can be replaced', async () => {
    writeFileSync(join(root, 'last_timestamp.txt'), '2026-01-15T10:00:00Z');
    const object = (await store.read('last_timestamp.txt'))!;
    assert.equal(object.data, '2026-01-15T10:00:00Z');
    assert.equal(await store.create('last_timestamp.txt', 'x'), false);
    assert.equal(await store.replace('last_timestamp.txt', '2026-01-15T10:20:00Z', object.generation), true);
    assert.equal((await store.read('last_timestamp.txt'))!.data, '2026-01-15T10:20:00Z');
    assert.ok(lstatSync(join(root, 'last_timestamp.txt')).isSymbolicLink());
  });

  const badPaths = ['', '/abs', 'a//b', 'a/../b', './a', '.generations/x', 'a\\b'];
  for (const path of badPaths) {
    it(`refuses the path ${JSON.stringify(path)}`, async () => {
      await assert.rejects(store.create(path, 'x'), /not a valid object path/);
    });
  }
});
