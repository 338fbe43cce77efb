/**
 * The damaged-state corpus: the state bucket damaged at the worst moment of a cycle on the local
 * stack (a chunk file emptied or deleted, a manifest deleted, a state object emptied or garbled,
 * an open marker deleted, a forged job-state event, a chunk lost at every re-read). Each damage
 * must be repaired with nothing lost (afterwards consolidated_table equals the from-scratch
 * oracle) or refused with a message naming the object and the repair, in a bounded number of
 * runs, with no loop repeating forever.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STATUS_CHANGED } from '../../functions/merge-on-complete';
import type { ReconcileAction } from '../../functions/reconciler';
import { BatchStore, DamagedStateError, jobNameFor, labelValue, paths } from '../../shared/batch';
import { loadConfig, type Config } from '../../shared/config';
import { JsonLogger } from '../../shared/logger';
import { runCycle, type CycleReport } from '../../shared/local/cycle';
import { seedDemoWarehouse } from '../../shared/local/demo-data';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { DATAFLOW_EVENTS, LocalStack, StackClock } from '../../shared/local/stack';
import type { OutgoingMessage } from '../../shared/ports';
import { MemoryObjectStore } from '../support/fakes';
import { compareConsolidated, expectedConsolidation } from '../support/oracle';

const START = new Date('2026-05-04T08:00:00Z');
const minutes = (n: number) => new Date(START.getTime() + n * 60_000);

/**
 * A damage, seen from the stack's publisher: for each message of the damaged batch, 'pass' (not
 * its moment), or the harm done and whether the message then goes on ('deliver') or is lost ('drop').
 */
type Interceptor = (stack: LocalStack, topic: string, message: OutgoingMessage) => Promise<'pass' | 'deliver' | 'drop'>;

interface Damage {
  name: string;
  intercept: Interceptor;
  /** Whether the damage strikes every batch (else once, in the first batch). */
  everyBatch?: boolean;
  /** What the reconciler must have done about the damaged batch, in order (other batches' actions aside). */
  repairs: RegExp;
  /** The outcome: every row consolidated, or the batch refused (FAILED for good) with a message naming the object and the repair. */
  outcome: { consolidated: true } | { refused: RegExp };
  /** Log lines the damage must have caused (severity and message). */
  logged?: { severity: 'WARNING' | 'ERROR'; message: RegExp }[];
}

const isAnnouncement = (stack: LocalStack, topic: string) => topic === stack.config.batchesTopic;
const batchOf = (message: OutgoingMessage) => (message.data as { batchId: string }).batchId;

/** Replaces the batch's state.json with `content` as the batch is announced. */
function overwriteStateOnAnnouncement(content: string): Interceptor {
  return async (stack, topic, message) => {
    if (!isAnnouncement(stack, topic)) return 'pass';
    const state = await stack.store.read(paths.state(batchOf(message)));
    if (state) await stack.store.replace(paths.state(batchOf(message)), content, state.generation);
    return 'deliver';
  };
}

