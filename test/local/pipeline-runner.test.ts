import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { LocalPipelineRunner, parsePipeline, renderJinja, type DataflowJob, type LocalPipelineRunnerOptions } from '../../shared/local/pipeline-runner';
import type { LaunchRequest, Row, TableRef } from '../../shared/ports';
import { loadSchema, type SchemaName } from '../../shared/schema';
import { timestampLiteral } from '../../shared/pipeline/variables';
import { FixedClock, MemoryLogger } from '../support/fakes';

const PIPELINE = join(__dirname, '../../shared/pipeline/consolidation.yaml');
const WINDOW_TO = '2026-01-15T10:20:00.000Z';
/** The window's start minus OPERATION_MAX_AGE, before every row of the seeded sources. */
const READ_AFTER = '2026-01-14T00:00:00.000Z';
const BATCH_ID = '20260115T102000Z-abc123';

const table = (name: string, dataset = 'main'): TableRef => ({ dataset, table: name });
const TABLES = {
  ussd: table('ussd_operations'),
  transactions: table('transactiongu'),
  services: table('services'),
  agents: table('agents'),
  ids: table('ids_b', 'staging'),
  enriched: table('enriched_b', 'staging'),
};

type Values = Record<string, string | null>;

/** Epoch microseconds of an RFC 3339 timestamp with up to six decimals. */
function micros(iso: string): number {
  const fraction = /\.(\d+)Z$/.exec(iso)?.[1] ?? '';
  return Date.parse(iso.replace(/\.\d+Z$/, 'Z')) * 1000 + Number(fraction.padEnd(6, '0'));
}

/** Inserts rows into a source table made from its schema file (every value as a string, cast by DuckDB). */
async function insert(warehouse: DuckDbWarehouse, ref: TableRef, schema: SchemaName, rows: Values[]): Promise<void> {
  const fields = loadSchema(schema);
  await warehouse.ensureTable(ref, fields);
  const connection = await warehouse.connect();
  try {
    for (const row of rows) {
      const names = Object.keys(row);
      const types = names.map((n) => fields.find((f) => f.name === n)!.type);
      const casts = names.map((n, i) => `CAST($${n} AS ${types[i] === 'STRING' ? 'VARCHAR' : types[i] === 'NUMERIC' ? 'DECIMAL(38, 9)' : 'TIMESTAMPTZ'})`);
      await connection.run(`INSERT INTO ${warehouse.qualify(ref)} (${names.join(', ')}) VALUES (${casts.join(', ')})`, row);
    }
  } finally {
    connection.closeSync();
  }
}

const op = (id: string, status: string, ref: string | null, amount: string, sourceTs: string, extra: Values = {}): Values => ({
  operation_id: id,
  msisdn: '221770000000',
  service_code: '*144#',
  operation_type: 'CASHOUT',
  amount,
  currency: 'XOF',
  status,
  transaction_ref: ref,
  agent_code: 'AG1',
  created_at: '2026-01-15T09:00:00Z',
  source_timestamp: sourceTs,
  ...extra,
});
const tx = (id: string, status: string, amount: string, updatedAt: string): Values => ({ transaction_id: id, service_id: 'S1', partner_ref: 'P', amount, fees: '1.5', commission: '0.25', status, updated_at: updatedAt });

