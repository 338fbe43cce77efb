import assert from 'node:assert/strict';
import { BigQuery, Table } from '@google-cloud/bigquery';
import { Bucket, File, Storage } from '@google-cloud/storage';
import sinon from 'sinon';
import { paths } from '../../shared/batch';
import { GcsObjectStore } from '../../shared/gcp/gcs-object-store';
import { callPublishOps, identityToken, type IdentityTokens } from '../../shared/gcp/operator';
import { auditCommand } from '../../shared/cli/audit';
import { rejectsCommand } from '../../shared/cli/rejects';
import { listQuarantine, quarantineCounts } from '../../shared/sql/statements';
import { bigqueryDialect } from '../../shared/sql/dialect';
import { CliError } from '../../shared/cli/exit';
import { BigQueryWarehouse } from '../../shared/gcp/bigquery-warehouse';
import { reconcileCommand, replayCommand, statusCommand, type OperationOptions } from '../../shared/cli/operations';
import { resolveSettings } from '../../shared/cli/settings';
import { loadSchema } from '../../shared/schema';
import { makeFakes, seedBatch, TEST_BATCH_ID } from '../support/fakes';

/**
 * The operator's commands on Google Cloud: the same code as the functions, with the Google Cloud
 * adapters; the clients are stubbed at their boundary (no request leaves the process).
 */

const URL = 'https://ussd-publish-ops-abc123-ew.a.run.app';
const GCP = { CONSOLIDATION_BACKEND: 'gcp', GCP_PROJECT: 'my-project', STATE_BUCKET: 'my-state', INITIAL_WATERMARK: '2026-01-01T00:00:00Z', PUBLISH_OPS_URL: URL };

function tokens(adc: 'works' | 'user-account', gcloud: 'works' | 'missing' = 'works'): IdentityTokens & { fetchIdToken: sinon.SinonStub; gcloudToken: sinon.SinonStub; getIdTokenClient: sinon.SinonStub } {
  const fetchIdToken = sinon.stub().resolves('adc-token');
  const getIdTokenClient = adc === 'works' ? sinon.stub().resolves({ idTokenProvider: { fetchIdToken } }) : sinon.stub().rejects(new Error('Cannot fetch ID token in this environment'));
  const gcloudToken = gcloud === 'works' ? sinon.stub().resolves('gcloud-token') : sinon.stub().rejects(new Error('spawn gcloud ENOENT'));
  return { auth: { getIdTokenClient } as never, gcloudToken, fetchIdToken, getIdTokenClient };
}

function options(env: Record<string, string>, extra: Partial<OperationOptions> = {}): OperationOptions & { lines: string[] } {
  const settings = resolveSettings({}, { HOME: '/nonexistent', ...env });
  const lines: string[] = [];
  return { config: settings.config, tool: settings.tool, pubsubEmulator: false, verbose: false, out: (line) => lines.push(line), lines, ...extra };
}