const DAMAGES: Damage[] = [
  {
    name: 'a chunk file emptied before the launch (it used to be merged as zero rows, every exit code 0)',
    intercept: async (stack, topic, message) => {
      if (!isAnnouncement(stack, topic)) return 'pass';
      const chunk = paths.chunk(batchOf(message), 0);
      const stored = await stack.store.read(chunk);
      if (stored) await stack.store.replace(chunk, '', stored.generation);
      return 'deliver';
    },
    repairs: /superseded: not launched: its chunk files hold \d+ ID\(s\) \(\d+ distinct\) where the manifest counts \d+: a chunk file was emptied or damaged; window .* re-read as batch/,
    outcome: { consolidated: true },
    logged: [{ severity: 'ERROR', message: /^Batch not launched: its chunk files hold .* where the manifest counts \d+: a chunk file was emptied or damaged; the reconciler reads its window again under a new batch$/ }],
  },
  {
    name: 'a chunk file deleted from a COLLECTED batch (it used to be re-announced forever)',
    intercept: async (stack, topic, message) => {
      if (!isAnnouncement(stack, topic)) return 'pass';
      await stack.store.delete(paths.chunk(batchOf(message), 1));
      return 'deliver';
    },
    repairs: /superseded: not launched: 1 of its \d+ chunk file\(s\) missing \(batches\/\S+\/chunks\/000001\.ndjson\); window .* re-read as batch/,
    outcome: { consolidated: true },
  },
  {
    name: 'the manifest deleted after the seal (it used to be removed as an "orphan" whose window was supposedly re-read)',
    intercept: async (stack, topic, message) => {
      if (!isAnnouncement(stack, topic)) return 'pass';
      await stack.store.delete(paths.manifest(batchOf(message)));
      return 'deliver';
    },
    repairs: /announced: announced but never launched; announced attempt 1 again/,
    outcome: { consolidated: true },
    logged: [{ severity: 'WARNING', message: /^Reconciler: manifest-rebuilt: batches\/\S+\/manifest\.json is missing; rebuilt from the stored seal/ }],
  },
  {
    name: 'state.json emptied to {} (it used to crash `run` with a bare JavaScript error)',
    intercept: overwriteStateOnAnnouncement('{}'),
    repairs: /state-rebuilt: batches\/\S+\/state\.json was damaged \(not a valid batch state \(batchId: .*\)\); window .* re-read as batch/,
    outcome: { consolidated: true },
  },
  {
    name: 'state.json overwritten with garbage',
    intercept: overwriteStateOnAnnouncement('\u0000garbage'),
    repairs: /state-rebuilt: batches\/\S+\/state\.json was damaged \(not JSON .*\); window .* re-read as batch/,
    outcome: { consolidated: true },
  },
  {
    name: 'the open marker of a stuck batch deleted (it used to hide the batch from the reconciler)',
    intercept: async (stack, topic, message) => {
      if (!isAnnouncement(stack, topic)) return 'pass';
      await stack.store.delete(paths.open(batchOf(message)));
      return 'drop';
    },
    repairs: /marker-restored: unfinished \(COLLECTED\) but its open marker open\/\S+\.json was gone; written again from the index entry index\/2026-05-04\/\S+.*announced: announced but never launched/,
    outcome: { consolidated: true },
  },
  {
    name: 'a forged FAILED event for a SEALED batch whose chunk never arrived (it used to give the batch up)',
    intercept: async (stack, topic, message) => {
      const data = message.data as { type?: string; chunk?: number; batchId?: string };
      if (topic !== stack.config.idsTopic || data.type !== 'chunk' || data.chunk !== 1) return 'pass';
      const batchId = data.batchId as string;
      // Forged once the batch is SEALED (its chunks are published before its state exists).
      void forgeWhenSealed(stack, batchId);
      return 'drop';
    },
    repairs: /superseded: chunk\(s\) 1 never arrived; window .* re-read as batch/,
    outcome: { consolidated: true },
    logged: [{ severity: 'WARNING', message: /^Job status event not trusted: the batch is SEALED .*acknowledged and ignored$/ }],
  },
  {
    name: 'a chunk lost at every re-read: the batch ends FAILED with its reason after MAX_ATTEMPTS re-reads',
    everyBatch: true,
    intercept: async (stack, topic, message) => {
      const data = message.data as { type?: string; chunk?: number };
      return topic === stack.config.idsTopic && data.type === 'chunk' && data.chunk === 1 ? 'drop' : 'pass';
    },
    repairs: /(superseded: chunk\(s\) 1 never arrived.*){3}gave-up: chunk\(s\) 1 never arrived; its window was already re-read 3 time\(s\) \(MAX_ATTEMPTS 3\): given up/,
    outcome: { refused: /^Batch FAILED for good: chunk\(s\) 1 never arrived, and its window was already re-read 3 time\(s\)\. .* replay its window\.$/ },
  },
];

async function forgeWhenSealed(stack: LocalStack, batchId: string): Promise<void> {
  for (let tries = 0; tries < 250 && !(await stack.store.exists(paths.state(batchId))); tries++) await new Promise((resolve) => setTimeout(resolve, 20));
  stack.bus.emitEvent({
        topic: DATAFLOW_EVENTS,
        type: STATUS_CHANGED,
        source: '//dataflow.googleapis.com/projects/local/locations/europe-west1',
        extensions: { job: jobNameFor(batchId, 1) },
        data: { payload: { id: 'forged', name: jobNameFor(batchId, 1), currentState: 'JOB_STATE_FAILED', labels: { pipeline: 'consolidation', batch_id: labelValue(batchId), attempt: '1' } } },
  });
}