/** One operation per reconciliation rule, plus the cases of "latest row wins" and of the window. */
async function seedSources(warehouse: DuckDbWarehouse): Promise<void> {
  const t = '2026-01-15T10:00:00Z';
  await insert(warehouse, TABLES.ussd, 'ussd_operations', [
    op('op-null-ref', 'SUCCESS', null, '100', t),
    op('op-unknown-ref', 'SUCCESS', 'tx-none', '100', t),
    op('op-initiated', 'INITIATED', 'tx-initiated', '100', t),
    op('op-tx-pending', 'SUCCESS', 'tx-pending', '100', t),
    op('op-amount', 'SUCCESS', 'tx-amount', '100', t),
    op('op-matched', 'SUCCESS', 'tx-matched', '100', t),
    op('op-matched-failed', 'TIMEOUT', 'tx-reversed', '50', t),
    op('op-status', 'SUCCESS', 'tx-failed', '100', t),
    // Several rows of one operation: the latest within the window wins.
    op('op-latest', 'INITIATED', 'tx-latest', '100', '2026-01-15T09:00:00Z'),
    op('op-latest', 'SUCCESS', 'tx-latest', '100', '2026-01-15T10:10:00Z'),
    op('op-latest', 'FAILED', 'tx-latest', '100', '2026-01-15T10:30:00Z'),
    // Not in the batch's IDs.
    op('op-other', 'SUCCESS', 'tx-matched', '100', t),
  ]);
  await insert(warehouse, TABLES.transactions, 'transactiongu', [
    tx('tx-initiated', 'SUCCESSFUL', '100', t),
    tx('tx-pending', 'PENDING', '100', t),
    tx('tx-amount', 'SUCCESSFUL', '90', t),
    tx('tx-matched', 'PENDING', '100', '2026-01-15T09:30:00Z'),
    tx('tx-matched', 'SUCCESSFUL', '100', '2026-01-15T10:15:00Z'),
    tx('tx-matched', 'FAILED', '100', '2026-01-15T10:25:00Z'),
    tx('tx-reversed', 'REVERSED', '50.000', t),
    tx('tx-failed', 'FAILED', '100', t),
    tx('tx-latest', 'SUCCESSFUL', '100', '2026-01-15T09:05:00Z'),
  ]);
  await insert(warehouse, TABLES.services, 'services', [{ service_id: 'S1', service_name: 'Cash out', category: 'CASH' }]);
  await insert(warehouse, TABLES.agents, 'agents', [{ agent_code: 'AG1', agent_name: 'Agent One', region: 'Dakar' }]);
  await insert(warehouse, TABLES.ids, 'batch_ids', ['op-null-ref', 'op-unknown-ref', 'op-initiated', 'op-tx-pending', 'op-amount', 'op-matched', 'op-matched-failed', 'op-status', 'op-latest', 'op-latest'].map((id) => ({ operation_id: id })));
}

function request(overrides: Partial<LaunchRequest> = {}): LaunchRequest {
  return {
    jobName: 'consolidation-20260115t102000z-abc123-a1',
    batchId: BATCH_ID,
    attempt: 1,
    labels: { pipeline: 'consolidation', batch_id: '20260115t102000z-abc123', attempt: '1' },
    variables: {
      as_of: timestampLiteral(WINDOW_TO),
      read_after: timestampLiteral(READ_AFTER),
      ids_table: '"staging"."ids_b"',
      ussd_table: '"main"."ussd_operations"',
      transactions_table: '"main"."transactiongu"',
      services_table: '"main"."services"',
      agents_table: '"main"."agents"',
      output_table: 'staging.enriched_b',
    },
    ...overrides,
  };
}

