import assert from 'node:assert/strict';
import { DuckDBConnection, DuckDBDecimalValue, DuckDBInstance, DuckDBTimestampTZValue, type DuckDBValue } from '@duckdb/node-api';
import {
  appendChanges,
  DEMO_DEFAULTS,
  MAX_LATENESS_MS,
  releaseArrivals,
  seedDemoWarehouse,
  type DemoOptions,
  type DemoSummary,
} from '../../shared/local/demo-data';
import type { SchemaField } from '../../shared/ports';
import { duckdbCreateTable, duckdbType, loadSchema } from '../../shared/schema';
import { compareConsolidated, decimalText, epochMicros, epochMillis, expectedConsolidation, expectedRejects, microsText, type ExpectedRow } from '../support/oracle';

const instances: DuckDBInstance[] = [];

async function freshDatabase(): Promise<DuckDBConnection> {
  const instance = await DuckDBInstance.create(':memory:');
  instances.push(instance);
  return instance.connect();
}

async function seeded(options: Partial<DemoOptions> = {}): Promise<{ connection: DuckDBConnection; summary: DemoSummary }> {
  const connection = await freshDatabase();
  return { connection, summary: await seedDemoWarehouse(connection, { ...DEMO_DEFAULTS, ...options }) };
}

const tstz = (date: Date): DuckDBTimestampTZValue => new DuckDBTimestampTZValue(BigInt(date.getTime()) * 1000n);

async function scalar(connection: DuckDBConnection, sql: string, params: DuckDBValue[] = []): Promise<number> {
  return Number((await connection.runAndReadAll(sql, params)).getRows()[0][0]);
}

async function contents(connection: DuckDBConnection, table: string): Promise<unknown[]> {
  return (await connection.runAndReadAll(`SELECT * FROM ${table} ORDER BY ALL`)).getRowsJson();
}

const TABLES = ['main.ussd_operations', 'main.transactiongu', 'main.services', 'main.agents', 'demo_arrivals.ussd_operations', 'demo_arrivals.transactiongu'];

async function allContents(connection: DuckDBConnection): Promise<Record<string, unknown[]>> {
  const all: Record<string, unknown[]> = {};
  for (const table of TABLES) all[table] = await contents(connection, table);
  return all;
}

/** Inserts rows given as text (timestamps in ISO 8601, decimals as text), each value a parameter. */
async function insertRows(connection: DuckDBConnection, table: string, fields: SchemaField[], rows: Record<string, string | null>[]): Promise<void> {
  const values = fields.map((f, i) => `CAST($${i + 1} AS ${duckdbType(f.type)})`).join(', ');
  for (const row of rows) await connection.run(`INSERT INTO ${table} VALUES (${values})`, fields.map((f) => row[f.name] ?? null));
}

after(() => {
  for (const instance of instances) instance.closeSync();
});

