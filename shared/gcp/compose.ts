import { BigQuery } from '@google-cloud/bigquery';
import { FlexTemplatesServiceClient, JobsV1Beta3Client } from '@google-cloud/dataflow';
import { PubSub } from '@google-cloud/pubsub';
import { Storage } from '@google-cloud/storage';
import { readFileSync } from 'node:fs';
import { GoogleAuth } from 'google-auth-library';
import type { AuditDependencies } from '../../functions/audit';
import type { ChainDependencies } from '../../functions/dependencies';
import { pipelineFilePath } from '../pipeline/file';
import type { Config } from '../config';
import { ChainError } from '../errors';
import type { Clock, Logger } from '../ports';
import { BigQueryWarehouse } from './bigquery-warehouse';
import { DataflowLauncher } from './dataflow-launcher';
import { GcsObjectStore } from './gcs-object-store';
import { PubSubPublisher } from './pubsub-publisher';
import { PublishOpsReplayer } from './publish-ops-replayer';

/** The wall clock. */
export const systemClock: Clock = { now: () => new Date() };

/**
 * The composition root of the deployed functions: the Google Cloud clients (credentials from the
 * environment, resolved lazily: constructing them makes no network call) and the adapters on them.
 */
export function composeGoogleCloud(config: Config, logger: Logger): ChainDependencies {
  const missing = (['project', 'stateBucket', 'templatePath', 'pipelineFile', 'dataflowTempLocation', 'dataflowStagingLocation'] as const).filter((key) => !config[key]);
  if (missing.length > 0) throw new ChainError(`The Google Cloud backend needs ${missing.join(', ')} in the configuration`, { missing });

  const bigquery = new BigQuery({ projectId: config.project, location: config.bigqueryLocation });
  const storage = new Storage({ projectId: config.project });
  const pubsub = new PubSub({ projectId: config.project });
  return {
    config,
    logger,
    clock: systemClock,
    warehouse: new BigQueryWarehouse({ bigquery, storage, project: config.project, location: config.bigqueryLocation, logger }),
    store: new GcsObjectStore(storage.bucket(config.stateBucket)),
    publisher: new PubSubPublisher(pubsub),
    launcher: new DataflowLauncher({
      flexTemplates: new FlexTemplatesServiceClient({ projectId: config.project }),
      jobs: new JobsV1Beta3Client({ projectId: config.project }),
      project: config.project,
      region: config.region,
      templatePath: config.templatePath,
      pipelineFile: config.pipelineFile,
      tempLocation: config.dataflowTempLocation,
      stagingLocation: config.dataflowStagingLocation,
      serviceAccount: config.dataflowServiceAccount,
      maxWorkers: config.dataflowMaxWorkers,
      logger,
    }),
  };
}

/** The audit function's dependencies: the chain's adapters, the packaged pipeline file, and publishOps for its replays. */
export function composeAudit(chain: ChainDependencies): AuditDependencies {
  const file = pipelineFilePath();
  const { config, logger } = chain;
  return {
    ...chain,
    pipeline: { text: readFileSync(file, 'utf8'), file },
    replayer: config.publishOpsUrl ? new PublishOpsReplayer({ auth: new GoogleAuth(), url: config.publishOpsUrl, logger }) : undefined,
  };
}