describe('LocalPipelineRunner', () => {
  let warehouse: DuckDbWarehouse;
  let dir: string;
  let logger: MemoryLogger;
  let emitted: DataflowJob[];

  const runner = (options: Partial<LocalPipelineRunnerOptions> = {}) =>
    new LocalPipelineRunner({
      warehouse,
      pipelineFile: PIPELINE,
      project: 'local',
      region: 'europe-west1',
      clock: new FixedClock('2026-01-15T10:22:00.000Z'),
      logger,
      emit: async (job) => {
        emitted.push(job);
      },
      ...options,
    });
  const pipelineFile = (text: string) => {
    const file = join(dir, `pipeline-${Math.random().toString(16).slice(2)}.yaml`);
    writeFileSync(file, text);
    return file;
  };
  const statesOf = (jobId: string) => emitted.filter((j) => j.id === jobId).map((j) => j.currentState);
  const failure = () => logger.at('ERROR').map((e) => e.message).join('\n');

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pipeline-runner-'));
    warehouse = await DuckDbWarehouse.open(':memory:');
    logger = new MemoryLogger();
    emitted = [];
    await seedSources(warehouse);
  });
  afterEach(async () => {
    await warehouse.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the repository pipeline: one enriched row per operation with its reconciliation status and version', async () => {
    const local = runner();
    const launched = await local.launch(request());
    assert.equal(launched.adopted, false);
    await local.idle();
    assert.deepEqual(statesOf(launched.jobId), ['JOB_STATE_QUEUED', 'JOB_STATE_RUNNING', 'JOB_STATE_DONE'], failure());

    const rows = (await warehouse.query({ sql: 'SELECT * FROM staging.enriched_b ORDER BY operation_id', params: {} })).rows;
    const byId = Object.fromEntries(rows.map((r: Row) => [r.operation_id, r]));
    assert.deepEqual(
      Object.fromEntries(rows.map((r) => [r.operation_id, r.reconciliation_status])),
      {
        'op-amount': 'AMOUNT_MISMATCH',
        'op-initiated': 'PENDING',
        'op-latest': 'MATCHED',
        'op-matched': 'MATCHED',
        'op-matched-failed': 'MATCHED',
        'op-null-ref': 'MISSING_TRANSACTION',
        'op-status': 'STATUS_MISMATCH',
        'op-tx-pending': 'PENDING',
        'op-unknown-ref': 'MISSING_TRANSACTION',
      },
    );
    const enrichedColumns = loadSchema('consolidated_table')
      .filter((f) => f.name !== 'batch_id' && f.name !== 'consolidated_at')
      .map((f) => (f.type === 'TIMESTAMP' ? `${f.name}_us` : f.name));
    assert.deepEqual(Object.keys(rows[0]).sort(), enrichedColumns.sort(), 'the consolidated columns, timestamps as INT64 microseconds');
    assert.deepEqual(byId['op-matched'], {
      operation_id: 'op-matched',
      msisdn: '221770000000',
      service_code: '*144#',
      operation_type: 'CASHOUT',
      amount: '100',
      currency: 'XOF',
      ussd_status: 'SUCCESS',
      created_at_us: micros('2026-01-15T09:00:00Z'),
      source_timestamp_us: micros('2026-01-15T10:00:00Z'),
      transaction_id: 'tx-matched',
      transaction_status: 'SUCCESSFUL',
      transaction_amount: '100',
      fees: '1.5',
      commission: '0.25',
      service_name: 'Cash out',
      service_category: 'CASH',
      agent_name: 'Agent One',
      agent_region: 'Dakar',
      reconciliation_status: 'MATCHED',
      version_ts_us: micros('2026-01-15T10:15:00Z'),
    }, 'latest transaction row within the window, and version_ts is its updated_at (later than the USSD row)');
    assert.equal(byId['op-latest'].source_timestamp_us, micros('2026-01-15T10:10:00Z'), 'the latest USSD row within the window');
    assert.equal(byId['op-latest'].version_ts_us, micros('2026-01-15T10:10:00Z'), 'version_ts is source_timestamp when the transaction is older');
    assert.equal(byId['op-null-ref'].version_ts_us, micros('2026-01-15T10:00:00Z'));
    assert.equal(byId['op-null-ref'].agent_name, 'Agent One');
  });

  it('keeps the microseconds of every timestamp: they travel as INT64, which Beam carries exactly', async () => {
    await insert(warehouse, TABLES.ussd, 'ussd_operations', [op('op-micro', 'SUCCESS', 'tx-micro', '100', '2026-01-15T10:01:00.123456Z', { created_at: '2026-01-15T09:59:59.999999Z' })]);
    await insert(warehouse, TABLES.transactions, 'transactiongu', [tx('tx-micro', 'SUCCESSFUL', '100', '2026-01-15T10:01:00.123457Z')]);
    await insert(warehouse, TABLES.ids, 'batch_ids', [{ operation_id: 'op-micro' }]);
    const local = runner();
    await local.launch(request());
    await local.idle();
    const [row] = (await warehouse.query({ sql: "SELECT * FROM staging.enriched_b WHERE operation_id = 'op-micro'", params: {} })).rows;
    assert.deepEqual([row.created_at_us, row.source_timestamp_us, row.version_ts_us], [micros('2026-01-15T09:59:59.999999Z'), micros('2026-01-15T10:01:00.123456Z'), micros('2026-01-15T10:01:00.123457Z')]);
  });

  it('emits Dataflow-shaped jobs', async () => {
    const local = runner();
    const launched = await local.launch(request());
    await local.idle();
    const done = emitted.at(-1)!;
    assert.match(done.id, /^2026-01-15_10_22_00-\d+$/);
    assert.deepEqual({ ...done, id: undefined }, {
      id: undefined,
      projectId: 'local',
      name: 'consolidation-20260115t102000z-abc123-a1',
      type: 'JOB_TYPE_BATCH',
      currentState: 'JOB_STATE_DONE',
      currentStateTime: '2026-01-15T10:22:00.000Z',
      createTime: '2026-01-15T10:22:00.000Z',
      location: 'europe-west1',
      labels: { pipeline: 'consolidation', batch_id: '20260115t102000z-abc123', attempt: '1' },
    });
    assert.equal(done.id, launched.jobId);
    assert.deepEqual(local.jobs().map((j) => j.currentState), ['JOB_STATE_DONE']);
  });

  it('adopts an active job of the same name (409) and starts a new one once it has finished', async () => {
    const local = runner();
    const first = await local.launch(request());
    const again = await local.launch(request());
    assert.deepEqual(again, { jobId: first.jobId, jobName: first.jobName, adopted: true });
    await local.idle();
    const later = await local.launch(request());
    assert.equal(later.adopted, false);
    assert.notEqual(later.jobId, first.jobId);
    await local.idle();
    assert.deepEqual(local.jobs().map((j) => j.currentState), ['JOB_STATE_DONE', 'JOB_STATE_DONE']);
  });

  it('forces a terminal state for fault injection, without writing', async () => {
    const local = runner({ outcome: (r) => (r.attempt === 1 ? 'FAILED' : undefined) });
    const failed = await local.launch(request());
    await local.idle();
    assert.deepEqual(statesOf(failed.jobId), ['JOB_STATE_QUEUED', 'JOB_STATE_RUNNING', 'JOB_STATE_FAILED']);
    assert.deepEqual((await warehouse.query({ sql: "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'enriched_b'", params: {} })).rows, [{ n: 0 }]);
    const retried = await local.launch(request({ attempt: 2, jobName: 'consolidation-20260115t102000z-abc123-a2' }));
    await local.idle();
    assert.deepEqual(statesOf(retried.jobId).at(-1), 'JOB_STATE_DONE');
  });

  it('logs a failing emit and carries on', async () => {
    let calls = 0;
    const local = runner({
      emit: async (job) => {
        calls++;
        if (job.currentState === 'JOB_STATE_RUNNING') throw new Error('bus down');
      },
    });
    await local.launch(request());
    await local.idle();
    assert.equal(calls, 3);
    assert.match(failure(), /JOB_STATE_RUNNING: bus down/);
    assert.deepEqual(local.jobs().map((j) => j.currentState), ['JOB_STATE_DONE']);
  });

  const failures: { title: string; yaml?: string; variables?: Record<string, string>; message: RegExp }[] = [
    {
      title: 'an unknown jinja variable',
      yaml: 'pipeline:\n  type: chain\n  transforms:\n    - type: ReadFromBigQuery\n      config: { query: "SELECT * FROM {{ params_table }}" }\n',
      message: /Unknown jinja variable "params_table" in .*pipeline-\w+\.yaml \(line 5\); the job's variables are: agents_table, as_of/,
    },
    {
      title: 'a jinja statement',
      yaml: 'pipeline:\n  type: chain\n  {% if x %}\n  transforms: []\n',
      message: /supports only \{\{ variable \}\} substitution; found \{% if x %\} .*line 3/,
    },
    {
      title: 'a jinja filter',
      yaml: 'pipeline:\n  type: "{{ ids_table | upper }}"\n',
      message: /supports only \{\{ variable \}\} substitution; found \{\{ ids_table \| upper \}\}/,
    },
    {
      title: 'YAML that a substitution broke',
      yaml: 'pipeline:\n  type: chain\n  transforms:\n    - { type: ReadFromBigQuery, config: { query: "SELECT * FROM {{ ids_table }}" } }\n',
      message: /pipeline-\w+\.yaml is not valid YAML once its variables are substituted/,
    },
    {
      title: 'an unsupported transform',
      yaml: `pipeline:
  type: chain
  transforms:
    - type: ReadFromBigQuery
      config: { query: "SELECT 1 AS a" }
    - type: Filter
      name: KeepSome
      config: { language: sql, keep: "a > 0" }
    - type: WriteToBigQuery
      config: { table: staging.out, create_disposition: CREATE_IF_NEEDED, write_disposition: WRITE_TRUNCATE }
`,
      message: /transform "KeepSome" \(Filter\): transform type Filter is not supported by the local runner \(supported: ReadFromBigQuery, MapToFields, WriteToBigQuery\)/,
    },
    {
      title: 'an unsupported config key',
      yaml: `pipeline:
  type: chain
  transforms:
    - type: ReadFromBigQuery
      name: Read
      config: { table: main.services }
    - type: WriteToBigQuery
      config: { table: staging.out, create_disposition: CREATE_IF_NEEDED, write_disposition: WRITE_TRUNCATE }
`,
      message: /transform "Read" \(ReadFromBigQuery\): config key\(s\): table not supported by the local runner \(supported: query\)/,
    },
    {
      title: 'a language other than sql',
      yaml: `pipeline:
  type: chain
  transforms:
    - type: ReadFromBigQuery
      config: { query: "SELECT 1 AS a" }
    - type: MapToFields
      name: Py
      config: { language: python, fields: { b: "a + 1" } }
    - type: WriteToBigQuery
      config: { table: staging.out, create_disposition: CREATE_IF_NEEDED, write_disposition: WRITE_TRUNCATE }
`,
      message: /transform "Py" \(MapToFields\): the local runner supports only "language: sql", found "python"/,
    },
    {
      title: 'a bad SQL expression, named by its transform',
      yaml: `pipeline:
  type: chain
  transforms:
    - type: ReadFromBigQuery
      config: { query: "SELECT 1 AS a" }
    - type: MapToFields
      name: Compute
      config: { language: sql, fields: { b: "no_such_column + 1" } }
    - type: WriteToBigQuery
      config: { table: staging.out, create_disposition: CREATE_IF_NEEDED, write_disposition: WRITE_TRUNCATE }
`,
      message: /Transform "Compute" \(MapToFields\) failed: .*no_such_column/s,
    },
  ];
  const unsafe: { title: string; variables: Record<string, string>; message: RegExp }[] = [
    { title: 'a raw timestamp', variables: { ...request().variables, as_of: WINDOW_TO }, message: /as_of .* does not have the shape/ },
    { title: 'SQL after a literal', variables: { ...request().variables, read_after: `${timestampLiteral(READ_AFTER)} OR TRUE` }, message: /read_after .* does not have the shape/ },
    { title: 'a missing bound', variables: Object.fromEntries(Object.entries(request().variables).filter(([name]) => name !== 'read_after')), message: /read_after is missing/ },
    { title: 'a source table that is not a quoted name', variables: { ...request().variables, ussd_table: '(SELECT * FROM main.ussd_operations)' }, message: /ussd_table .* does not have the shape/ },
  ];
  for (const { title, variables, message } of unsafe) {
    it(`refuses to launch with ${title}, as Dataflow's launcher does: no job, nothing run`, async () => {
      const local = runner();
      await assert.rejects(local.launch(request({ variables })), (error: Error) => /Refusing to render/.test(error.message) && message.test(error.message));
      assert.deepEqual(local.jobs(), []);
      assert.deepEqual(emitted, []);
    });
  }

  it('reads no row older than read_after: an operation created before it is left out, a transaction last updated before it is not found', async () => {
    const connection = await warehouse.connect();
    try {
      // op-matched was created at 09:00; op-initiated's transaction was last updated at 10:00.
      await connection.run("UPDATE main.ussd_operations SET created_at = TIMESTAMPTZ '2026-01-13 23:00:00+00' WHERE operation_id = 'op-matched'");
      await connection.run("UPDATE main.transactiongu SET updated_at = TIMESTAMPTZ '2026-01-13 12:00:00+00' WHERE transaction_id = 'tx-initiated'");
    } finally {
      connection.closeSync();
    }
    const local = runner();
    await local.launch(request());
    await local.idle();
    const rows = (await warehouse.query({ sql: 'SELECT operation_id, transaction_id FROM staging.enriched_b ORDER BY operation_id', params: {} })).rows;
    const byId = Object.fromEntries(rows.map((r: Row) => [r.operation_id, r.transaction_id]));
    assert.equal('op-matched' in byId, false, 'created before read_after: beyond OPERATION_MAX_AGE');
    assert.equal(byId['op-initiated'], null, 'its transaction row is older than read_after');
    assert.equal(byId['op-amount'], 'tx-amount');
  });

  for (const { title, yaml, variables, message } of failures) {
    it(`fails the job clearly on ${title}`, async () => {
      const local = runner(yaml ? { pipelineFile: pipelineFile(yaml) } : {});
      const launched = await local.launch(request(variables ? { variables } : {}));
      await local.idle();
      assert.deepEqual(statesOf(launched.jobId), ['JOB_STATE_QUEUED', 'JOB_STATE_RUNNING', 'JOB_STATE_FAILED']);
      const errors = logger.at('ERROR');
      assert.equal(errors.length, 1);
      assert.match(errors[0].message, message);
      assert.equal(errors[0].fields.jobName, launched.jobName);
    });
  }

  describe('WriteToBigQuery dispositions', () => {
    const writing = (create: string, write: string) => `pipeline:
  type: chain
  transforms:
    - type: ReadFromBigQuery
      config: { query: 'SELECT service_id, service_name FROM {{ services_table }}' }
    - type: MapToFields
      config: { language: sql, append: true, drop: [service_name], fields: { upper_name: "upper(service_name)" } }
    - type: WriteToBigQuery
      config: { table: "out_schema.out", create_disposition: ${create}, write_disposition: ${write} }
`;
    const run = async (create: string, write: string) => {
      const local = runner({ pipelineFile: pipelineFile(writing(create, write)) });
      const launched = await local.launch(request());
      await local.idle();
      return statesOf(launched.jobId).at(-1);
    };
    const content = async () => (await warehouse.query({ sql: 'SELECT * FROM out_schema.out', params: {} })).rows;

    it('appends like the Storage Write API sink, whatever the write disposition (WRITE_TRUNCATE is ignored, with a warning); WRITE_EMPTY refuses a non-empty table', async () => {
      assert.equal(await run('CREATE_IF_NEEDED', 'WRITE_TRUNCATE'), 'JOB_STATE_DONE', failure());
      assert.deepEqual(await content(), [{ service_id: 'S1', upper_name: 'CASH OUT' }]);
      assert.equal(await run('CREATE_IF_NEEDED', 'WRITE_TRUNCATE'), 'JOB_STATE_DONE');
      assert.equal((await content()).length, 2, 'a second WRITE_TRUNCATE run appended');
      assert.match(logger.at('WARNING').map((e) => e.message).join('\n'), /WRITE_TRUNCATE, which the Storage Write API sink ignores: it appends/);
      assert.equal(await run('CREATE_NEVER', 'WRITE_APPEND'), 'JOB_STATE_DONE');
      assert.equal((await content()).length, 3);
      assert.equal(await run('CREATE_IF_NEEDED', 'WRITE_EMPTY'), 'JOB_STATE_FAILED');
      assert.match(failure(), /out_schema\.out failed: the table is not empty and write_disposition is WRITE_EMPTY/);
      assert.equal((await content()).length, 3);
    });

    it('CREATE_NEVER fails on a missing table; WRITE_EMPTY creates one', async () => {
      assert.equal(await run('CREATE_NEVER', 'WRITE_APPEND'), 'JOB_STATE_FAILED');
      assert.match(failure(), /does not exist and create_disposition is CREATE_NEVER/);
      assert.equal(await run('CREATE_IF_NEEDED', 'WRITE_EMPTY'), 'JOB_STATE_DONE');
      assert.equal((await content()).length, 1);
    });

    it('creates no table when the job writes no row (the sink creates its table from the first row)', async () => {
      const local = runner({ pipelineFile: pipelineFile(writing('CREATE_IF_NEEDED', 'WRITE_APPEND').replace('FROM {{ services_table }}', 'FROM {{ services_table }} WHERE false')) });
      const launched = await local.launch(request());
      await local.idle();
      assert.equal(statesOf(launched.jobId).at(-1), 'JOB_STATE_DONE', failure());
      assert.equal(await warehouse.tableExists({ dataset: 'out_schema', table: 'out' }), false);
    });

    it('writes a TIMESTAMP that passes through Beam at millisecond precision, truncated toward zero as Java divides', async () => {
      const yaml = `pipeline:
  type: chain
  transforms:
    - type: ReadFromBigQuery
      config:
        query: |
          SELECT 'after' AS k, TIMESTAMPTZ '2026-01-15 10:00:00.123999+00' AS ts, TIMESTAMP '2026-01-15 10:00:00.000999' AS plain
          UNION ALL SELECT 'before', TIMESTAMPTZ '1969-12-31 23:59:59.999500+00', TIMESTAMP '1969-12-31 23:59:59.998001'
    - type: WriteToBigQuery
      config: { table: "out_schema.times", create_disposition: CREATE_IF_NEEDED, write_disposition: WRITE_APPEND }
`;
      const local = runner({ pipelineFile: pipelineFile(yaml) });
      await local.launch(request());
      await local.idle();
      const connection = await warehouse.connect();
      const rows = (await connection.runAndReadAll('SELECT k, epoch_us(ts), epoch_us(plain), typeof(ts), typeof(plain) FROM out_schema.times ORDER BY k')).getRows();
      connection.closeSync();
      assert.deepEqual(
        rows.map((r) => r.map(String)),
        [
          ['after', String(micros('2026-01-15T10:00:00.123Z')), String(micros('2026-01-15T10:00:00.000Z')), 'TIMESTAMP WITH TIME ZONE', 'TIMESTAMP'],
          ['before', '0', '-1000', 'TIMESTAMP WITH TIME ZONE', 'TIMESTAMP'],
        ],
        failure(),
      );
    });
  });

  describe('pipeline file parsing', () => {
    it('renders only known variables, as they are', () => {
      assert.equal(renderJinja('a {{ x }} b {{y}}', { x: '"s"."t"', y: 'u' }), 'a "s"."t" b u');
    });

    const plans: [string, unknown, RegExp][] = [
      ['a non-chain pipeline', { pipeline: { type: 'composite', transforms: [] } }, /supports only "pipeline.type: chain"/],
      ['an extra top-level key', { pipeline: { type: 'chain', transforms: [] }, providers: [] }, /top-level key\(s\): providers not supported/],
      ['a chain not starting with a read', { pipeline: { type: 'chain', transforms: [{ type: 'MapToFields', config: { language: 'sql', fields: { a: '1' } } }] } }, /must start with ReadFromBigQuery/],
      ['a chain without a write', { pipeline: { type: 'chain', transforms: [{ type: 'ReadFromBigQuery', config: { query: 'SELECT 1' } }] } }, /must end with WriteToBigQuery/],
      [
        'a write without dispositions',
        { pipeline: { type: 'chain', transforms: [{ type: 'ReadFromBigQuery', config: { query: 'SELECT 1' } }, { type: 'WriteToBigQuery', config: { table: 's.t' } }] } },
        /create_disposition must be CREATE_IF_NEEDED or CREATE_NEVER/,
      ],
      [
        'a project-qualified table',
        { pipeline: { type: 'chain', transforms: [{ type: 'ReadFromBigQuery', config: { query: 'SELECT 1' } }, { type: 'WriteToBigQuery', config: { table: 'p:s.t', create_disposition: 'CREATE_IF_NEEDED', write_disposition: 'WRITE_TRUNCATE' } }] } },
        /config.table must be schema.table on DuckDB, found "p:s.t"/,
      ],
    ];
    for (const [title, document, message] of plans) {
      it(`refuses ${title}`, () => assert.throws(() => parsePipeline(document, 'p.yaml'), message));
    }
  });
});
