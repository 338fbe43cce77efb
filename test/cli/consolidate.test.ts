import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { duckdbCreateTable, loadSchema } from '../../shared/schema';
import { CLI, ROOT, consolidate } from '../support/cli';

const SOURCE_DUMP = `SELECT 'u' AS t, COUNT(*) AS n, SUM(hash(operation_id, status, source_timestamp)) AS h FROM main.ussd_operations
  UNION ALL SELECT 'x', COUNT(*), SUM(hash(transaction_id, status, updated_at)) FROM main.transactiongu
  UNION ALL SELECT 's', COUNT(*), SUM(hash(service_id)) FROM main.services
  UNION ALL SELECT 'a', COUNT(*), SUM(hash(agent_code)) FROM main.agents ORDER BY t`;

/** A warehouse the tool did not create: the four source tables and a few rows, by hand. */
async function userWarehouse(file: string, withAgents = true): Promise<void> {
  const warehouse = await DuckDbWarehouse.open(file);
  const c = await warehouse.connect();
  for (const name of ['ussd_operations', 'transactiongu', 'services', ...(withAgents ? ['agents'] : [])] as const) {
    await c.run(duckdbCreateTable(`main."${name}"`, loadSchema(name)));
  }
  await c.run(`INSERT INTO main.services VALUES ('S1', 'Cash in', 'WALLET')`);
  if (withAgents) await c.run(`INSERT INTO main.agents VALUES ('A1', 'Boutique Ndiaye', 'Dakar')`);
  await c.run(`INSERT INTO main.transactiongu VALUES
    ('T1', 'S1', 'P1', 5000, 50, 10, 'PENDING', '2026-05-01T09:01:00Z'),
    ('T1', 'S1', 'P1', 5000, 50, 10, 'SUCCESSFUL', '2026-05-01T09:05:00Z'),
    ('T2', 'S1', 'P2', 700, 7, 1, 'SUCCESSFUL', '2026-05-01T09:06:00Z')`);
  await c.run(`INSERT INTO main.ussd_operations VALUES
    ('OP1', 'S-1', '221770000001', '*144#', 'CASHIN', 5000, 'XOF', 'INITIATED', 'T1', 'A1', '2026-05-01T09:00:00Z', '2026-05-01T09:00:00Z'),
    ('OP1', 'S-1', '221770000001', '*144#', 'CASHIN', 5000, 'XOF', 'SUCCESS', 'T1', 'A1', '2026-05-01T09:00:00Z', '2026-05-01T09:04:00Z'),
    ('OP2', 'S-2', '221770000002', '*144#', 'TRANSFER', 750, 'XOF', 'SUCCESS', 'T2', NULL, '2026-05-01T09:02:00Z', '2026-05-01T09:03:00Z'),
    ('OP3', 'S-3', '221770000003', '*144#', 'AIRTIME', 100, 'XOF', 'TIMEOUT', NULL, 'A1', '2026-05-01T09:02:00Z', '2026-05-01T09:07:00Z'),
    (NULL, 'S-4', '221770000004', '*144#', 'AIRTIME', 100, 'XOF', 'SUCCESS', NULL, NULL, '2026-05-01T09:02:00Z', '2026-05-01T09:07:00Z')`);
  await warehouse.close();
}

async function dump(file: string, sql: string) {
  const warehouse = await DuckDbWarehouse.open(file);
  try {
    return (await warehouse.query({ sql, params: {} })).rows;
  } finally {
    await warehouse.close();
  }
}

