import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { ObjectStore, TableRef } from './ports';

/**
 * The batch protocol's names and records: batch IDs, object paths, the manifest, the state
 * machine SEALED -> COLLECTED -> LAUNCHED -> MERGED (or FAILED), and the messages on both topics.
 */

export const BATCH_ID_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;
export const batchIdSchema = z.string().regex(BATCH_ID_PATTERN, 'must be a batch ID such as 20260115T102000Z-1a2b3c');

/** Batch IDs sort by the end of their window; the suffix tells apart two runs over the same window. */
export function newBatchId(windowEnd: Date, suffix: string = randomBytes(3).toString('hex')): string {
  const compact = windowEnd.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${compact}-${suffix}`;
}

/** The part of table and job names that names the batch (lowercase, underscores only). */
export function batchSlug(batchId: string): string {
  return batchId.toLowerCase().replace(/-/g, '_');
}

/** Dataflow job name: deterministic per batch and attempt, [a-z]([-a-z0-9]*[a-z0-9])?. */
export function jobNameFor(batchId: string, attempt: number): string {
  return `consolidation-${batchId.toLowerCase()}-a${attempt}`;
}

export const JOB_LABELS = { pipeline: 'consolidation' } as const;

/** Dataflow label values: lowercase letters, digits, - and _. */
export function labelValue(batchId: string): string {
  return batchId.toLowerCase();
}

/**
 * The batch's tables. The enriched table is per attempt: Beam's BigQuery sink only appends, so a
 * relaunched attempt must not write where a failed one may have left part of its rows.
 */
export function batchTables(stagingDataset: string, batchId: string, attempt: number): { ids: TableRef; enriched: TableRef } {
  const slug = batchSlug(batchId);
  return {
    ids: { dataset: stagingDataset, table: `ids_${slug}` },
    enriched: { dataset: stagingDataset, table: `enriched_${slug}_a${attempt}` },
  };
}

export const paths = {
  batch: (batchId: string) => `batches/${batchId}/`,
  manifest: (batchId: string) => `batches/${batchId}/manifest.json`,
  state: (batchId: string) => `batches/${batchId}/state.json`,
  chunks: (batchId: string) => `batches/${batchId}/chunks/`,
  chunk: (batchId: string, n: number) => `batches/${batchId}/chunks/${String(n).padStart(6, '0')}.ndjson`,
  /** Written by collectIds when the seal arrives. */
  seal: (batchId: string) => `batches/${batchId}/seal.json`,
  /** Create-only: whoever creates it declares the batch complete, once. */
  complete: (batchId: string) => `batches/${batchId}/complete`,
  /** One small object per batch that is not finished yet: the reconciler's worklist. */
  openBatches: 'open/',
  open: (batchId: string) => `open/${batchId}.json`,
};

/** The batch ID of an open-batch marker's path, or undefined for anything else. */
export function batchIdOfOpenMarker(path: string): string | undefined {
  const match = /^open\/(.+)\.json$/.exec(path);
  return match && BATCH_ID_PATTERN.test(match[1]) ? match[1] : undefined;
}

const isoTimestamp = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be an RFC 3339 timestamp');
export const windowSchema = z.object({ from: isoTimestamp, to: isoTimestamp }).strict();
export type Window = z.infer<typeof windowSchema>;

export const rejectedSchema = z.object({ missingOperationId: z.number().int().min(0), missingSourceTimestamp: z.number().int().min(0) });
export type RejectedRows = z.infer<typeof rejectedSchema>;

/** Changes of the window older than OPERATION_MAX_AGE, which the cycle does not consolidate (beyondMaxAgeCounts). */
export const beyondMaxAgeSchema = z.object({ oldOperationRows: z.number().int().min(0), unmatchedTransactions: z.number().int().min(0) });
export type BeyondMaxAge = z.infer<typeof beyondMaxAgeSchema>;

export const manifestSchema = z.object({
  batchId: batchIdSchema,
  window: windowSchema,
  chunkCount: z.number().int().min(1),
  idCount: z.number().int().min(1),
  chunkSize: z.number().int().min(1),
  rejected: rejectedSchema,
  createdAt: isoTimestamp,
  /** Set on a replay: what was asked for; its MERGE forces the update of rows of the same version. */
  replay: z.object({ kind: z.enum(['window', 'ids']), requested: z.string().max(500) }).optional(),
  /** The instant the enrichment reads the sources as of (the window's end unless a replay says otherwise). */
  asOf: isoTimestamp.optional(),
  /** The batch's reads go back to this instant (exclusive): the window's start minus OPERATION_MAX_AGE. Absent in older manifests. */
  readAfter: isoTimestamp.optional(),
  beyondMaxAge: beyondMaxAgeSchema.optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;

export const MAX_IDS_PER_CHUNK = 100_000;
/**
 * Bytes of a chunk's IDs as JSON, at most. Pub/Sub takes messages of up to 10 MB; this leaves room
 * for the rest of the chunk message and its attributes.
 */
export const MAX_CHUNK_ID_BYTES = 9_000_000;

export const chunkMessageSchema = z
  .object({
    type: z.literal('chunk'),
    batchId: batchIdSchema,
    chunk: z.number().int().min(0),
    ids: z.array(z.string().min(1)).min(1).max(MAX_IDS_PER_CHUNK),
  })
  .strict();
export const sealMessageSchema = z
  .object({
    type: z.literal('seal'),
    batchId: batchIdSchema,
    chunkCount: z.number().int().min(1),
    idCount: z.number().int().min(1),
    window: windowSchema,
  })
  .strict();
export const idsMessageSchema = z.discriminatedUnion('type', [chunkMessageSchema, sealMessageSchema]);
export type ChunkMessage = z.infer<typeof chunkMessageSchema>;
export type SealMessage = z.infer<typeof sealMessageSchema>;
export type IdsMessage = z.infer<typeof idsMessageSchema>;

export const batchMessageSchema = z.object({ type: z.literal('batch'), batchId: batchIdSchema, attempt: z.number().int().min(1) }).strict();
export type BatchMessage = z.infer<typeof batchMessageSchema>;

export type BatchStatus = 'SEALED' | 'COLLECTED' | 'LAUNCHED' | 'MERGED' | 'FAILED';

export interface MergeCounts {
  sourceRows: number;
  inserted: number;
  updated: number;
  unchanged: number;
  /** Operations of the batch per reconciliation_status. */
  statusCounts?: Record<string, number>;
}

export interface BatchState {
  batchId: string;
  status: BatchStatus;
  attempt: number;
  jobName?: string;
  jobId?: string;
  /** Terminal Dataflow state of the job, once known. */
  jobState?: string;
  merge?: MergeCounts;
  mergeJobId?: string;
  reason?: string;
  /** FAILED for good: the reconciler gave up on the batch, or another batch re-reads its window. */
  final?: boolean;
  supersededBy?: string;
  /** The attempt the reconciler last announced for a FAILED batch (it counts even if its launch never happened). */
  announcedAttempt?: number;
  updatedAt: string;
  /** Every transition with its time, oldest first. */
  history: { status: BatchStatus; at: string }[];
}

/** Reads and writes one batch's objects; every write is create-only or generation-matched. */
export class BatchStore {
  constructor(private readonly store: ObjectStore) {}

  async readManifest(batchId: string): Promise<Manifest | null> {
    const object = await this.store.read(paths.manifest(batchId));
    return object ? manifestSchema.parse(JSON.parse(object.data)) : null;
  }

  async createManifest(manifest: Manifest): Promise<boolean> {
    return this.store.create(paths.manifest(manifest.batchId), JSON.stringify(manifest, null, 2));
  }

  async readState(batchId: string): Promise<{ state: BatchState; generation: string } | null> {
    const object = await this.store.read(paths.state(batchId));
    return object ? { state: JSON.parse(object.data) as BatchState, generation: object.generation } : null;
  }

  async createState(batchId: string, at: Date): Promise<boolean> {
    const state: BatchState = { batchId, status: 'SEALED', attempt: 0, updatedAt: at.toISOString(), history: [{ status: 'SEALED', at: at.toISOString() }] };
    return this.store.create(paths.state(batchId), JSON.stringify(state, null, 2));
  }

  /**
   * Moves the batch to `status` if its current state passes `allowed`, with a generation match,
   * so that of two concurrent writers exactly one wins. Returns the new state, or null when the
   * state did not allow the move or another writer won.
   */
  async transition(
    batchId: string,
    allowed: (state: BatchState) => boolean,
    status: BatchStatus,
    changes: Partial<Omit<BatchState, 'batchId' | 'status' | 'history' | 'updatedAt'>>,
    at: Date,
  ): Promise<BatchState | null> {
    const current = await this.readState(batchId);
    if (!current || !allowed(current.state)) return null;
    const next: BatchState = {
      ...current.state,
      ...changes,
      status,
      updatedAt: at.toISOString(),
      history: [...current.state.history, { status, at: at.toISOString() }],
    };
    const written = await this.store.replace(paths.state(batchId), JSON.stringify(next, null, 2), current.generation);
    return written ? next : null;
  }
}
