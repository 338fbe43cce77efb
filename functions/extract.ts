import { BatchStore, MAX_CHUNK_ID_BYTES, newBatchId, paths, type BeyondMaxAge, type Manifest, type RejectedRows, type SealMessage, type Window } from '../shared/batch';
import { ChainError, errorMessage } from '../shared/errors';
import type { Logger, Statement } from '../shared/ports';
import type { ChainDependencies } from './dependencies';

/** What one extraction reads and how its batch is recorded. */
export interface ExtractRequest {
  /** The change-set query to stream, or the operation IDs themselves (an IDs replay). */
  source: { query: Statement } | { ids: readonly string[] };
  /** The window recorded in the manifest and the seal. */
  window: Window;
  /** The enrichment reads the sources as of this instant; batch IDs sort by it. */
  asOf: Date;
  rejected: RejectedRows;
  /** The oldest instant (exclusive) the batch's reads go back to; the pipeline reads the same. */
  readAfter: string;
  beyondMaxAge?: BeyondMaxAge;
  replay?: Manifest['replay'];
}

export type ExtractedBatch = { batchId: string; idCount: number; chunkCount: number } | { batchId: undefined; idCount: 0; chunkCount: 0 };

/**
 * Publishes the IDs of one batch in chunks as it reads them (memory bounded by the chunk size
 * times the publishing concurrency), then writes the manifest and the state and publishes the
 * seal. The open-batch marker is written before the first chunk, so that a run that dies half
 * way leaves a trace the reconciler cleans up.
 */
export async function extractBatch(deps: ChainDependencies, request: ExtractRequest, parentLogger: Logger): Promise<ExtractedBatch> {
  const { config, store, warehouse, publisher, clock } = deps;
  const batchId = newBatchId(request.asOf, deps.batchSuffix?.());
  const logger = parentLogger.child({ batchId });
  const publishing = new InFlight(config.publishConcurrency);
  let chunk: string[] = [];
  let chunkBytes = 0;
  let chunkCount = 0;
  let idCount = 0;
  const flush = async () => {
    const ids = chunk;
    const n = chunkCount++;
    chunk = [];
    chunkBytes = 0;
    if (n === 0) await store.create(paths.open(batchId), JSON.stringify({ batchId, createdAt: clock.now().toISOString() }));
    await publishing.add(() => publisher.publish(config.idsTopic, { data: { type: 'chunk', batchId, chunk: n, ids }, attributes: { type: 'chunk', batchId, chunk: String(n) } }));
    logger.debug('Published a chunk of IDs', { chunk: n, ids: ids.length });
  };
  // No promise per ID: a million awaits cost seconds where a request runs inside a Node domain.
  // A chunk is full at CHUNK_SIZE IDs or at MAX_CHUNK_ID_BYTES of them as JSON, whichever comes
  // first, so that long IDs never make a message larger than Pub/Sub takes.
  let nextBytes = 0;
  const fits = (id: string): boolean => {
    nextBytes = Buffer.byteLength(JSON.stringify(id)) + 1;
    if (nextBytes > MAX_CHUNK_ID_BYTES) throw new ChainError(`An operation ID of ${nextBytes} bytes cannot travel in a message (at most ${MAX_CHUNK_ID_BYTES})`, { batchId, id: id.slice(0, 100) });
    return chunk.length === 0 || chunkBytes + nextBytes <= MAX_CHUNK_ID_BYTES;
  };
  const take = (id: string): boolean => {
    chunk.push(id);
    chunkBytes += nextBytes;
    idCount++;
    return chunk.length >= config.chunkSize;
  };
  try {
    if ('ids' in request.source) {
      for (const id of request.source.ids) {
        if (!fits(id)) await flush();
        if (take(id)) await flush();
      }
    } else {
      for await (const rows of warehouse.stream(request.source.query, { pageSize: config.chunkSize })) {
        for (const row of rows) {
          const id = String(row.operation_id);
          if (!fits(id)) await flush();
          if (take(id)) await flush();
        }
      }
    }
    if (chunk.length > 0) await flush();
    await publishing.drain();
  } catch (error) {
    await publishing.drain().catch(() => undefined);
    throw new ChainError(`Extracting or publishing the batch's IDs failed after ${idCount} IDs: ${errorMessage(error)}`, { batchId, window: request.window }, { cause: error });
  }
  if (idCount === 0) return { batchId: undefined, idCount: 0, chunkCount: 0 };

  const batches = new BatchStore(store);
  const manifest: Manifest = {
    batchId,
    window: request.window,
    chunkCount,
    idCount,
    chunkSize: config.chunkSize,
    rejected: request.rejected,
    createdAt: clock.now().toISOString(),
    ...(request.replay ? { replay: request.replay } : {}),
    ...(request.asOf.toISOString() !== request.window.to ? { asOf: request.asOf.toISOString() } : {}),
    readAfter: request.readAfter,
    ...(request.beyondMaxAge ? { beyondMaxAge: request.beyondMaxAge } : {}),
  };
  if (!(await batches.createManifest(manifest)) || !(await batches.createState(batchId, clock.now()))) {
    throw new ChainError('The batch already exists in the state bucket', { batchId });
  }
  await publishSeal(deps, manifest);
  return { batchId, idCount, chunkCount };
}

/** Publishes the batch's seal from its manifest (again, when the reconciler finds it missing). */
export async function publishSeal(deps: ChainDependencies, manifest: Manifest): Promise<void> {
  const { batchId, chunkCount, idCount, window } = manifest;
  const seal: SealMessage = { type: 'seal', batchId, chunkCount, idCount, window };
  await deps.publisher.publish(deps.config.idsTopic, { data: seal, attributes: { type: 'seal', batchId } }).catch((error: unknown) => {
    throw new ChainError(`Publishing the seal failed; the batch stays unsealed until the reconciler publishes it again: ${errorMessage(error)}`, { batchId, window }, { cause: error });
  });
}

/** Keeps at most `limit` promises in flight; `add` waits for a free slot, so memory stays bounded. */
class InFlight {
  private readonly pending = new Set<Promise<unknown>>();
  private failure: unknown;

  constructor(private readonly limit: number) {}

  async add(start: () => Promise<unknown>): Promise<void> {
    while (this.pending.size >= this.limit) await Promise.race(this.pending);
    if (this.failure) throw this.failure;
    const promise: Promise<unknown> = start()
      .catch((error) => {
        this.failure ??= error;
      })
      .finally(() => this.pending.delete(promise));
    this.pending.add(promise);
  }

  async drain(): Promise<void> {
    await Promise.all(this.pending);
    if (this.failure) throw this.failure;
  }
}
