import assert from 'node:assert/strict';
import { FlexTemplatesServiceClient, JobsV1Beta3Client, protos } from '@google-cloud/dataflow';
import sinon from 'sinon';
import { ChainError } from '../../shared/errors';
import { DataflowLauncher, type DataflowLauncherOptions } from '../../shared/gcp/dataflow-launcher';
import type { LaunchRequest } from '../../shared/ports';

/**
 * The Dataflow adapter against real client objects (constructing them makes no call) with the
 * three methods it uses stubbed, so a renamed or missing client method fails here.
 */

const JOB_NAME = 'consolidation-20260115t102000z-1a2b3c-a1';
const TEMPLATE = 'gs://dataflow-templates-europe-west1/latest/flex/Yaml_Template';
const PIPELINE = 'gs://state-bucket/pipeline/consolidation.yaml';

const REQUEST: LaunchRequest = {
  jobName: JOB_NAME,
  batchId: '20260115T102000Z-1a2b3c',
  attempt: 1,
  variables: {
    as_of: "TIMESTAMP '2026-01-15 10:20:00.000000+00:00'",
    read_after: "TIMESTAMP '2025-12-16 10:05:00.000000+00:00'",
    ids_table: '`my-project.consolidation_staging.ids_20260115t102000z_1a2b3c`',
    ussd_table: '`my-project.source_dataset.ussd_operations`',
    transactions_table: '`my-project.source_dataset.transactiongu`',
    services_table: '`my-project.source_dataset.services`',
    agents_table: '`my-project.source_dataset.agents`',
    output_table: 'my-project:consolidation_staging.enriched_20260115t102000z_1a2b3c',
  },
  labels: { pipeline: 'consolidation', batch_id: '20260115t102000z-1a2b3c', attempt: '1' },
};

function setup(overrides: Partial<DataflowLauncherOptions> = {}) {
  const flexTemplates = new FlexTemplatesServiceClient({ projectId: 'my-project' });
  const jobs = new JobsV1Beta3Client({ projectId: 'my-project' });
  const launch = sinon.stub(flexTemplates, 'launchFlexTemplate');
  const listJobs = sinon.stub(jobs, 'listJobs');
  const getJob = sinon.stub(jobs, 'getJob');
  const launcher = new DataflowLauncher({
    flexTemplates,
    jobs,
    project: 'my-project',
    region: 'europe-west1',
    templatePath: TEMPLATE,
    pipelineFile: PIPELINE,
    tempLocation: 'gs://state-bucket/dataflow/temp',
    stagingLocation: 'gs://state-bucket/dataflow/staging',
    serviceAccount: 'dataflow-worker@my-project.iam.gserviceaccount.com',
    maxWorkers: 4,
    ...overrides,
  });
  return { launch, listJobs, getJob, launcher };
}

