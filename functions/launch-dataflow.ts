import type { CloudEvent } from '@google-cloud/functions-framework';
import { BatchStore, JOB_LABELS, batchMessageSchema, batchSlug, batchTables, jobNameFor, labelValue, paths } from '../shared/batch';
import { ChainError } from '../shared/errors';
import { readMessage } from '../shared/events';
import { manifestBounds } from '../shared/bounds';
import { timestampLiteral } from '../shared/pipeline/variables';
import { loadSchema } from '../shared/schema';
import type { ChainDependencies } from './dependencies';

/**
 * launchDataflow: stages the batch's IDs as a table and launches the enrichment job for it, with
 * the batch's read bounds (as of the window's end, back to readAfter) as validated literals.
 * Every step is idempotent (deterministic load/query job IDs, deterministic job name with 409
 * adoption), so a redelivered announcement launches nothing twice.
 */
export function makeLaunchDataflow(deps: ChainDependencies): (event: CloudEvent<unknown>) => Promise<void> {
  return async (event) => {
    const message = readMessage(event, batchMessageSchema, deps.config.batchesTopic, deps.logger);
    if (!message) return;
    const { batchId, attempt } = message.data;
    const logger = deps.logger.child({ batchId, messageId: message.messageId });
    const batches = new BatchStore(deps.store);
    const [manifest, current] = await Promise.all([batches.readManifest(batchId), batches.readState(batchId)]);
    if (!manifest || !current) {
      logger.error('Announcement of an unknown batch (no manifest or state), acknowledged and set aside');
      return;
    }
    if (current.state.status === 'MERGED' || (current.state.status !== 'SEALED' && current.state.status !== 'COLLECTED' && current.state.attempt >= attempt)) {
      logger.info('Batch already launched for this attempt (redelivery); nothing to do', { status: current.state.status, attempt: current.state.attempt });
      return;
    }

    // The batch's own chunk numbers only: a stray chunk n >= chunkCount is neither counted nor loaded.
    const listed = new Set(await deps.store.list(paths.chunks(batchId)));
    const chunkFiles = Array.from({ length: manifest.chunkCount }, (_, n) => paths.chunk(batchId, n));
    const storedCount = chunkFiles.filter((file) => listed.has(file)).length;
    if (storedCount !== manifest.chunkCount) {
      throw new ChainError(`Batch announced with ${storedCount} of ${manifest.chunkCount} chunks stored`, { batchId });
    }
    const { config, warehouse } = deps;
    const tables = batchTables(config.stagingDataset, batchId, attempt);
    const slug = batchSlug(batchId);
    await warehouse.loadNdjson(tables.ids, chunkFiles.map((f) => deps.store.uri(f)), loadSchema('batch_ids'), { jobId: `consolidation_ids_${slug}_a${attempt}` });
    // Beam YAML's ReadFromBigQuery takes no parameters: the bounds go in as timestamp literals
    // built by code from the manifest's RFC 3339 values, which the launchers check again.
    const bounds = manifestBounds(manifest, config);

    const jobName = jobNameFor(batchId, attempt);
    const launched = await deps.launcher.launch({
      jobName,
      batchId,
      attempt,
      labels: { ...JOB_LABELS, batch_id: labelValue(batchId), attempt: String(attempt) },
      variables: {
        as_of: timestampLiteral(bounds.asOf),
        read_after: timestampLiteral(bounds.readAfter),
        ids_table: warehouse.qualify(tables.ids),
        ussd_table: warehouse.qualify(config.tables.ussd),
        transactions_table: warehouse.qualify(config.tables.transactions),
        services_table: warehouse.qualify(config.tables.services),
        agents_table: warehouse.qualify(config.tables.agents),
        output_table: warehouse.plainName(tables.enriched),
      },
    });
    const recorded = await batches.transition(
      batchId,
      (s) => s.status === 'SEALED' || s.status === 'COLLECTED' || (s.status === 'FAILED' && s.attempt < attempt),
      'LAUNCHED',
      { jobName: launched.jobName, jobId: launched.jobId, attempt, jobState: undefined, reason: undefined, announcedAttempt: undefined },
      deps.clock.now(),
    );
    logger.info(launched.adopted ? 'Adopted the running job of this batch' : 'Enrichment job launched', {
      jobName: launched.jobName,
      jobId: launched.jobId,
      attempt,
      ids: manifest.idCount,
      recorded: recorded !== null,
    });
  };
}
