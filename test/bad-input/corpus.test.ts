/**
 * The bad-input corpus: every way the chain's inputs can be wrong (HTTP bodies, Pub/Sub payloads,
 * Dataflow status events, source rows, configuration), each with the clear error it must get and
 * the proof that nothing was lost or changed. Invariant 5 of the design: a malformed message is
 * logged with its message ID and set aside (the function returns, so it is acknowledged, not
 * retried forever); a bad HTTP body gets a 4xx saying what is wrong; a bad configuration stops
 * start-up with one message naming every bad variable.
 */
import assert from 'node:assert/strict';
import type { CloudEvent } from '@google-cloud/functions-framework';
import { makeCollectIds } from '../../functions/collect-ids';
import { makeLaunchDataflow } from '../../functions/launch-dataflow';
import { makeMergeOnComplete } from '../../functions/merge-on-complete';
import { makePublishOps } from '../../functions/publish-ops';
import { MAX_IDS_PER_CHUNK, jobNameFor, paths, type Manifest } from '../../shared/batch';
import { ConfigError, loadConfig } from '../../shared/config';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import type { TableRef } from '../../shared/ports';
import { loadSchema } from '../../shared/schema';
import { TEST_BATCH_ID, httpCall, jobStatusEvent, makeFakes, pubsubEvent, rawBase64, seedBatch, type Fakes, type JobPayload, type MemoryObjectStore } from '../support/fakes';

