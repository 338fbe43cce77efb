import { protos, type FlexTemplatesServiceClient, type JobsV1Beta3Client } from '@google-cloud/dataflow';
import { ChainError, errorMessage } from '../errors';
import { checkPipelineVariables } from '../pipeline/variables';
import { jobStateName } from '../events';
import type { JobLauncher, JobState, LaunchedJob, LaunchRequest, Logger } from '../ports';

type LaunchFlexTemplateRequest = protos.google.dataflow.v1beta3.ILaunchFlexTemplateRequest;
type DataflowJob = protos.google.dataflow.v1beta3.IJob;

/** gRPC ALREADY_EXISTS; the REST transport reports HTTP 409. */
const ALREADY_EXISTS = new Set<unknown>([6, 409, 'ALREADY_EXISTS']);

export interface DataflowLauncherOptions {
  flexTemplates: FlexTemplatesServiceClient;
  jobs: JobsV1Beta3Client;
  project: string;
  /** Region of the jobs (a regional endpoint location, e.g. europe-west1). */
  region: string;
  /** The Flex Template spec: gs://dataflow-templates-<region>/latest/flex/Yaml_Template. */
  templatePath: string;
  /** The Beam YAML pipeline file, a gs:// path (the template's `yaml_pipeline_file`). */
  pipelineFile: string;
  tempLocation: string;
  /** Where the launch stages the job's files; set explicitly so that it never falls back to a bucket Dataflow picks. */
  stagingLocation: string;
  /** Service account of the workers; empty means the project's default. */
  serviceAccount: string;
  maxWorkers: number;
  logger?: Logger;
}

/** What getJob reports of a Dataflow job. */
export interface DataflowJobSummary {
  id: string;
  name: string;
  currentState: JobState;
  labels: Record<string, string>;
}

/**
 * Launches the enrichment job from Google's Beam YAML Flex Template. Launching is idempotent per
 * job name: while a job of that name is active, Dataflow refuses a second launch with
 * ALREADY_EXISTS, and the launcher adopts the active job instead.
 */
export class DataflowLauncher implements JobLauncher {
  constructor(private readonly options: DataflowLauncherOptions) {}

  async launch(request: LaunchRequest): Promise<LaunchedJob> {
    const { jobName } = request;
    const { flexTemplates, project, region, logger } = this.options;
    try {
      checkPipelineVariables(request.variables);
    } catch (error) {
      throw new ChainError(`Not launching ${jobName}: ${errorMessage(error)}`, { jobName, batchId: request.batchId }, { cause: error });
    }
    try {
      const [response] = await flexTemplates.launchFlexTemplate(this.launchRequest(request));
      const jobId = response.job?.id;
      if (!jobId) throw new ChainError(`Dataflow accepted the launch of ${jobName} but returned no job ID`, { jobName, response });
      return { jobId, jobName, adopted: false };
    } catch (error) {
      if (error instanceof ChainError) throw error;
      if (!isAlreadyExists(error)) {
        throw new ChainError(`Launching the Dataflow job ${jobName} failed: ${errorMessage(error)}`, { jobName, batchId: request.batchId, project, region }, { cause: error });
      }
      logger?.info('An active Dataflow job of this name exists; adopting it', { jobName, batchId: request.batchId });
      const active = await this.findActiveJob(jobName);
      if (!active?.id) {
        throw new ChainError(`Dataflow refused to launch ${jobName} because a job of that name exists, but no active job of that name is listed in ${region} (it may have just ended); retry`, { jobName, batchId: request.batchId, project, region }, { cause: error });
      }
      return { jobId: active.id, jobName, adopted: true };
    }
  }

  /** The job's ID, name, current state and labels. */
  async getJob(jobId: string): Promise<DataflowJobSummary> {
    const { jobs, project, region } = this.options;
    try {
      const [job] = await jobs.getJob({ projectId: project, location: region, jobId });
      return { id: job.id ?? jobId, name: job.name ?? '', currentState: stateName(job.currentState), labels: { ...(job.labels ?? {}) } };
    } catch (error) {
      throw new ChainError(`Could not read the Dataflow job ${jobId}: ${errorMessage(error)}`, { jobId, project, region }, { cause: error });
    }
  }

  /** The job's current state; undefined when Dataflow knows no job of that ID (NOT_FOUND). */
  async jobState(jobId: string): Promise<JobState | undefined> {
    try {
      return (await this.getJob(jobId)).currentState;
    } catch (error) {
      if (error instanceof ChainError && isNotFound(error.cause)) return undefined;
      throw error;
    }
  }

  /** The launchFlexTemplate request: the template, the pipeline file and the jinja variables, the labels. */
  private launchRequest(request: LaunchRequest): LaunchFlexTemplateRequest {
    const { project, region, templatePath, pipelineFile, tempLocation, stagingLocation, serviceAccount, maxWorkers } = this.options;
    return {
      projectId: project,
      location: region,
      launchParameter: {
        jobName: request.jobName,
        containerSpecGcsPath: templatePath,
        parameters: {
          yaml_pipeline_file: pipelineFile,
          jinja_variables: JSON.stringify(request.variables),
        },
        environment: {
          tempLocation,
          stagingLocation,
          ...(serviceAccount ? { serviceAccountEmail: serviceAccount } : {}),
          maxWorkers,
          additionalUserLabels: { ...request.labels },
        },
      },
    };
  }

  private async findActiveJob(jobName: string): Promise<DataflowJob | undefined> {
    const { jobs, project, region } = this.options;
    try {
      const [active] = await jobs.listJobs({ projectId: project, location: region, filter: 'ACTIVE' });
      return active.find((job) => job.name === jobName);
    } catch (error) {
      throw new ChainError(`Could not list the active Dataflow jobs to adopt ${jobName}: ${errorMessage(error)}`, { jobName, project, region }, { cause: error });
    }
  }
}

function isNotFound(error: unknown): boolean {
  const { code, status } = (error ?? {}) as { code?: unknown; status?: unknown };
  return code === 5 || code === 404 || status === 'NOT_FOUND';
}

function isAlreadyExists(error: unknown): boolean {
  const { code, status } = (error ?? {}) as { code?: unknown; status?: unknown };
  return ALREADY_EXISTS.has(code) || ALREADY_EXISTS.has(status);
}

/** The state's name, whether the client decoded the enum as a name or as a number. */
function stateName(state: DataflowJob['currentState']): JobState {
  return (jobStateName(state) ?? 'JOB_STATE_UNKNOWN') as JobState;
}