describe('demo data', () => {
  describe('seedDemoWarehouse', () => {
    it('is deterministic: the same options give identical tables, another seed different ones', async () => {
      const options = { operations: 1500, hours: 2 };
      const a = await seeded({ ...options, seed: 7 });
      const b = await seeded({ ...options, seed: 7 });
      const c = await seeded({ ...options, seed: 8 });
      assert.deepEqual(b.summary, a.summary);
      assert.deepEqual(await allContents(b.connection), await allContents(a.connection));
      assert.notDeepEqual(await contents(c.connection, 'main.ussd_operations'), await contents(a.connection, 'main.ussd_operations'));

      // A wave of changes is deterministic too.
      const wave = { at: new Date(a.summary.end.getTime() + 20 * 60_000), seed: 3, newOperations: 50, updates: 30, settlements: 30, lateRows: 10, duplicates: 5 };
      for (const { connection } of [a, b]) {
        await releaseArrivals(connection, a.summary.end);
        await appendChanges(connection, wave);
      }
      assert.deepEqual(await allContents(b.connection), await allContents(a.connection));
    });

    it('seeds 4,000 operations well under 2 s, every timestamp inside [start, start + hours]', async () => {
      const connection = await freshDatabase();
      const started = performance.now();
      const summary = await seedDemoWarehouse(connection, DEMO_DEFAULTS);
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 2000, `seeding took ${Math.round(elapsed)} ms`);

      assert.equal(summary.operations, 4000);
      assert.deepEqual([summary.start, summary.end], [DEMO_DEFAULTS.start, new Date(DEMO_DEFAULTS.start.getTime() + 4 * 3_600_000)]);
      assert.ok(summary.services >= 8 && summary.services <= 15);
      assert.ok(summary.agents >= 30 && summary.agents <= 60);
      assert.equal(await scalar(connection, 'SELECT COUNT(*) FROM main.services'), summary.services);
      assert.equal(await scalar(connection, 'SELECT COUNT(*) FROM main.agents'), summary.agents);
      assert.equal(await scalar(connection, 'SELECT COUNT(*) FROM main.ussd_operations') + summary.held.ussd, summary.ussdRows);
      assert.equal(await scalar(connection, 'SELECT COUNT(*) FROM main.transactiongu') + summary.held.transactions, summary.transactionRows);

      const bounds = await connection.runAndReadAll(`
        SELECT MIN(t), MAX(t) FROM (
          SELECT created_at AS t FROM main.ussd_operations UNION ALL SELECT source_timestamp FROM main.ussd_operations
          UNION ALL SELECT updated_at FROM main.transactiongu UNION ALL SELECT source_timestamp FROM demo_arrivals.ussd_operations
          UNION ALL SELECT updated_at FROM demo_arrivals.transactiongu UNION ALL SELECT arrives_at FROM demo_arrivals.ussd_operations
          UNION ALL SELECT arrives_at FROM demo_arrivals.transactiongu)`);
      const [min, max] = bounds.getRows()[0].map((v) => epochMillis(v) as number);
      assert.ok(min >= summary.start.getTime() && max <= summary.end.getTime(), `${new Date(min).toISOString()} .. ${new Date(max).toISOString()}`);
    });

    it('writes every case: duplicates, rejects, late rows, unknown references, the five reconciliation outcomes', async () => {
      const { connection, summary } = await seeded();
      const duplicated = (table: string) => scalar(connection, `SELECT COUNT(*) FROM (SELECT 1 FROM ${table} GROUP BY ALL HAVING COUNT(*) > 1)`);
      assert.ok((await duplicated('(SELECT * FROM main.ussd_operations)')) > 0, 'duplicate USSD rows');
      assert.ok((await duplicated('(SELECT * FROM main.transactiongu)')) > 0, 'duplicate transaction rows');
      assert.ok(summary.duplicates.ussd > 0 && summary.duplicates.transactions > 0);

      assert.ok(summary.rejects.missingOperationId > 0 && summary.rejects.missingSourceTimestamp > 0);
      assert.deepEqual(await expectedRejects(connection, summary.start, summary.end), summary.rejects);

      assert.ok(summary.held.ussd > 0 && summary.held.transactions > 0);
      assert.equal(summary.lateRowsHeld, summary.held.ussd + summary.held.transactions);
      for (const [table, column] of [['ussd_operations', 'source_timestamp'], ['transactiongu', 'updated_at']]) {
        const wrong = await scalar(
          connection,
          `SELECT COUNT(*) FROM demo_arrivals.${table} WHERE NOT (arrives_at > ${column} AND arrives_at <= ${column} + INTERVAL ${MAX_LATENESS_MS / 1000} SECOND)`,
        );
        assert.equal(wrong, 0, `${table}: held rows arriving outside (timestamp, timestamp + 10 min]`);
      }

      await releaseArrivals(connection, summary.end);
      const expected = await expectedConsolidation(connection, summary.end);
      assert.equal(expected.size, summary.operations);
      const outcomes = new Map<string, number>();
      for (const row of expected.values()) outcomes.set(row.reconciliation_status, (outcomes.get(row.reconciliation_status) ?? 0) + 1);
      assert.deepEqual([...outcomes.keys()].sort(), ['AMOUNT_MISMATCH', 'MATCHED', 'MISSING_TRANSACTION', 'PENDING', 'STATUS_MISMATCH']);
      assert.ok((outcomes.get('MATCHED') ?? 0) > summary.operations * 0.7, JSON.stringify([...outcomes]));
      const rows = [...expected.values()];
      assert.ok(rows.some((r) => r.transaction_id !== null && r.service_name === null), 'a transaction of an unknown service');
      assert.ok(rows.some((r) => r.agent_name === null && r.operation_type === 'CASHIN'), 'an operation of an unknown agent');
      assert.ok(rows.every((r) => r.currency === 'XOF' && /^2217\d{8}$/.test(r.msisdn ?? '')));
    });

    it('holds late rows until releaseArrivals lets them arrive, once', async () => {
      const { connection, summary } = await seeded({ operations: 2000 });
      const count = (table: string) => scalar(connection, `SELECT COUNT(*) FROM ${table}`);
      const midpoint = new Date((summary.start.getTime() + summary.end.getTime()) / 2);
      const due = await scalar(connection, 'SELECT COUNT(*) FROM demo_arrivals.ussd_operations WHERE arrives_at <= $1', [tstz(midpoint)]);
      const beforeUssd = await count('main.ussd_operations');

      const first = await releaseArrivals(connection, midpoint);
      assert.equal(first.ussd, due);
      assert.equal(await count('main.ussd_operations'), beforeUssd + due);
      assert.equal(await count('demo_arrivals.ussd_operations'), summary.held.ussd - due);
      assert.deepEqual(await releaseArrivals(connection, midpoint), { ussd: 0, transactions: 0 });

      const rest = await releaseArrivals(connection, summary.end);
      assert.equal(first.ussd + rest.ussd, summary.held.ussd);
      assert.equal(first.transactions + rest.transactions, summary.held.transactions);
      assert.equal((await count('demo_arrivals.ussd_operations')) + (await count('demo_arrivals.transactiongu')), 0);
      assert.equal(await count('main.ussd_operations'), summary.ussdRows);
      assert.equal(await count('main.transactiongu'), summary.transactionRows);
    });

    it('refuses to seed tables that already hold rows, and invalid options', async () => {
      const { connection } = await seeded({ operations: 10 });
      await assert.rejects(seedDemoWarehouse(connection, { ...DEMO_DEFAULTS, operations: 10 }), /empty source tables/);
      await assert.rejects(seedDemoWarehouse(await freshDatabase(), { ...DEMO_DEFAULTS, operations: -1, hours: 0 }), /operations must be .*; hours must be > 0/);
    });
  });

  describe('appendChanges', () => {
    it('writes a wave with every timestamp <= at: new operations, updates, settlements, late rows and duplicates', async () => {
      const { connection, summary } = await seeded({ operations: 2000 });
      await releaseArrivals(connection, summary.end);
      const at = new Date(summary.end.getTime() + 20 * 60_000);
      const wave = await appendChanges(connection, { at, seed: 5, newOperations: 100, updates: 60, settlements: 40, lateRows: 20, duplicates: 10 });
      assert.deepEqual(
        { newOperations: wave.newOperations, updates: wave.updates, settlements: wave.settlements, lateRows: wave.lateRows, duplicates: wave.duplicates },
        { newOperations: 100, updates: 60, settlements: 40, lateRows: 20, duplicates: 10 },
      );
      assert.equal(wave.since.getTime(), at.getTime() - 5 * 60_000);

      // The seeded history ends at summary.end: every later row is the wave's.
      const waveRows = '(SELECT * FROM main.ussd_operations WHERE source_timestamp > $1)';
      const waveTransactions = '(SELECT * FROM main.transactiongu WHERE updated_at > $1)';
      const end = [tstz(summary.end)];
      assert.equal(await scalar(connection, `SELECT COUNT(*) FROM ${waveRows}`, end), wave.ussdRows);
      assert.equal(await scalar(connection, `SELECT COUNT(*) FROM ${waveTransactions}`, end), wave.transactionRows);
      const [min, max] = (
        await connection.runAndReadAll(`SELECT MIN(t), MAX(t) FROM (SELECT source_timestamp AS t FROM ${waveRows} UNION ALL SELECT updated_at FROM ${waveTransactions})`, end)
      ).getRows()[0].map((v) => epochMillis(v) as number);
      assert.ok(max <= at.getTime(), `latest ${new Date(max).toISOString()}`);
      assert.ok(min >= at.getTime() - MAX_LATENESS_MS, `earliest ${new Date(min).toISOString()}`);

      const late = await scalar(
        connection,
        `SELECT (SELECT COUNT(DISTINCT operation_id) FROM ${waveRows} WHERE source_timestamp <= $2) + (SELECT COUNT(DISTINCT transaction_id) FROM ${waveTransactions} WHERE updated_at <= $2)`,
        [tstz(summary.end), tstz(wave.since)],
      );
      assert.equal(late, wave.lateRows);
      const copies = await scalar(
        connection,
        `SELECT (SELECT COUNT(*) - (SELECT COUNT(*) FROM (SELECT DISTINCT * FROM ${waveRows})) FROM ${waveRows})
              + (SELECT COUNT(*) - (SELECT COUNT(*) FROM (SELECT DISTINCT * FROM ${waveTransactions})) FROM ${waveTransactions})`,
        end,
      );
      assert.equal(copies, wave.duplicates);

      const expected = await expectedConsolidation(connection, at);
      assert.equal(expected.size, summary.operations + wave.newOperations);
    });

    it('rejects a wave whose since is not before at', async () => {
      const connection = await freshDatabase();
      const at = new Date('2026-01-15T10:00:00Z');
      await assert.rejects(
        appendChanges(connection, { at, since: at, seed: 1, newOperations: 1, updates: 0, settlements: 0, lateRows: 0, duplicates: -1 }),
        /duplicates must be an integer >= 0; since must be before at/,
      );
    });
  });
});

