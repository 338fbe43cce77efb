import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BigQuery, Table } from '@google-cloud/bigquery';
import { Storage } from '@google-cloud/storage';
import { GoogleAuth, IdTokenClient } from 'google-auth-library';
import sinon from 'sinon';
import { LAST_AUDIT_OBJECT, runAudit } from '../../functions/audit';
import { BigQueryWarehouse } from '../../shared/gcp/bigquery-warehouse';
import { PublishOpsReplayer } from '../../shared/gcp/publish-ops-replayer';
import { pipelinePlanOf, planSelectUnresolved } from '../../shared/local/pipeline-runner';
import { pipelineFilePath } from '../../shared/pipeline/file';
import type { Row } from '../../shared/ports';
import { auditDaySummary, auditDrillDown, fromScratchVariables } from '../../shared/sql/audit';
import { bigqueryDialect } from '../../shared/sql/dialect';
import { FixedClock, MemoryLogger, MemoryObjectStore, testConfig } from '../support/fakes';

/**
 * The audit on Google Cloud: runAudit with the BigQuery adapter and the publishOps replayer on real
 * client objects, only their network methods stubbed; the requests must be exactly these.
 */

const PROJECT = 'my-project';
const URL = 'https://ussd-publish-ops-abc123-ew.a.run.app';
const WATERMARK = '2026-01-15T10:00:00.000Z';
const DONE = { status: { state: 'DONE' } };

function setup(answers: Row[][]) {
  const config = testConfig({ CONSOLIDATION_BACKEND: 'gcp', GCP_PROJECT: PROJECT, STATE_BUCKET: 'state', INITIAL_WATERMARK: '2026-01-01T00:00:00Z', SOURCE_DATASET: 'source_dataset', AUDIT_DAYS: '2', REPLAY_MAX_IDS: '2' });
  const bigquery = new BigQuery({ projectId: PROJECT });
  const storage = new Storage({ projectId: PROJECT });
  sinon.stub(bigquery, 'request').rejects(new Error('A test reached the network'));
  const create = sinon.stub(bigquery, 'createQueryJob');
  answers.forEach((rows, i) => {
    const job = bigquery.job(`job-${i}`, { location: 'EU' });
    sinon.stub(job, 'getQueryResults').resolves([rows] as never);
    sinon.stub(job, 'getMetadata').resolves([DONE] as never);
    create.onCall(i).resolves([job, {}] as never);
  });
  const exists = sinon.stub(Table.prototype, 'exists').resolves([true] as never);
  const store = new MemoryObjectStore();
  store.put(config.watermarkObject, WATERMARK);
  const auth = new GoogleAuth();
  const client = new IdTokenClient({ idTokenProvider: { fetchIdToken: async () => 'token' } as never, targetAudience: URL });
  sinon.stub(auth, 'getIdTokenClient').resolves(client);
  const post = sinon.stub(client, 'request').callsFake((async (options: { data: { ids: string[] } }) => ({ status: 200, data: { status: 'sealed', batchId: `b-${options.data.ids[0]}`, idCount: options.data.ids.length } })) as never);
  const logger = new MemoryLogger();
  const deps = {
    config,
    store,
    logger,
    clock: new FixedClock(new Date('2026-01-15T10:30:00.000Z')),
    warehouse: new BigQueryWarehouse({ bigquery, storage, project: PROJECT, location: 'EU', pollIntervalMs: 0 }),
    pipeline: { text: readFileSync(pipelineFilePath(), 'utf8'), file: pipelineFilePath() },
    replayer: new PublishOpsReplayer({ auth, url: URL, logger }),
  };
  return { config, create, exists, post, store, deps };
}

const fromScratch = (config: ReturnType<typeof testConfig>) => planSelectUnresolved(pipelinePlanOf(readFileSync(pipelineFilePath(), 'utf8'), fromScratchVariables(bigqueryDialect(PROJECT), config.tables), pipelineFilePath()), bigqueryDialect(PROJECT));
const DAYS = { from: '2026-01-14', to: '2026-01-15' };

