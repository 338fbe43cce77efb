import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../shared/config';
import { JsonLogger } from '../../shared/logger';
import { runCycle } from '../../shared/local/cycle';
import { releaseArrivals, seedDemoWarehouse } from '../../shared/local/demo-data';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { emulatorPublisher, findEmulator, type EmulatorPublisher } from '../../shared/local/pubsub-emulator';
import { LocalStack, StackClock } from '../../shared/local/stack';
import { compareConsolidated, expectedConsolidation } from '../support/oracle';

const START = new Date('2026-03-02T08:00:00Z');
const CLOCK = new Date(START.getTime() + 62 * 60_000);

/**
 * The two topics through the real Pub/Sub emulator: publishOps publishes the chunks and the seal
 * with the Google Cloud client library (PubSubPublisher), the emulator pushes them to collectIds'
 * Functions Framework server, which announces the batch on the batches topic, pushed to
 * launchDataflow; the local runner and the MERGE finish the batch. The emulator is installed on
 * the development machines and on CI: without it this test fails, it is not skipped.
 */
describe('the chain through the Pub/Sub emulator', function () {
  this.timeout(60_000);
  let dir: string;
  let config: Config;
  let stack: LocalStack | undefined;
  let emulator: EmulatorPublisher | undefined;
  const logs: { severity: string; message: string }[] = [];
  const onTheBus: string[] = [];

  before(async () => {
    // Fails here, with what was looked for and where, when the emulator or Java is missing.
    findEmulator();
    dir = mkdtempSync(join(tmpdir(), 'pubsub-emulator-e2e-'));
    const file = join(dir, 'warehouse.duckdb');
    const seeding = await DuckDbWarehouse.open(file);
    try {
      const connection = await seeding.connect();
      await seedDemoWarehouse(connection, { operations: 300, start: START, hours: 1, seed: 5 });
      await releaseArrivals(connection, CLOCK);
    } finally {
      await seeding.close();
    }
    // 50 IDs a message: several chunks plus the seal, so collection is exercised across messages.
    config = loadConfig({ STATE_DIR: join(dir, 'state'), CHUNK_SIZE: '50', LOOKBACK: '15m', SAFETY_LAG: '2m' });
    const logger = new JsonLogger((line) => logs.push(JSON.parse(line)), 'DEBUG');
    stack = await LocalStack.start({
      config,
      warehouseFile: file,
      logger,
      clock: new StackClock(),
      publisher: async (s) => (emulator = await emulatorPublisher({ urls: s.urls, config, logger })),
    });
    // Deliveries the local bus made: only the Dataflow status events may go that way.
    stack.bus.events.on('delivered', (event) => onTheBus.push(event.subscription));
    await stack.store.create(config.watermarkObject, START.toISOString());
  });

  after(async () => {
    const pid = emulator?.pid;
    if (stack) await stack.stop();
    else await emulator?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (pid !== undefined && alive(pid)) {
      process.kill(-pid, 'SIGKILL');
      assert.fail(`the Pub/Sub emulator (pid ${pid}) was still running after the stack stopped`);
    }
  });

  it('carries one cycle through push subscriptions to MERGED, and consolidated_table equals a from-scratch consolidation', async () => {
    assert.ok(stack && emulator, 'the stack started with the emulator');
    assert.equal(emulator.started, true);
    assert.ok(
      logs.some((l) => l.severity === 'INFO' && l.message.startsWith(`Pub/Sub emulator at ${emulator!.host}`)),
      'one INFO line names the emulator and its subscriptions',
    );

    stack.clock.set(CLOCK);
    const report = await runCycle(stack, { quietMs: 20_000, timeoutMs: 45_000 });

    assert.equal(report.outcome, 'merged', `${report.outcome}: ${report.error ?? ''}`);
    assert.equal(report.state?.status, 'MERGED');
    assert.equal(report.ok, true, report.error);
    assert.ok(report.chunkCount >= 3, `${report.chunkCount} chunks`);
    const windowEnd = new Date(CLOCK.getTime() - config.safetyLagMs);
    assert.equal(report.window?.to, windowEnd.toISOString());

    // The two topics went through the emulator, not the local bus (which carries only the
    // Dataflow status events), and every pushed message decoded: no ERROR, no dead letter.
    assert.deepEqual([...new Set(onTheBus)], ['merge-on-complete']);
    assert.ok(onTheBus.length > 0, 'the Dataflow status events went through the local bus');
    assert.deepEqual(logs.filter((l) => l.severity === 'ERROR' || l.severity === 'CRITICAL'), []);
    assert.deepEqual(emulator.deadLettered(), []);

    const connection = await stack.warehouse.connect();
    const expected = await expectedConsolidation(connection, windowEnd);
    assert.ok(expected.size > 200, `${expected.size} operations expected`);
    const diff = await compareConsolidated(connection, '"consolidated_dataset"."consolidated_table"', expected);
    assert.deepEqual(
      { missing: diff.missing.slice(0, 5), unexpected: diff.unexpected.slice(0, 5), duplicated: diff.duplicated.slice(0, 5), different: diff.different.slice(0, 5) },
      { missing: [], unexpected: [], duplicated: [], different: [] },
    );
    assert.equal(diff.checked, expected.size);
    const count = await stack.warehouse.query({ sql: 'SELECT COUNT(*) AS n FROM "consolidated_dataset"."consolidated_table"', params: {} });
    assert.equal(Number(count.rows[0]?.n), expected.size);
    assert.equal(report.idCount, expected.size);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
