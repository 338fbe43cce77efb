import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { BigQuery, Dataset, Job, Table, type TableField } from '@google-cloud/bigquery';
import { File, Storage } from '@google-cloud/storage';
import sinon from 'sinon';
import { ChainError } from '../../shared/errors';
import { BigQueryWarehouse, normalizeRow, toBigQueryParams } from '../../shared/gcp/bigquery-warehouse';
import type { QueryParams, Row, SchemaField, Statement } from '../../shared/ports';

/**
 * The BigQuery adapter against the real client objects with every method that would reach the
 * network stubbed; a safety net fails any request that slips through (instead of hanging ~16 s).
 */

const PROJECT = 'my-project';
const LOCATION = 'EU';
const JOB_ID = 'consolidation_merge_20260115t102000z_1a2b3c_a1';
const LABELS = { pipeline: 'consolidation' };

interface Setup {
  bigquery: BigQuery;
  storage: Storage;
  warehouse: BigQueryWarehouse;
}

function setup(): Setup {
  const bigquery = new BigQuery({ projectId: PROJECT });
  const storage = new Storage({ projectId: PROJECT });
  const offline = (_options: unknown, callback?: (error: Error) => void) => {
    const error = new Error('A test reached the network: stub this call');
    if (callback) callback(error);
    else return Promise.reject(error);
  };
  sinon.stub(bigquery, 'request').callsFake(offline as never);
  sinon.stub(storage, 'request').callsFake(offline as never);
  return { bigquery, storage, warehouse: new BigQueryWarehouse({ bigquery, storage, project: PROJECT, location: LOCATION, pollIntervalMs: 0 }) };
}

/** A real Job object whose calls are stubbed. */
function fakeJob(bigquery: BigQuery, id: string, rows: Row[], metadata: object): Job {
  const job = bigquery.job(id, { location: LOCATION });
  sinon.stub(job, 'getQueryResults').resolves([rows] as never);
  sinon.stub(job, 'getMetadata').resolves([metadata] as never);
  return job;
}

const DONE = { status: { state: 'DONE' } };

function apiError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Rows as the client parses them from a BigQuery response (int64 microsecond timestamps). */
function parsedRows(fields: TableField[], raw: unknown[][]): Row[] {
  return BigQuery.mergeSchemaWithRows_({ fields }, raw.map((values) => ({ f: values.map((v) => ({ v })) })), { wrapIntegers: false, parseJSON: false });
}

const micros = (iso: string, extra = 0) => String(Date.parse(iso) * 1000 + extra);

const ALL_TYPES: QueryParams = {
  window_from: { type: 'TIMESTAMP', value: '2026-01-15T10:00:00Z' },
  day: { type: 'DATE', value: '2026-01-15' },
  batch_id: { type: 'STRING', value: '20260115T102000Z-1a2b3c' },
  limit: { type: 'INT64', value: 10 },
  force: { type: 'BOOL', value: false },
  ids: { type: 'STRING_ARRAY', value: ['op-1', 'op-2'] },
  days: { type: 'DATE_ARRAY', value: ['2026-01-14', '2026-01-15'] },
};
const STATEMENT: Statement = { sql: 'SELECT 1 FROM t WHERE ts > @window_from AND id IN UNNEST(@ids)', params: ALL_TYPES };