function grpcError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('DataflowLauncher', () => {
  afterEach(() => sinon.restore());

  const accounts = [
    { name: 'with a worker service account', serviceAccount: 'dataflow-worker@my-project.iam.gserviceaccount.com', environment: { serviceAccountEmail: 'dataflow-worker@my-project.iam.gserviceaccount.com' } },
    { name: 'without one (the project default; the field is left out)', serviceAccount: '', environment: {} },
  ];
  for (const c of accounts) {
    it(`launches the Flex Template ${c.name}`, async () => {
      const { launch, launcher } = setup({ serviceAccount: c.serviceAccount });
      launch.resolves([{ job: { id: '2026-01-15_02_20_00-123', name: JOB_NAME } }] as never);

      assert.deepStrictEqual(await launcher.launch(REQUEST), { jobId: '2026-01-15_02_20_00-123', jobName: JOB_NAME, adopted: false });

      sinon.assert.calledOnce(launch);
      assert.deepStrictEqual(launch.firstCall.args, [
        {
          projectId: 'my-project',
          location: 'europe-west1',
          launchParameter: {
            jobName: JOB_NAME,
            containerSpecGcsPath: TEMPLATE,
            parameters: {
              yaml_pipeline_file: PIPELINE,
              jinja_variables: JSON.stringify(REQUEST.variables),
            },
            environment: {
              tempLocation: 'gs://state-bucket/dataflow/temp',
              stagingLocation: 'gs://state-bucket/dataflow/staging',
              ...c.environment,
              maxWorkers: 4,
              additionalUserLabels: { pipeline: 'consolidation', batch_id: '20260115t102000z-1a2b3c', attempt: '1' },
            },
          },
        },
      ]);
      const sent = launch.firstCall.args[0] as { launchParameter: { parameters: Record<string, string> } };
      assert.deepStrictEqual(JSON.parse(sent.launchParameter.parameters.jinja_variables), REQUEST.variables);
    });
  }

  const alreadyExists = [
    { name: 'gRPC ALREADY_EXISTS (6)', error: grpcError(6, `6 ALREADY_EXISTS: (abc): The workflow could not be created. Causes: (abc): There is already an active job named ${JOB_NAME}.`) },
    { name: 'HTTP 409 (REST transport)', error: grpcError(409, 'Conflict') },
  ];
  for (const c of alreadyExists) {
    it(`on ${c.name}, adopts the active job of that name`, async () => {
      const { launch, listJobs, launcher } = setup();
      launch.rejects(c.error);
      listJobs.resolves([[{ id: 'other-id', name: 'consolidation-20260115t100000z-ffffff-a1' }, { id: 'active-id', name: JOB_NAME }]] as never);

      assert.deepStrictEqual(await launcher.launch(REQUEST), { jobId: 'active-id', jobName: JOB_NAME, adopted: true });
      sinon.assert.calledOnceWithExactly(listJobs as sinon.SinonStub, { projectId: 'my-project', location: 'europe-west1', filter: 'ACTIVE' });
    });
  }

  it('on ALREADY_EXISTS with no active job of that name listed, throws a clear error', async () => {
    const { launch, listJobs, launcher } = setup();
    const failure = grpcError(6, 'ALREADY_EXISTS');
    launch.rejects(failure);
    listJobs.resolves([[{ id: 'other-id', name: 'another-job' }]] as never);
    await assert.rejects(launcher.launch(REQUEST), (e: ChainError) => {
      assert.ok(e instanceof ChainError);
      assert.match(e.message, new RegExp(`${JOB_NAME}.*no active job of that name`));
      assert.deepStrictEqual([e.context.jobName, e.context.batchId, e.cause], [JOB_NAME, REQUEST.batchId, failure]);
      return true;
    });
  });

  it('throws other launch errors with the job name, without looking for a job to adopt', async () => {
    const { launch, listJobs, launcher } = setup();
    const failure = grpcError(7, 'PERMISSION_DENIED: Permission denied on resource project my-project');
    launch.rejects(failure);
    await assert.rejects(launcher.launch(REQUEST), (e: ChainError) => e instanceof ChainError && e.cause === failure && e.context.jobName === JOB_NAME && /PERMISSION_DENIED/.test(e.message));
    sinon.assert.notCalled(listJobs);
  });

  it('throws when a launch returns no job ID', async () => {
    const { launch, launcher } = setup();
    launch.resolves([{}] as never);
    await assert.rejects(launcher.launch(REQUEST), (e: ChainError) => e instanceof ChainError && /no job ID/.test(e.message));
  });

  const unsafe = [
    { name: 'a raw timestamp instead of a literal', variables: { ...REQUEST.variables, as_of: '2026-01-15T10:20:00Z' } },
    { name: 'SQL after the literal', variables: { ...REQUEST.variables, read_after: "TIMESTAMP '2025-12-16 10:05:00.000000+00:00' OR TRUE" } },
    { name: 'a source table name that is not a quoted name', variables: { ...REQUEST.variables, ussd_table: '(SELECT * FROM x)' } },
  ];
  for (const c of unsafe) {
    it(`refuses to launch with ${c.name}, before calling Dataflow`, async () => {
      const { launch, launcher } = setup();
      await assert.rejects(launcher.launch({ ...REQUEST, variables: c.variables }), (e: ChainError) => e instanceof ChainError && /Not launching .*Refusing to render/.test(e.message));
      sinon.assert.notCalled(launch);
    });
  }

  const states = [
    { name: 'as a name', currentState: 'JOB_STATE_RUNNING' as unknown, expected: 'JOB_STATE_RUNNING' },
    { name: 'as an enum number', currentState: protos.google.dataflow.v1beta3.JobState.JOB_STATE_DONE, expected: 'JOB_STATE_DONE' },
  ];
  for (const c of states) {
    it(`getJob reports the job's ID, name, state (${c.name}) and labels`, async () => {
      const { getJob, launcher } = setup();
      getJob.resolves([{ id: 'job-id', name: JOB_NAME, currentState: c.currentState, labels: { pipeline: 'consolidation' } }] as never);
      assert.deepStrictEqual(await launcher.getJob('job-id'), { id: 'job-id', name: JOB_NAME, currentState: c.expected, labels: { pipeline: 'consolidation' } });
      sinon.assert.calledOnceWithExactly(getJob as sinon.SinonStub, { projectId: 'my-project', location: 'europe-west1', jobId: 'job-id' });
    });
  }

  describe('jobState (what the reconciler asks about a job whose status event never came)', () => {
    const known = [
      { name: 'a running job', currentState: 'JOB_STATE_RUNNING' as unknown, expected: 'JOB_STATE_RUNNING' },
      { name: 'a finished job (state as an enum number)', currentState: protos.google.dataflow.v1beta3.JobState.JOB_STATE_DONE, expected: 'JOB_STATE_DONE' },
      { name: 'a failed job', currentState: 'JOB_STATE_FAILED' as unknown, expected: 'JOB_STATE_FAILED' },
    ];
    for (const c of known) {
      it(`${c.name} -> its state, from one getJob in the job's region`, async () => {
        const { getJob, launcher } = setup();
        getJob.resolves([{ id: '2026-01-15_02_20_00-123', name: JOB_NAME, currentState: c.currentState }] as never);
        assert.equal(await launcher.jobState('2026-01-15_02_20_00-123'), c.expected);
        sinon.assert.calledOnceWithExactly(getJob as sinon.SinonStub, { projectId: 'my-project', location: 'europe-west1', jobId: '2026-01-15_02_20_00-123' });
      });
    }

    const notFound = [
      { name: 'gRPC NOT_FOUND (5)', error: grpcError(5, '5 NOT_FOUND: (abc): Requested job with id 2026-01-15_02_20_00-123 not found.') },
      { name: 'HTTP 404 (REST transport)', error: grpcError(404, 'Not Found') },
      { name: 'a status of NOT_FOUND', error: Object.assign(new Error('not found'), { status: 'NOT_FOUND' }) },
    ];
    for (const c of notFound) {
      it(`${c.name} -> undefined (Dataflow knows no such job)`, async () => {
        const { getJob, launcher } = setup();
        getJob.rejects(c.error);
        assert.equal(await launcher.jobState('2026-01-15_02_20_00-123'), undefined);
      });
    }

    const failures = [
      { name: 'PERMISSION_DENIED (7)', error: grpcError(7, '7 PERMISSION_DENIED: caller lacks dataflow.jobs.get') },
      { name: 'UNAVAILABLE (14)', error: grpcError(14, '14 UNAVAILABLE: connection reset') },
      { name: 'HTTP 500', error: grpcError(500, 'Internal Server Error') },
    ];
    for (const c of failures) {
      it(`${c.name} -> a ChainError with the job ID and the cause (not mistaken for an unknown job)`, async () => {
        const { getJob, launcher } = setup();
        getJob.rejects(c.error);
        await assert.rejects(launcher.jobState('2026-01-15_02_20_00-123'), (e: unknown) => {
          assert.ok(e instanceof ChainError);
          assert.match(e.message, new RegExp(`^Could not read the Dataflow job 2026-01-15_02_20_00-123: ${c.error.message}`));
          assert.equal(e.context.jobId, '2026-01-15_02_20_00-123');
          assert.equal(e.cause, c.error);
          return true;
        });
      });
    }
  });

  it('getJob wraps errors with the job ID', async () => {
    const { getJob, launcher } = setup();
    getJob.rejects(grpcError(5, 'NOT_FOUND'));
    await assert.rejects(launcher.getJob('job-id'), (e: ChainError) => e instanceof ChainError && e.context.jobId === 'job-id');
  });
});
