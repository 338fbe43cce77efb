import type { CloudEvent } from '@google-cloud/functions-framework';
import { BatchStore, JOB_LABELS, batchMessageSchema, batchSlug, batchTables, jobNameFor, labelValue, paths } from '../shared/batch';
import { readMessage } from '../shared/events';
import { BLANK } from '../shared/rejects';
import type { Logger } from '../shared/ports';
import { manifestBounds } from '../shared/bounds';
import { timestampLiteral } from '../shared/pipeline/variables';
import { loadSchema } from '../shared/schema';
import { stagedIdCount } from '../shared/sql/statements';
import { dialectOf } from '../shared/sql/render';
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
    const missing = chunkFiles.filter((file) => !listed.has(file));
    if (missing.length > 0) return setAsideForReread(deps, logger, batches, batchId, attempt, `${missing.length} of its ${manifest.chunkCount} chunk file(s) missing (${missing.slice(0, 5).join(', ')})`);
    const { config, warehouse } = deps;
    const dialect = dialectOf(warehouse, config);
    const tables = batchTables(config.stagingDataset, batchId, attempt);
    const slug = batchSlug(batchId);
    try {
      await warehouse.loadNdjson(tables.ids, chunkFiles.map((f) => deps.store.uri(f)), loadSchema('batch_ids'), { jobId: `consolidation_ids_${slug}_a${attempt}` });
    } catch (error) {
      const damaged = await damagedChunkFiles(deps, chunkFiles);
      if (damaged.length === 0) throw error;
      return setAsideForReread(deps, logger, batches, batchId, attempt, `chunk file(s) ${damaged.slice(0, 5).join(', ')} cannot be read as IDs`);
    }
    // Before anything is enriched or merged: the staged IDs must be the manifest's, or a chunk file was emptied or damaged.
    const counted = (await warehouse.query(stagedIdCount(dialect, tables.ids))).rows[0] ?? {};
    const staged = Number(counted.staged_ids ?? 0);
    const distinct = Number(counted.distinct_ids ?? 0);
    if (staged !== manifest.idCount || distinct !== manifest.idCount) {
      return setAsideForReread(deps, logger, batches, batchId, attempt, `its chunk files hold ${staged} ID(s) (${distinct} distinct) where the manifest counts ${manifest.idCount}: a chunk file was emptied or damaged`);
    }
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

/**
 * The batch's staged IDs cannot be trusted: it is not launched; it is marked FAILED with
 * `reread`, and the reconciler reads its window again under a new batch (bounded by MAX_ATTEMPTS).
 */
async function setAsideForReread(deps: ChainDependencies, logger: Logger, batches: BatchStore, batchId: string, attempt: number, why: string): Promise<void> {
  const reason = `not launched: ${why}`;
  const recorded = await batches.transition(
    batchId,
    (s) => s.status === 'SEALED' || s.status === 'COLLECTED' || (s.status === 'FAILED' && !s.final),
    'FAILED',
    { reason, reread: true, attempt: Math.max(attempt, 1) },
    deps.clock.now(),
  );
  logger.error(`Batch ${reason}; the reconciler reads its window again under a new batch`, { attempt, recorded: recorded !== null, chunks: paths.chunks(batchId) });
}

/** The chunk files that are not one JSON object with a non-blank operation_id per line. */
async function damagedChunkFiles(deps: ChainDependencies, files: string[]): Promise<string[]> {
  const damaged: string[] = [];
  for (const file of files) {
    const object = await deps.store.read(file);
    const lines = (object?.data ?? '').split('\n').filter((line) => line !== '');
    const readable =
      lines.length > 0 &&
      lines.every((line) => {
        try {
          const id = (JSON.parse(line) as { operation_id?: unknown }).operation_id;
          return typeof id === 'string' && !BLANK.test(id);
        } catch {
          return false;
        }
      });
    if (!readable) damaged.push(file);
  }
  return damaged;
}
