import assert from 'node:assert/strict';
import { ConfigError, VARIABLES, loadConfig, type Config, type VariableName } from '../../shared/config';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError');
}

const GCP = { CONSOLIDATION_BACKEND: 'gcp', GCP_PROJECT: 'my-project-1', STATE_BUCKET: 'my-state-bucket', INITIAL_WATERMARK: '2026-01-01T00:00:00Z' };

describe('loadConfig', () => {
  it('defaults', () => {
    const config = loadConfig({});
    const expected: Config = {
      backend: 'local',
      project: '',
      region: 'europe-west1',
      bigqueryLocation: 'EU',
      stateBucket: '',
      stateDir: '.consolidation',
      warehouseFile: '',
      tables: {
        ussd: { dataset: 'main', table: 'ussd_operations' },
        transactions: { dataset: 'main', table: 'transactiongu' },
        services: { dataset: 'main', table: 'services' },
        agents: { dataset: 'main', table: 'agents' },
        consolidated: { dataset: 'consolidated_dataset', table: 'consolidated_table' },
      },
      stagingDataset: 'consolidation_staging',
      idsTopic: 'ussd-operations-topic',
      batchesTopic: 'consolidation-batches',
      chunkSize: 1000,
      publishConcurrency: 16,
      watermarkObject: 'last_timestamp.txt',
      initialWatermark: new Date('1970-01-01T00:00:00Z'),
      lookbackMs: 15 * 60_000,
      safetyLagMs: 2 * 60_000,
      maxWindowMs: 0,
      operationMaxAgeMs: 30 * 86_400_000,
      leaseObject: 'lease.json',
      leaseMs: 10 * 60_000,
      stuckAfterMs: 15 * 60_000,
      maxAttempts: 3,
      replayMaxIds: 50_000,
      templatePath: 'gs://dataflow-templates-europe-west1/latest/flex/Yaml_Template',
      pipelineFile: '',
      dataflowTempLocation: '',
      dataflowStagingLocation: '',
      dataflowServiceAccount: '',
      dataflowMaxWorkers: 4,
      auditTable: { dataset: 'consolidated_dataset', table: 'consolidation_audit' },
      auditDays: 3,
      auditRepair: false,
      publishOpsUrl: '',
      localBusMaxAttempts: 5,
      localBusConcurrency: 8,
      logLevel: 'INFO',
    };
    assert.deepEqual(config, expected);
  });

  it('ignores variables it does not know', () => {
    assert.deepEqual(loadConfig({ PATH: '/usr/bin', HOME: '/root', K_SERVICE: 'publishOps' }), loadConfig({}));
  });

  it('an empty variable takes its default (an unset value in a .env or a Terraform map)', () => {
    const empty = Object.fromEntries(Object.keys(VARIABLES).map((name) => [name, '']));
    assert.deepEqual(loadConfig(empty), loadConfig({}));
  });

  // Every variable: a good value and what it becomes, and bad values. The last test checks that
  // the table covers every variable, so a new one cannot go untested.
  const variables: { name: VariableName; good: string; read: (c: Config) => unknown; expected: unknown; bad: string[]; env?: Record<string, string> }[] = [
    { name: 'CONSOLIDATION_BACKEND', good: 'gcp', read: (c) => c.backend, expected: 'gcp', bad: ['aws', 'GCP', 'local '], env: { GCP_PROJECT: 'my-project-1', STATE_BUCKET: 'b-1', INITIAL_WATERMARK: 'beginning' } },
    { name: 'GCP_PROJECT', good: 'my-project-1', read: (c) => c.project, expected: 'my-project-1', bad: ['My_Project', 'abc', '1project', 'project-'] },
    { name: 'REGION', good: 'us-central1', read: (c) => c.region, expected: 'us-central1', bad: ['europe west1', 'EU', 'europe-west', 'europe-west100'] },
    { name: 'BIGQUERY_LOCATION', good: 'US', read: (c) => c.bigqueryLocation, expected: 'US', bad: ['E'] },
    { name: 'STATE_BUCKET', good: 'my-state.bucket_1', read: (c) => c.stateBucket, expected: 'my-state.bucket_1', bad: ['Bad_Bucket', 'gs://bucket', 'ab', '-bucket'] },
    { name: 'STATE_DIR', good: '/var/lib/consolidation', read: (c) => c.stateDir, expected: '/var/lib/consolidation', bad: [] },
    { name: 'WAREHOUSE_FILE', good: '/data/warehouse.duckdb', read: (c) => c.warehouseFile, expected: '/data/warehouse.duckdb', bad: [] },
    { name: 'SOURCE_DATASET', good: 'raw_2', read: (c) => c.tables.ussd.dataset, expected: 'raw_2', bad: ['raw-data', 'x; DROP TABLE y', '1abc', 'a.b'] },
    { name: 'USSD_TABLE', good: 'ops', read: (c) => c.tables.ussd, expected: { dataset: 'main', table: 'ops' }, bad: ['ussd operations', 'ops`'] },
    { name: 'TRANSACTIONS_TABLE', good: 'txn', read: (c) => c.tables.transactions, expected: { dataset: 'main', table: 'txn' }, bad: ['txn"--'] },
    { name: 'SERVICES_TABLE', good: 'svc', read: (c) => c.tables.services, expected: { dataset: 'main', table: 'svc' }, bad: ['svc.x'] },
    { name: 'AGENTS_TABLE', good: 'agt', read: (c) => c.tables.agents, expected: { dataset: 'main', table: 'agt' }, bad: ['agents!'] },
    { name: 'CONSOLIDATED_DATASET', good: 'finance', read: (c) => c.tables.consolidated.dataset, expected: 'finance', bad: ['fin-ance'] },
    { name: 'CONSOLIDATED_TABLE', good: 'ops_current', read: (c) => c.tables.consolidated.table, expected: 'ops_current', bad: ['ops current'] },
    { name: 'STAGING_DATASET', good: 'tmp', read: (c) => c.stagingDataset, expected: 'tmp', bad: ['tmp/x'] },
    { name: 'IDS_TOPIC', good: 'ids.topic-1', read: (c) => c.idsTopic, expected: 'ids.topic-1', bad: ['ab', '1topic', 'topic with space', 'projects/p/topics/t'] },
    { name: 'BATCHES_TOPIC', good: 'batches', read: (c) => c.batchesTopic, expected: 'batches', bad: ['go'] },
    { name: 'CHUNK_SIZE', good: '500', read: (c) => c.chunkSize, expected: 500, bad: ['0', '-1', '100001', 'abc', '1.5'] },
    { name: 'PUBLISH_CONCURRENCY', good: '4', read: (c) => c.publishConcurrency, expected: 4, bad: ['0', '1001', 'many'] },
    { name: 'WATERMARK_OBJECT', good: 'state/watermark.txt', read: (c) => c.watermarkObject, expected: 'state/watermark.txt', bad: ['a*b', 'line\nbreak', 'why?', 'a#b'] },
    { name: 'INITIAL_WATERMARK', good: '2026-01-01T00:00:00Z', read: (c) => c.initialWatermark.toISOString(), expected: '2026-01-01T00:00:00.000Z', bad: ['yesterday', '2026-01-01', '2026-13-45T00:00:00Z', '1735689600', 'Beginning', 'start'] },
    { name: 'LOOKBACK', good: '1h', read: (c) => c.lookbackMs, expected: 3_600_000, bad: ['15 minutes', '-5m', '1.5h', '15'] },
    { name: 'SAFETY_LAG', good: '90s', read: (c) => c.safetyLagMs, expected: 90_000, bad: ['2 m', 'soon'] },
    { name: 'OPERATION_MAX_AGE', good: '90d', read: (c) => c.operationMaxAgeMs, expected: 90 * 86_400_000, bad: ['30 days', '59m', '1w', '0s'] },
    { name: 'MAX_WINDOW', good: '1d', read: (c) => c.maxWindowMs, expected: 86_400_000, bad: ['1w', 'P1D'] },
    { name: 'LEASE_OBJECT', good: 'locks/publish-ops.json', read: (c) => c.leaseObject, expected: 'locks/publish-ops.json', bad: ['lease*.json', 'lease?', 'a\nb'] },
    { name: 'LEASE_DURATION', good: '30m', read: (c) => c.leaseMs, expected: 1_800_000, bad: ['ten minutes', '-1m', '10'] },
    { name: 'STUCK_AFTER', good: '1h', read: (c) => c.stuckAfterMs, expected: 3_600_000, bad: ['1.5h', 'PT15M'] },
    { name: 'MAX_ATTEMPTS', good: '5', read: (c) => c.maxAttempts, expected: 5, bad: ['0', '21', 'three', '2.5'] },
    { name: 'REPLAY_MAX_IDS', good: '1000', read: (c) => c.replayMaxIds, expected: 1000, bad: ['0', '1000001', '-5'] },
    { name: 'TEMPLATE_PATH', good: 'gs://my-templates/yaml.json', read: (c) => c.templatePath, expected: 'gs://my-templates/yaml.json', bad: ['s3://x/y', '/local/template.json'] },
    { name: 'PIPELINE_FILE', good: 'gs://b/p.yaml', read: (c) => c.pipelineFile, expected: 'gs://b/p.yaml', bad: ['pipeline/consolidation.yaml'] },
    { name: 'DATAFLOW_TEMP_LOCATION', good: 'gs://b/tmp', read: (c) => c.dataflowTempLocation, expected: 'gs://b/tmp', bad: ['/tmp'] },
    { name: 'DATAFLOW_STAGING_LOCATION', good: 'gs://b/staging', read: (c) => c.dataflowStagingLocation, expected: 'gs://b/staging', bad: ['/staging', 'b/staging'] },
    { name: 'DATAFLOW_SERVICE_ACCOUNT', good: 'df@my-project-1.iam.gserviceaccount.com', read: (c) => c.dataflowServiceAccount, expected: 'df@my-project-1.iam.gserviceaccount.com', bad: ['dataflow-sa', 'a@b@c', 'a b@c'] },
    { name: 'DATAFLOW_MAX_WORKERS', good: '10', read: (c) => c.dataflowMaxWorkers, expected: 10, bad: ['0', '1001'] },
    { name: 'AUDIT_TABLE', good: 'audit_runs', read: (c) => c.auditTable, expected: { dataset: 'consolidated_dataset', table: 'audit_runs' }, bad: ['audit runs'] },
    { name: 'AUDIT_DAYS', good: '7', read: (c) => c.auditDays, expected: 7, bad: ['0', '367', 'week'] },
    { name: 'AUDIT_REPAIR', good: 'true', read: (c) => c.auditRepair, expected: true, bad: ['yes', '1'] },
    { name: 'PUBLISH_OPS_URL', good: 'https://ussd-publish-ops-abc-ew.a.run.app', read: (c) => c.publishOpsUrl, expected: 'https://ussd-publish-ops-abc-ew.a.run.app', bad: ['http://insecure', 'publish-ops'] },
    { name: 'LOCAL_BUS_MAX_ATTEMPTS', good: '1', read: (c) => c.localBusMaxAttempts, expected: 1, bad: ['0', '101'] },
    { name: 'LOCAL_BUS_CONCURRENCY', good: '256', read: (c) => c.localBusConcurrency, expected: 256, bad: ['257', 'x'] },
    { name: 'LOG_LEVEL', good: 'DEBUG', read: (c) => c.logLevel, expected: 'DEBUG', bad: ['verbose', 'TRACE'] },
  ];

  describe('each variable', () => {
    for (const c of variables) {
      it(`${c.name}=${JSON.stringify(c.good)} is read`, () => {
        assert.deepEqual(c.read(loadConfig({ ...c.env, [c.name]: c.good })), c.expected);
      });
      for (const bad of c.bad) {
        it(`${c.name}=${JSON.stringify(bad)} is refused, naming the variable and the value`, () => {
          const error = configError({ ...c.env, [c.name]: bad });
          assert.deepEqual(error.problems.map((p) => p.variable), [c.name]);
          assert.match(error.message, new RegExp(`^Invalid configuration: ${c.name} `));
          assert.ok(error.message.includes(JSON.stringify(bad)), `the message quotes the value: ${error.message}`);
          assert.equal(error.name, 'ConfigError');
        });
      }
    }

    it('REGION accepts the regions with a two-digit suffix, as Terraform does (europe-west10, me-central2)', () => {
      for (const region of ['europe-west10', 'europe-west12', 'me-central2']) assert.equal(loadConfig({ REGION: region }).region, region);
    });

    it('the table covers every variable', () => {
      assert.deepEqual(variables.map((v) => v.name).sort(), Object.keys(VARIABLES).sort());
    });
  });

  describe('one ConfigError names every bad variable', () => {
    const cases: { name: string; env: Record<string, string>; bad: string[] }[] = [
      { name: 'three bad variables', env: { CHUNK_SIZE: '0', REGION: 'mars', LOOKBACK: 'forever' }, bad: ['REGION', 'CHUNK_SIZE', 'LOOKBACK'] },
      { name: 'bad values and missing gcp requirements', env: { CONSOLIDATION_BACKEND: 'gcp', USSD_TABLE: 'a-b', LOG_LEVEL: 'loud' }, bad: ['GCP_PROJECT', 'STATE_BUCKET', 'INITIAL_WATERMARK', 'USSD_TABLE', 'LOG_LEVEL'] },
      {
        name: 'every variable that can be bad',
        env: Object.fromEntries(variables.filter((v) => v.bad.length > 0 && v.name !== 'CONSOLIDATION_BACKEND').map((v) => [v.name, v.bad[0]])),
        bad: variables.filter((v) => v.bad.length > 0 && v.name !== 'CONSOLIDATION_BACKEND').map((v) => v.name),
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const error = configError(c.env);
        assert.deepEqual(error.problems.map((p) => p.variable).sort(), [...c.bad].sort());
        for (const name of c.bad) assert.match(error.message, new RegExp(`\\b${name}\\b`));
        assert.equal(error.message.split('\n').length, 1, 'one message');
      });
    }
  });

  describe('the gcp backend requires GCP_PROJECT, STATE_BUCKET and INITIAL_WATERMARK', () => {
    const START = { INITIAL_WATERMARK: 'beginning' };
    const cases: { name: string; env: Record<string, string>; missing: string[] }[] = [
      { name: 'none', env: { CONSOLIDATION_BACKEND: 'gcp' }, missing: ['GCP_PROJECT', 'STATE_BUCKET', 'INITIAL_WATERMARK'] },
      { name: 'no bucket', env: { CONSOLIDATION_BACKEND: 'gcp', GCP_PROJECT: 'my-project-1', ...START }, missing: ['STATE_BUCKET'] },
      { name: 'no project', env: { CONSOLIDATION_BACKEND: 'gcp', STATE_BUCKET: 'my-state-bucket', ...START }, missing: ['GCP_PROJECT'] },
      { name: 'no initial watermark', env: { CONSOLIDATION_BACKEND: 'gcp', GCP_PROJECT: 'my-project-1', STATE_BUCKET: 'my-state-bucket' }, missing: ['INITIAL_WATERMARK'] },
      { name: 'all empty', env: { CONSOLIDATION_BACKEND: 'gcp', GCP_PROJECT: '', STATE_BUCKET: '', INITIAL_WATERMARK: '' }, missing: ['GCP_PROJECT', 'STATE_BUCKET', 'INITIAL_WATERMARK'] },
      { name: 'both given', env: GCP, missing: [] },
    ];
    for (const c of cases) {
      it(c.name, () => {
        if (c.missing.length === 0) {
          const config = loadConfig(c.env);
          assert.equal(config.backend, 'gcp');
          assert.equal(config.project, 'my-project-1');
          assert.equal(config.stateBucket, 'my-state-bucket');
          return;
        }
        const error = configError(c.env);
        assert.deepEqual(error.problems.map((p) => p.variable), c.missing);
        for (const p of error.problems) assert.match(p.problem, /is required when CONSOLIDATION_BACKEND=gcp/);
      });
    }

    it('a missing initial watermark says what to set, and that `beginning` reads the whole history', () => {
      const error = configError({ ...GCP, INITIAL_WATERMARK: '' });
      assert.match(error.message, /INITIAL_WATERMARK is required when CONSOLIDATION_BACKEND=gcp: set where the first run starts \(an RFC 3339 timestamp\), or `beginning` to consolidate the whole history, MAX_WINDOW at a time/);
    });

    it('the first run on Google Cloud: `beginning` starts at the epoch, and MAX_WINDOW defaults to 6h there (no limit locally)', () => {
      const fromStart = loadConfig({ ...GCP, INITIAL_WATERMARK: 'beginning' });
      assert.equal(fromStart.initialWatermark.toISOString(), '1970-01-01T00:00:00.000Z');
      assert.equal(fromStart.maxWindowMs, 6 * 3_600_000);
      assert.equal(loadConfig({ ...GCP, MAX_WINDOW: '0s' }).maxWindowMs, 0, 'an explicit 0s lifts the limit');
      assert.equal(loadConfig({ ...GCP, MAX_WINDOW: '1d' }).maxWindowMs, 86_400_000);
      assert.equal(loadConfig({}).maxWindowMs, 0);
      assert.equal(loadConfig({ INITIAL_WATERMARK: 'beginning' }).initialWatermark.toISOString(), '1970-01-01T00:00:00.000Z');
    });

    it('a bad project is named once, as bad (not also as missing)', () => {
      const error = configError({ ...GCP, GCP_PROJECT: 'Bad Project' });
      assert.deepEqual(error.problems.map((p) => p.variable), ['GCP_PROJECT']);
      assert.match(error.problems[0].problem, /must be a Google Cloud project ID/);
    });

    it('AUDIT_REPAIR=true needs PUBLISH_OPS_URL on gcp (the audit replays through publishOps), not locally', () => {
      const error = configError({ ...GCP, AUDIT_REPAIR: 'true' });
      assert.deepEqual(error.problems.map((p) => p.variable), ['PUBLISH_OPS_URL']);
      assert.match(error.problems[0].problem, /required when AUDIT_REPAIR=true/);
      assert.equal(loadConfig({ ...GCP, AUDIT_REPAIR: 'true', PUBLISH_OPS_URL: 'https://p.a.run.app' }).auditRepair, true);
      assert.equal(loadConfig({ AUDIT_REPAIR: 'true' }).auditRepair, true);
    });

    it('the local backend needs neither', () => {
      assert.equal(loadConfig({ CONSOLIDATION_BACKEND: 'local' }).backend, 'local');
    });
  });

  describe('derived defaults', () => {
    const cases: { name: string; env: Record<string, string>; expected: Partial<Config> }[] = [
      { name: 'TEMPLATE_PATH from REGION', env: { REGION: 'us-central1' }, expected: { templatePath: 'gs://dataflow-templates-us-central1/latest/flex/Yaml_Template' } },
      { name: 'an explicit TEMPLATE_PATH wins', env: { REGION: 'us-central1', TEMPLATE_PATH: 'gs://t/spec.json' }, expected: { templatePath: 'gs://t/spec.json' } },
      {
        name: 'PIPELINE_FILE and DATAFLOW_TEMP_LOCATION from STATE_BUCKET',
        env: { STATE_BUCKET: 'my-state-bucket' },
        expected: { pipelineFile: 'gs://my-state-bucket/pipeline/consolidation.yaml', dataflowTempLocation: 'gs://my-state-bucket/dataflow/temp' },
      },
      {
        name: 'explicit PIPELINE_FILE and DATAFLOW_TEMP_LOCATION win',
        env: { STATE_BUCKET: 'my-state-bucket', PIPELINE_FILE: 'gs://other/p.yaml', DATAFLOW_TEMP_LOCATION: 'gs://other/tmp' },
        expected: { pipelineFile: 'gs://other/p.yaml', dataflowTempLocation: 'gs://other/tmp' },
      },
      { name: 'no bucket: no pipeline file, temp or staging location', env: {}, expected: { pipelineFile: '', dataflowTempLocation: '', dataflowStagingLocation: '' } },
      { name: 'DATAFLOW_STAGING_LOCATION from STATE_BUCKET', env: { STATE_BUCKET: 'my-state-bucket' }, expected: { dataflowStagingLocation: 'gs://my-state-bucket/dataflow/staging' } },
      {
        name: 'SOURCE_DATASET applies to the four source tables',
        env: { SOURCE_DATASET: 'raw' },
        expected: {
          tables: {
            ussd: { dataset: 'raw', table: 'ussd_operations' },
            transactions: { dataset: 'raw', table: 'transactiongu' },
            services: { dataset: 'raw', table: 'services' },
            agents: { dataset: 'raw', table: 'agents' },
            consolidated: { dataset: 'consolidated_dataset', table: 'consolidated_table' },
          },
        },
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const config = loadConfig(c.env);
        for (const [key, value] of Object.entries(c.expected)) assert.deepEqual(config[key as keyof Config], value, key);
      });
    }
  });

  describe('values valid alone but not together', () => {
    const cases: { name: string; env: Record<string, string>; says: RegExp[] }[] = [
      { name: 'the lease on the watermark object', env: { LEASE_OBJECT: 'wm.txt', WATERMARK_OBJECT: 'wm.txt' }, says: [/LEASE_OBJECT must differ from WATERMARK_OBJECT/] },
      { name: 'a lease and a stuck threshold under a minute', env: { LEASE_DURATION: '30s', STUCK_AFTER: '0s' }, says: [/LEASE_DURATION \("30s"\) must be at least 1m/, /STUCK_AFTER \("0s"\) must be at least 1m/] },
    ];
    for (const c of cases) {
      it(`${c.name} -> one ConfigError naming each`, () => {
        assert.throws(
          () => loadConfig(c.env),
          (error: unknown) => error instanceof ConfigError && c.says.every((re) => re.test(error.message)),
        );
      });
    }
    it('a lease of exactly a minute is accepted', () => assert.equal(loadConfig({ LEASE_DURATION: '1m', STUCK_AFTER: '1m' }).leaseMs, 60_000));
  });
});
