import type { Request, Response } from '@google-cloud/functions-framework';
import { BatchStore, newBatchId, paths, type Manifest, type RejectedRows, type SealMessage } from '../shared/batch';
import { ChainError, ConflictError, errorMessage } from '../shared/errors';
import { changedOperationIds, rejectedRowCounts } from '../shared/sql/statements';
import { dialectOf } from '../shared/sql/render';
import type { ChainDependencies } from './dependencies';

export type PublishResult =
  | { status: 'up-to-date'; watermark: string }
  | { status: 'empty'; window: { from: string; to: string }; idCount: 0; rejected: RejectedRows; watermark: string }
  | { status: 'sealed'; batchId: string; window: { from: string; to: string }; idCount: number; chunkCount: number; rejected: RejectedRows; watermark: string };

/**
 * publishOps: the HTTP function Cloud Scheduler calls. Streams the IDs of what changed since the
 * watermark, publishes them in chunks as it reads, seals the batch, then advances the watermark.
 */
export function makePublishOps(deps: ChainDependencies): (req: Request, res: Response) => Promise<void> {
  return async (req, res) => {
    if (req.method !== 'POST') {
      res.set('Allow', 'POST').status(405).json({ error: `Method ${req.method} not allowed: publishOps takes POST` });
      return;
    }
    const problem = bodyProblem(req.body);
    if (problem) {
      res.status(400).json({ error: problem });
      return;
    }
    try {
      const result = await publishChangedOperations(deps);
      res.status(200).json(result);
    } catch (error) {
      const status = error instanceof ConflictError ? 409 : 500;
      deps.logger.log(status === 409 ? 'WARNING' : 'ERROR', `publishOps failed: ${errorMessage(error)}`, { error, ...(error instanceof ChainError ? error.context : {}) });
      res.status(status).json({ error: errorMessage(error), ...(error instanceof ChainError ? error.context : {}) });
    }
  };
}

/** A scheduled call has no body, or an empty JSON object; anything else is refused. */
function bodyProblem(body: unknown): string | undefined {
  if (body === undefined || body === null || body === '') return undefined;
  if (Buffer.isBuffer(body) && body.length === 0) return undefined;
  if (typeof body === 'object' && !Array.isArray(body) && !Buffer.isBuffer(body)) {
    const keys = Object.keys(body);
    return keys.length === 0 ? undefined : `Unexpected field(s) in the request body: ${keys.join(', ')}; publishOps takes an empty body`;
  }
  return 'The request body must be empty or a JSON object (send Content-Type: application/json)';
}

function parseWatermark(text: string, object: string): Date {
  const trimmed = text.trim();
  const parsed = new Date(trimmed);
  if (!/^\d{4}-\d\d-\d\dT/.test(trimmed) || Number.isNaN(parsed.getTime())) {
    throw new ChainError(`The watermark object ${object} does not hold an RFC 3339 timestamp`, { content: trimmed.slice(0, 100) });
  }
  return parsed;
}

