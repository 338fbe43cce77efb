import { BatchStore, paths } from '../batch';
import type { ObjectStore } from '../ports';

/**
 * `consolidate prune`: deletes the objects of finished batches (MERGED, or FAILED for good) whose
 * state has not changed for longer than `olderThanMs`. Open batches and the watermark are never
 * touched. On Google Cloud the bucket's lifecycle rule does the same after 30 days.
 */
export async function pruneBatches(store: ObjectStore, now: Date, olderThanMs: number, dryRun: boolean): Promise<{ pruned: string[]; objects: number; kept: number }> {
  const batches = new BatchStore(store);
  const objects = await store.list('batches/');
  const byBatch = new Map<string, string[]>();
  for (const object of objects) {
    const batchId = object.split('/')[1];
    if (batchId) byBatch.set(batchId, [...(byBatch.get(batchId) ?? []), object]);
  }
  const open = new Set(await store.list(paths.openBatches));
  const pruned: string[] = [];
  let deleted = 0;
  for (const [batchId, files] of byBatch) {
    const state = (await batches.readState(batchId))?.state;
    const finished = state && (state.status === 'MERGED' || (state.status === 'FAILED' && state.final));
    if (!finished || open.has(paths.open(batchId)) || now.getTime() - Date.parse(state.updatedAt) <= olderThanMs) continue;
    pruned.push(batchId);
    deleted += files.length;
    // The state object goes last: a prune cut short leaves a batch that the next prune finds again.
    if (!dryRun) for (const file of [...files.filter((f) => !f.endsWith('/state.json')), ...files.filter((f) => f.endsWith('/state.json'))]) await store.delete(file);
  }
  return { pruned, objects: deleted, kept: byBatch.size - pruned.length };
}