describe('consolidate on Google Cloud', () => {
  afterEach(() => sinon.restore());

  describe('status: the state bucket through GcsObjectStore', () => {
    it('lists the batches, reads the watermark, the lease and each state, and writes nothing', async () => {
      const storage = new Storage({ projectId: 'my-project' });
      sinon.stub(storage, 'request').rejects(new Error('A test reached the network'));
      const objects: Record<string, string> = {
        'last_timestamp.txt': '2026-01-15T10:00:00.000Z',
        [paths.state(TEST_BATCH_ID)]: JSON.stringify({ batchId: TEST_BATCH_ID, status: 'MERGED', attempt: 1, updatedAt: '2026-01-15T10:05:00.000Z', history: [], merge: { inserted: 2, updated: 1, unchanged: 0, sourceRows: 3 } }),
      };
      const getFiles = sinon.stub(Bucket.prototype, 'getFiles').callsFake(async function (this: Bucket, query?: { prefix?: string }) {
        return [Object.keys(objects).filter((name) => name.startsWith(query?.prefix ?? '')).map((name) => this.file(name))];
      } as never);
      sinon.stub(File.prototype, 'getMetadata').callsFake(async function (this: File) {
        if (!(this.name in objects)) throw Object.assign(new Error('No such object'), { code: 404 });
        return [{ generation: '7' }];
      } as never);
      const download = sinon.stub(File.prototype, 'download').callsFake(async function (this: File) {
        return [Buffer.from(objects[this.name])];
      } as never);
      const writes = [sinon.stub(File.prototype, 'save'), sinon.stub(File.prototype, 'delete')];
      const store = new GcsObjectStore(storage.bucket('my-state'));
      const f = makeFakes(GCP);
      const o = options(GCP, { composeGcp: () => ({ ...f.deps, store }), now: new Date('2026-01-15T10:30:00Z') });
      const { code, report } = await statusCommand({ ...o, limit: 20, json: false });
      assert.equal(code, 0);
      assert.equal(report.state, 'gs://my-state');
      assert.equal(report.watermark, '2026-01-15T10:00:00.000Z');
      assert.equal(report.lease.standing, 'free');
      assert.deepEqual(report.batches.shown.map((b) => [b.batchId, b.status, b.inserted, b.updated]), [[TEST_BATCH_ID, 'MERGED', 2, 1]]);
      assert.deepEqual(getFiles.getCalls().map((c) => (c.thisValue as Bucket).name), ['my-state', 'my-state']);
      assert.deepEqual(getFiles.getCalls().map((c) => c.args[0]), [{ prefix: 'batches/', autoPaginate: true }, { prefix: 'open/', autoPaginate: true }]);
      assert.ok(download.getCalls().every((c) => (c.thisValue as File).bucket.name === 'my-state'));
      for (const write of writes) assert.equal(write.callCount, 0, 'status writes nothing');
      assert.match(o.lines.join('\n'), /^State      gs:\/\/my-state$/m);
    });
  });

  describe('reconcile: the reconciler of the functions, under the lease, with the Google Cloud composition', () => {
    it('repairs a stuck batch, records the lease as held and released by this process, and does not wait for the chain', async () => {
      const f = makeFakes(GCP);
      f.clock.set('2026-01-15T11:00:00.000Z');
      await seedBatch(f.store, { status: 'COLLECTED', state: { updatedAt: '2026-01-15T10:00:00.000Z' } });
      f.store.put(paths.open(TEST_BATCH_ID), JSON.stringify({ batchId: TEST_BATCH_ID, createdAt: '2026-01-15T10:00:00.000Z' }));
      const o = options(GCP, { composeGcp: () => f.deps });
      const code = await reconcileCommand(o);
      assert.equal(code, 0, o.lines.join('\n'));
      assert.match(o.lines.join('\n'), new RegExp(`Reconciler: 1 open batch\\(es\\):\\n  ${TEST_BATCH_ID}  announced`));
      assert.match(o.lines.join('\n'), /The repairs go on in the deployed chain/);
      assert.deepEqual(f.publisher.messages.map((m) => [m.topic, (m.data as { batchId: string }).batchId]), [['consolidation-batches', TEST_BATCH_ID]]);
      const lease = f.store.getJson<{ purpose: string; releasedAt?: string; pid?: number }>('lease.json');
      assert.equal(lease?.purpose, 'reconcile');
      assert.equal(lease?.pid, process.pid);
      assert.ok(lease?.releasedAt);
    });

    it('a lease held by a running publishOps: exit 1 naming it, nothing repaired', async () => {
      const f = makeFakes(GCP);
      f.store.put('lease.json', JSON.stringify({ holder: 'publishOps-x', purpose: 'publishOps', acquiredAt: '2026-01-15T10:59:00.000Z', expiresAt: '2026-01-15T11:09:00.000Z', host: 'localhost', pid: 1 }));
      f.clock.set('2026-01-15T11:00:00.000Z');
      await assert.rejects(reconcileCommand(options(GCP, { composeGcp: () => f.deps })), (e: unknown) => e instanceof CliError && e.exitCode === 1 && /Another run holds the lease: publishOps-x \(publishOps, process 1 on localhost\)/.test(e.message));
      assert.equal(f.publisher.messages.length, 0);
    });
  });

  describe('replay: a POST to the deployed publishOps with the caller\'s identity token', () => {
    const cases: { name: string; body: { from: string; to: string } | { ids: string[] } }[] = [
      { name: 'a window', body: { from: '2026-01-15T06:00:00.000Z', to: '2026-01-15T07:00:00.000Z' } },
      { name: 'a list of IDs', body: { ids: ['OP1', 'OP2'] } },
    ];
    for (const c of cases) {
      it(`${c.name}: the exact request, and the batch it sealed`, async () => {
        const t = tokens('works');
        const fetch = sinon.stub(globalThis, 'fetch').resolves(new Response(JSON.stringify({ status: 'sealed', batchId: '20260115T110000Z-aaaaaa', idCount: 2, replay: 'list of 2 operation IDs' }), { status: 200 }));
        const o = options(GCP, { identityTokens: () => t });
        assert.equal(await replayCommand({ ...o, body: c.body }), 0);
        assert.deepEqual(t.getIdTokenClient.firstCall.args, [URL]);
        assert.deepEqual(t.fetchIdToken.firstCall.args, [URL]);
        assert.equal(t.gcloudToken.callCount, 0);
        assert.equal(fetch.callCount, 1);
        assert.deepEqual(fetch.firstCall.args, [URL, { method: 'POST', headers: { authorization: 'Bearer adc-token', 'content-type': 'application/json' }, body: JSON.stringify(c.body) }]);
        assert.match(o.lines.join('\n'), /replay: batch 20260115T110000Z-aaaaaa · 2 IDs sealed; the deployed chain takes it from here/);
      });
    }

    it('a user account (no token from Application Default Credentials): the token of `gcloud auth print-identity-token`', async () => {
      const t = tokens('user-account');
      assert.deepEqual(await identityToken(URL, t), { token: 'gcloud-token', source: 'gcloud' });
    });

    it('no way to get a token: says how to log in', async () => {
      await assert.rejects(identityToken(URL, tokens('user-account', 'missing')), /No identity token to call publishOps: .*Cannot fetch ID token.*spawn gcloud ENOENT.*gcloud auth login.*roles\/run\.invoker/);
    });

    const refusals: { status: number; exitCode: number; says: RegExp }[] = [
      { status: 400, exitCode: 2, says: /^replay refused: `to` is after the watermark$/ },
      { status: 409, exitCode: 1, says: /^replay not started: Another run holds the lease.*Run it again once that run has finished\.$/ },
      { status: 500, exitCode: 1, says: /^replay failed: boom$/ },
    ];
    for (const r of refusals) {
      it(`publishOps answers ${r.status}: exit ${r.exitCode}, its reason`, async () => {
        const error = { 400: '`to` is after the watermark', 409: 'Another run holds the lease: publishOps-x (publishOps)', 500: 'boom' }[r.status as 400 | 409 | 500];
        sinon.stub(globalThis, 'fetch').resolves(new Response(JSON.stringify({ error }), { status: r.status }));
        await assert.rejects(replayCommand({ ...options(GCP, { identityTokens: () => tokens('works') }), body: { ids: ['OP1'] } }), (e: unknown) => e instanceof CliError && e.exitCode === r.exitCode && r.says.test(e.message));
      });
    }

    it('without PUBLISH_OPS_URL: exit 2, where to find it', async () => {
      const env = { ...GCP, PUBLISH_OPS_URL: '' };
      await assert.rejects(replayCommand({ ...options(env), body: { ids: ['OP1'] } }), (e: unknown) => e instanceof CliError && e.exitCode === 2 && /PUBLISH_OPS_URL \(`terraform output -raw publish_ops_uri`\)/.test(e.message));
    });

    it('an answer that is not JSON keeps its text', async () => {
      sinon.stub(globalThis, 'fetch').resolves(new Response('Forbidden: your client does not have permission', { status: 403 }));
      assert.deepEqual(await callPublishOps(URL, {}, tokens('works')), { status: 403, body: { error: 'Forbidden: your client does not have permission' } });
    });
  });
  describe('audit: the audit of the functions on BigQuery, its repair a POST to publishOps with the caller\'s identity', () => {
    function auditOn(answers: Record<string, unknown>[][], env: Record<string, string> = GCP, extra: Partial<OperationOptions> = {}) {
      const f = makeFakes(env);
      f.store.put(f.config.watermarkObject, '2026-01-15T10:00:00.000Z');
      f.clock.set('2026-01-15T10:30:00.000Z');
      const bigquery = new BigQuery({ projectId: 'my-project' });
      sinon.stub(bigquery, 'request').rejects(new Error('A test reached the network'));
      const create = sinon.stub(bigquery, 'createQueryJob');
      answers.forEach((rows, i) => {
        const job = bigquery.job(`job-${i}`, { location: 'EU' });
        sinon.stub(job, 'getQueryResults').resolves([rows] as never);
        sinon.stub(job, 'getMetadata').resolves([{ status: { state: 'DONE' } }] as never);
        create.onCall(i).resolves([job, {}] as never);
      });
      sinon.stub(Table.prototype, 'exists').resolves([true] as never);
      // ensureTable of an existing table reads its schema (to add missing columns): the audit table has them all.
      sinon.stub(Table.prototype, 'getMetadata').resolves([{ schema: { fields: loadSchema('consolidation_audit') } }] as never);
      const warehouse = new BigQueryWarehouse({ bigquery, storage: new Storage({ projectId: 'my-project' }), project: 'my-project', location: 'EU', pollIntervalMs: 0 });
      const t = tokens('works');
      const o = options(env, { composeGcp: () => ({ ...f.deps, warehouse }), identityTokens: () => t, ...extra });
      return { f, create, t, o };
    }
    const summary = [{ day: '2026-01-15', expected_rows: 2, actual_rows: 1, expected_fingerprint: '2', actual_fingerprint: '3' }];
    const drill = [
      { operation_id: 'OP1', day: '2026-01-15', kind: 'missing', expected_version_ts: '2026-01-15T08:00:00.000Z', actual_version_ts: null, differing_columns: '' },
      { operation_id: 'OP2', day: '2026-01-15', kind: 'different', expected_version_ts: '2026-01-15T08:00:00.000Z', actual_version_ts: '2026-01-15T08:00:00.000Z', differing_columns: 'agent_name ' },
    ];

    it('reports a differing day from BigQuery with exit 1 and replays nothing without --repair', async () => {
      const fetch = sinon.stub(globalThis, 'fetch').rejects(new Error('no replay expected'));
      const { create, o } = auditOn([summary, drill, []]);
      assert.equal(await auditCommand({ ...o, from: '2026-01-15', to: '2026-01-15', repair: false, json: false }), 1, o.lines.join('\n'));
      assert.equal(create.callCount, 3, 'summary, drill-down, the audit table insert');
      assert.match((create.firstCall.args[0] as { query: string }).query, /`my-project\.consolidated_dataset\.consolidated_table`/);
      assert.match(o.lines.join('\n'), /OP2  2026-01-15  different: agent_name/);
      assert.match(o.lines.join('\n'), /Outcome: differs/);
      assert.equal(fetch.callCount, 0);
    });

    it('--repair POSTs exactly the differing IDs to publishOps with the caller\'s token', async () => {
      const fetch = sinon.stub(globalThis, 'fetch').resolves(new Response(JSON.stringify({ status: 'sealed', batchId: '20260115T103000Z-bbbbbb', idCount: 2 }), { status: 200 }));
      const { o } = auditOn([summary, drill, []]);
      assert.equal(await auditCommand({ ...o, from: '2026-01-15', to: '2026-01-15', repair: true, json: false }), 0, o.lines.join('\n'));
      assert.equal(fetch.callCount, 1);
      assert.deepEqual(fetch.firstCall.args, [URL, { method: 'POST', headers: { authorization: 'Bearer adc-token', 'content-type': 'application/json' }, body: JSON.stringify({ ids: ['OP1', 'OP2'] }) }]);
      assert.match(o.lines.join('\n'), /repair: replay ok: publishOps sealed replay batch 20260115T103000Z-bbbbbb \(2 IDs\)/);
    });

    it('--repair without PUBLISH_OPS_URL: exit 2 saying where to find it, nothing queried', async () => {
      const env = { ...GCP, PUBLISH_OPS_URL: '' };
      const { create, o } = auditOn([], env);
      assert.equal(await auditCommand({ ...o, repair: true, json: false }), 2);
      assert.match(o.lines.join('\n'), /set PUBLISH_OPS_URL/);
      assert.equal(create.callCount, 0);
    });
  });
  describe('rejects: the quarantine table in BigQuery through the functions\' warehouse adapter', () => {
    it('counts per reason and lists the rows with the exact statements, reading nothing else', async () => {
      const f = makeFakes(GCP);
      const bigquery = new BigQuery({ projectId: 'my-project' });
      sinon.stub(bigquery, 'request').rejects(new Error('A test reached the network'));
      const exists = sinon.stub(Table.prototype, 'exists').resolves([true] as never);
      const create = sinon.stub(bigquery, 'createQueryJob');
      const answers = [
        [{ reason: 'MISSING_OPERATION_ID', row_count: 2 }],
        [{ first_seen_at: '2026-01-15T10:20:00.000Z', batch_id: '20260115T102000Z-1a2b3c', source_table: 'ussd_operations', reason: 'MISSING_OPERATION_ID', operation_id: '  ', created_at: '2026-01-15T10:00:00.000Z', source_timestamp: '2026-01-15T10:05:00.000Z' }],
      ];
      answers.forEach((rows, i) => {
        const job = bigquery.job(`job-${i}`, { location: 'EU' });
        sinon.stub(job, 'getQueryResults').resolves([rows] as never);
        sinon.stub(job, 'getMetadata').resolves([{ status: { state: 'DONE' } }] as never);
        create.onCall(i).resolves([job, {}] as never);
      });
      const warehouse = new BigQueryWarehouse({ bigquery, storage: new Storage({ projectId: 'my-project' }), project: 'my-project', location: 'EU', pollIntervalMs: 0 });
      const o = options(GCP, { composeGcp: () => ({ ...f.deps, warehouse }) });
      assert.equal(await rejectsCommand({ ...o, reason: 'MISSING_OPERATION_ID', limit: 5, json: false }), 0, o.lines.join('\n'));
      assert.equal(exists.callCount, 1);
      const d = bigqueryDialect('my-project');
      const table = o.config.tables.quarantine;
      assert.deepEqual(create.getCalls().map((c) => (c.args[0] as { query: string }).query), [
        quarantineCounts(d, table, { reason: 'MISSING_OPERATION_ID', batchId: undefined }).sql,
        listQuarantine(d, table, { reason: 'MISSING_OPERATION_ID', batchId: undefined, limit: 5 }).sql,
      ]);
      assert.match(create.firstCall.args[0].query as string, /`my-project\.consolidated_dataset\./);
      assert.match(o.lines.join('\n'), /Quarantine consolidated_dataset\.\w+ \(reason MISSING_OPERATION_ID\): 2 row\(s\)/);
      assert.match(o.lines.join('\n'), /20260115T102000Z-1a2b3c\s+ussd_operations\s+MISSING_OPERATION_ID/);
    });
  });
});
