import { z } from 'zod';
import { BadRequestError } from '../shared/errors';
import { describeIssues } from '../shared/events';
import { readBounds } from '../shared/bounds';
import { changedOperationIds } from '../shared/sql/statements';
import { dialectOf } from '../shared/sql/render';
import type { Logger } from '../shared/ports';
import type { ChainDependencies } from './dependencies';
import { extractBatch } from './extract';

/** What publishOps was asked to do: a scheduled run (no body), or a replay. */
export type PublishRequest = { kind: 'scheduled' } | { kind: 'replay-window'; from: Date; to: Date } | { kind: 'replay-ids'; ids: string[]; createdAfter?: Date };

/** True when the YYYY-MM-DD at the start of `s` is a real calendar day (Date.parse turns 02-30 into 03-02). */
const realDay = (s: string): boolean => {
  const [y, m, d] = s.slice(0, 10).split('-').map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  return day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
};
const rfc3339 = z
  .string()
  .refine((s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)) && realDay(s), 'must be an RFC 3339 timestamp such as 2026-01-15T10:00:00Z');
const windowBody = z.object({ from: rfc3339, to: rfc3339 }).strict();
const idsBody = z
  .object({
    ids: z.array(z.string().min(1, 'an ID must not be empty').max(128, 'an ID is at most 128 characters')).min(1, 'must list at least one ID'),
    /** The listed operations were created after this instant; default: the watermark minus OPERATION_MAX_AGE. */
    createdAfter: rfc3339.optional(),
  })
  .strict();

/**
 * Reads publishOps' request body: none (or `{}`) for the scheduler, `{"from", "to"}` or
 * `{"ids": [...]}` for a replay. Anything else is a BadRequestError saying what is wrong.
 */
export function parsePublishRequest(body: unknown, maxIds: number): PublishRequest {
  if (body === undefined || body === null || body === '') return { kind: 'scheduled' };
  if (Buffer.isBuffer(body)) {
    if (body.length === 0) return { kind: 'scheduled' };
    throw new BadRequestError('The request body must be JSON (send Content-Type: application/json)');
  }
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new BadRequestError('The request body must be empty, {"from": ..., "to": ...} or {"ids": [...]} as JSON (send Content-Type: application/json)');
  }
  const keys = Object.keys(body);
  if (keys.length === 0) return { kind: 'scheduled' };
  if ('ids' in body) {
    const ids = (body as { ids?: unknown }).ids;
    if (Array.isArray(ids) && ids.length > maxIds) throw new BadRequestError(`ids lists ${ids.length} IDs; one replay takes at most ${maxIds} (REPLAY_MAX_IDS): split the list`);
    const parsed = idsBody.safeParse(body);
    if (!parsed.success) throw new BadRequestError(`Bad replay body: ${describeIssues(parsed.error.issues)}`);
    return { kind: 'replay-ids', ids: [...new Set(parsed.data.ids)], ...(parsed.data.createdAfter ? { createdAfter: new Date(parsed.data.createdAfter) } : {}) };
  }
  if ('from' in body || 'to' in body) {
    const parsed = windowBody.safeParse(body);
    if (!parsed.success) throw new BadRequestError(`Bad replay body: ${describeIssues(parsed.error.issues)}`);
    const from = new Date(parsed.data.from);
    const to = new Date(parsed.data.to);
    if (from >= to) throw new BadRequestError(`Bad replay body: from (${parsed.data.from}) must be before to (${parsed.data.to})`);
    return { kind: 'replay-window', from, to };
  }
  throw new BadRequestError(`Unexpected field(s) in the request body: ${keys.join(', ')}; publishOps takes an empty body, {"from", "to"} or {"ids"}`);
}

export type ReplayResult =
  | { status: 'sealed'; replay: string; window: { from: string; to: string }; batchId: string; asOf: string; idCount: number; chunkCount: number }
  | { status: 'empty'; replay: string; window: { from: string; to: string }; asOf: string; idCount: 0 };

/** Refuses a replay the watermark rules out; publishOps checks this before it takes the lease or repairs anything. */
export function checkReplay(request: Exclude<PublishRequest, { kind: 'scheduled' }>, watermark: Date | undefined): asserts watermark is Date {
  if (!watermark) throw new BadRequestError('Nothing has been consolidated yet (no watermark): there is nothing to replay');
  if (request.kind === 'replay-window' && request.to > watermark) {
    throw new BadRequestError(`Bad replay body: to (${request.to.toISOString()}) is after the watermark (${watermark.toISOString()}); rows after the watermark are not consolidated yet and the scheduled runs will bring them`);
  }
  if (request.kind === 'replay-ids' && request.createdAfter && request.createdAfter >= watermark) {
    throw new BadRequestError(`Bad replay body: createdAfter (${request.createdAfter.toISOString()}) must be before the watermark (${watermark.toISOString()})`);
  }
}

/**
 * A replay: re-processes the operations changed in a window, or listed, as of the current
 * watermark (never ahead of what the scheduled runs consolidated, so no row moves backwards),
 * without moving the watermark; its MERGE replaces rows of the same version too.
 */
export async function replay(deps: ChainDependencies, request: Exclude<PublishRequest, { kind: 'scheduled' }>, watermark: Date | undefined, logger: Logger): Promise<ReplayResult> {
  checkReplay(request, watermark);
  const { config, warehouse } = deps;
  let requested: string;
  let source;
  let window;
  let readAfter: string;
  if (request.kind === 'replay-window') {
    window = { from: request.from.toISOString(), to: request.to.toISOString() };
    requested = `window (${window.from}, ${window.to}]`;
    const bounds = readBounds(window, config);
    readAfter = bounds.readAfter;
    source = { query: changedOperationIds(dialectOf(warehouse, config), { ussd: config.tables.ussd, transactions: config.tables.transactions }, bounds) };
  } else {
    window = { from: watermark.toISOString(), to: watermark.toISOString() };
    requested = `${request.ids.length} listed operation IDs`;
    readAfter = request.createdAfter?.toISOString() ?? readBounds(window, config).readAfter;
    source = { ids: request.ids };
  }
  logger.info(`Replay of the ${requested}, as of the watermark`, { asOf: watermark.toISOString() });
  const extracted = await extractBatch(
    deps,
    { source, window, asOf: watermark, rejected: { missingOperationId: 0, missingSourceTimestamp: 0 }, readAfter, replay: { kind: request.kind === 'replay-window' ? 'window' : 'ids', requested } },
    logger,
  );
  if (extracted.batchId === undefined) return { status: 'empty', replay: requested, window, asOf: watermark.toISOString(), idCount: 0 };
  logger.info('Replay batch sealed; the watermark is not moved', { batchId: extracted.batchId, idCount: extracted.idCount });
  return { status: 'sealed', replay: requested, window, batchId: extracted.batchId, asOf: watermark.toISOString(), idCount: extracted.idCount, chunkCount: extracted.chunkCount };
}