describe('the oracle on a hand-written dataset', () => {
  const asOf = new Date('2026-01-15T10:00:00Z');
  const t = (hhmmss: string) => `2026-01-15T${hhmmss}Z`;
  const us = (text: string) => microsText(epochMicros(text));
  let connection: DuckDBConnection;
  let expected: Map<string, ExpectedRow>;

  const ussd = (operation_id: string | null, status: string, source_timestamp: string | null, extra: Record<string, string | null> = {}) => ({
    operation_id,
    session_id: 'S1',
    msisdn: '221770000001',
    service_code: '*144#',
    operation_type: 'TRANSFER',
    amount: '1000',
    currency: 'XOF',
    status,
    transaction_ref: operation_id === null ? null : operation_id.replace('OP', 'TX'),
    agent_code: null,
    created_at: t('08:00:00'),
    source_timestamp,
    ...extra,
  });
  const transaction = (transaction_id: string, status: string, updated_at: string, extra: Record<string, string | null> = {}) => ({
    transaction_id,
    service_id: 'SV1',
    partner_ref: 'P1',
    amount: '1000',
    fees: '10',
    commission: '0',
    status,
    updated_at,
    ...extra,
  });

  before(async () => {
    connection = await freshDatabase();
    for (const name of ['ussd_operations', 'transactiongu', 'services', 'agents'] as const) {
      await connection.run(duckdbCreateTable(`main.${name}`, loadSchema(name)));
    }
    await insertRows(connection, 'main.services', loadSchema('services'), [{ service_id: 'SV1', service_name: 'Transfert national', category: 'TRANSFER' }]);
    await insertRows(connection, 'main.agents', loadSchema('agents'), [{ agent_code: 'AG1', agent_name: 'Kiosque Fall', region: 'Dakar' }]);
    const matched = ussd('OP-MATCHED', 'SUCCESS', t('08:01:00'), { amount: '1500', agent_code: 'AG1', operation_type: 'CASHIN' });
    await insertRows(connection, 'main.ussd_operations', loadSchema('ussd_operations'), [
      ussd('OP-NO-REF', 'SUCCESS', t('09:00:00'), { transaction_ref: null }),
      ussd('OP-GHOST-REF', 'SUCCESS', t('09:00:00')),
      ussd('OP-FUTURE-TX', 'SUCCESS', t('09:00:00')),
      ussd('OP-INITIATED', 'INITIATED', t('09:00:00')),
      ussd('OP-TX-PENDING', 'SUCCESS', t('09:00:00')),
      ussd('OP-AMOUNT', 'SUCCESS', t('09:00:00')),
      ussd('OP-NULL-AMOUNT', 'SUCCESS', t('09:00:00')),
      ussd('OP-MATCHED', 'INITIATED', t('08:00:00'), { amount: '1500', agent_code: 'AG1', operation_type: 'CASHIN' }),
      matched,
      matched, // an exact duplicate of the latest row
      ussd('OP-MATCHED', 'FAILED', t('10:10:00'), { amount: '1500', agent_code: 'AG1', operation_type: 'CASHIN' }), // after asOf
      ussd('OP-TIMEOUT', 'TIMEOUT', t('09:00:00')),
      ussd('OP-STATUS', 'SUCCESS', t('09:00:00'), { agent_code: 'AG404' }),
      ussd(null, 'SUCCESS', t('09:30:00')), // rejects: no operation_id, in and after the window
      ussd(null, 'SUCCESS', t('10:20:00')),
      ussd('OP-NO-TIMESTAMP', 'SUCCESS', null, { created_at: t('09:40:00') }),
    ]);
    await insertRows(connection, 'main.transactiongu', loadSchema('transactiongu'), [
      transaction('TX-FUTURE-TX', 'SUCCESSFUL', t('10:05:00')),
      transaction('TX-INITIATED', 'SUCCESSFUL', t('09:00:05')),
      transaction('TX-TX-PENDING', 'PENDING', t('09:01:00')),
      transaction('TX-TX-PENDING', 'SUCCESSFUL', t('10:30:00')), // after asOf: ignored
      transaction('TX-AMOUNT', 'SUCCESSFUL', t('09:00:05'), { amount: '1000.5' }),
      transaction('TX-NULL-AMOUNT', 'SUCCESSFUL', t('09:00:05'), { amount: null }),
      transaction('TX-MATCHED', 'PENDING', t('08:00:30'), { amount: '1500' }),
      transaction('TX-MATCHED', 'SUCCESSFUL', t('08:02:00'), { amount: '1500.000', service_id: 'SV1' }),
      transaction('TX-TIMEOUT', 'REVERSED', t('08:59:00')),
      transaction('TX-STATUS', 'FAILED', t('09:00:05'), { service_id: 'SV404' }),
    ]);
    expected = await expectedConsolidation(connection, asOf);
  });

  it('applies the five rules in order, one operation per rule', () => {
    const statuses = Object.fromEntries([...expected].map(([id, row]) => [id, row.reconciliation_status]));
    assert.deepEqual(statuses, {
      'OP-NO-REF': 'MISSING_TRANSACTION',
      'OP-GHOST-REF': 'MISSING_TRANSACTION',
      'OP-FUTURE-TX': 'MISSING_TRANSACTION',
      'OP-INITIATED': 'PENDING',
      'OP-TX-PENDING': 'PENDING',
      'OP-AMOUNT': 'AMOUNT_MISMATCH',
      'OP-NULL-AMOUNT': 'AMOUNT_MISMATCH',
      'OP-MATCHED': 'MATCHED',
      'OP-TIMEOUT': 'MATCHED',
      'OP-STATUS': 'STATUS_MISMATCH',
    });
  });

  it('takes the latest rows up to asOf, joins the reference data and computes version_ts', () => {
    assert.deepEqual(expected.get('OP-MATCHED'), {
      operation_id: 'OP-MATCHED',
      msisdn: '221770000001',
      service_code: '*144#',
      operation_type: 'CASHIN',
      amount: '1500.000000000',
      currency: 'XOF',
      ussd_status: 'SUCCESS',
      created_at: us(t('08:00:00')),
      source_timestamp: us(t('08:01:00')),
      transaction_id: 'TX-MATCHED',
      transaction_status: 'SUCCESSFUL',
      transaction_amount: '1500.000000000',
      fees: '10.000000000',
      commission: '0.000000000',
      service_name: 'Transfert national',
      service_category: 'TRANSFER',
      agent_name: 'Kiosque Fall',
      agent_region: 'Dakar',
      reconciliation_status: 'MATCHED',
      version_ts: us(t('08:02:00')),
    });
    const pending = expected.get('OP-TX-PENDING');
    assert.deepEqual([pending?.transaction_status, pending?.version_ts], ['PENDING', us(t('09:01:00'))]);
    const status = expected.get('OP-STATUS');
    assert.deepEqual([status?.service_name, status?.agent_name, status?.version_ts], [null, null, us(t('09:00:05'))]);
    assert.equal(expected.get('OP-TIMEOUT')?.version_ts, t('09:00:00').replace('Z', '.000000Z'));
    assert.equal(expected.has('OP-NO-TIMESTAMP'), false);
  });

  it('counts the rejects of a window', async () => {
    assert.deepEqual(await expectedRejects(connection, new Date(t('09:00:00')), asOf), { missingOperationId: 1, missingSourceTimestamp: 1 });
    assert.deepEqual(await expectedRejects(connection, asOf, new Date(t('11:00:00'))), { missingOperationId: 1, missingSourceTimestamp: 0 });
  });

  it('refuses an ambiguous latest row (two different rows at the same latest timestamp)', async () => {
    await insertRows(connection, 'main.ussd_operations', loadSchema('ussd_operations'), [ussd('OP-TIE', 'SUCCESS', t('09:00:00')), ussd('OP-TIE', 'FAILED', t('09:00:00'))]);
    try {
      await assert.rejects(expectedConsolidation(connection, asOf), /OP-TIE share the latest source_timestamp/);
    } finally {
      await connection.run("DELETE FROM main.ussd_operations WHERE operation_id = 'OP-TIE'");
    }
  });

  it('compares a consolidated table column by column, ignoring batch_id and consolidated_at', async () => {
    const fields = loadSchema('consolidated_table');
    await connection.run('CREATE SCHEMA IF NOT EXISTS consolidated_dataset');
    await connection.run(duckdbCreateTable('consolidated_dataset.consolidated_table', fields));
    const asText = (value: unknown): string | null => (value === null || value === undefined ? null : value instanceof Date ? value.toISOString() : String(value));
    const rows = [...expected.values()].map((row) => {
      const written: Record<string, string | null> = { batch_id: 'b-1', consolidated_at: new Date().toISOString() };
      for (const f of fields) if (f.name in row) written[f.name] = asText(row[f.name as keyof ExpectedRow]);
      return written;
    });
    await insertRows(connection, 'consolidated_dataset.consolidated_table', fields, rows);
    const table = '"consolidated_dataset"."consolidated_table"';
    assert.deepEqual(await compareConsolidated(connection, table, expected), { missing: [], unexpected: [], duplicated: [], different: [], checked: expected.size });

    await connection.run("DELETE FROM consolidated_dataset.consolidated_table WHERE operation_id = 'OP-AMOUNT'");
    await connection.run("UPDATE consolidated_dataset.consolidated_table SET fees = 11, version_ts = version_ts + INTERVAL 1 MICROSECOND WHERE operation_id = 'OP-STATUS'");
    await insertRows(connection, 'consolidated_dataset.consolidated_table', fields, [{ ...rows[0], operation_id: 'OP-EXTRA' }, rows[1]]);
    assert.deepEqual(await compareConsolidated(connection, table, expected), {
      missing: ['OP-AMOUNT'],
      unexpected: ['OP-EXTRA'],
      duplicated: [rows[1].operation_id],
      different: [
        { operation_id: 'OP-STATUS', column: 'fees', expected: '10.000000000', actual: '11.000000000' },
        { operation_id: 'OP-STATUS', column: 'version_ts', expected: '2026-01-15T09:00:05.000000Z', actual: '2026-01-15T09:00:05.000001Z' },
      ],
      checked: expected.size - 1,
    });
  });

  it('normalizes decimals and timestamps whatever type they arrive as', () => {
    const same = ['12.5', 12.5, '12.500', new DuckDBDecimalValue(125n, 10, 1), new DuckDBDecimalValue(12_500_000_000n, 38, 9)].map((v) => decimalText(v));
    assert.deepEqual(new Set(same), new Set(['12.500000000']));
    assert.equal(decimalText('-0.0000000001'), '-0.0000000001');
    assert.equal(decimalText(1500n), '1500.000000000');
    const at = new Date('2026-01-15T09:00:05.123Z');
    assert.equal(epochMillis(new DuckDBTimestampTZValue(BigInt(at.getTime()) * 1000n + 999n)), at.getTime());
    assert.equal(epochMillis(at), at.getTime());
    assert.equal(epochMillis('2026-01-15 09:00:05.123+00'), at.getTime());
  });
});