const WATERMARK = 'last_timestamp.txt';
const W = '2026-01-15T10:00:00Z';
const WINDOW = { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z' };
const LABEL = '20260115t102000z-abc123';
const SHAPES = /^The request body must be empty, \{"from": \.\.\., "to": \.\.\.\} or \{"ids": \[\.\.\.\]\} as JSON/;

/** What the printed table says of each case. */
const summary: { case: string; input: string; expected: string }[] = [];

/** A regex of the corpus as a reader would write the message: no anchors, no escapes, the shared prefix of set-aside messages shortened. */
function readable(error: RegExp): string {
  return error.source
    .replace(/^\^\(Malformed message\|Message of the wrong shape\) on [a-z-]+, acknowledged and set aside: /, '… set aside: ')
    .replace(/^\^|\$$/g, '')
    .replace(/\\(.)/g, '$1')
    .replace(/\.\*/g, '…');
}

/** The bucket as paths and generations (the lease, which publishOps takes and gives back, aside). */
function snapshot(store: MemoryObjectStore): Record<string, string | undefined> {
  return Object.fromEntries(store.paths().filter((p) => p !== 'lease.json').map((p) => [p, store.generationOf(p)]));
}

/** A batch in flight that bad input must not disturb (it moved 2 minutes ago: the reconciler leaves it). */
async function inFlight(f: Fakes, status: 'SEALED' | 'LAUNCHED' = 'SEALED'): Promise<void> {
  await seedBatch(f.store, {
    window: WINDOW,
    status,
    storeChunks: status === 'SEALED' ? [0] : true,
    state: status === 'LAUNCHED' ? { attempt: 1, jobName: jobNameFor(TEST_BATCH_ID, 1), jobId: 'job-1' } : {},
  });
  f.store.put(paths.open(TEST_BATCH_ID), JSON.stringify({ batchId: TEST_BATCH_ID, createdAt: '2026-01-15T10:20:30.000Z' }));
}

function assertNothingTouched(f: Fakes, before: Record<string, string | undefined>): void {
  assert.deepEqual(f.publisher.messages, [], 'nothing published');
  assert.equal(f.publisher.calls, 0, 'no publish even tried');
  assert.deepEqual(snapshot(f.store), before, 'the state bucket is unchanged (no object written, replaced or deleted)');
  assert.deepEqual(f.warehouse.statements, [], 'no statement ran');
  assert.deepEqual(f.warehouse.streams, [], 'nothing extracted');
  assert.deepEqual(f.warehouse.loads, [], 'nothing loaded');
  assert.deepEqual(f.warehouse.drops, [], 'no table dropped');
  assert.deepEqual(f.launcher.requests, [], 'no job launched');
}

// ---------------------------------------------------------------------------------------------
// HTTP bodies to publishOps

interface HttpCase {
  name: string;
  method?: string;
  body?: unknown;
  env?: Record<string, string>;
  /** The stored watermark; null: none yet. */
  watermark?: string | null;
  status: 400 | 405;
  error: RegExp;
}

const httpCases: HttpCase[] = [
  { name: 'GET instead of POST', method: 'GET', status: 405, error: /^Method GET not allowed: publishOps takes POST$/ },
  { name: 'DELETE with a body', method: 'DELETE', body: { ids: ['op-1'] }, status: 405, error: /^Method DELETE not allowed/ },
  { name: 'a JSON array', body: ['op-1', 'op-2'], status: 400, error: SHAPES },
  { name: 'plain text', body: 'please run', status: 400, error: SHAPES },
  { name: 'a bare number', body: 20, status: 400, error: SHAPES },
  { name: 'form data (no JSON content type)', body: Buffer.from('from=2026-01-15T08:00:00Z&to=2026-01-15T09:00:00Z'), status: 400, error: /^The request body must be JSON \(send Content-Type: application\/json\)$/ },
  { name: 'an unknown field', body: { force: true }, status: 400, error: /^Unexpected field\(s\) in the request body: force; publishOps takes an empty body, \{"from", "to"\} or \{"ids"\}$/ },
  { name: 'a replay window backwards', body: { from: '2026-01-15T09:00:00Z', to: '2026-01-15T08:00:00Z' }, status: 400, error: /^Bad replay body: from \(2026-01-15T09:00:00Z\) must be before to \(2026-01-15T08:00:00Z\)$/ },
  { name: 'a replay window of dates without times', body: { from: '2026-01-14', to: '2026-01-15' }, status: 400, error: /^Bad replay body: from: must be an RFC 3339 timestamp such as 2026-01-15T10:00:00Z; to: must be an RFC 3339 timestamp/ },
  { name: 'a replay window without its end', body: { from: '2026-01-15T08:00:00Z' }, status: 400, error: /^Bad replay body: to: Invalid input: expected string, received undefined$/ },
  { name: 'an empty list of IDs', body: { ids: [] }, status: 400, error: /^Bad replay body: ids: must list at least one ID$/ },
  { name: 'IDs that are not strings', body: { ids: [101, 102] }, status: 400, error: /^Bad replay body: ids\.0: Invalid input: expected string, received number; ids\.1: / },
  { name: 'more IDs than REPLAY_MAX_IDS', env: { REPLAY_MAX_IDS: '2' }, body: { ids: ['a', 'b', 'c'] }, status: 400, error: /^ids lists 3 IDs; one replay takes at most 2 \(REPLAY_MAX_IDS\): split the list$/ },
  { name: 'a replay ending after the watermark', body: { from: '2026-01-15T09:00:00Z', to: '2026-01-15T10:05:00Z' }, status: 400, error: /^Bad replay body: to \(2026-01-15T10:05:00\.000Z\) is after the watermark \(2026-01-15T10:00:00\.000Z\)/ },
  { name: 'a replay before anything was consolidated', watermark: null, body: { ids: ['op-1'] }, status: 400, error: /^Nothing has been consolidated yet \(no watermark\): there is nothing to replay$/ },
];

// ---------------------------------------------------------------------------------------------
// Pub/Sub payloads to collectIds and launchDataflow

interface PubsubCase {
  name: string;
  target: 'collectIds' | 'launchDataflow';
  messageId: string;
  event: CloudEvent<unknown>;
  error: RegExp;
}

const chunk = (changes: Record<string, unknown> = {}) => ({ type: 'chunk', batchId: TEST_BATCH_ID, chunk: 1, ids: ['op-b1', 'op-b2'], ...changes });
const seal = (changes: Record<string, unknown> = {}) => ({ type: 'seal', batchId: TEST_BATCH_ID, chunkCount: 3, idCount: 5, window: WINDOW, ...changes });
const announcement = (changes: Record<string, unknown> = {}) => ({ type: 'batch', batchId: TEST_BATCH_ID, attempt: 1, ...changes });

function pubsub(target: PubsubCase['target'], name: string, messageId: string, payload: unknown, error: RegExp): PubsubCase {
  const topic = target === 'collectIds' ? 'ussd-operations-topic' : 'consolidation-batches';
  return { name, target, messageId, event: pubsubEvent(payload, { messageId, topic }), error };
}

const IDS = /^(Malformed message|Message of the wrong shape) on ussd-operations-topic, acknowledged and set aside: /;
const BATCHES = /^(Malformed message|Message of the wrong shape) on consolidation-batches, acknowledged and set aside: /;
const withProblem = (prefix: RegExp, problem: string) => new RegExp(prefix.source + problem);

const pubsubCases: PubsubCase[] = [
  pubsub('collectIds', 'data that is not base64', 'm-b64', rawBase64('{"type": "chunk"}'), withProblem(IDS, 'the message data is not base64$')),
  pubsub('collectIds', 'base64 of something that is not JSON', 'm-json', rawBase64(Buffer.from('chunk 1 of batch 20260115T102000Z-abc123').toString('base64')), withProblem(IDS, 'the message data is not JSON$')),
  pubsub('collectIds', 'a message with no data', 'm-empty', rawBase64(''), withProblem(IDS, 'the message has no data$')),
  {
    name: 'an event with no Pub/Sub message in it',
    target: 'collectIds',
    messageId: 'm-nomsg',
    event: { ...pubsubEvent({}, { messageId: 'm-nomsg' }), data: { subscription: 'projects/p/subscriptions/s' } },
    error: withProblem(IDS, 'the event has no Pub/Sub message \\(data\\.message\\)$'),
  },
  pubsub('collectIds', 'JSON null', 'm-null', null, withProblem(IDS, '\\(message\\): Invalid input: expected object, received null$')),
  pubsub('collectIds', 'an unknown message type', 'm-type', { type: 'hello', batchId: TEST_BATCH_ID }, withProblem(IDS, "type: Invalid discriminator value\\. Expected 'chunk' \\| 'seal'$")),
  pubsub('collectIds', 'a chunk with a malformed batch ID', 'm-badid', chunk({ batchId: '2026-01-15-abc' }), withProblem(IDS, 'batchId: must be a batch ID such as 20260115T102000Z-1a2b3c$')),
  pubsub('collectIds', 'a chunk with a negative number', 'm-neg', chunk({ chunk: -1 }), withProblem(IDS, 'chunk: Too small: expected number to be >=0$')),
  pubsub('collectIds', 'a chunk with a fractional number', 'm-frac', chunk({ chunk: 1.5 }), withProblem(IDS, 'chunk: Invalid input: expected int, received number$')),
  pubsub('collectIds', 'a chunk without IDs', 'm-noids', chunk({ ids: [] }), withProblem(IDS, 'ids: Too small: expected array to have >=1 items$')),
  pubsub('collectIds', 'a chunk with an empty ID', 'm-emptyid', chunk({ ids: ['op-b1', ''] }), withProblem(IDS, 'ids\\.1: Too small: expected string to have >=1 characters$')),
  pubsub('collectIds', `a chunk too large (${MAX_IDS_PER_CHUNK + 1} IDs)`, 'm-big', chunk({ ids: Array.from({ length: MAX_IDS_PER_CHUNK + 1 }, (_, i) => `op-${i}`) }), withProblem(IDS, `ids: Too big: expected array to have <=${MAX_IDS_PER_CHUNK} items$`)),
  pubsub('collectIds', 'a chunk with a field it does not know', 'm-extra', chunk({ priority: 'high' }), withProblem(IDS, '\\(message\\): Unrecognized key: "priority"$')),
  pubsub('collectIds', 'a seal with a window that is not timestamps', 'm-sealwin', seal({ window: { from: 'yesterday', to: 'today' } }), withProblem(IDS, 'window\\.from: must be an RFC 3339 timestamp; window\\.to: must be an RFC 3339 timestamp$')),
  pubsub('collectIds', 'a seal of a batch nobody wrote (no manifest)', 'm-sealunknown', seal({ batchId: '20260115T102000Z-ffffff' }), /^Seal of an unknown batch \(no manifest\), acknowledged and set aside$/),
  pubsub('collectIds', 'a seal that disagrees with the manifest', 'm-sealcount', seal({ chunkCount: 4, idCount: 7 }), /^Seal disagrees with the batch manifest, acknowledged and set aside$/),
  pubsub('launchDataflow', 'data that is not base64', 'b-b64', rawBase64('batch 20260115T102000Z-abc123'), withProblem(BATCHES, 'the message data is not base64$')),
  pubsub('launchDataflow', 'an announcement of attempt 0', 'b-att0', announcement({ attempt: 0 }), withProblem(BATCHES, 'attempt: Too small: expected number to be >=1$')),
  pubsub('launchDataflow', 'an attempt as a string', 'b-attstr', announcement({ attempt: '2' }), withProblem(BATCHES, 'attempt: Invalid input: expected number, received string$')),
  pubsub('launchDataflow', 'a chunk sent to the batches topic', 'b-chunk', chunk(), withProblem(BATCHES, 'type: Invalid input: expected "batch"; ')),
  pubsub('launchDataflow', 'a batch ID with SQL in it', 'b-sql', announcement({ batchId: "x'; DROP TABLE consolidated_table; --" }), withProblem(BATCHES, 'batchId: must be a batch ID')),
  pubsub('launchDataflow', 'an announcement of a batch that does not exist', 'b-unknown', announcement({ batchId: '20260115T102000Z-ffffff' }), /^Announcement of an unknown batch \(no manifest or state\), acknowledged and set aside$/),
];

// ---------------------------------------------------------------------------------------------
// Dataflow statusChanged events to mergeOnComplete

interface EventCase {
  name: string;
  eventId: string;
  event: CloudEvent<unknown>;
  severity: 'ERROR' | 'WARNING';
  error: RegExp;
}

const ourJob = (changes: Partial<JobPayload> = {}): JobPayload => ({
  id: '2026-01-15_02_22_00-job1',
  name: jobNameFor(TEST_BATCH_ID, 1),
  currentState: 'JOB_STATE_DONE',
  labels: { pipeline: 'consolidation', batch_id: LABEL, attempt: '1' },
  ...changes,
});
const statusEvent = (name: string, eventId: string, job: JobPayload | undefined, error: RegExp, type?: string): EventCase => ({
  name,
  eventId,
  event: jobStatusEvent(job, { id: eventId, type }),
  severity: type ? 'WARNING' : 'ERROR',
  error,
});

const eventCases: EventCase[] = [
  statusEvent('an event of another type', 'e-type', ourJob(), /^Event of type google\.cloud\.storage\.object\.v1\.finalized ignored: mergeOnComplete takes google\.cloud\.dataflow\.job\.v1beta3\.statusChanged$/, 'google.cloud.storage.object.v1.finalized'),
  statusEvent('an event with no payload', 'e-nopayload', undefined, /^Job status event of the wrong shape, acknowledged and set aside: \(message\): Invalid input: expected object, received undefined$/),
  statusEvent('a payload without the job ID', 'e-noid', ourJob({ id: undefined }), /^Job status event of the wrong shape, acknowledged and set aside: id: Invalid input: expected string, received undefined$/),
  statusEvent('a payload with an empty state', 'e-nostate', ourJob({ currentState: '' }), /^Job status event of the wrong shape, acknowledged and set aside: currentState: not a Dataflow job state: ""$/),
  statusEvent('labels that are not strings', 'e-labels', ourJob({ labels: { pipeline: 'consolidation', batch_id: LABEL, attempt: 1 } }), /^Job status event of the wrong shape, acknowledged and set aside: labels\.attempt: Invalid input: expected string, received number$/),
  statusEvent('our job without its batch_id label', 'e-nobatch', ourJob({ labels: { pipeline: 'consolidation', attempt: '1' } }), /^Job of this pipeline without a valid batch_id or attempt label, acknowledged and set aside$/),
  statusEvent('a batch_id label that is not a batch ID', 'e-badbatch', ourJob({ labels: { pipeline: 'consolidation', batch_id: 'nightly-2026', attempt: '1' } }), /^Job of this pipeline without a valid batch_id or attempt label/),
  statusEvent('an attempt label that is not a number', 'e-attempt', ourJob({ labels: { pipeline: 'consolidation', batch_id: LABEL, attempt: 'first' } }), /^Job of this pipeline without a valid batch_id or attempt label/),
  statusEvent('a batch that does not exist', 'e-unknown', ourJob({ labels: { pipeline: 'consolidation', batch_id: '20260115t102000z-ffffff', attempt: '1' } }), /^Job status event of an unknown batch, acknowledged and set aside$/),
];

// ---------------------------------------------------------------------------------------------
// Configuration

interface ConfigCase {
  name: string;
  env: Record<string, string>;
  bad: string[];
}

const configCases: ConfigCase[] = [
  { name: 'a zero chunk size, a lease that never ends, no attempt', env: { CHUNK_SIZE: '0', LEASE_DURATION: 'forever', MAX_ATTEMPTS: '0' }, bad: ['CHUNK_SIZE', 'LEASE_DURATION', 'MAX_ATTEMPTS'] },
  { name: 'gcp without project or bucket, and a bad replay limit', env: { CONSOLIDATION_BACKEND: 'gcp', REPLAY_MAX_IDS: 'all' }, bad: ['REPLAY_MAX_IDS', 'GCP_PROJECT', 'STATE_BUCKET', 'INITIAL_WATERMARK'] },
  { name: 'names with SQL or wildcards in them', env: { USSD_TABLE: 'ops; DROP TABLE x', LEASE_OBJECT: 'lease*.json', IDS_TOPIC: 'x', STUCK_AFTER: '15 minutes' }, bad: ['USSD_TABLE', 'IDS_TOPIC', 'LEASE_OBJECT', 'STUCK_AFTER'] },
];

// ---------------------------------------------------------------------------------------------

describe('bad-input corpus', () => {
  after(() => {
    const width = (key: 'case' | 'input' | 'expected', max: number) => Math.min(max, Math.max(key.length, ...summary.map((r) => r[key].length)));
    const cut = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text.padEnd(n));
    const [c, i, e] = [width('case', 56), width('input', 26), width('expected', 110)];
    const lines = [`${'case'.padEnd(c)}  ${'input'.padEnd(i)}  expected`, `${'-'.repeat(c)}  ${'-'.repeat(i)}  ${'-'.repeat(e)}`];
    for (const row of summary) lines.push(`${cut(row.case, c)}  ${cut(row.input, i)}  ${cut(row.expected, e)}`.trimEnd());
    console.log(`\nBad-input corpus: ${summary.length} cases\n${lines.join('\n')}\n`);
  });

  describe('HTTP bodies to publishOps -> 4xx saying what is wrong, nothing done', () => {
    for (const c of httpCases) {
      summary.push({ case: c.name, input: `HTTP ${c.method ?? 'POST'} publishOps`, expected: `${c.status} ${readable(c.error)}` });
      it(c.name, async () => {
        const f = makeFakes(c.env);
        if (c.watermark !== null) f.store.put(WATERMARK, c.watermark ?? W);
        f.warehouse.changedIds = ['op-1', 'op-2'];
        await inFlight(f);
        const before = snapshot(f.store);
        const { req, res, response } = httpCall(c.method ?? 'POST', c.body);
        await makePublishOps(f.deps)(req, res);

        assert.equal(response.statusCode, c.status);
        const body = response.body as { error?: unknown };
        assert.equal(typeof body.error, 'string', 'a JSON error');
        assert.match(body.error as string, c.error);
        assertNothingTouched(f, before);
        assert.deepEqual(f.logger.at('ERROR'), [], 'a client error is not logged as an error of the chain');
      });
    }
  });

  describe('Pub/Sub messages -> ERROR with the message ID, acknowledged (set aside), nothing done', () => {
    for (const c of pubsubCases) {
      summary.push({ case: c.name, input: `Pub/Sub ${c.target}`, expected: `ERROR ${readable(c.error)} (+ messageId)` });
      it(`${c.target}: ${c.name}`, async () => {
        const f = makeFakes();
        await inFlight(f, 'SEALED');
        const before = snapshot(f.store);
        const handler = c.target === 'collectIds' ? makeCollectIds(f.deps) : makeLaunchDataflow(f.deps);
        await handler(c.event); // returns normally: the message is acknowledged, not redelivered

        const errors = f.logger.at('ERROR');
        assert.equal(errors.length, 1, 'one ERROR entry');
        assert.match(errors[0].message, c.error);
        assert.equal(errors[0].fields.messageId, c.messageId, 'the entry names the message');
        assertNothingTouched(f, before);
      });
    }
  });

  describe('Dataflow status events -> logged with the event ID, acknowledged, nothing done', () => {
    for (const c of eventCases) {
      summary.push({ case: c.name, input: 'Eventarc mergeOnComplete', expected: `${c.severity} ${readable(c.error)} (+ eventId)` });
      it(c.name, async () => {
        const f = makeFakes();
        await inFlight(f, 'LAUNCHED');
        f.warehouse.profile = [{ day: '2026-01-15', reconciliation_status: 'MATCHED', operations: 5 }];
        const before = snapshot(f.store);
        await makeMergeOnComplete(f.deps)(c.event);

        const logged = f.logger.entries.filter((e) => e.severity === 'ERROR' || e.severity === 'WARNING');
        assert.equal(logged.length, 1);
        assert.equal(logged[0].severity, c.severity);
        assert.match(logged[0].message, c.error);
        assert.equal(logged[0].fields.eventId, c.eventId, 'the entry names the event');
        assertNothingTouched(f, before);
      });
    }
  });

  describe('source rows without operation_id or source_timestamp -> counted, reported at WARNING, the good rows go on', () => {
    const USSD: TableRef = { dataset: 'main', table: 'ussd_operations' };
    const TRANSACTIONS: TableRef = { dataset: 'main', table: 'transactiongu' };
    type Row = { operation_id: string | null; created_at: string; source_timestamp: string | null };

    let warehouse: DuckDbWarehouse;
    beforeEach(async () => {
      warehouse = await DuckDbWarehouse.open(':memory:');
      await warehouse.ensureTable(USSD, loadSchema('ussd_operations'));
      await warehouse.ensureTable(TRANSACTIONS, loadSchema('transactiongu'));
    });
    afterEach(() => warehouse.close());

    async function insert(rows: Row[]): Promise<void> {
      for (const row of rows) {
        await warehouse.query({
          sql: `INSERT INTO "main"."ussd_operations" (operation_id, status, amount, created_at, source_timestamp)
VALUES (CAST($id AS VARCHAR), 'SUCCESS', 100, CAST($created AS TIMESTAMPTZ), CAST($ts AS TIMESTAMPTZ))`,
          params: { id: { type: 'STRING', value: row.operation_id }, created: { type: 'TIMESTAMP', value: row.created_at }, ts: { type: 'TIMESTAMP', value: row.source_timestamp } },
        });
      }
    }

    const cases: { name: string; rows: Row[]; published: string[]; rejected: { missingOperationId: number; missingSourceTimestamp: number } }[] = [
      {
        name: 'good rows mixed with a row without operation_id and rows without source_timestamp',
        rows: [
          { operation_id: 'op-1', created_at: '2026-01-15T10:01:00Z', source_timestamp: '2026-01-15T10:05:00Z' },
          { operation_id: null, created_at: '2026-01-15T10:02:00Z', source_timestamp: '2026-01-15T10:06:00Z' },
          { operation_id: 'op-3', created_at: '2026-01-15T10:07:00Z', source_timestamp: null },
          { operation_id: null, created_at: '2026-01-15T10:08:00Z', source_timestamp: null },
          { operation_id: 'op-4', created_at: '2026-01-15T10:03:00Z', source_timestamp: '2026-01-15T10:10:00Z' },
          // Before the watermark: counted by the run that covered it, not again.
          { operation_id: null, created_at: '2026-01-15T08:00:00Z', source_timestamp: '2026-01-15T08:00:00Z' },
        ],
        published: ['op-1', 'op-4'],
        rejected: { missingOperationId: 1, missingSourceTimestamp: 2 },
      },
      {
        name: 'a window holding only rows that cannot be consolidated',
        rows: [
          { operation_id: null, created_at: '2026-01-15T10:02:00Z', source_timestamp: '2026-01-15T10:06:00Z' },
          { operation_id: 'op-9', created_at: '2026-01-15T10:07:00Z', source_timestamp: null },
        ],
        published: [],
        rejected: { missingOperationId: 1, missingSourceTimestamp: 1 },
      },
    ];
    for (const c of cases) {
      summary.push({ case: c.name, input: 'source rows (DuckDB)', expected: 'WARNING Source rows that cannot be consolidated (counts in the manifest and the answer)' });
      it(c.name, async () => {
        const f = makeFakes();
        f.deps.warehouse = warehouse;
        f.store.put(WATERMARK, W);
        await insert(c.rows);
        const { req, res, response } = httpCall('POST');
        await makePublishOps(f.deps)(req, res);

        assert.equal(response.statusCode, 200, 'bad source rows do not stop the cycle');
        const body = response.body as { status: string; rejected: unknown; batchId?: string };
        assert.deepEqual(body.rejected, c.rejected, 'reported in the answer');
        const warnings = f.logger.at('WARNING');
        assert.equal(warnings.length, 1);
        assert.match(warnings[0].message, /^Source rows that cannot be consolidated \(no operation_id or no source_timestamp\)$/);
        assert.equal(warnings[0].fields.missingOperationId, c.rejected.missingOperationId);
        assert.equal(warnings[0].fields.missingSourceTimestamp, c.rejected.missingSourceTimestamp);
        assert.deepEqual(f.logger.at('ERROR'), []);
        const published = f.publisher.messages.filter((m) => (m.data as { type: string }).type === 'chunk').flatMap((m) => (m.data as { ids: string[] }).ids);
        assert.deepEqual(published.sort(), c.published, 'every good row is published; no NULL becomes an ID');
        if (c.published.length > 0) {
          assert.equal(body.status, 'sealed');
          assert.equal(warnings[0].fields.batchId, body.batchId, 'the warning names the batch');
          assert.deepEqual(f.store.getJson<Manifest>(paths.manifest(body.batchId!))?.rejected, c.rejected, 'recorded in the manifest');
        } else {
          assert.equal(body.status, 'empty');
        }
      });
    }
  });

  describe('configuration -> one ConfigError naming every bad variable', () => {
    for (const c of configCases) {
      summary.push({ case: c.name, input: 'configuration', expected: `ConfigError naming ${c.bad.join(', ')}` });
      it(c.name, () => {
        assert.throws(
          () => loadConfig(c.env),
          (error: unknown) => {
            assert.ok(error instanceof ConfigError);
            assert.deepEqual(error.problems.map((p) => p.variable).sort(), [...c.bad].sort());
            assert.match(error.message, /^Invalid configuration: /);
            for (const name of c.bad) assert.match(error.message, new RegExp(`\\b${name}\\b`), `names ${name}`);
            for (const [name, value] of Object.entries(c.env)) if (c.bad.includes(name)) assert.ok(error.message.includes(JSON.stringify(value)), `quotes the value of ${name}`);
            assert.equal(error.message.split('\n').length, 1, 'one message');
            return true;
          },
        );
      });
    }
  });
});