describe('damaged-state corpus: each damage repaired with nothing lost, or refused naming the object and the repair', function () {
  this.timeout(300_000);

  for (const damage of DAMAGES) {
    describe(damage.name, () => {
      let dir: string;
      let config: Config;
      let stack: LocalStack;
      const logs: { severity: string; message: string }[] = [];
      const reports: CycleReport[] = [];
      let damaged: string | undefined;
      let struck = false;

      before(async () => {
        dir = mkdtempSync(join(tmpdir(), 'damaged-'));
        const file = join(dir, 'warehouse.duckdb');
        const seeding = await DuckDbWarehouse.open(file);
        await seedDemoWarehouse(await seeding.connect(), { operations: 200, start: START, hours: 1, seed: 5 });
        await seeding.close();
        config = loadConfig({ STATE_DIR: join(dir, 'state'), CHUNK_SIZE: '40', LOOKBACK: '15m', SAFETY_LAG: '2m', LOCAL_BUS_MAX_ATTEMPTS: '2' });
        stack = await LocalStack.start({ config, warehouseFile: file, logger: new JsonLogger((line) => logs.push(JSON.parse(line))), clock: new StackClock() });
        await stack.store.create(config.watermarkObject, START.toISOString());
        const inner = stack.deps.publisher;
        stack.deps.publisher = {
          publish: async (topic, message) => {
            const batchId = (message.data as { batchId?: string }).batchId;
            if (batchId && (damage.everyBatch || (!struck && (damaged ?? batchId) === batchId))) {
              damaged ??= batchId;
              const effect = await damage.intercept(stack, topic, message);
              struck ||= effect !== 'pass';
              if (effect === 'drop') return 'dropped';
            }
            return inner.publish(topic, message);
          },
        };
      });

      after(async () => {
        await stack?.stop();
        rmSync(dir, { recursive: true, force: true });
      });

      it(`is ${'refused' in damage.outcome ? 'refused' : 'repaired'} within a bounded number of runs, the reconciler saying what it did`, async () => {
        // The damaged cycle, then one scheduled run every 20 minutes (the reconciler runs first in
        // each) until no batch is open: at most 8 runs.
        for (let run = 0; run < 8; run++) {
          stack.clock.set(minutes(62 + 20 * run));
          reports.push(await runCycle(stack, { quietMs: 1_500 }));
          await stack.settle();
          if (run > 0 && (await stack.store.list(paths.openBatches)).length === 0) break;
        }
        assert.deepEqual(await stack.store.list(paths.openBatches), [], 'every batch closed: no loop left running');
        const actions: ReconcileAction[] = reports.flatMap((r) => r.reconciled ?? []).filter((a) => a.action !== 'waiting' && a.action !== 'closed');
        const trail = actions.map((a) => `${a.action}: ${a.detail}`).join('\n');
        assert.match(trail.replace(/\n/g, ' '), damage.repairs, trail);
        assert.ok(damaged, 'the damage struck');
      });

      it('afterwards the oracle holds: consolidated_table equals a from-scratch consolidation', async () => {
        const connection = await stack.warehouse.connect();
        try {
          const windowEnd = new Date(Date.parse(reports.at(-1)?.watermark ?? (await stack.store.read(config.watermarkObject))?.data ?? ''));
          const expected = await expectedConsolidation(connection, windowEnd);
          const diff = await compareConsolidated(connection, '"consolidated_dataset"."consolidated_table"', expected);
          if ('consolidated' in damage.outcome) {
            assert.deepEqual({ missing: diff.missing, unexpected: diff.unexpected, duplicated: diff.duplicated, different: diff.different.slice(0, 3) }, { missing: [], unexpected: [], duplicated: [], different: [] });
          } else {
            // Refused: the rows it could not consolidate are exactly said, and replaying the window puts them right.
            assert.ok(diff.missing.length + diff.different.length > 0, 'the refused batch left rows for the replay');
            const refusal = logs.find((l) => l.severity === 'ERROR' && damage.outcome && 'refused' in damage.outcome && damage.outcome.refused.test(l.message));
            assert.ok(refusal, `an ERROR naming the repair: ${logs.filter((l) => l.severity === 'ERROR').map((l) => l.message).join(' | ')}`);
            const state = (await new BatchStore(stack.store).readState(damaged as string))?.state;
            assert.equal(state?.status, 'FAILED');
            assert.equal(state?.final, true);
          }
        } finally {
          connection.closeSync();
        }
      });

      if (damage.logged) {
        it('is said in the log', () => {
          for (const line of damage.logged ?? []) assert.ok(logs.some((l) => l.severity === line.severity && line.message.test(l.message)), `${line.severity} ${line.message}`);
        });
      }
    });
  }

  it('a damaged state object is named, with the command that repairs it, where a bare JavaScript error used to surface', async () => {
    const store = new MemoryObjectStore();
    const batchId = '20260504T090000Z-a1b2c3';
    for (const [content, problem] of [
      ['{}', /not a valid batch state \(batchId: .*\)/],
      ['null', /not a valid batch state/],
      ['garbage', /not JSON/],
      ['', /not JSON/],
      [JSON.stringify({ batchId: '20260504T090000Z-ffffff', status: 'SEALED', attempt: 0, updatedAt: START.toISOString(), history: [] }), /it names batch 20260504T090000Z-ffffff/],
    ] as const) {
      store.put(paths.state(batchId), content);
      await assert.rejects(new BatchStore(store).readState(batchId), (error: unknown) => {
        assert.ok(error instanceof DamagedStateError);
        assert.equal(error.path, `batches/${batchId}/state.json`);
        assert.match(error.message, new RegExp(`^batches/${batchId}/state\\.json is damaged: `));
        assert.match(error.message, problem);
        assert.match(error.message, /`consolidate reconcile` repairs it: it rewrites the state and reads the batch's window again under a new batch/);
        return true;
      });
    }
  });
});