describe('runAudit on Google Cloud (BigQuery and publishOps at the client boundary)', () => {
  afterEach(() => sinon.restore());

  it('a clean run: one summary query, one insert, nothing replayed', async () => {
    const summary = [{ day: '2026-01-14', expected_rows: 5, actual_rows: 5, expected_fingerprint: '-42', actual_fingerprint: '-42' }];
    const { config, create, post, store, deps } = setup([summary, []]);
    const report = await runAudit(deps, { repair: true });
    assert.equal(report.outcome, 'clean');
    assert.equal(create.callCount, 2);
    const expected = auditDaySummary(bigqueryDialect(PROJECT), config.tables.consolidated, fromScratch(config), DAYS, WATERMARK);
    const request = create.firstCall.args[0] as Record<string, unknown>;
    assert.equal(request.query, expected.sql);
    assert.deepEqual(request.types, { day_from: 'TIMESTAMP', day_to: 'TIMESTAMP', as_of: 'TIMESTAMP', read_after: 'TIMESTAMP' });
    assert.deepEqual(request.params, { day_from: BigQuery.timestamp('2026-01-14T00:00:00Z'), day_to: BigQuery.timestamp('2026-01-16T00:00:00Z'), as_of: BigQuery.timestamp(WATERMARK), read_after: BigQuery.timestamp('2026-01-13T23:59:59.999Z') });
    assert.equal(request.location, 'EU');
    assert.equal(request.useLegacySql, false);
    const insert = create.secondCall.args[0] as { query: string; params: Record<string, unknown> };
    assert.match(insert.query, /^INSERT INTO `my-project\.consolidated_dataset\.consolidation_audit` \(audit_id, audited_at, as_of, day, /);
    assert.equal(insert.params.outcome_0, 'clean');
    assert.equal(post.callCount, 0);
    assert.equal(JSON.parse((await store.read(LAST_AUDIT_OBJECT))!.data).outcome, 'clean');
  });

  it('a replayed day with nothing held back is "replayed" until the next audit checks it', async () => {
    const summary = [{ day: '2026-01-15', expected_rows: 1, actual_rows: 0, expected_fingerprint: '2', actual_fingerprint: null }];
    const drill = [{ operation_id: 'OP1', day: '2026-01-15', kind: 'missing', expected_version_ts: '2026-01-15T08:00:00.000Z', actual_version_ts: null, differing_columns: '' }];
    const { post, deps } = setup([summary, drill, []]);
    const report = await runAudit(deps, { repair: true, from: '2026-01-15' });
    assert.equal(post.callCount, 1);
    assert.equal(report.outcome, 'replayed');
  });

  it('a differing day: the drill-down on that day only, then the replays to publishOps in chunks of REPLAY_MAX_IDS, not the orphan', async () => {
    const summary = [
      { day: '2026-01-14', expected_rows: 5, actual_rows: 5, expected_fingerprint: '1', actual_fingerprint: '1' },
      { day: '2026-01-15', expected_rows: 7, actual_rows: 6, expected_fingerprint: '2', actual_fingerprint: '3' },
    ];
    const row = (operation_id: string, kind: string, expected: string | null, actual: string | null, columns = '') => ({ operation_id, day: '2026-01-15', kind, expected_version_ts: expected, actual_version_ts: actual, differing_columns: columns });
    const drill = [
      row('OP1', 'missing', '2026-01-15T08:00:00.000Z', null),
      row('OP2', 'different', '2026-01-15T08:00:00.000Z', '2026-01-15T08:00:00.000Z', 'agent_name '),
      row('OP3', 'different', '2026-01-15T09:00:00.000Z', '2026-01-15T07:00:00.000Z', 'ussd_status source_timestamp version_ts '),
      row('OP4', 'extra', null, '2026-01-15T07:00:00.000Z'),
      row('OP5', 'missing', '2026-01-15T09:55:00.000Z', null),
    ];
    const { config, create, post, deps } = setup([summary, drill, []]);
    const report = await runAudit(deps, { repair: true });
    const expected = auditDrillDown(bigqueryDialect(PROJECT), config.tables.consolidated, fromScratch(config), DAYS, WATERMARK, ['2026-01-15']);
    const request = create.secondCall.args[0] as Record<string, unknown>;
    assert.equal(request.query, expected.sql);
    assert.deepEqual(request.types, { day_from: 'TIMESTAMP', day_to: 'TIMESTAMP', as_of: 'TIMESTAMP', read_after: 'TIMESTAMP', days: ['DATE'] });
    assert.deepEqual(request.params, { day_from: BigQuery.timestamp('2026-01-14T00:00:00Z'), day_to: BigQuery.timestamp('2026-01-16T00:00:00Z'), as_of: BigQuery.timestamp(WATERMARK), read_after: BigQuery.timestamp('2026-01-13T23:59:59.999Z'), days: [BigQuery.date('2026-01-15')] });
    // OP5 changed within the lookback (after 09:45): pending. OP4 is an orphan.
    assert.deepEqual(post.getCalls().map((c) => (c.args[0] as { data: unknown }).data), [{ ids: ['OP1', 'OP2'] }, { ids: ['OP3'] }]);
    assert.deepEqual(report.repair?.orphans, ['OP4']);
    assert.equal(report.repair?.verified, false, 'on Google Cloud a replay is sealed, not followed');
    assert.deepEqual(report.results.map((r) => [r.day, r.outcome, r.missing, r.extra, r.different, r.pending, r.replayed]), [
      ['2026-01-14', 'clean', 0, 0, 0, 0, 0],
      ['2026-01-15', 'differs', 1, 1, 2, 1, 3],
    ]);
    assert.equal(report.outcome, 'differs', 'the orphan is still there');
    const insert = create.thirdCall.args[0] as { params: Record<string, unknown> };
    assert.equal(insert.params.sample_ids_1, 'OP1 OP2 OP3 OP4 OP5');
  });
});