describe('consolidate (the CLI)', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cli-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('--help lists the run options', async () => {
    const { code, stdout } = await consolidate(['--help']);
    assert.equal(code, 0);
    for (const option of ['--once', '--watch', '--every', '--warehouse', '--state-dir', '--now', '--demo-rows', '--pubsub-emulator']) assert.match(stdout, new RegExp(option));
  });

  it('run --once on a warehouse it did not create: consolidates, leaves the sources as they were, exits 0', async () => {
    const file = join(dir, 'mine.duckdb');
    await userWarehouse(file);
    const before = await dump(file, SOURCE_DUMP);
    const state = join(dir, 'state');
    const { code, stdout, stderr } = await consolidate(['run', '--once', '--warehouse', file, '--state-dir', state, '--now', '2026-05-01T09:30:00Z']);
    assert.equal(code, 0, stdout + stderr);
    assert.match(stdout, /cycle 1: batch \d{8}T\d{6}Z-[0-9a-f]{6} .* 3 IDs in 1 chunk/);
    assert.match(stdout, /3 inserted, 0 updated, 0 unchanged/);
    assert.match(stdout, /MATCHED 1 · MISSING_TRANSACTION 1 · STATUS_MISMATCH 1|AMOUNT_MISMATCH 1 · MATCHED 1 · MISSING_TRANSACTION 1/);
    assert.match(stdout, /rejected rows: 1 without operation_id, 0 without source_timestamp/);
    assert.deepEqual(await dump(file, SOURCE_DUMP), before);
    const rows = await dump(file, 'SELECT operation_id, reconciliation_status, ussd_status, transaction_status FROM consolidated_dataset.consolidated_table ORDER BY operation_id');
    assert.deepEqual(rows, [
      { operation_id: 'OP1', reconciliation_status: 'MATCHED', ussd_status: 'SUCCESS', transaction_status: 'SUCCESSFUL' },
      { operation_id: 'OP2', reconciliation_status: 'AMOUNT_MISMATCH', ussd_status: 'SUCCESS', transaction_status: 'SUCCESSFUL' },
      { operation_id: 'OP3', reconciliation_status: 'MISSING_TRANSACTION', ussd_status: 'TIMEOUT', transaction_status: null },
    ]);
    assert.equal(readFileSync(join(state, 'bucket', 'last_timestamp.txt'), 'utf8').trim(), '2026-05-01T09:28:00.000Z');
    assert.ok(existsSync(join(state, 'logs', 'consolidate.log')));

    const again = await consolidate(['run', '--once', '--warehouse', file, '--state-dir', state, '--now', '2026-05-01T09:30:00Z']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /nothing to do/);
  });

  it('run (catch-up) without a watermark and with MAX_WINDOW: bounded windows from INITIAL_WATERMARK, each saying how far behind it is, then caught up', async () => {
    const file = join(dir, 'mine.duckdb');
    await userWarehouse(file);
    const state = join(dir, 'state');
    const env = { INITIAL_WATERMARK: '2026-05-01T08:30:00Z', MAX_WINDOW: '20m' };
    const { code, stdout, stderr } = await consolidate(['run', '--warehouse', file, '--state-dir', state, '--now', '2026-05-01T09:30:00Z'], env);
    assert.equal(code, 0, stdout + stderr);
    const windows = [...stdout.matchAll(/window 2026-05-01 (\d\d:\d\d:\d\d) → (\d\d:\d\d:\d\d) UTC/g)].map((m) => `${m[1]}-${m[2]}`);
    assert.deepEqual(windows, ['08:15:00-08:50:00', '08:35:00-09:10:00', '08:55:00-09:28:00'], 'windows of at most MAX_WINDOW past the watermark (plus the lookback), up to --now minus the lag');
    assert.deepEqual([...stdout.matchAll(/catching up: (.*) behind, about (\d+) more run/g)].map((m) => [m[1], m[2]]), [['38m', '2'], ['18m', '1']]);
    assert.match(stdout, /Caught up: watermark 2026-05-01T09:28:00\.000Z/);
    const rows = await dump(file, 'SELECT operation_id FROM consolidated_dataset.consolidated_table ORDER BY operation_id');
    assert.deepEqual(rows.map((r) => r.operation_id), ['OP1', 'OP2', 'OP3']);
  });

  it('run --watch on a new demo warehouse of --demo-rows operations: a cycle per period, Ctrl-C stops after the current one with exit 0', async () => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', CLI, 'run', '--watch', '--every', '2s', '--demo-rows', '300', '--state-dir', dir], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    });
    let stdout = '';
    const closed = new Promise<number>((done) => child.on('close', (code) => done(code ?? -1)));
    await new Promise<void>((secondCycle) =>
      child.stdout.on('data', (c) => {
        stdout += c;
        if (/^cycle 2: /m.test(stdout)) secondCycle();
      }),
    );
    child.kill('SIGINT');
    assert.equal(await closed, 0, stdout);
    assert.match(stdout, /Demo warehouse created at .*demo\.duckdb: 300 operations/);
    assert.match(stdout, /Watching: a cycle every 2s/);
    assert.match(stdout, /^cycle 1: batch .* IDs in 1 chunk/m);
    assert.doesNotMatch(stdout, /^cycle 3: /m);
  });

  const refusals = [
    { name: 'a warehouse file that does not exist', args: (d: string) => ['run', '--once', '--warehouse', join(d, 'nope.duckdb'), '--state-dir', d], code: 2, message: /no warehouse at .*nope\.duckdb/ },
    { name: 'an unknown command', args: () => ['launch'], code: 2, message: /unknown command "launch"/ },
    { name: '--once with --watch', args: () => ['run', '--once', '--watch'], code: 2, message: /exclude each other/ },
    { name: 'a malformed --now', args: () => ['run', '--once', '--now', 'yesterday'], code: 2, message: /--now yesterday: expected an RFC 3339 timestamp/ },
  ];
  for (const c of refusals) {
    it(`refuses ${c.name} with a clear message`, async () => {
      const { code, stdout, stderr } = await consolidate(c.args(dir));
      assert.equal(code, c.code);
      assert.match(stdout + stderr, c.message);
    });
  }

  it('names every bad configuration variable in one message', async () => {
    const { code, stderr } = await consolidate(['run', '--once', '--state-dir', dir], { CHUNK_SIZE: '0', LOOKBACK: 'soon', USSD_TABLE: 'ussd-ops; DROP' });
    assert.equal(code, 2);
    assert.match(stderr, /Invalid configuration: .*CHUNK_SIZE.*USSD_TABLE.*LOOKBACK|Invalid configuration/);
    for (const name of ['CHUNK_SIZE', 'LOOKBACK', 'USSD_TABLE']) assert.match(stderr, new RegExp(name));
  });

  it('stops with the missing source table named, and creates nothing in the sources', async () => {
    const file = join(dir, 'partial.duckdb');
    await userWarehouse(file, false);
    const { code, stdout } = await consolidate(['run', '--once', '--warehouse', file, '--state-dir', join(dir, 's'), '--now', '2026-05-01T09:30:00Z']);
    assert.equal(code, 1);
    assert.match(stdout, /table main\.agents is missing/);
    assert.deepEqual(await dump(file, "SELECT table_name FROM information_schema.tables WHERE table_name = 'agents'"), []);
  });

  it('operator commands: a lost status event leaves a batch stuck; status flags it, reconcile repairs it, replay rewrites a window', async () => {
    const state = join(dir, 'state');
    const run = await consolidate(['run', '--once', '--demo-rows', '300', '--state-dir', state, '--inject', 'lose-status']);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /Injecting faults: lose-status/);
    assert.match(run.stdout, /FAILED: the batch stopped moving in state LAUNCHED/);
    const batchId = /batch (\d{8}T\d{6}Z-[0-9a-f]{6})/.exec(run.stdout)?.[1];
    assert.ok(batchId, run.stdout);

    const stuck = await consolidate(['status', '--state-dir', state, '--now', '2026-01-15T10:30:00Z']);
    assert.equal(stuck.code, 1, stuck.stdout + stuck.stderr);
    assert.match(stuck.stdout, /Watermark  2026-01-15T10:00:00\.000Z/);
    assert.match(stuck.stdout, new RegExp(`${batchId}  LAUNCHED .*STUCK: LAUNCHED for 28m`));

    const repaired = await consolidate(['reconcile', '--state-dir', state, '--now', '2026-01-15T10:30:00Z']);
    assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
    assert.match(repaired.stdout, new RegExp(`${batchId}  relaunched .*announced attempt 2 of 3`));
    assert.match(repaired.stdout, new RegExp(`${batchId}  now MERGED \\(300 inserted, 0 updated\\)`));

    const fine = await consolidate(['status', '--state-dir', state, '--now', '2026-01-15T10:31:00Z']);
    assert.equal(fine.code, 0, fine.stdout);
    assert.match(fine.stdout, new RegExp(`${batchId}  MERGED  2 `));

    const replayed = await consolidate(['replay', '--state-dir', state, '--from', '2026-01-15T06:00:00Z', '--to', '2026-01-15T08:00:00Z', '--now', '2026-01-15T10:35:00Z']);
    assert.equal(replayed.code, 0, replayed.stdout + replayed.stderr);
    assert.match(replayed.stdout, /Replay of the window \(2026-01-15T06:00:00\.000Z, 2026-01-15T08:00:00\.000Z\]/);
    assert.match(replayed.stdout, /consolidated_table: 0 inserted, (\d+) updated, 0 unchanged/);
    const watermark = readFileSync(join(state, 'bucket', 'last_timestamp.txt'), 'utf8').trim();
    assert.equal(watermark, '2026-01-15T10:00:00.000Z', 'a replay does not move the watermark');
  });

  it('refuses operator commands used wrongly, saying why', async () => {
    const cases: [string[], RegExp][] = [
      [['replay', '--from', '2026-01-15T06:00:00Z'], /replay --from needs --to/],
      [['replay'], /replay takes either --from and --to, or --ids-file/],
      [['replay', '--ids-file', join(dir, 'none.txt')], /--ids-file: .*no such file/i],
      [['status', '--inject', 'duplicate'], /--inject do\(es\) not apply to `status`/],
      [['run', '--inject', 'duplicate,bogus'], /Unknown fault\(s\): bogus/],
      [['status', '--limit', '0'], /--limit 0: expected a positive whole number/],
    ];
    for (const [args, says] of cases) {
      const { code, stderr } = await consolidate([...args, '--state-dir', join(dir, 'state')]);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, says, args.join(' '));
    }
  });
});
