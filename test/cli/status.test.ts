import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { paths, type BatchState, type Manifest } from '../../shared/batch';
import { statusCommand } from '../../shared/cli/operations';
import { loadConfig } from '../../shared/config';
import { FolderObjectStore } from '../../shared/local/folder-store';

const NOW = new Date('2026-01-15T12:00:00Z');
const WINDOW = { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z' };

function manifest(batchId: string, rejected: Record<string, number>): Manifest {
  return { batchId, window: WINDOW, chunkCount: 1, idCount: 3, chunkSize: 1000, rejected, createdAt: '2026-01-15T10:20:30.000Z' };
}

function state(batchId: string, changes: Partial<BatchState>): BatchState {
  const at = '2026-01-15T10:30:00.000Z';
  return { batchId, status: 'MERGED', attempt: 1, updatedAt: at, history: [{ status: 'SEALED', at }], ...changes };
}

/** `consolidate status` on a state folder written by hand: what it prints and its exit code. */
describe('consolidate status: quarantine counts, damaged states and exit codes', () => {
  let dir: string;
  let store: FolderObjectStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'status-'));
    store = new FolderObjectStore(join(dir, 'bucket'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function status(): Promise<{ code: number; text: string }> {
    const lines: string[] = [];
    const { code } = await statusCommand({ config: loadConfig({ STATE_DIR: dir }), pubsubEmulator: false, verbose: false, out: (l) => lines.push(l), now: NOW, limit: 10, json: false, tool: {} });
    return { code, text: lines.join('\n') };
  }

  async function batch(batchId: string, changes: Partial<BatchState>, rejected: Record<string, number> = {}): Promise<void> {
    await store.create(paths.manifest(batchId), JSON.stringify(manifest(batchId, rejected)));
    await store.create(paths.state(batchId), JSON.stringify(state(batchId, changes)));
  }

  it('sums the rows the listed batches quarantined, per reason, and shows each batch\'s count; all merged -> 0', async () => {
    await batch('20260115T102000Z-aaaaaa', {}, { MISSING_OPERATION_ID: 2, MISSING_CREATED_AT: 1 });
    await batch('20260115T104000Z-bbbbbb', {}, { MISSING_OPERATION_ID: 1 });
    const { code, text } = await status();
    assert.equal(code, 0, text);
    assert.match(text, /^Quarantine rows the newest 2 batch\(es\) set aside: MISSING_CREATED_AT 1 · MISSING_OPERATION_ID 3 \(`consolidate rejects` lists them\)$/m);
    assert.match(text, /20260115T102000Z-aaaaaa  MERGED .* 3 +\d+h/);
  });

  it('a damaged state object -> named with its path and the repair, exit 1', async () => {
    await batch('20260115T102000Z-aaaaaa', {});
    await store.create(paths.manifest('20260115T104000Z-cccccc'), JSON.stringify(manifest('20260115T104000Z-cccccc', {})));
    await store.create(paths.state('20260115T104000Z-cccccc'), '{}');
    const { code, text } = await status();
    assert.equal(code, 1, text);
    assert.match(text, /^DAMAGED +batches\/20260115T104000Z-cccccc\/state\.json is damaged: not a valid batch state .*`consolidate reconcile` repairs it/m);
  });

  it('a batch FAILED for good (not superseded) -> exit 1 (it needs a person) and its replay; a superseded one -> 0', async () => {
    await batch('20260115T102000Z-aaaaaa', { status: 'FAILED', final: true, reason: 'chunk(s) 1 never arrived; its window was already re-read 3 time(s) (MAX_ATTEMPTS 3): given up' });
    const failed = await status();
    assert.equal(failed.code, 1, failed.text);
    assert.match(failed.text, /FAILED for good: chunk\(s\) 1 never arrived/);
    assert.match(failed.text, /consolidate replay --from 2026-01-15T09:45:00\.000Z --to 2026-01-15T10:20:00\.000Z/);
    await store.delete(paths.state('20260115T102000Z-aaaaaa'));
    await store.create(paths.state('20260115T102000Z-aaaaaa'), JSON.stringify(state('20260115T102000Z-aaaaaa', { status: 'FAILED', final: true, supersededBy: '20260115T110000Z-dddddd' })));
    assert.equal((await status()).code, 0);
  });
});
