import type { CloudEvent } from '@google-cloud/functions-framework';
import { BatchStore, idsMessageSchema, paths, type ChunkMessage, type Manifest, type SealMessage } from '../shared/batch';
import { readMessage } from '../shared/events';
import type { Logger } from '../shared/ports';
import type { ChainDependencies } from './dependencies';

/**
 * collectIds: stores each chunk of a batch once, and when the seal and every chunk are there,
 * declares the batch complete (a create-only marker) and announces it on the batches topic.
 */
export function makeCollectIds(deps: ChainDependencies): (event: CloudEvent<unknown>) => Promise<void> {
  return async (event) => {
    const message = readMessage(event, idsMessageSchema, deps.config.idsTopic, deps.logger);
    if (!message) return;
    const { data, messageId } = message;
    const logger = deps.logger.child({ batchId: data.batchId, messageId });
    if (data.type === 'chunk') await storeChunk(deps, logger, data, messageId);
    else await receiveSeal(deps, logger, data, messageId);
  };
}

async function storeChunk(deps: ChainDependencies, logger: Logger, chunk: ChunkMessage, messageId: string): Promise<void> {
  const lines = chunk.ids.map((id) => JSON.stringify({ operation_id: id })).join('\n') + '\n';
  const created = await deps.store.create(paths.chunk(chunk.batchId, chunk.chunk), lines);
  logger.debug(created ? 'Chunk stored' : 'Chunk already stored (redelivery)', { chunk: chunk.chunk, ids: chunk.ids.length });
  // The seal is written before its completeness check, and this chunk before this look: one of
  // the two sees the other, so the last arrival always completes the batch.
  if (await deps.store.exists(paths.seal(chunk.batchId))) await completeIfReady(deps, logger, chunk.batchId, messageId);
}

async function receiveSeal(deps: ChainDependencies, logger: Logger, seal: SealMessage, messageId: string): Promise<void> {
  const manifest = await new BatchStore(deps.store).readManifest(seal.batchId);
  if (!manifest) {
    logger.error('Seal of an unknown batch (no manifest), acknowledged and set aside');
    return;
  }
  if (manifest.chunkCount !== seal.chunkCount || manifest.idCount !== seal.idCount) {
    logger.error('Seal disagrees with the batch manifest, acknowledged and set aside', { seal: { chunkCount: seal.chunkCount, idCount: seal.idCount }, manifest: { chunkCount: manifest.chunkCount, idCount: manifest.idCount } });
    return;
  }
  await deps.store.create(paths.seal(seal.batchId), JSON.stringify(seal));
  await completeIfReady(deps, logger, seal.batchId, messageId, manifest);
}

async function completeIfReady(deps: ChainDependencies, logger: Logger, batchId: string, messageId: string, known?: Manifest): Promise<void> {
  const batches = new BatchStore(deps.store);
  const manifest = known ?? (await batches.readManifest(batchId));
  if (!manifest) return;
  // Counts the batch's own chunk numbers only: a stray chunk n >= chunkCount must not stand in for a missing one.
  const listed = new Set(await deps.store.list(paths.chunks(batchId)));
  const stored = Array.from({ length: manifest.chunkCount }, (_, n) => paths.chunk(batchId, n)).filter((path) => listed.has(path));
  if (stored.length < manifest.chunkCount) {
    logger.debug('Batch not complete yet', { chunksStored: stored.length, chunkCount: manifest.chunkCount });
    return;
  }
  const won = await deps.store.create(paths.complete(batchId), JSON.stringify({ completedAt: deps.clock.now().toISOString(), messageId }));
  // Only the delivery that took the marker announces: the others (concurrent arrivals of the last
  // chunks and the seal) stop here, so without a crash the batch is announced exactly once.
  if (!won) {
    const owner = await markerOwner(deps, batchId);
    if (owner !== undefined && owner !== messageId) return;
  }
  const current = await batches.readState(batchId);
  // Announcing is at least once: a run that created the marker and crashed before announcing is
  // redelivered (same message ID), finds the marker its own and the batch still SEALED, and
  // announces. launchDataflow is idempotent, so a second announcement costs nothing.
  if (!current || current.state.status !== 'SEALED') return;
  await deps.publisher.publish(deps.config.batchesTopic, { data: { type: 'batch', batchId, attempt: 1 }, attributes: { type: 'batch', batchId } });
  await batches.transition(batchId, (s) => s.status === 'SEALED', 'COLLECTED', {}, deps.clock.now());
  logger.info(won ? 'Batch complete and announced' : 'Batch complete; announced again after an interrupted announcement', { chunkCount: manifest.chunkCount, idCount: manifest.idCount });
}

/** The message ID that took the complete marker (undefined for a marker of an older version: anyone may announce). */
async function markerOwner(deps: ChainDependencies, batchId: string): Promise<string | undefined> {
  const marker = await deps.store.read(paths.complete(batchId));
  try {
    const owner = (JSON.parse(marker?.data ?? '') as { messageId?: unknown }).messageId;
    return typeof owner === 'string' ? owner : undefined;
  } catch {
    return undefined;
  }
}
