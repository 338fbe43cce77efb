import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { consolidate, dump, follow, startConsolidate, userWarehouse } from '../support/cli';

const SOURCE_DUMP = `SELECT 'u' AS t, COUNT(*) AS n, SUM(hash(operation_id, status, source_timestamp)) AS h FROM main.ussd_operations
  UNION ALL SELECT 'x', COUNT(*), SUM(hash(transaction_id, status, updated_at)) FROM main.transactiongu
  UNION ALL SELECT 's', COUNT(*), SUM(hash(service_id)) FROM main.services
  UNION ALL SELECT 'a', COUNT(*), SUM(hash(agent_code)) FROM main.agents ORDER BY t`;

const NOW = '2026-05-01T09:30:00Z';

/** A pid that named a process of this host a moment ago and names none now. */
function deadPid(): Promise<number> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['-e', '0']);
    child.on('close', () => done(child.pid!));
  });
}

/** `consolidate` run as a user would, from a folder outside the repository. */
describe('consolidate (the CLI)', function () {
  this.timeout(180_000);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cli-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[], env: Record<string, string> = {}) => consolidate(args, { cwd: dir, env });
  /** A watermark left by an earlier run (a plain file is an object of the folder store). */
  const watermark = (at: string) => {
    mkdirSync(join(dir, '.consolidation', 'bucket'), { recursive: true });
    writeFileSync(join(dir, '.consolidation', 'bucket', 'last_timestamp.txt'), at);
  };

  it('run --once on a warehouse it did not create: consolidates, leaves the sources as they were, exits 0; --json gives the documented shape', async () => {
    const file = join(dir, 'mine.duckdb');
    await userWarehouse(file);
    const before = await dump(file, SOURCE_DUMP);
    const { code, stdout, stderr } = await run(['run', '--once', '--warehouse', 'mine.duckdb', '--state-dir', 'state', '--now', NOW]);
    assert.equal(code, 0, stdout + stderr);
    assert.match(stdout, /cycle 1: batch \d{8}T\d{6}Z-[0-9a-f]{6} .* 3 IDs in 1 chunk/);
    assert.match(stdout, /3 inserted, 0 updated, 0 unchanged/);
    assert.match(stdout, /quarantined rows: MISSING_OPERATION_ID 1/);
    assert.deepEqual(await dump(file, SOURCE_DUMP), before);
    const rows = await dump(file, 'SELECT operation_id, reconciliation_status FROM consolidated_dataset.consolidated_table ORDER BY operation_id');
    assert.deepEqual(rows, [
      { operation_id: 'OP1', reconciliation_status: 'MATCHED' },
      { operation_id: 'OP2', reconciliation_status: 'AMOUNT_MISMATCH' },
      { operation_id: 'OP3', reconciliation_status: 'MISSING_TRANSACTION' },
    ]);
    assert.equal(readFileSync(join(dir, 'state', 'bucket', 'last_timestamp.txt'), 'utf8').trim(), '2026-05-01T09:28:00.000Z');
    assert.equal(JSON.parse(readFileSync(join(dir, 'state', 'owner.json'), 'utf8')).warehouse, file, 'the state folder records its warehouse');

    const again = await run(['run', '--once', '--json', '--warehouse', 'mine.duckdb', '--state-dir', 'state', '--now', NOW]);
    assert.equal(again.code, 0, again.stderr);
    const document = JSON.parse(again.stdout);
    assert.deepEqual(Object.keys(document).slice(0, 5), ['command', 'version', 'generatedAt', 'ok', 'exitCode']);
    assert.equal(document.command, 'run');
    assert.equal(document.ok, true);
    assert.equal(document.results.length, 1);
    assert.equal(document.results[0].outcome, 'up-to-date');
    assert.equal(document.totals.cycles, 1);

    const sql = await run(['sql', '--warehouse', 'mine.duckdb', '--state-dir', 'state', 'SELECT reconciliation_status, COUNT(*) AS n FROM consolidated_dataset.consolidated_table GROUP BY 1 ORDER BY 1']);
    assert.equal(sql.code, 0, sql.stderr);
    assert.match(sql.stdout, /^reconciliation_status\s+n\n-+\s+-+\nAMOUNT_MISMATCH\s+1\nMATCHED\s+1\nMISSING_TRANSACTION\s+1\n\(3 rows\)/);
  });

  it('run (catch-up) without a watermark and with MAX_WINDOW: bounded windows from INITIAL_WATERMARK, each saying how far behind it is, then caught up', async () => {
    const file = join(dir, 'mine.duckdb');
    await userWarehouse(file);
    const env = { INITIAL_WATERMARK: '2026-05-01T08:30:00Z', MAX_WINDOW: '20m' };
    const { code, stdout, stderr } = await run(['run', '--warehouse', file, '--state-dir', 'state', '--now', '2026-05-01T09:30:00Z'], env);
    assert.equal(code, 0, stdout + stderr);
    const windows = [...stdout.matchAll(/window 2026-05-01 (\d\d:\d\d:\d\d) → (\d\d:\d\d:\d\d) UTC/g)].map((m) => `${m[1]}-${m[2]}`);
    assert.deepEqual(windows, ['08:15:00-08:50:00', '08:35:00-09:10:00', '08:55:00-09:28:00'], 'windows of at most MAX_WINDOW past the watermark (plus the lookback), up to --now minus the lag');
    assert.deepEqual([...stdout.matchAll(/catching up: (.*) behind, about (\d+) more run/g)].map((m) => [m[1], m[2]]), [['38m', '2'], ['18m', '1']]);
    assert.match(stdout, /Caught up: watermark 2026-05-01T09:28:00\.000Z/);
    const rows = await dump(file, 'SELECT operation_id FROM consolidated_dataset.consolidated_table ORDER BY operation_id');
    assert.deepEqual(rows.map((r) => r.operation_id), ['OP1', 'OP2', 'OP3']);
  });

  it('a state folder belongs to one warehouse: another one is refused with the way out (exit 2)', async () => {
    await userWarehouse(join(dir, 'a.duckdb'));
    await userWarehouse(join(dir, 'b.duckdb'));
    assert.equal((await run(['run', '--once', '--warehouse', 'a.duckdb', '--now', NOW])).code, 0);
    const other = await run(['run', '--once', '--warehouse', 'b.duckdb', '--now', NOW]);
    assert.equal(other.code, 2, other.stdout + other.stderr);
    assert.match(other.stderr, /The state folder .*\.consolidation belongs to the warehouse .*a\.duckdb, not .*b\.duckdb.*Give this warehouse its own folder \(--state-dir/);
    const status = await run(['status', '--warehouse', 'b.duckdb']);
    assert.equal(status.code, 2, 'status with the wrong warehouse is refused too');
    assert.deepEqual(await dump(join(dir, 'b.duckdb'), "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'consolidated_dataset'"), [{ n: 0 }]);
  });

  it('a warehouse without a source table does not meet the data contract: exit 2, the table named, nothing created', async () => {
    const file = join(dir, 'partial.duckdb');
    await userWarehouse(file, false);
    const { code, stderr } = await run(['run', '--once', '--warehouse', file, '--state-dir', 's', '--now', NOW]);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /table main\.agents is missing/);
    assert.deepEqual(await dump(file, "SELECT table_name FROM information_schema.tables WHERE table_name = 'agents'"), []);
  });

  it('--now far beyond the real clock is refused unless --force; a margin of MAX_AHEAD', async () => {
    await userWarehouse(join(dir, 'w.duckdb'));
    const typo = await run(['run', '--once', '--warehouse', 'w.duckdb', '--now', '2062-05-01T09:30:00Z']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /--now 2062-05-01T09:30:00.000Z would move the watermark .* beyond the real clock \(more than MAX_AHEAD 1h\).*--force/);
    assert.equal(existsSync(join(dir, '.consolidation', 'bucket', 'last_timestamp.txt')), false, 'the watermark did not move');
    const soon = new Date(Date.now() + 3 * 3_600_000).toISOString();
    const allowed = await run(['run', '--once', '--warehouse', 'w.duckdb', '--now', soon], { MAX_AHEAD: '1d' });
    assert.equal(allowed.code, 0, allowed.stderr);
  });

  it('an interrupted run\'s lease: a dead local holder is taken over at once and said; a live one is refused, and status and the error agree', async () => {
    await userWarehouse(join(dir, 'w.duckdb'));
    const base = ['--warehouse', 'w.duckdb', '--state-dir', 'st'];
    assert.equal((await run(['run', '--once', ...base, '--now', '2026-05-01T09:10:00Z'])).code, 0);
    const expires = new Date(Date.now() + 10 * 60_000).toISOString();
    const lease = (pid: number) => JSON.stringify({ holder: 'publishOps-x', purpose: 'publishOps', acquiredAt: new Date().toISOString(), expiresAt: expires, host: hostname(), pid });

    // A live holder (this test's own process): refused, and status says the same.
    writeFileSync(join(dir, 'st', 'bucket', 'lease.json'), lease(process.pid));
    const held = await run(['status', ...base]);
    assert.match(held.stdout, new RegExp(`Lease      HELD by publishOps-x \\(publishOps, process ${process.pid} on ${hostname()}\\) since .*, expires ${expires}`));
    const refused = await run(['run', '--once', ...base, '--now', NOW]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stdout, new RegExp(`cycle 1: FAILED before a batch was sealed: Another run holds the lease: publishOps-x \\(publishOps, process ${process.pid} on ${hostname()}\\), taken at .*, expires at ${expires}`));
    assert.doesNotMatch(refused.stdout, /concurrent call/);

    // The same lease left by a process that is gone (an interrupted run): taken over at once.
    const pid = await deadPid();
    writeFileSync(join(dir, 'st', 'bucket', 'lease.json'), lease(pid));
    const gone = await run(['status', ...base]);
    assert.match(gone.stdout, new RegExp(`Lease      free: publishOps-x \\(publishOps, process ${pid} on .*\\) is no longer running; the next run takes the lease over`));
    const resumed = await run(['run', '--once', ...base, '--now', NOW]);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`The lease of publishOps-x \\(publishOps, process ${pid} on .*\\) is taken over: that process is no longer running`));
    assert.match(resumed.stdout, /cycle 1: batch /);
    const log = readFileSync(join(dir, 'st', 'logs', 'consolidate.log'), 'utf8');
    assert.match(log, /"severity":"WARNING","message":"Took over the lease of publishOps-x/);
  });

  it('status: exit 1 when a batch is stuck, the same in --json; ages in the clock of the run; prune deletes finished batches only', async () => {
    await userWarehouse(join(dir, 'w.duckdb'));
    const base = ['--warehouse', 'w.duckdb', '--state-dir', 'st'];
    const lost = await run(['run', '--once', ...base, '--now', NOW, '--inject', 'lose-status']);
    assert.equal(lost.code, 1, lost.stdout + lost.stderr);
    const batchId = /batch (\d{8}T\d{6}Z-[0-9a-f]{6})/.exec(lost.stdout)?.[1];
    assert.ok(batchId, lost.stdout);

    const fresh = await run(['status', ...base]);
    assert.equal(fresh.code, 0, 'just after the run, in the run\'s clock, the batch is not stuck yet');
    assert.match(fresh.stdout, /Clock      simulated: 2026-05-01T09:3\d/);
    assert.match(fresh.stdout, new RegExp(`${batchId}  LAUNCHED .* \\d+s$`, 'm'), 'its age is seconds, not months');

    const later = await run(['status', ...base, '--now', '2026-05-01T10:00:00Z']);
    assert.equal(later.code, 1, later.stdout);
    assert.match(later.stdout, new RegExp(`${batchId}  LAUNCHED .*STUCK: LAUNCHED for 30m \\(STUCK_AFTER 15m\\)`));
    assert.match(later.stdout, new RegExp(`→ ${batchId}: \`consolidate reconcile\` repairs it`));
    const json = await run(['status', ...base, '--now', '2026-05-01T10:00:00Z', '--json']);
    assert.equal(json.code, 1);
    const document = JSON.parse(json.stdout);
    assert.equal(document.ok, false);
    assert.equal(document.status.attention, 1);
    assert.equal(document.status.batches.shown[0].batchId, batchId);
    assert.match(document.status.batches.shown[0].attention, /^STUCK/);

    const repaired = await run(['reconcile', ...base, '--now', '2026-05-01T10:00:00Z']);
    assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
    assert.match(repaired.stdout, new RegExp(`${batchId}  now MERGED \\(3 inserted, 0 updated\\)`));

    const keep = await run(['prune', ...base, '--older-than', '1h', '--now', '2026-05-01T10:30:00Z']);
    assert.equal(keep.code, 0, keep.stderr);
    assert.match(keep.stdout, /Deleted 0 finished batch\(es\) \(0 objects\); 1 batch\(es\) kept/);
    const pruned = await run(['prune', ...base, '--older-than', '1h', '--now', '2026-05-01T12:00:00Z']);
    assert.match(pruned.stdout, /Deleted 1 finished batch\(es\) \(\d+ objects\); 0 batch\(es\) kept/);
    const after = await run(['status', ...base, '--now', '2026-05-01T12:00:00Z']);
    assert.match(after.stdout, /Batches    0 in all, 0 open/);
    assert.match(after.stdout, /Watermark  2026-05-01T09:28:00.000Z/, 'prune leaves the watermark');
  });

  it('replay: a refused request says why without HTTP talk (exit 2); a window is replayed to its MERGE', async () => {
    await userWarehouse(join(dir, 'w.duckdb'));
    const base = ['--warehouse', 'w.duckdb', '--state-dir', 'st'];
    assert.equal((await run(['run', '--once', ...base, '--now', NOW])).code, 0);
    const late = await run(['replay', ...base, '--from', '2026-05-01T09:00:00Z', '--to', '2026-05-01T12:00:00Z']);
    assert.equal(late.code, 2, late.stdout + late.stderr);
    assert.match(late.stderr, /^consolidate: replay refused: .*watermark/m);
    assert.doesNotMatch(late.stdout + late.stderr, /publishOps answered|batch - /);
    const ok = await run(['replay', ...base, '--from', '2026-05-01T09:00:00Z', '--to', '2026-05-01T09:10:00Z', '--now', NOW]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /consolidated_table: 0 inserted, 3 updated, 0 unchanged/);
  });

  it('catch-up: empty windows collapse into one line, one progress line (window k of N), the totals at the end', async () => {
    await userWarehouse(join(dir, 'w.duckdb'));
    watermark('2026-04-30T08:30:00Z');
    const { code, stdout, stderr } = await run(['run', '--warehouse', 'w.duckdb', '--now', NOW, '--every', '2h', '--progress']);
    assert.equal(code, 0, stdout + stderr);
    assert.match(stdout, /^cycles 1–12: 12 windows with no operation changed \(.*\)$/m);
    assert.match(stdout, /^cycle 13: batch .* 3 IDs in 1 chunk$/m);
    assert.equal((stdout.match(/^cycles? /gm) ?? []).length, 2, stdout);
    assert.match(stdout, /^Totals\n  cycles\s+merged\s+empty\s+failed\s+IDs\s+inserted\s+updated\s+unchanged\s+rejected rows\s+time\n  13\s+1\s+12\s+0\s+3\s+3\s+0\s+0\s+1\s+/m);
    assert.match(stderr, /catch-up: window 1 of 13 \(starting\) · operations so far 0 · rows merged 0/);
  });

  it('run --once: one progress line with the cycle\'s stage and the IDs published', async () => {
    await userWarehouse(join(dir, 'w.duckdb'));
    const { code, stdout, stderr } = await run(['run', '--once', '--warehouse', 'w.duckdb', '--now', NOW, '--progress']);
    assert.equal(code, 0, stdout + stderr);
    assert.match(stderr, /^cycle 1: [a-z +]+ · IDs published 0$/m);
    assert.match(stdout, /^cycle 1: batch /m);
  });

  it('run --watch on a new demo warehouse: the warehouse is free between cycles; Ctrl-C stops after the current cycle, exit 0', async () => {
    // A long period: the reader below starts while the run waits; Ctrl-C then ends the wait at once.
    const child = startConsolidate(['run', '--watch', '--every', '10m', '--demo-rows', '300', '--progress'], { cwd: dir });
    const { output, closed, waitFor } = follow(child);
    await waitFor('stdout', /^cycle 1: [\s\S]*^Next cycle at \S+; the warehouse is free until then\.$/m);
    const reader = await run(['sql', 'SELECT COUNT(*) AS n FROM consolidated_dataset.consolidated_table']);
    assert.equal(reader.code, 0, `the warehouse is open to others between cycles: ${reader.stderr}`);
    child.kill('SIGINT');
    const code = await closed;
    const { stdout, stderr } = output;
    assert.equal(code, 0, stdout + stderr);
    assert.match(stderr, /Creating the demo warehouse: 0 of 300 operations/);
    assert.match(stdout, /Demo warehouse created at .*demo\.duckdb: 300 operations/);
    assert.match(stdout, /Watching: a cycle every 10m; the warehouse is open only during a cycle/);
    assert.doesNotMatch(stdout, /^cycle 2: /m);
    assert.match(stderr, /Stopping after the current cycle \(Ctrl-C again quits at once\)/);
  });

  it('catch-up: the first Ctrl-C stops at the next safe point and says so (exit 130); the next run resumes', async () => {
    await userWarehouse(join(dir, 'w.duckdb'));
    watermark('2026-04-01T09:00:00Z');
    const child = startConsolidate(['run', '--warehouse', 'w.duckdb', '--now', NOW, '--every', '6h', '--progress'], { cwd: dir });
    const { output, closed, waitFor } = follow(child);
    await waitFor('stderr', /window ([2-9]\d*|1\d+) of/);
    child.kill('SIGINT');
    const code = await closed;
    const { stdout, stderr } = output;
    assert.equal(code, 130, stdout + stderr);
    assert.match(stderr, /Stopping after the current cycle; the next run resumes from the watermark/);
    assert.match(stdout, /Stopped at your request after \d+ cycle\(s\)/);
    assert.match(stdout, /^Totals$/m);
    const resumed = await run(['run', '--warehouse', 'w.duckdb', '--now', NOW, '--every', '6h']);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.match(resumed.stdout, /Caught up/);
    assert.doesNotMatch(resumed.stdout, /lease/i, 'the interrupted run gave its lease back');
  });
});