describe('BigQueryWarehouse', () => {
  afterEach(() => sinon.restore());

  describe('query parameters', () => {
    const cases: { name: string; param: QueryParams[string]; value: unknown; type: unknown; wire: object }[] = [
      { name: 'TIMESTAMP', param: { type: 'TIMESTAMP', value: '2026-01-15T10:20:00Z' }, value: BigQuery.timestamp('2026-01-15T10:20:00Z'), type: 'TIMESTAMP', wire: { parameterType: { type: 'TIMESTAMP' }, parameterValue: { value: '2026-01-15T10:20:00.000Z' } } },
      { name: 'DATE', param: { type: 'DATE', value: '2026-01-15' }, value: BigQuery.date('2026-01-15'), type: 'DATE', wire: { parameterType: { type: 'DATE' }, parameterValue: { value: '2026-01-15' } } },
      { name: 'STRING', param: { type: 'STRING', value: 'b-1' }, value: 'b-1', type: 'STRING', wire: { parameterType: { type: 'STRING' }, parameterValue: { value: 'b-1' } } },
      { name: 'INT64', param: { type: 'INT64', value: 42 }, value: 42, type: 'INT64', wire: { parameterType: { type: 'INT64' }, parameterValue: { value: 42 } } },
      { name: 'BOOL', param: { type: 'BOOL', value: true }, value: true, type: 'BOOL', wire: { parameterType: { type: 'BOOL' }, parameterValue: { value: true } } },
      { name: 'STRING_ARRAY', param: { type: 'STRING_ARRAY', value: ['a', 'b'] }, value: ['a', 'b'], type: ['STRING'], wire: { parameterType: { type: 'ARRAY', arrayType: { type: 'STRING' } }, parameterValue: { arrayValues: [{ value: 'a' }, { value: 'b' }] } } },
      { name: 'DATE_ARRAY', param: { type: 'DATE_ARRAY', value: ['2026-01-14'] }, value: [BigQuery.date('2026-01-14')], type: ['DATE'], wire: { parameterType: { type: 'ARRAY', arrayType: { type: 'DATE' } }, parameterValue: { arrayValues: [{ value: '2026-01-14' }] } } },
      { name: 'empty DATE_ARRAY', param: { type: 'DATE_ARRAY', value: [] }, value: [], type: ['DATE'], wire: { parameterType: { type: 'ARRAY', arrayType: { type: 'DATE' } }, parameterValue: { arrayValues: [] } } },
      { name: 'empty STRING_ARRAY', param: { type: 'STRING_ARRAY', value: [] }, value: [], type: ['STRING'], wire: { parameterType: { type: 'ARRAY', arrayType: { type: 'STRING' } }, parameterValue: { arrayValues: [] } } },
    ];
    for (const c of cases) {
      it(`${c.name}: value and explicit type, and what the client sends`, () => {
        const converted = toBigQueryParams({ p: c.param });
        assert.deepStrictEqual(converted, { params: { p: c.value }, types: { p: c.type } });
        // What the client puts on the wire from them (its own conversion, run offline).
        const built = (new BigQuery({ projectId: PROJECT }) as unknown as { buildQueryParams_(p: unknown, t: unknown): { params: object[] } }).buildQueryParams_(converted.params, converted.types);
        assert.deepStrictEqual(built.params, [{ name: 'p', ...c.wire }]);
      });
    }

    const bad: { name: string; param: QueryParams[string] }[] = [
      { name: 'a TIMESTAMP that is not a string', param: { type: 'TIMESTAMP', value: 12 } },
      { name: 'a BOOL that is a string', param: { type: 'BOOL', value: 'true' } },
      { name: 'an INT64 that is not an integer', param: { type: 'INT64', value: 'ten' } },
      { name: 'a DATE_ARRAY that is a string', param: { type: 'DATE_ARRAY', value: '2026-01-15' } },
    ];
    for (const c of bad) {
      it(`refuses ${c.name}, naming the parameter`, () => {
        assert.throws(() => toBigQueryParams({ the_param: c.param }), (e: Error) => e instanceof ChainError && /@the_param/.test(e.message));
      });
    }
  });

  describe('query', () => {
    it('creates the query job with the SQL, typed params, location, job ID and labels, and returns rows and DML stats', async () => {
      const { bigquery, warehouse } = setup();
      const metadata = { status: { state: 'DONE' }, statistics: { query: { dmlStats: { insertedRowCount: '3', updatedRowCount: '2', deletedRowCount: '0' } } } };
      const job = fakeJob(bigquery, JOB_ID, [], metadata);
      const create = sinon.stub(bigquery, 'createQueryJob').resolves([job, {}] as never);

      const result = await warehouse.query(STATEMENT, { jobId: JOB_ID, labels: LABELS });

      sinon.assert.calledOnce(create);
      assert.deepStrictEqual(create.firstCall.args, [
        {
          query: STATEMENT.sql,
          params: {
            window_from: BigQuery.timestamp('2026-01-15T10:00:00Z'),
            day: BigQuery.date('2026-01-15'),
            batch_id: '20260115T102000Z-1a2b3c',
            limit: 10,
            force: false,
            ids: ['op-1', 'op-2'],
            days: [BigQuery.date('2026-01-14'), BigQuery.date('2026-01-15')],
          },
          types: { window_from: 'TIMESTAMP', day: 'DATE', batch_id: 'STRING', limit: 'INT64', force: 'BOOL', ids: ['STRING'], days: ['DATE'] },
          location: LOCATION,
          jobId: JOB_ID,
          labels: LABELS,
          useLegacySql: false,
        },
      ]);
      assert.deepStrictEqual(result, { rows: [], dml: { inserted: 3, updated: 2, deleted: 0 } });
    });

    it('without a job ID or labels, sends neither (BigQuery names the job)', async () => {
      const { bigquery, warehouse } = setup();
      const create = sinon.stub(bigquery, 'createQueryJob').resolves([fakeJob(bigquery, 'random-id', [{ n: 1 }], DONE), {}] as never);
      const result = await warehouse.query({ sql: 'SELECT 1 AS n', params: {} });
      assert.deepStrictEqual(create.firstCall.args[0], { query: 'SELECT 1 AS n', params: {}, types: {}, location: LOCATION, useLegacySql: false });
      assert.deepStrictEqual(result, { rows: [{ n: 1 }] });
    });

    it('normalizes row values to plain JSON', async () => {
      const { bigquery, warehouse } = setup();
      const fields: TableField[] = [
        { name: 'day', type: 'DATE' },
        { name: 'at', type: 'TIMESTAMP' },
        { name: 'at_micros', type: 'TIMESTAMP' },
        { name: 'amount', type: 'NUMERIC' },
        { name: 'big', type: 'BIGNUMERIC' },
        { name: 'operations', type: 'INT64' },
        { name: 'status', type: 'STRING' },
        { name: 'ok', type: 'BOOL' },
        { name: 'missing', type: 'STRING' },
        { name: 'days', type: 'DATE', mode: 'REPEATED' },
      ];
      const rows = parsedRows(fields, [
        ['2026-01-15', micros('2026-01-15T10:20:00Z'), micros('2026-01-15T10:20:00Z', 123456), '1234.50', '12345678901234567890.123456789', '42', 'MATCHED', 'true', null, [{ v: '2026-01-14' }, { v: '2026-01-15' }]],
      ]);
      sinon.stub(bigquery, 'createQueryJob').resolves([fakeJob(bigquery, JOB_ID, rows, DONE), {}] as never);

      const result = await warehouse.query({ sql: 'SELECT ...', params: {} });

      assert.deepStrictEqual(result.rows, [
        {
          day: '2026-01-15',
          at: '2026-01-15T10:20:00.000Z',
          at_micros: '2026-01-15T10:20:00.123456Z',
          amount: '1234.5',
          big: '12345678901234567890.123456789',
          operations: 42,
          status: 'MATCHED',
          ok: true,
          missing: null,
          days: ['2026-01-14', '2026-01-15'],
        },
      ]);
    });

    it('on 409 Already Exists, fetches that job, waits for it and returns its result as if it ran now', async () => {
      const { bigquery, warehouse } = setup();
      sinon.stub(bigquery, 'createQueryJob').rejects(apiError(409, `Already Exists: Job ${PROJECT}:${LOCATION}.${JOB_ID}`));
      const metadata = { status: { state: 'DONE' }, statistics: { query: { dmlStats: { insertedRowCount: '5', updatedRowCount: '1', deletedRowCount: '0' } } } };
      const existing = fakeJob(new BigQuery({ projectId: PROJECT }), JOB_ID, [], metadata);
      const job = sinon.stub(bigquery, 'job').returns(existing);

      const result = await warehouse.query(STATEMENT, { jobId: JOB_ID, labels: LABELS });

      sinon.assert.calledOnceWithExactly(job, JOB_ID, { location: LOCATION });
      sinon.assert.calledOnce(existing.getQueryResults as sinon.SinonStub);
      assert.deepStrictEqual(result, { rows: [], dml: { inserted: 5, updated: 1, deleted: 0 } });
    });

    it('on 409 of a job that had failed, runs the statement again under the next job ID of the sequence', async () => {
      const { bigquery, warehouse } = setup();
      const rerun = fakeJob(bigquery, `${JOB_ID}_run2`, [], { ...DONE, statistics: { query: { dmlStats: { insertedRowCount: '3', updatedRowCount: '1' } } } });
      const create = sinon.stub(bigquery, 'createQueryJob');
      create.onFirstCall().rejects(apiError(409, 'Already Exists'));
      create.onSecondCall().resolves([rerun, {}] as never);
      const existing = bigquery.job(JOB_ID, { location: LOCATION });
      sinon.stub(existing, 'getQueryResults').rejects(new Error('Could not serialize access to table t due to concurrent update'));
      sinon.stub(bigquery, 'job').returns(existing);

      const result = await warehouse.query(STATEMENT, { jobId: JOB_ID });
      assert.deepEqual(create.getCalls().map((call) => (call.args[0] as { jobId: string }).jobId), [JOB_ID, `${JOB_ID}_run2`]);
      assert.deepEqual(result.dml, { inserted: 3, updated: 1, deleted: 0 });
    });

    it('on 409 of every job ID of the sequence, all failed: throws the last failure with its job ID and cause', async () => {
      const { bigquery, warehouse } = setup();
      const create = sinon.stub(bigquery, 'createQueryJob').rejects(apiError(409, 'Already Exists'));
      const failure = new Error('Could not serialize access to table my-project:consolidated_dataset.consolidated_table due to concurrent update');
      sinon.stub(bigquery, 'job').callsFake((id: string) => {
        const job = new Job(bigquery, id, { location: LOCATION });
        sinon.stub(job, 'getQueryResults').rejects(failure);
        return job;
      });
      await assert.rejects(warehouse.query(STATEMENT, { jobId: JOB_ID }), (error: ChainError) => {
        assert.ok(error instanceof ChainError);
        assert.match(error.message, /concurrent update/);
        assert.equal(error.context.jobId, `${JOB_ID}_run5`);
        assert.equal(error.cause, failure);
        return true;
      });
      assert.equal(create.callCount, 5);
    });

    it('a job of this call that fails is thrown at once, not run again', async () => {
      const { bigquery, warehouse } = setup();
      const failed = { status: { state: 'DONE', errorResult: { reason: 'invalidQuery', message: 'Syntax error' } } };
      const create = sinon.stub(bigquery, 'createQueryJob').resolves([fakeJob(bigquery, JOB_ID, [], failed), {}] as never);
      await assert.rejects(warehouse.query(STATEMENT, { jobId: JOB_ID }), /Syntax error/);
      assert.equal(create.callCount, 1);
    });

    it('throws when the finished job reports an error result', async () => {
      const { bigquery, warehouse } = setup();
      const failed = { status: { state: 'DONE', errorResult: { reason: 'invalidQuery', message: 'Syntax error' }, errors: [{ reason: 'invalidQuery', message: 'Syntax error' }] } };
      sinon.stub(bigquery, 'createQueryJob').resolves([fakeJob(bigquery, JOB_ID, [], failed), {}] as never);
      await assert.rejects(warehouse.query(STATEMENT, { jobId: JOB_ID }), (error: ChainError) => error instanceof ChainError && /Syntax error/.test(error.message) && error.context.jobId === JOB_ID);
    });

    const startFailures = [
      { name: 'another error than 409', jobId: JOB_ID as string | undefined, error: apiError(403, 'Access Denied') },
      { name: 'a 409 without a job ID of ours', jobId: undefined, error: apiError(409, 'Already Exists') },
    ];
    for (const c of startFailures) {
      it(`does not adopt on ${c.name}: wraps and throws`, async () => {
        const { bigquery, warehouse } = setup();
        sinon.stub(bigquery, 'createQueryJob').rejects(c.error);
        const job = sinon.spy(bigquery, 'job');
        await assert.rejects(warehouse.query(STATEMENT, { jobId: c.jobId }), (error: ChainError) => error instanceof ChainError && error.cause === c.error && error.message.includes(c.error.message));
        sinon.assert.notCalled(job);
      });
    }
  });

  describe('stream', () => {
    const fields: TableField[] = [{ name: 'operation_id', type: 'STRING' }, { name: 'at', type: 'TIMESTAMP' }];
    const row = (i: number) => parsedRows(fields, [[`op-${i}`, micros('2026-01-15T10:20:00Z')]])[0];

    const pagings = [
      { rows: 5, pageSize: 2 as number | undefined, pages: [2, 2, 1] },
      { rows: 4, pageSize: 2, pages: [2, 2] },
      { rows: 0, pageSize: 2, pages: [] },
      { rows: 1001, pageSize: undefined, pages: [1000, 1] },
    ];
    for (const c of pagings) {
      it(`${c.rows} rows, page size ${c.pageSize ?? 'default'}: pages of ${JSON.stringify(c.pages)}`, async () => {
        const { bigquery, warehouse } = setup();
        const create = sinon.stub(bigquery, 'createQueryStream').returns(Readable.from(Array.from({ length: c.rows }, (_, i) => row(i))) as never);
        const pages: Row[][] = [];
        for await (const page of warehouse.stream(STATEMENT, c.pageSize === undefined ? undefined : { pageSize: c.pageSize })) pages.push(page);

        const { params, types } = toBigQueryParams(STATEMENT.params);
        assert.deepStrictEqual(create.firstCall.args, [{ query: STATEMENT.sql, params, types, location: LOCATION }]);
        assert.deepStrictEqual(pages.map((p) => p.length), c.pages);
        if (c.rows > 0) assert.deepStrictEqual(pages[0][0], { operation_id: 'op-0', at: '2026-01-15T10:20:00.000Z' });
      });
    }

    it('reads the stream lazily: the first page arrives before the rest is read', async () => {
      const { bigquery, warehouse } = setup();
      let pulled = 0;
      function* rows() {
        for (let i = 0; i < 100_000; i++) {
          pulled++;
          yield row(i);
        }
      }
      sinon.stub(bigquery, 'createQueryStream').returns(Readable.from(rows()) as never);
      for await (const page of warehouse.stream(STATEMENT, { pageSize: 10 })) {
        assert.equal(page.length, 10);
        break;
      }
      assert.ok(pulled < 100, `only about one page pulled before the consumer stopped (pulled ${pulled})`);
    });

    it('wraps a stream failure with the rows streamed so far and the cause', async () => {
      const { bigquery, warehouse } = setup();
      const failure = apiError(400, 'Resources exceeded');
      async function* rows() {
        yield row(0);
        throw failure;
      }
      sinon.stub(bigquery, 'createQueryStream').returns(Readable.from(rows()) as never);
      await assert.rejects(
        (async () => {
          for await (const _ of warehouse.stream(STATEMENT)) void _;
        })(),
        (error: ChainError) => error instanceof ChainError && error.cause === failure && /after 1 rows: Resources exceeded/.test(error.message),
      );
    });
  });

  describe('loadNdjson', () => {
    const table = { dataset: 'consolidation_staging', table: 'ids_20260115t102000z_1a2b3c' };
    const schema: SchemaField[] = [{ name: 'operation_id', type: 'STRING', mode: 'REQUIRED' }];
    const uris = ['gs://state-bucket/batches/B/chunks/000000.ndjson', 'gs://state-bucket/batches/B/chunks/000001.ndjson'];
    const LOAD_JOB = 'consolidation_ids_20260115t102000z_1a2b3c_a1';

    it('creates the load job from Storage files with the exact options, and waits for it to finish', async () => {
      const { bigquery, warehouse } = setup();
      const job = bigquery.job(LOAD_JOB, { location: LOCATION });
      const poll = sinon.stub(job, 'getMetadata');
      poll.onCall(0).resolves([{ status: { state: 'RUNNING' } }] as never);
      poll.onCall(1).resolves([DONE] as never);
      const create = sinon.stub(Table.prototype, 'createLoadJob').resolves([job, {}] as never);

      await warehouse.loadNdjson(table, uris, schema, { jobId: LOAD_JOB });

      sinon.assert.calledOnce(create);
      const target = create.firstCall.thisValue as Table;
      assert.deepStrictEqual([target.dataset.id, target.id], [table.dataset, table.table]);
      const [files, options] = create.firstCall.args as unknown as [File[], object];
      assert.ok(files.every((f) => f instanceof File));
      assert.deepStrictEqual(files.map((f) => `gs://${f.bucket.name}/${f.name}`), uris);
      assert.deepStrictEqual(options, {
        sourceFormat: 'NEWLINE_DELIMITED_JSON',
        writeDisposition: 'WRITE_TRUNCATE',
        createDisposition: 'CREATE_IF_NEEDED',
        schema: { fields: schema },
        jobId: LOAD_JOB,
        location: LOCATION,
      });
      sinon.assert.calledTwice(poll);
    });

    it('on 409 Already Exists, fetches that load job and waits for it', async () => {
      const { bigquery, warehouse } = setup();
      sinon.stub(Table.prototype, 'createLoadJob').rejects(apiError(409, `Already Exists: Job ${PROJECT}:${LOCATION}.${LOAD_JOB}`));
      const existing = new BigQuery({ projectId: PROJECT }).job(LOAD_JOB, { location: LOCATION });
      const poll = sinon.stub(existing, 'getMetadata').resolves([DONE] as never);
      const job = sinon.stub(bigquery, 'job').returns(existing);

      await warehouse.loadNdjson(table, uris, schema, { jobId: LOAD_JOB });

      sinon.assert.calledOnceWithExactly(job, LOAD_JOB, { location: LOCATION });
      sinon.assert.calledOnce(poll);
    });

    it('on 409 of a load job that had failed, loads again under the next job ID', async () => {
      const { bigquery, warehouse } = setup();
      const rerun = bigquery.job(`${LOAD_JOB}_run2`, { location: LOCATION });
      sinon.stub(rerun, 'getMetadata').resolves([DONE] as never);
      const create = sinon.stub(Table.prototype, 'createLoadJob');
      create.onFirstCall().rejects(apiError(409, 'Already Exists'));
      create.onSecondCall().resolves([rerun, {}] as never);
      const existing = new BigQuery({ projectId: PROJECT }).job(LOAD_JOB, { location: LOCATION });
      const errors = [{ reason: 'backendError', message: 'Backend error' }];
      sinon.stub(existing, 'getMetadata').resolves([{ status: { state: 'DONE', errorResult: errors[0], errors } }] as never);
      sinon.stub(bigquery, 'job').returns(existing);

      await warehouse.loadNdjson(table, uris, schema, { jobId: LOAD_JOB });
      assert.deepEqual(create.getCalls().map((call) => (call.args[1] as { jobId: string }).jobId), [LOAD_JOB, `${LOAD_JOB}_run2`]);
    });

    it('throws the errors of a failed load job, with the job ID and the table', async () => {
      const { bigquery, warehouse } = setup();
      const job = bigquery.job(LOAD_JOB, { location: LOCATION });
      const errors = [{ reason: 'invalid', message: 'Error while reading data, error message: JSON parsing error in row starting at position 0' }];
      sinon.stub(job, 'getMetadata').resolves([{ status: { state: 'DONE', errorResult: errors[0], errors } }] as never);
      sinon.stub(Table.prototype, 'createLoadJob').resolves([job, {}] as never);

      await assert.rejects(warehouse.loadNdjson(table, uris, schema, { jobId: LOAD_JOB }), (error: ChainError) => {
        assert.ok(error instanceof ChainError);
        assert.match(error.message, /JSON parsing error/);
        assert.deepStrictEqual([error.context.jobId, error.context.table, error.context.errors], [LOAD_JOB, `${PROJECT}:${table.dataset}.${table.table}`, errors]);
        return true;
      });
    });

    const refused = [
      { name: 'a URI that is not gs://', uris: ['/tmp/chunk.ndjson'] },
      { name: 'no URI at all', uris: [] },
    ];
    for (const c of refused) {
      it(`refuses ${c.name} before creating a job`, async () => {
        const { warehouse } = setup();
        const create = sinon.stub(Table.prototype, 'createLoadJob');
        await assert.rejects(warehouse.loadNdjson(table, c.uris, schema, { jobId: LOAD_JOB }), ChainError);
        sinon.assert.notCalled(create);
      });
    }
  });

  describe('tableLayout (the start-up layout check)', () => {
    const cases: { name: string; metadata: object; layout: object }[] = [
      {
        name: 'day-partitioned on a column and clustered',
        metadata: { timePartitioning: { type: 'DAY', field: 'source_timestamp' }, clustering: { fields: ['operation_id'] } },
        layout: { partitioning: { type: 'DAY', field: 'source_timestamp' }, clustering: ['operation_id'] },
      },
      { name: 'partitioned by ingestion time, not clustered', metadata: { timePartitioning: { type: 'HOUR' } }, layout: { partitioning: { type: 'HOUR' }, clustering: [] } },
      { name: 'neither', metadata: { schema: { fields: [] } }, layout: { clustering: [] } },
    ];
    for (const c of cases) {
      it(`reads the table's metadata: ${c.name}`, async () => {
        const { warehouse } = setup();
        const get = sinon.stub(Table.prototype, 'getMetadata').resolves([c.metadata] as never);
        assert.deepStrictEqual(await warehouse.tableLayout({ dataset: 'raw', table: 'ussd_operations' }), c.layout);
        sinon.assert.calledOnce(get);
        const table = get.firstCall.thisValue as Table;
        assert.equal(table.id, 'ussd_operations');
        assert.equal(table.dataset.id, 'raw');
      });
    }

    it('a metadata read that fails names the table', async () => {
      const { warehouse } = setup();
      sinon.stub(Table.prototype, 'getMetadata').rejects(apiError(404, 'Not found: Table my-project:raw.ussd_operations'));
      await assert.rejects(warehouse.tableLayout({ dataset: 'raw', table: 'ussd_operations' }), (e: ChainError) => e instanceof ChainError && /Could not read the metadata of the table my-project:raw\.ussd_operations: Not found/.test(e.message));
    });
  });

  describe('ensureTable and dropTable', () => {
    const ref = { dataset: 'consolidated_dataset', table: 'consolidated_table' };
    const schema: SchemaField[] = [{ name: 'operation_id', type: 'STRING', mode: 'REQUIRED' }, { name: 'created_at', type: 'TIMESTAMP', mode: 'REQUIRED' }];

    const creations = [
      { name: 'partitioned and clustered', options: { partitionField: 'created_at', clusterFields: ['operation_id'] }, metadata: { schema: { fields: schema }, timePartitioning: { type: 'DAY', field: 'created_at' }, clustering: { fields: ['operation_id'] } } },
      { name: 'plain', options: undefined, metadata: { schema: { fields: schema } } },
    ];
    for (const c of creations) {
      it(`creates a missing table (${c.name})`, async () => {
        const { warehouse } = setup();
        const exists = sinon.stub(Table.prototype, 'exists').resolves([false] as never);
        const create = sinon.stub(Dataset.prototype, 'createTable').resolves([{}, {}] as never);
        await warehouse.ensureTable(ref, schema, c.options);
        assert.equal((exists.firstCall.thisValue as Table).id, ref.table);
        assert.equal((create.firstCall.thisValue as Dataset).id, ref.dataset);
        assert.deepStrictEqual(create.firstCall.args, [ref.table, c.metadata]);
      });
    }

    it('leaves an existing table alone', async () => {
      const { warehouse } = setup();
      sinon.stub(Table.prototype, 'exists').resolves([true] as never);
      const create = sinon.stub(Dataset.prototype, 'createTable');
      await warehouse.ensureTable(ref, schema);
      sinon.assert.notCalled(create);
    });

    it('accepts a table created concurrently (409)', async () => {
      const { warehouse } = setup();
      sinon.stub(Table.prototype, 'exists').resolves([false] as never);
      sinon.stub(Dataset.prototype, 'createTable').rejects(apiError(409, 'Already Exists: Table'));
      await warehouse.ensureTable(ref, schema);
    });

    const drops = [
      { name: 'drops the table', error: undefined as Error | undefined, throws: false },
      { name: 'ignores a missing table (404)', error: apiError(404, 'Not found: Table'), throws: false },
      { name: 'throws other errors with the table', error: apiError(403, 'Access Denied'), throws: true },
    ];
    for (const c of drops) {
      it(`dropTable ${c.name}`, async () => {
        const { warehouse } = setup();
        const drop = sinon.stub(Table.prototype, 'delete');
        if (c.error) drop.rejects(c.error);
        else drop.resolves([{}] as never);
        const dropping = warehouse.dropTable(ref);
        if (c.throws) await assert.rejects(dropping, (e: ChainError) => e instanceof ChainError && e.context.table === `${PROJECT}:${ref.dataset}.${ref.table}`);
        else await dropping;
        assert.equal((drop.firstCall.thisValue as Table).id, ref.table);
      });
    }
  });

  it('names tables for SQL and for the pipeline write step', () => {
    const { warehouse } = setup();
    const ref = { dataset: 'consolidation_staging', table: 'enriched_x' };
    assert.equal(warehouse.dialect, 'bigquery');
    assert.equal(warehouse.qualify(ref), '`my-project.consolidation_staging.enriched_x`');
    assert.equal(warehouse.plainName(ref), 'my-project:consolidation_staging.enriched_x');
  });

  it('normalizeRow leaves plain values alone and recurses into STRUCTs', () => {
    assert.deepStrictEqual(normalizeRow({ a: 1, b: 'x', c: { d: BigQuery.date('2026-01-15') }, e: undefined }), { a: 1, b: 'x', c: { d: '2026-01-15' }, e: null });
  });
});