export async function publishChangedOperations(deps: ChainDependencies): Promise<PublishResult> {
  const { config, store, warehouse, publisher, clock } = deps;
  const watermarkObject = await store.read(config.watermarkObject);
  const watermark = watermarkObject ? parseWatermark(watermarkObject.data, config.watermarkObject) : config.initialWatermark;
  let to = new Date(clock.now().getTime() - config.safetyLagMs);
  if (config.maxWindowMs > 0 && to.getTime() - watermark.getTime() > config.maxWindowMs) to = new Date(watermark.getTime() + config.maxWindowMs);
  if (to <= watermark) {
    deps.logger.info('Nothing to do: the watermark is up to date', { watermark: watermark.toISOString() });
    return { status: 'up-to-date', watermark: watermark.toISOString() };
  }
  const window = { from: new Date(watermark.getTime() - config.lookbackMs).toISOString(), to: to.toISOString() };
  const batchId = newBatchId(to, deps.batchSuffix?.());
  const logger = deps.logger.child({ batchId });
  const dialect = dialectOf(warehouse, config);
  const tables = { ussd: config.tables.ussd, transactions: config.tables.transactions };

  const rejectedRow = (await warehouse.query(rejectedRowCounts(dialect, tables, { from: watermark.toISOString(), to: window.to }))).rows[0] ?? {};
  const rejected: RejectedRows = { missingOperationId: Number(rejectedRow.missing_operation_id ?? 0), missingSourceTimestamp: Number(rejectedRow.missing_source_timestamp ?? 0) };
  if (rejected.missingOperationId + rejected.missingSourceTimestamp > 0) {
    logger.warn('Source rows that cannot be consolidated (no operation_id or no source_timestamp)', { ...rejected, window });
  }

  logger.info('Extracting changed operations', { window });
  const publishing = new InFlight(config.publishConcurrency);
  let chunk: string[] = [];
  let chunkCount = 0;
  let idCount = 0;
  const flush = async () => {
    const ids = chunk;
    const n = chunkCount++;
    chunk = [];
    await publishing.add(() =>
      publisher.publish(config.idsTopic, { data: { type: 'chunk', batchId, chunk: n, ids }, attributes: { type: 'chunk', batchId, chunk: String(n) } }),
    );
    logger.debug('Published a chunk of IDs', { chunk: n, ids: ids.length });
  };
  try {
    for await (const rows of warehouse.stream(changedOperationIds(dialect, tables, window), { pageSize: config.chunkSize })) {
      for (const row of rows) {
        chunk.push(String(row.operation_id));
        idCount++;
        if (chunk.length >= config.chunkSize) await flush();
      }
    }
    if (chunk.length > 0) await flush();
    await publishing.drain();
  } catch (error) {
    await publishing.drain().catch(() => undefined);
    throw new ChainError(`Extracting or publishing the batch's IDs failed after ${idCount} IDs: ${errorMessage(error)}`, { batchId, window }, { cause: error });
  }

  if (idCount === 0) {
    await advanceWatermark(deps, watermarkObject?.generation, to, batchId);
    logger.info('No operation changed in the window; watermark advanced', { window, watermark: to.toISOString() });
    return { status: 'empty', window, idCount: 0, rejected, watermark: to.toISOString() };
  }

  const batches = new BatchStore(store);
  const manifest: Manifest = { batchId, window, chunkCount, idCount, chunkSize: config.chunkSize, rejected, createdAt: clock.now().toISOString() };
  if (!(await batches.createManifest(manifest)) || !(await batches.createState(batchId, clock.now()))) {
    throw new ChainError('The batch already exists in the state bucket', { batchId });
  }
  const seal: SealMessage = { type: 'seal', batchId, chunkCount, idCount, window };
  await publisher.publish(config.idsTopic, { data: seal, attributes: { type: 'seal', batchId } }).catch((error: unknown) => {
    throw new ChainError(`Publishing the seal failed; the batch stays unsealed and the watermark is not moved: ${errorMessage(error)}`, { batchId, window }, { cause: error });
  });
  await advanceWatermark(deps, watermarkObject?.generation, to, batchId);
  logger.info('Batch sealed and watermark advanced', { window, idCount, chunkCount, watermark: to.toISOString(), manifest: paths.manifest(batchId) });
  return { status: 'sealed', batchId, window, idCount, chunkCount, rejected, watermark: to.toISOString() };
}

/** Moves the watermark only if nobody moved it since it was read (generation match). */
async function advanceWatermark(deps: ChainDependencies, generation: string | undefined, to: Date, batchId: string): Promise<void> {
  const written =
    generation === undefined
      ? await deps.store.create(deps.config.watermarkObject, to.toISOString())
      : await deps.store.replace(deps.config.watermarkObject, to.toISOString(), generation);
  if (!written) {
    throw new ConflictError('Another publishOps run moved the watermark first; this run\'s batch is sealed and will be processed, the watermark is left as that run set it', { batchId });
  }
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
